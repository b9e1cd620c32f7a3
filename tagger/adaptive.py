"""Adaptive analysis, ``tagger tag``'s default: hear a sample of each track first, and more of
it only where the decision could still change.

Stages, on the whole-track chunk grid (the chunks a ``--whole-track`` run makes, 3 s each for
the shipped models): the first pass hears :data:`FIRST_SECONDS` worth of single chunks, one at
the centre of each of that many equal parts of the whole track (a stratified sample: intros,
outros and every section have their share). Where the decision on what was heard is a close
call, the next stage hears twice as many, again one per part (those not heard yet), and so on;
once a stage would hear :data:`WHOLE_AT` of the track, it hears all the rest instead. Tracks up
to ``FIRST_SECONDS / WHOLE_SHARE`` long are heard whole; tracks over the ``--max-analysis-seconds``
cap (whose whole-track plan is itself a sample) keep the ``--analysis-seconds`` sampler's
stretches for the first pass and hear the rest of the capped plan in one more stage.

A track's scores after any stage are the model's aggregation over every chunk heard
(:func:`combine_scores`): a sample mean, off from the whole-track mean by a sampling error that
shrinks with the chunks heard and the share of the track they are. :func:`needs_rest` treats
that error like the bfloat16 close-call mechanism (:func:`tagger.model.close_call`): the next
stage is heard when what is written (the genres that reach their thresholds, up to top-k, and
their order) could change if every score moved by up to :func:`sampling_error`; the ranking of
labels that cannot reach a threshold is not read (``ranking=False``: a track nothing of which
can be written is clear however close its best two are). The error is
``SAMPLING_ERROR * sqrt((1 - f) / n)`` for n chunks heard, a share f of the track (the standard
error of a mean of n of the track's chunks, with the finite-population correction) plus the
bfloat16 bound. When every stage has been heard,
the chunks are exactly the whole-track run's, so the scores are its scores, to float rounding:
each stretch is decoded as the whole track has it (``tagger.decode.decode_aligned``, one frame of
lead-in dropped by ``tagger.features.extract``).

The constant was measured on 192 real full-length tracks (game soundtracks, seven Debian
packages: ``bench/calibrate_adaptive.py``, docs/benchmarks.md "Adaptive analysis"): the largest
change of a decision score between a stage's sample and the whole track, times sqrt(n / (1 - f)),
rounded up above the largest value seen. Checked on 76 more tracks of five other packages it was
not chosen on (a held-out set, with metal songs): largest 0.50.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

#: Seconds of chunks the first pass hears (10 chunks of the shipped models). Measured: see module doc.
FIRST_SECONDS = 30.0

#: The sampling error of a track score after hearing n chunks, a share f of the track:
#: SAMPLING_ERROR * sqrt((1 - f) / n). Above the largest value measured (0.747 over 445 sampled
#: stages of 192 real tracks; 99th percentile 0.40): docs/benchmarks.md "The bound".
SAMPLING_ERROR = 0.8

#: A stage that would hear at least this share of the track's chunks hears all the rest instead
#: (one contiguous read of the rest costs less than many short ones, and the decision is final).
WHOLE_AT = 0.5

#: Tracks of up to FIRST_SECONDS / WHOLE_SHARE (up to first-pass chunks / WHOLE_SHARE chunks) are
#: heard whole: a sample of most of a track saves little.
WHOLE_SHARE = 0.8

Segment = tuple[float, float | None]


class Next(NamedTuple):
    """What the next stage of a track's analysis hears: ``segments`` (offset, duration) in
    seconds, duration None for a stretch that runs to the end of the track; ``complete``: after
    it, everything a whole-track run hears has been heard."""

    segments: list[Segment]
    complete: bool


def spec(first_seconds: float, max_seconds: float, *, stage: int = 0, complete: bool = False) -> str:
    """The store's sampling spec of an adaptive analysis: ``adaptive:30/whole<=900`` for a first
    pass, ``adaptive:30~2/whole<=900`` once two more stages were heard, ``adaptive:30+rest/whole<=900``
    once everything a whole-track run hears was heard."""
    head = f"adaptive:{first_seconds:g}"
    if complete:
        head += "+rest"
    elif stage:
        head += f"~{stage:d}"
    return f"{head}/whole<={max_seconds:g}"


def parse_spec(sampling: str) -> tuple[float, int] | None:
    """(first-pass seconds, stage) of an incomplete adaptive spec; None for any other spec (whole,
    fixed sample, or an adaptive analysis that heard everything)."""
    head = sampling.split("/", 1)[0]
    if not head.startswith("adaptive:") or head.endswith("+rest"):
        return None
    first, _, stage = head.split(":", 1)[1].partition("~")
    try:
        return float(first), int(stage or 0)
    except ValueError:
        return None


def first_seconds_of(sampling: str) -> float | None:
    """The first pass's seconds of an incomplete adaptive spec (``adaptive:30~1/whole<=900`` -> 30);
    None for any other spec."""
    parsed = parse_spec(sampling)
    return None if parsed is None else parsed[0]


def is_complete(sampling: str) -> bool:
    """An adaptive spec whose track was heard as a whole-track run hears it (any first pass)."""
    return sampling.startswith("adaptive:") and sampling.split("/", 1)[0].endswith("+rest")


def sampling_error(share: float, chunks: int = 1) -> float:
    """How far a sampled track score may be from the whole-track one, after hearing ``chunks``
    chunks, a share ``share`` (0..1) of the track."""
    return SAMPLING_ERROR * math.sqrt(max(0.0, 1.0 - min(1.0, share)) / max(1, chunks))


def needs_rest(scores: np.ndarray, *, share: float, chunks: int, top_k: int, min_confidence: float | np.ndarray,
               extra_error: float = 0.0) -> bool:
    """Whether what is written of a sample's ``scores`` (the genres that reach their
    thresholds, up to ``top_k``, and their order) could change if more of the track were
    heard. ``share``: the share of the track's audio (what a whole-track run would hear) that the
    sample heard, in ``chunks`` chunks; 1 (or more) means nothing is left to hear. ``extra_error``:
    another error on the scores (bfloat16 inference) added to the sampling error."""
    from tagger.model import close_call

    if share >= 1.0 - 1e-9:
        return False
    return close_call(scores, top_k=top_k, min_confidence=min_confidence,
                      error=sampling_error(share, chunks) + extra_error, ranking=False)


def rest_segments(heard: list[Segment], whole: list[Segment],
                  duration: float, *, min_seconds: float) -> list[tuple[float, float]]:
    """The stretches of ``whole`` (what a whole-track run analyses: ``[(0, None)]`` or, for a
    track over the cap, its sampled stretches) not in ``heard`` (the first pass's stretches), as
    (offset, duration) in seconds, in track order. Pieces shorter than ``min_seconds`` (less than
    one chunk: they would be padded into a chunk of mostly repeated audio) are left out."""
    def closed(segs):
        return [(float(o), float(duration) if d is None else float(o) + float(d)) for o, d in segs]

    cut = sorted(closed(heard))
    out: list[tuple[float, float]] = []
    for lo, hi in closed(whole):
        pos = lo
        for a, b in cut:
            if b <= pos or a >= hi:
                continue
            if a > pos:
                out.append((pos, a))
            pos = max(pos, b)
        if pos < hi:
            out.append((pos, hi))
    return [(round(a, 4), round(b - a, 4)) for a, b in out if b - a >= min_seconds]


def combine(first: np.ndarray, first_chunks: int, rest: np.ndarray, rest_chunks: int) -> np.ndarray:
    """Chunk-weighted mean of two chunk means (embeddings, or the track scores of a ``mean``
    model: use :func:`combine_scores` for scores, which knows the model's aggregation)."""
    total = first_chunks + rest_chunks
    a, b = np.asarray(first, np.float64), np.asarray(rest, np.float64)
    return ((a * first_chunks + b * rest_chunks) / total).astype(np.float32)


def combine_scores(first: np.ndarray, first_chunks: int, rest: np.ndarray, rest_chunks: int, *,
                   aggregation: str = "mean", first_logits: np.ndarray | None = None,
                   rest_logits: np.ndarray | None = None) -> np.ndarray:
    """The track scores of a first pass and its rest together: what the model's aggregation
    gives over all their chunks (:func:`tagger.aggregate.weighted_scores`, chunk-weighted). For a
    ``logit-mean`` model the mean logits are combined (given exactly where known, else read back
    from the scores, saturated ones guarded). float32."""
    from tagger.aggregate import weighted_scores

    return weighted_scores([first, rest], [first_chunks, rest_chunks], aggregation,
                           logits=[first_logits, rest_logits]).astype(np.float32)


def whole_plan(duration: float, *, max_seconds: float, params) -> list[tuple[float, float | None]]:
    """What a whole-track run analyses of a track of ``duration`` s (params: FeatureParams)."""
    from tagger.analyse import fit_chunks, plan_segments

    return fit_chunks(plan_segments(duration, analysis_seconds=None, max_seconds=max_seconds,
                                    chunk_seconds=params.chunk_seconds), params=params)


def _hop_seconds(params) -> float:
    return params.chunk_hop_frames * params.samples_per_frame / params.sample_rate


def _chunks_in(samples: int, params) -> int:
    """Chunks tagger.features makes of ``samples`` samples of audio (centred frames)."""
    frames = samples if params.kind == "waveform" else 1 + samples // params.hop_length
    if frames < params.chunk_frames:
        return 1
    return 1 + (frames - params.chunk_frames) // params.chunk_hop_frames


def _seconds_for(chunks: int, params) -> float:
    """Seconds of audio holding exactly ``chunks`` chunks, with the few frames of slack
    tagger.analyse.fit_chunks gives a decoder that returns a little less than asked."""
    spf = params.samples_per_frame
    slack = spf * max(1, min(8, params.chunk_hop_frames // 16))
    frames = params.chunk_frames + (chunks - 1) * params.chunk_hop_frames
    samples = frames if params.kind == "waveform" else (frames - 1) * params.hop_length
    return round((samples + 1 + slack) / params.sample_rate, 4)


def _total_chunks(duration: float, params) -> int:
    """The chunks of a whole-track run of a track of ``duration`` seconds."""
    return _chunks_in(int(round(duration * params.sample_rate)), params)


def first_chunks(first_seconds: float, params) -> int:
    """The first pass's chunks: ``first_seconds`` of audio in them (at least one)."""
    return max(1, int(round(first_seconds / params.chunk_seconds)))


def layout(total: int, n: int) -> np.ndarray:
    """A stratified sample of ``n`` of ``total`` chunks: the chunk at the centre of each of ``n``
    equal parts of the track (sorted chunk indices). The track's last two chunks are left to the
    final stage, which reads to the end of the file: a duration estimated from the headers (VBR
    MP3) may promise a last chunk a decoder cannot fill."""
    n = max(1, min(int(n), total))
    idx = np.floor((np.arange(n) + 0.5) * total / n).astype(np.int64)
    return np.unique(np.minimum(idx, max(0, total - 3)))


def heard_chunks(total: int, first: int, stage: int) -> np.ndarray | None:
    """The chunks heard after stages 0..``stage`` of a track of ``total`` chunks whose first pass
    hears ``first``; None where that is all of them (the stage heard the rest)."""
    if total <= first / WHOLE_SHARE:
        return None
    heard = layout(total, first)
    for k in range(1, stage + 1):
        n = first * 2 ** k
        if n >= WHOLE_AT * total:
            return None
        heard = np.union1d(heard, layout(total, n))
    return heard


def _stretches(chunks: np.ndarray, params) -> list[Segment]:
    """Chunk indices as stretches of audio: one per run of consecutive chunks, each exactly the
    audio its chunks need (on the whole-track grid)."""
    hop = _hop_seconds(params)
    out: list[Segment] = []
    idx = [int(i) for i in chunks]
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        out.append((round(idx[i] * hop, 6), _seconds_for(j - i + 1, params)))
        i = j + 1
    return out


def _complement(total: int, heard: np.ndarray, params) -> list[Segment]:
    """The chunks of a whole-track run not in ``heard``, as stretches: whole chunks each; one that
    holds the track's last chunk runs to the end of the track (duration None)."""
    left = np.setdiff1d(np.arange(total), heard)
    out = _stretches(left, params)
    if len(left) and left[-1] == total - 1:
        out[-1] = (out[-1][0], None)
    return out


def _legacy_first(duration: float, *, first_seconds: float, max_seconds: float, params) -> list[Segment]:
    from tagger.analyse import fit_chunks, plan_segments

    return fit_chunks(plan_segments(duration, analysis_seconds=first_seconds, max_seconds=max_seconds,
                                    chunk_seconds=params.chunk_seconds), params=params)


def first_plan(duration: float, *, first_seconds: float, max_seconds: float, params) -> list[Segment]:
    """What the first pass analyses (see the module doc): whole for short tracks and tracks of
    unknown length, the ``--analysis-seconds`` sampler's stretches for tracks over ``max_seconds``,
    else :func:`first_chunks` single chunks of the whole-track grid, one per equal part."""
    if duration <= 0 or duration <= first_seconds / WHOLE_SHARE:
        return [(0.0, None)]
    if duration > max_seconds:
        return _legacy_first(duration, first_seconds=first_seconds, max_seconds=max_seconds, params=params)
    heard = heard_chunks(_total_chunks(duration, params), first_chunks(first_seconds, params), 0)
    return [(0.0, None)] if heard is None else _stretches(heard, params)


def progress(duration: float | None, *, first_seconds: float, stage: int, max_seconds: float,
             params) -> tuple[float, Next | None]:
    """After stages 0..``stage`` of a track of ``duration`` seconds: the share (0..1) of what a
    whole-track run hears that was heard, and what the next stage hears (None: nothing is left)."""
    if not duration or duration <= 0 or duration <= first_seconds / WHOLE_SHARE:
        return 1.0, None
    if duration > max_seconds:  # the capped plan: a sampler's first pass, then the rest of the plan
        if stage > 0:
            return 1.0, None
        heard_segs = _legacy_first(duration, first_seconds=first_seconds, max_seconds=max_seconds, params=params)
        whole = whole_plan(duration, max_seconds=max_seconds, params=params)
        tail = rest_segments(heard_segs, whole, duration, min_seconds=params.chunk_seconds)
        if not tail:
            return 1.0, None
        heard_s = sum(d for _, d in heard_segs if d is not None)
        left_s = sum(d for _, d in tail)
        return heard_s / (heard_s + left_s), Next(list(tail), True)
    total = _total_chunks(duration, params)
    first = first_chunks(first_seconds, params)
    heard = heard_chunks(total, first, stage)
    if heard is None:
        return 1.0, None
    share = len(heard) / max(total, 1)
    after = heard_chunks(total, first, stage + 1)
    if after is None:
        rest = _complement(total, heard, params)
        return (share, Next(rest, True)) if rest else (1.0, None)
    return share, Next(_stretches(np.setdiff1d(after, heard), params), False)


def describe(sampling: str) -> tuple[str, bool | None]:
    """A store spec as the report's (sampling, rechecked): whole / sample / adaptive (decided on
    the first pass: rechecked False; on a later stage's larger sample: True) / adaptive+rest."""
    if sampling.startswith("adaptive:"):
        if is_complete(sampling):
            return "adaptive+rest", True
        parsed = parse_spec(sampling)
        return "adaptive", bool(parsed and parsed[1] > 0)
    return ("sample" if sampling.startswith("sample:") else "whole"), None


def decision_error(chunks: int) -> float:
    """The bfloat16 inference bound (tagger.model.close_call's default), added to the sampling
    error whatever the precision, so that a run and a later run deciding from the store agree."""
    from tagger.model import BF16_ERROR, BF16_ERROR_CHUNK

    return BF16_ERROR + BF16_ERROR_CHUNK / max(1, chunks)
