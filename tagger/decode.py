"""Decode an audio file to mono float32 at a given sample rate.

libsndfile (through soundfile) reads WAV, AIFF, FLAC, Ogg Vorbis, Opus and MP3; PyAV (FFmpeg's
libraries, linked into the wheel) reads everything else tagger supports (M4A AAC/ALAC, WMA) and
is the fallback when libsndfile refuses a file (a FLAC named .mp3, say). No external binaries.

Decoding streams in blocks: channels are averaged to mono block by block and the result is
resampled once with soxr (the resampler librosa uses), so memory is proportional to the mono
output, never to the decoded multichannel file. Reading a stretch (``offset``/``duration``)
seeks rather than decoding and discarding.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger.errors import DecodeError

log = logging.getLogger(__name__)

#: Extensions libsndfile is tried on first.
SNDFILE_EXTS = {".wav", ".wave", ".aif", ".aiff", ".aifc", ".flac", ".ogg", ".oga", ".opus", ".mp3"}
BLOCK_FRAMES = 1 << 16
#: A frame count libsndfile gives when it does not know the length (its SF_COUNT_MAX, 2**63 - 1,
#: seen for Ogg files without an end-of-stream page and chained Ogg files; libsndfile issues
#: #525, #809, #989) is not a length: at or above this it counts as unknown.
UNKNOWN_FRAMES = 1 << 62


@dataclass(frozen=True)
class AudioInfo:
    duration: float  # seconds (estimate for some compressed streams)
    sample_rate: int
    channels: int
    codec: str


def probe(path: str | Path) -> AudioInfo:
    """Duration, rate, channels and codec without decoding the audio."""
    path = Path(path)
    _check_readable(path)
    if path.suffix.lower() in SNDFILE_EXTS:
        try:
            import soundfile as sf

            info = sf.info(str(path))
            if 0 < info.frames < UNKNOWN_FRAMES and info.samplerate > 0:
                return AudioInfo(info.frames / info.samplerate, info.samplerate, info.channels, info.format.lower())
        except Exception:
            pass
    return _probe_av(path)


def decode(
    path: str | Path,
    *,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
    aligned: bool = False,
    source_rate: int | None = None,
) -> np.ndarray:
    """Mono float32 audio at ``sample_rate``, shape (n_samples,).

    ``offset`` and ``duration`` (seconds) select a stretch; reading it seeks.
    ``aligned``: the stretch as it is in the whole track decoded and resampled at once (samples
    ``round(offset * sample_rate)`` on), to float rounding: see :func:`decode_aligned`.
    Raises :class:`DecodeError` with a one-line reason for anything unreadable.
    """
    path = Path(path)
    _check_readable(path)
    if aligned and offset > 0:
        return decode_aligned(path, sample_rate=sample_rate, offset=offset, duration=duration, source_rate=source_rate)
    errors = []
    if path.suffix.lower() in SNDFILE_EXTS:
        try:
            seek = offset <= 0 or _seeks_true(path, _decode_sndfile)
            y, sr = _decode_sndfile(path, offset, duration, seek=seek)
            return _resample(y, sr, sample_rate)
        except DecodeError:
            raise
        except Exception as exc:
            errors.append(f"libsndfile: {_short(exc)}")
    try:
        seek = offset <= 0 or _seeks_true(path, _decode_av)
        y, sr = _decode_av(path, offset, duration, seek=seek)
        return _resample(y, sr, sample_rate)
    except DecodeError:
        raise
    except Exception as exc:
        errors.append(f"ffmpeg: {_short(exc)}")
    raise DecodeError(path, "cannot decode audio (" + "; ".join(errors) + ")")


#: Seconds decoded before (and after) an aligned stretch, for the resampler's filter to settle:
#: 20 ms already gave the whole track's samples to float rounding (2e-7) on 44.1 kHz Vorbis.
ALIGN_CONTEXT = 0.05


def decode_aligned(path: str | Path, *, sample_rate: int, offset: float, duration: float | None,
                   source_rate: int | None = None) -> np.ndarray:
    """A stretch exactly as the whole track decoded and resampled at once has it: resampling
    starts from the stretch's own first sample, so a stretch decoded on its own is shifted by
    up to half a source sample and its first milliseconds carry the filter's start-up (errors up
    to 7e-3 measured). Here decoding starts :data:`ALIGN_CONTEXT` seconds earlier, at a source
    sample that falls on an output sample of the whole track (a multiple of
    ``source_rate / gcd(source_rate, sample_rate)``), and ends that much later; the resampled
    audio is then cut to output samples ``round(offset * sample_rate)`` onwards, ``duration``
    seconds of them (None: to the end). ``source_rate``: the file's rate, where already probed."""
    import math

    path = Path(path)
    src = source_rate or probe(path).sample_rate
    if src <= 0:
        return decode(path, sample_rate=sample_rate, offset=offset, duration=duration)
    g = math.gcd(src, sample_rate)
    step_in, step_out = src // g, sample_rate // g
    want = int(round(offset * sample_rate))
    k = max(0, math.floor((offset - ALIGN_CONTEXT) * src / step_in))
    first_out = k * step_out  # the whole track's output index of the first decoded sample
    lead = want - first_out
    span = None if duration is None else lead / sample_rate + duration + ALIGN_CONTEXT
    y = decode(path, sample_rate=sample_rate, offset=k * step_in / src, duration=span)
    y = y[lead:]
    if duration is not None:
        y = y[: int(round(duration * sample_rate))]
    if y.size == 0:
        raise DecodeError(path, "no audio frames decoded")
    return np.ascontiguousarray(y)


