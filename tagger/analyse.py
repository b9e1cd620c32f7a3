"""The worker's job for one file: read its tags, decide whether it needs the model, decode the
stretches to analyse, compute features. Pure with respect to the file: it only reads.

:func:`analyse_file` is a plain function (tested without Ray); :mod:`tagger.ray_backend` runs it
as a Ray task. The result is an :class:`tagger.contracts.Analysis`: plain values plus one feature array.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tagger.contracts import Analysis, Failure, FileTags, Policy, Segment, WorkerTiming
from tagger.errors import AudioError, DecodeError, FileError, ParameterError

log = logging.getLogger(__name__)


def plan_segments(duration: float, *, analysis_seconds: float | None, max_seconds: float,
                  chunk_seconds: float) -> list[tuple[float, float | None]]:
    """Which stretches of a track to analyse, as (offset, duration) in seconds.

    ``analysis_seconds=None``: the whole track, unless it is longer than ``max_seconds`` (a DJ mix,
    an audiobook), which is then sampled like ``analysis_seconds=max_seconds`` so that memory and
    time stay bounded. Sampling takes evenly spaced segments of about 3 chunks between 10% and 90%
    of the track (intros and outros are least typical), adding up to ``analysis_seconds``.
    Tracks no longer than the budget are analysed whole. An unknown duration (0) means whole.
    """
    budget = analysis_seconds if analysis_seconds is not None else max_seconds
    if duration <= 0 or duration <= budget:
        return [(0.0, None)]
    seg = max(chunk_seconds, min(budget, 3 * chunk_seconds))
    count = max(1, int(math.ceil(budget / seg)))
    seg = budget / count
    lo, hi = 0.1 * duration, 0.9 * duration - seg
    if hi <= lo:
        lo, hi = 0.0, max(0.0, duration - seg)
    starts = [(lo + hi) / 2] if count == 1 else [lo + i * (hi - lo) / (count - 1) for i in range(count)]
    return [(round(s, 3), round(seg, 3)) for s in starts]


def fit_chunks(segments: list[tuple[float, float | None]], *, params) -> list[tuple[float, float | None]]:
    """``plan_segments``' stretches, lengthened or shortened to whole chunks.

    A 7.5 s stretch holds two 3 s chunks and 1.5 s that :func:`tagger.features.extract` drops:
    decoded for nothing, and a sampled track would see fewer chunks than it paid for. The
    budget, in chunks (``round`` of what the stretches hold fractionally), is shared out
    between the stretches (their counts differ by one at most, at least one each) and each
    stretch is given exactly the audio its chunks need. Whole-track plans are unchanged.

    segments: (offset, duration) in seconds; params: tagger.features.FeatureParams.
    Returns the same offsets with new durations.
    """
    if not segments or any(d is None for _, d in segments):
        return segments
    spf, sr = params.samples_per_frame, params.sample_rate
    hop_s = params.chunk_hop_frames * spf / sr

    def fractional(d: float) -> float:  # chunks a stretch of d seconds would hold, fractionally
        return 1.0 + max(0.0, d - params.chunk_seconds) / hop_s

    # a few frames more than the least that holds c chunks: a decoder may give a few samples
    # fewer than asked, and a chunk is lost for one sample missing
    slack = spf * max(1, min(8, params.chunk_hop_frames // 16))

    def need(c: int) -> float:  # seconds that hold c chunks (frames are centred: 1 + n // hop)
        frames = params.chunk_frames + (c - 1) * params.chunk_hop_frames
        samples = frames if params.kind == "waveform" else (frames - 1) * params.hop_length
        return (samples + 1 + slack) / sr

    held = sum((fractional(d) for _, d in segments if d is not None), 0.0)  # none is None here
    total = max(len(segments), int(round(held)))
    base, extra = divmod(total, len(segments))
    # the extra chunks go to evenly spread stretches
    gets = {int(i * len(segments) / extra) for i in range(extra)} if extra else set()
    return [(o, round(need(base + (1 if i in gets else 0)), 4)) for i, (o, _) in enumerate(segments)]


def chunk_spans(lengths: list[int], offsets: list[float], *, params) -> np.ndarray:
    """Where each chunk :func:`tagger.features.extract_segments` makes lies in the track.

    Parameters
    ----------
    lengths : samples decoded per segment, at ``params.sample_rate``
    offsets : start of each segment in the track, seconds (``plan_segments``' offsets)
    params : tagger.features.FeatureParams

    Follows ``extract_segments``: a segment shorter than ``params.min_samples`` makes no chunk;
    one shorter than a chunk is repeat-padded to one chunk (its span is the audio it has);
    frames are centred (librosa), so a stretch of n samples has 1 + n // hop frames.

    Returns
    -------
    np.ndarray, shape (n_chunks, 2), float64: start and end of each chunk in seconds
    """
    spans = []
    spf, sr = params.samples_per_frame, params.sample_rate
    for n, offset in zip(lengths, offsets, strict=False):
        if n < params.min_samples:
            continue
        frames = n if params.kind == "waveform" else 1 + n // params.hop_length
        if frames < params.chunk_frames:
            spans.append((offset, offset + n / sr))
            continue
        count = 1 + (frames - params.chunk_frames) // params.chunk_hop_frames
        starts = offset + np.arange(count) * params.chunk_hop_frames * spf / sr
        spans.extend((s, min(s + params.chunk_seconds, offset + n / sr)) for s in starts)
    return np.asarray(spans, dtype=np.float64).reshape(-1, 2)


def chunks_of(path: str, audio: list[np.ndarray], *, params, skip_frames: list[int] | None = None) -> np.ndarray:
    """Model inputs of a track's decoded stretches (``tagger.features.extract_segments``), with
    digital silence and too-short audio turned into :class:`AudioError` (one-line reasons).
    Shared by ``tagger tag``/``explain`` and the training feature cache. ``skip_frames``: per
    stretch, lead-in frames to drop (:func:`decode_segments_aligned`)."""
    from tagger.features import extract_segments, is_silent

    if all(is_silent(a) for a in audio):
        raise AudioError(path, "digital silence: nothing to classify")
    try:
        return extract_segments(audio, params=params, skip_frames=skip_frames)
    except ParameterError as exc:
        raise AudioError(path, str(exc)) from None


def decode_segments(path: str, segments: Sequence[Segment], *, params) -> list[np.ndarray]:
    """The stretches ``segments`` of a track, decoded to mono float32 at ``params.sample_rate``
    (:func:`tagger.decode.decode`). With :func:`chunks_of`, the decode-to-chunks path of
    ``tagger tag``, ``tagger explain`` and the training feature cache; errors are theirs to
    turn into a :class:`~tagger.contracts.Failure` with :func:`failure_of`."""
    from tagger.decode import decode

    cut = _cutter(path, segments, params)
    if cut is not None:
        return [cut(o, d) for o, d in segments]
    return [decode(path, sample_rate=params.sample_rate, offset=o, duration=d) for o, d in segments]


def _cutter(path: str, segments: Sequence[Segment], params):
    """For a file whose seeking lands off the audio (tagger.decode.seeks_true): a function cutting
    stretches out of the whole file decoded once (each stretch read from the start would cost a
    decode of everything before it). None where seeking is right, or nothing is sought."""
    from tagger.decode import decode, seeks_true

    if not any(o > 0 for o, _ in segments) or seeks_true(path):
        return None
    whole = decode(path, sample_rate=params.sample_rate)
    sr = params.sample_rate

    def cut(offset: float, duration: float | None) -> np.ndarray:
        i0 = int(round(offset * sr))
        y = whole[i0:] if duration is None else whole[i0:i0 + int(round(duration * sr))]
        if y.size == 0:
            raise DecodeError(path, "no audio frames decoded")
        return np.ascontiguousarray(y)

    return cut


def decode_segments_aligned(path: str, segments: Sequence[Segment], *, params,
                            source_rate: int | None = None) -> tuple[list[np.ndarray], list[int]]:
    """The stretches ``segments`` as the whole track decoded at once has them, each (but one at
    the very start) with one frame's hop of audio before it (:func:`tagger.features.lead_samples`)
    and the frames to drop for it, so that the chunks made of them are the whole-track run's chunks
    at these offsets, to float rounding: adaptive analysis's stages (tagger.adaptive)."""
    from tagger.decode import decode
    from tagger.features import lead_samples

    lead = lead_samples(params)
    lead_s = lead / params.sample_rate
    cut = _cutter(path, segments, params)
    audio, skips = [], []
    for o, d in segments:
        pre = lead_s if lead and o >= lead_s else 0.0
        if cut is not None:  # the whole file decoded once: its own timeline, exactly
            y = cut(o - pre, None if d is None else d + pre)
        else:
            y = decode(path, sample_rate=params.sample_rate, offset=o - pre, duration=None if d is None else d + pre,
                       aligned=True, source_rate=source_rate)
        audio.append(y)
        skips.append(1 if pre else 0)
    return audio, skips


def failure_of(path: str, exc: BaseException) -> Failure:
    """The one-line (kind, reason) of anything decoding or analysing one file raised: a
    :class:`FileError` says its own; memory and unexpected errors are ``decode`` failures (an
    unexpected one is logged with its traceback at debug level). A bad file never ends a run."""
    if isinstance(exc, FileError):
        return Failure(exc.kind, exc.reason)
    if isinstance(exc, MemoryError):
        return Failure("decode", "out of memory while decoding")
    log.debug("unexpected error on %s", path, exc_info=exc)
    return Failure("decode", f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")


def analyse_file(path: str, *, params: dict[str, Any], policy: Policy | Mapping[str, Any]) -> Analysis:
    """Analyse one file. Never raises for a problem with the file: the :class:`Analysis` says
    what happened (its ``error``, or its ``skip``, or its ``features``).

    ``params``: the model's :class:`tagger.features.FeatureParams` as a dict; ``policy``: a
    :class:`tagger.contracts.Policy` (or a mapping of its fields): whether the file needs the
    model, which stretches to analyse, whether to keep the decoded audio (explain).
    """
    from tagger.aggregate import needs_analysis
    from tagger.features import FeatureParams
    from tagger.ray_backend import current_node

    t0 = time.perf_counter()
    pol = Policy.of(policy)
    _be_nice(pol.nice)
    ident: dict[str, Any] = {"node": current_node()}
    timing = {"tags": 0.0, "decode": 0.0, "features": 0.0}

    def done(**fields: Any) -> Analysis:
        return Analysis(path, **ident, **fields,
                        timing=WorkerTiming(time.perf_counter() - t0, **timing))

    try:
        try:
            st = os.stat(path)
        except FileNotFoundError:  # e.g. a cluster node that does not see the library's path
            raise DecodeError(path, "file not found (deleted or moved?)") from None
        except OSError as exc:  # a symbolic link loop, a vanished network share, ...
            raise DecodeError(path, f"cannot read: {(exc.strerror or str(exc)).lower()}") from None
        ident.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
        if st.st_size == 0:  # say so, rather than what the tag reader makes of no bytes
            raise DecodeError(path, "empty file (0 bytes)")
        from tagger import tags

        info = tags.read_tags(path)
        ident.update(format=info.format, tags=FileTags.of(info))
        timing["tags"] = time.perf_counter() - t0
        read = ident["tags"]
        skip = needs_analysis(
            existing=read.existing, tagger_owned=read.tagger_owned, owner_model_id=read.owner_model,
            model_id=pol.model_id, on_existing=pol.on_existing, always=pol.analyse_all, redecide=pol.redecide,
        )
        if skip:
            return done(skip=skip)
        fp = FeatureParams.from_dict(params)
        from tagger.decode import probe

        t1 = time.perf_counter()
        stream = probe(path)
        duration = stream.duration
        ident["duration"] = duration
        segments: list[Segment]
        if pol.adaptive_first:  # adaptive analysis's first pass (tagger.adaptive)
            from tagger.adaptive import first_plan

            segments = first_plan(duration, first_seconds=float(pol.adaptive_first), max_seconds=pol.max_seconds,
                                  params=fp)
        elif pol.segments is not None:
            segments = list(pol.segments)
        else:
            segments = fit_chunks(plan_segments(duration, analysis_seconds=pol.analysis_seconds,
                                                max_seconds=pol.max_seconds, chunk_seconds=fp.chunk_seconds),
                                  params=fp)
        ident["plan"] = tuple(segments)
        skips: list[int] | None = None
        if pol.aligned:
            audio, skips = decode_segments_aligned(path, segments, params=fp, source_rate=stream.sample_rate)
        else:
            audio = decode_segments(path, segments, params=fp)
        t2 = time.perf_counter()
        timing["decode"] = t2 - t1
        lead = sum(skips or []) * (fp.hop_length if fp.kind != "waveform" else 0)
        ident["heard"] = (sum(a.shape[0] for a in audio) - lead) / fp.sample_rate
        feats = chunks_of(path, audio, params=fp, skip_frames=skips)
        if pol.float16:
            feats = feats.astype(np.float16)
        timing["features"] = time.perf_counter() - t2
        return done(features=feats, audio=tuple(audio) if pol.keep_audio else None)
    except Exception as exc:  # a bad file must never end the run
        return done(error=failure_of(path, exc))


_NICED = 0


def _be_nice(nice: int) -> None:
    """Lower this worker process's priority by ``nice`` (once per process): decoding yields a
    core to inference when both want it (docs/scaling.md)."""
    global _NICED
    if nice > _NICED:
        with contextlib.suppress(OSError):
            os.nice(nice - _NICED)
        _NICED = nice
