"""Adaptive analysis, ``tagger tag``'s default: hear a sample of each track first, and the rest of
it only where the decision could still change.

The first pass is the ``--analysis-seconds`` sampler at :data:`FIRST_SECONDS` (evenly spaced
stretches between 10% and 90% of the track; tracks no longer than that are heard whole). Its
track scores are chunk means over a sample of the track's chunks, so they differ from the
whole-track scores by a sampling error that shrinks with the share heard. :func:`needs_rest`
treats that error like the bfloat16 close-call mechanism (:func:`tagger.model.close_call`): the
decision is re-checked when the written genres, the top-k order or the threshold comparison
could change if every score moved by up to :func:`sampling_error`. A re-checked track has the
rest of its audio analysed (:func:`rest_segments`: what a whole-track run would hear, minus
what the first pass heard) and its final scores are the chunk-weighted mean over everything
heard (:func:`combine`), the same mean a whole-track run computes, up to chunk boundaries.

The bound was measured on 81 real full-length tracks (game soundtracks, mean 272 s:
``bench/calibrate_adaptive.py``, docs/benchmarks.md "Adaptive analysis"): the largest change of
a decision score between a sample and the whole track, divided by sqrt(1 - share heard) (the
finite-population correction of a sample mean), with a safety factor over the largest value
seen.
"""

from __future__ import annotations

import math

import numpy as np

#: Seconds the first pass hears (the ``--analysis-seconds`` sampler). Measured: see module doc.
FIRST_SECONDS = 60.0

#: Sampling error of a track score after hearing a share f of the track: SAMPLING_ERROR * sqrt(1 - f).
SAMPLING_ERROR = 0.15


def spec(first_seconds: float, max_seconds: float, *, complete: bool = False) -> str:
    """The store's sampling spec of an adaptive analysis: ``adaptive:60/whole<=900`` for a first
    pass, ``adaptive:60+rest/whole<=900`` once the rest of the track was heard too."""
    return f"adaptive:{first_seconds:g}{'+rest' if complete else ''}/whole<={max_seconds:g}"


def sampling_error(share: float) -> float:
    """How far a sampled track score may be from the whole-track one, given the share heard (0..1)."""
    return SAMPLING_ERROR * math.sqrt(max(0.0, 1.0 - min(1.0, share)))


def needs_rest(scores: np.ndarray, *, share: float, top_k: int, min_confidence: float | np.ndarray,
               extra_error: float = 0.0) -> bool:
    """Whether the decision on a sample's ``scores`` could change if the rest of the track were
    heard. ``share``: the share of the track's audio (what a whole-track run would hear) that the
    sample heard; 1 (or more) means nothing is left to hear. ``extra_error``: another error on
    the scores (bfloat16 inference) added to the sampling error."""
    from tagger.model import close_call

    if share >= 1.0 - 1e-9:
        return False
    return close_call(scores, top_k=top_k, min_confidence=min_confidence,
                      error=sampling_error(share) + extra_error)