def decode_segments(
    path: str | Path, *, sample_rate: int, segments: list[tuple[float, float]]
) -> list[np.ndarray]:
    """Decode several (offset, duration) stretches of one file."""
    return [decode(path, sample_rate=sample_rate, offset=o, duration=d) for o, d in segments]


# ---------------------------------------------------------------------------------------

def _check_readable(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DecodeError(path, "file not found (deleted or moved?)") from None
    except OSError as exc:
        raise DecodeError(path, f"cannot stat file: {exc.strerror or exc}") from None
    if not path.is_file():
        raise DecodeError(path, "not a regular file")
    if st.st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise DecodeError(path, "permission denied (not readable)")


def _short(exc: BaseException) -> str:
    # OSError and FFmpeg errors: the message without "[Errno N]" and the path (reasons name no path)
    strerror = getattr(exc, "strerror", None)
    text = strerror if getattr(exc, "filename", None) and isinstance(strerror, str) else exc
    text = " ".join(str(text).split())
    return (text[:160] + "…") if len(text) > 160 else (text or type(exc).__name__)


def _resample(y: np.ndarray, sr: int, target: int) -> np.ndarray:
    if y.size == 0:
        raise ValueError("no audio frames decoded")
    if sr != target:
        import soxr

        y = soxr.resample(y, sr, target, quality="HQ")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise ValueError("decoded audio contains NaN or infinity")
    return y


def _mono(x: np.ndarray) -> np.ndarray:
    """Average the channels of ``x``, shape (channels, n) -> (n,) float32, a new array.

    The same numbers as ``np.mean(x, axis=0)`` (librosa's to_mono): channels are added in order,
    then divided by their count; ten times faster than ``mean`` over a short strided axis.
    """
    y = np.array(x[0], dtype=np.float32)
    for c in range(1, x.shape[0]):
        y += x[c]
    if x.shape[0] > 1:
        y /= np.float32(x.shape[0])
    return y


def seeks_true(path: str | Path) -> bool:
    """Whether seeking in ``path`` lands where reading from the start does, with the decoder
    :func:`decode` uses first for it (see :func:`_seeks_true`). Callers that read several
    stretches of a file that does not decode it whole once and cut them from it instead."""
    path = Path(path)
    backend = _decode_sndfile if path.suffix.lower() in SNDFILE_EXTS else _decode_av
    return _seeks_true(path, backend)


#: Where seeking was checked, per file (path, size, mtime): whether it lands where reading does.
_SEEK_CHECKED: dict[tuple[str, int, int], bool] = {}
SEEK_CHECK_AT, SEEK_CHECK_SECONDS = 1.0, 0.25


def _seeks_true(path: Path, backend) -> bool:
    """Whether seeking in ``path`` (with ``backend``: _decode_sndfile or _decode_av) lands on the
    samples that reading from the start gives there. Not for every file it does: libsndfile lands
    131 ms late in an Ogg Vorbis file of hyperrogue-music (its granule positions do not start
    at zero), and a stretch read from there is another stretch of the track. Checked once per file
    and process: a quarter second read at 1 s by seeking and by reading from the start. A file
    that fails is read from the start and the audio before a stretch discarded (slower, right)."""
    try:
        st = path.stat()
    except OSError:
        return True  # the decode itself will say what is wrong
    key = (str(path), st.st_size, st.st_mtime_ns)
    known = _SEEK_CHECKED.get(key)
    if known is not None:
        return known
    ok = True
    try:
        seq, sr = backend(path, 0.0, SEEK_CHECK_AT + SEEK_CHECK_SECONDS, seek=False)
        i0 = int(round(SEEK_CHECK_AT * sr))
        if seq.size > i0 + int(SEEK_CHECK_SECONDS * sr) // 2:
            got, _ = backend(path, SEEK_CHECK_AT, SEEK_CHECK_SECONDS, seek=True)
            n = min(got.size, seq.size - i0)
            ok = n > 0 and bool(np.max(np.abs(got[:n] - seq[i0:i0 + n])) <= 1e-4)
    except Exception:
        ok = True  # a file the check cannot read: decoding says why
    if not ok:
        log.info("%s: seeking lands off the audio; stretches are read from the start instead", path)
    if len(_SEEK_CHECKED) > 4096:
        _SEEK_CHECKED.clear()
    _SEEK_CHECKED[key] = ok
    return ok


def _decode_sndfile(path: Path, offset: float, duration: float | None, *, seek: bool = True) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        start = int(round(max(offset, 0.0) * sr))
        total = f.frames if 0 < f.frames < UNKNOWN_FRAMES else None
        buf = np.empty((BLOCK_FRAMES, f.channels), np.float32)  # one buffer, refilled
        if start:
            if total is not None and start >= total:
                return np.zeros(0, np.float32), sr
            if seek:
                f.seek(start)
            else:  # read up to the stretch and discard it
                left = start
                while left > 0:
                    n = min(BLOCK_FRAMES, left)
                    skipped = f.read(n, dtype="float32", always_2d=True, out=buf[:n])
                    if skipped.shape[0] == 0:
                        return np.zeros(0, np.float32), sr
                    left -= skipped.shape[0]
        want = None if duration is None else int(round(duration * sr))
        parts, got = [], 0
        while want is None or got < want:
            n = BLOCK_FRAMES if want is None else min(BLOCK_FRAMES, want - got)
            block = f.read(n, dtype="float32", always_2d=True, out=buf[:n])
            if block.shape[0] == 0:
                break
            parts.append(_mono(block.T))
            got += block.shape[0]
    if not parts:
        raise ValueError("no audio frames decoded")
    return np.concatenate(parts), sr


def _open_av(path: Path):
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except EOFError:  # FFmpeg reached the end before the headers and first packets were complete
        raise DecodeError(path, "file ends early (truncated?): no complete audio in it") from None
    except Exception as exc:
        raise DecodeError(path, f"not a readable audio file ({_short(exc)})") from None
    if not container.streams.audio:
        container.close()
        raise DecodeError(path, "no audio stream in file")
    return container


def _probe_av(path: Path) -> AudioInfo:
    container = _open_av(path)
    try:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            dur = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            dur = container.duration / 1_000_000
        else:
            dur = 0.0
        ctx = stream.codec_context
        return AudioInfo(dur, int(ctx.sample_rate or 0), int(ctx.channels or 0), ctx.name or "unknown")
    finally:
        container.close()


def _decode_av(path: Path, offset: float, duration: float | None, *, seek: bool = True) -> tuple[np.ndarray, int]:
    import av

    container = _open_av(path)
    parts: list[np.ndarray] = []
    try:
        stream = container.streams.audio[0]
        sr = int(stream.codec_context.sample_rate or 0)
        if sr <= 0:
            raise DecodeError(path, "audio stream has no sample rate")
        # format conversion only (int/packed -> planar float; most decoders, MP3, AAC and
        # Vorbis among them, give planar float already and skip it); channels are averaged
        # below, rate is left alone so that every decoder feeds the same soxr resampler.
        resampler = None
        if offset > 0 and seek:
            container.seek(int(offset * av.time_base), any_frame=False, backward=True)
        start = offset
        stop = None if duration is None else offset + duration
        for frame in container.decode(stream):
            t0 = frame.time  # pts * time_base in seconds (a float, not a Fraction); None if unknown
            if frame.format.name == "fltp":
                outs = [frame]
            else:
                if resampler is None:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=frame.sample_rate)
                outs = resampler.resample(frame)
            for out in outs:
                a = _mono(out.to_ndarray())  # planar: (channels, n)
                if t0 is not None:
                    # trim to [start, stop) using the frame's timestamp
                    i0 = max(0, int(round((start - t0) * sr))) if t0 < start else 0
                    a = a[i0:]
                    if stop is not None:
                        t_first = max(t0, start)
                        keep = int(round((stop - t_first) * sr))
                        a = a[: max(0, keep)]
                parts.append(a.astype(np.float32, copy=False))
            if stop is not None and t0 is not None and t0 >= stop:
                break
    except DecodeError:
        raise
    except av.error.FFmpegError as exc:
        if not parts:
            raise DecodeError(path, f"cannot decode audio ({_short(exc)})") from None
        log.warning("%s: decoding stopped early: %s", path, _short(exc))
    finally:
        container.close()
    if not parts:
        raise DecodeError(path, "no audio frames decoded")
    return np.concatenate(parts), sr