def rest_segments(heard: list[tuple[float, float | None]], whole: list[tuple[float, float | None]],
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


#: Tracks up to FIRST_SECONDS / WHOLE_SHARE long are heard whole by the first pass: the sampler
#: spreads its stretches over 80% of a track, so a longer budget would hear some audio twice.
WHOLE_SHARE = 0.8


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


def first_plan(duration: float, *, first_seconds: float, max_seconds: float, params) -> list[tuple[float, float | None]]:
    """What the first pass analyses: the ``--analysis-seconds`` sampler's stretches at
    ``first_seconds``, each moved back to the whole-track chunk grid (a multiple of the chunk
    hop), so that its chunks are chunks a whole-track run makes too, and the first pass and its
    rest together make the whole-track run's chunks. Tracks up to ``first_seconds /
    WHOLE_SHARE`` long: whole. Tracks over ``max_seconds`` (whose whole-track plan is itself a
    sample): the sampler's stretches as they are."""
    from tagger.analyse import fit_chunks, plan_segments

    if duration <= 0 or duration <= first_seconds / WHOLE_SHARE:
        return [(0.0, None)]
    segs = fit_chunks(plan_segments(duration, analysis_seconds=first_seconds, max_seconds=max_seconds,
                                    chunk_seconds=params.chunk_seconds), params=params)
    if duration > max_seconds or any(d is None for _, d in segs):
        return segs
    hop = _hop_seconds(params)
    total = _chunks_in(int(round(duration * params.sample_rate)), params)
    out, end = [], 0
    for o, d in segs:
        c = _chunks_in(int(round(d * params.sample_rate)), params)
        start = max(end, int(o // hop))
        if start + c > total:
            return [(0.0, None)]
        out.append((start, c))
        end = start + c
    return [(round(i * hop, 6), _seconds_for(c, params)) for i, c in out]


def _grid_rest(duration: float, heard: list[tuple[float, float | None]], params) -> list[tuple[float, float | None]]:
    """The chunk ranges of a whole-track run not in ``heard`` (grid-aligned stretches, see
    first_plan), as stretches: whole chunks each; the last one runs to the end of the track."""
    hop = _hop_seconds(params)
    total = _chunks_in(int(round(duration * params.sample_rate)), params)
    ranges = sorted((int(round(o / hop)), _chunks_in(int(round(d * params.sample_rate)), params)) for o, d in heard)
    out, pos = [], 0
    for start, c in ranges + [(total, 0)]:
        if start > pos:
            last = start >= total
            out.append((round(pos * hop, 6), None if last else _seconds_for(start - pos, params)))
        pos = max(pos, start + c)
    return out


def _on_grid(heard, params) -> bool:
    hop = _hop_seconds(params)
    return all(d is not None and abs(o / hop - round(o / hop)) < 1e-6 for o, d in heard)


def plan_rest(duration: float | None, heard: list[tuple[float, float | None]], *, max_seconds: float,
              params) -> tuple[list[tuple[float, float | None]], float]:
    """The rest of a track after the first pass heard ``heard``, and the share (0..1) of the
    final analysis (``heard`` and the rest together) already heard. No rest (an empty list,
    share 1) for a track heard whole or of unknown length. A rest stretch's duration is None
    when it runs to the end of the track."""
    if not duration or duration <= 0 or any(d is None for _, d in heard):
        return [], 1.0
    if duration <= max_seconds and _on_grid(heard, params):
        rest = _grid_rest(duration, heard, params)
        if not rest:
            return [], 1.0
        hop = _hop_seconds(params)
        got = sum(_chunks_in(int(round(d * params.sample_rate)), params) for _, d in heard)
        total = _chunks_in(int(round(duration * params.sample_rate)), params)
        return rest, min(1.0, got / max(total, 1)) if hop > 0 else 1.0
    whole = whole_plan(duration, max_seconds=max_seconds, params=params)
    rest = rest_segments(heard, whole, duration, min_seconds=params.chunk_seconds)
    if not rest:
        return [], 1.0
    got, left = sum(d for _, d in heard), sum(d for _, d in rest)
    return rest, got / (got + left)


def first_seconds_of(sampling: str) -> float | None:
    """The first pass's seconds of an adaptive first-pass spec (``adaptive:60/whole<=900`` -> 60);
    None for any other spec (whole, fixed sample, or an adaptive analysis whose rest was heard)."""
    head = sampling.split("/", 1)[0]
    if not head.startswith("adaptive:") or head.endswith("+rest"):
        return None
    try:
        return float(head.split(":", 1)[1])
    except ValueError:
        return None


def describe(sampling: str) -> tuple[str, bool | None]:
    """A store spec as the report's (sampling, rechecked): whole / sample / adaptive / adaptive+rest."""
    if sampling.startswith("adaptive:"):
        done = sampling.split("/", 1)[0].endswith("+rest")
        return ("adaptive+rest" if done else "adaptive"), done
    return ("sample" if sampling.startswith("sample:") else "whole"), None


def decision_error(chunks: int) -> float:
    """The bfloat16 inference bound (tagger.model.close_call's default), added to the sampling
    error whatever the precision, so that a run and a later run deciding from the store agree."""
    from tagger.model import BF16_ERROR, BF16_ERROR_CHUNK

    return BF16_ERROR + BF16_ERROR_CHUNK / max(1, chunks)
