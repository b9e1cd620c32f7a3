"""Feature extraction: the one function shared by ``tagger tag`` and the training commands.

Pure functions in librosa's style: keyword-only parameters, numpy in and out, shapes in the
docstrings, :class:`~tagger.errors.ParameterError` naming a bad value. Nothing here opens a
file. Every parameter comes from :class:`FeatureParams`, which is written into each model's
metadata (see :mod:`tagger.modelmeta`), so a model is always fed the features it was trained on.

Kinds of features (``FeatureParams.kind``):

``logmel``
    mel power spectrogram, log-compressed (``log10p``: log10(scale*S + 1), musicnn's; or
    ``db``: 10*log10(max(S, 1e-10)), librosa's power_to_db with ref=1), optionally standardised
    with a scalar mean/std, cut into chunks of ``chunk_frames`` frames every
    ``chunk_hop_frames`` frames. One chunk has shape (chunk_frames, n_mels).
``waveform``
    the raw mono waveform cut into chunks of ``chunk_frames`` *samples*; shape (chunk_frames, 1).
``descriptors``
    the frame-wise classic descriptors (MFCC, chroma, spectral contrast, roll-off, zero-crossing
    rate, centroid, RMS; :func:`handcrafted_matrix`) cut into chunks like a log-mel;
    shape (chunk_frames, n_rows).
``handcrafted``
    per chunk, a vector of summary statistics (mean and standard deviation over the chunk's
    frames) of the same descriptors; shape (n_features,). See :func:`handcrafted_vector`.

A scalar ``mean``/``std`` in the parameters is applied to every kind; per-feature scaling of
descriptors is the model's own business (a Keras ``Normalization`` layer), so that a model
carries its scaler inside its weights.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from tagger.errors import ParameterError

KINDS = ("logmel", "waveform", "descriptors", "handcrafted")
LOGS = ("log10p", "db", "none")

#: A file shorter than this fraction of one chunk is "too short"; a longer one that is
#: still shorter than a chunk is repeat-padded to one chunk (musicnn's "repeat-pad").
MIN_CHUNK_FRACTION = 0.5

#: Peak absolute amplitude below which a file is treated as digital silence (-80 dBFS).
SILENCE_PEAK = 1e-4


@dataclass(frozen=True)
class FeatureParams:
    """Everything needed to turn mono audio into model inputs. Serialised into model metadata."""

    kind: str = "logmel"
    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    mel_norm: str | None = "slaney"
    htk: bool = False
    log: str = "log10p"
    log_scale: float = 10000.0
    mean: float | None = None
    std: float | None = None
    chunk_frames: int = 187
    chunk_hop_frames: int = 187
    n_mfcc: int = 20

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParameterError(f"features.kind={self.kind!r}: must be one of {', '.join(KINDS)}")
        if self.log not in LOGS:
            raise ParameterError(f"features.log={self.log!r}: must be one of {', '.join(LOGS)}")
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "chunk_frames", "chunk_hop_frames"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ParameterError(f"features.{name}={value!r}: must be a positive integer")
        if self.std is not None and not self.std > 0:
            raise ParameterError(f"features.std={self.std!r}: must be positive")
        if self.fmax is not None and self.fmax > self.sample_rate / 2:
            raise ParameterError(f"features.fmax={self.fmax!r}: above the Nyquist frequency")

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureParams:
        if not isinstance(data, dict):
            raise ParameterError("features: must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(f"features: unknown parameter(s) {', '.join(unknown)}")
        return cls(**data)

    def digest(self) -> str:
        """A short stable hash of the parameters (feature-cache keys)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- derived quantities --------------------------------------------------------------
    @property
    def samples_per_frame(self) -> int:
        """Audio samples per feature frame (1 for waveform features)."""
        return 1 if self.kind == "waveform" else self.hop_length

    @property
    def chunk_seconds(self) -> float:
        return self.chunk_frames * self.samples_per_frame / self.sample_rate

    @property
    def chunk_hop_seconds(self) -> float:
        return self.chunk_hop_frames * self.samples_per_frame / self.sample_rate

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one chunk as the model receives it."""
        if self.kind == "logmel":
            return (self.chunk_frames, self.n_mels)
        if self.kind == "waveform":
            return (self.chunk_frames, 1)
        if self.kind == "descriptors":
            return (self.chunk_frames, descriptor_rows(self))
        return (handcrafted_size(self),)

    @property
    def min_samples(self) -> int:
        return int(np.ceil(MIN_CHUNK_FRACTION * self.chunk_frames * self.samples_per_frame))


# ---------------------------------------------------------------------------------------
# log-mel
# ---------------------------------------------------------------------------------------

def log_mel(y: np.ndarray, *, params: FeatureParams) -> np.ndarray:
    """Log-compressed mel spectrogram.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,), mono audio at ``params.sample_rate``
    params : FeatureParams

    Returns
    -------
    np.ndarray, shape (n_frames, n_mels), float32 (time first, as the models expect)
    """
    import librosa

    y = _check_audio(y)
    # librosa.feature.melspectrogram's own steps (its defaults: Hann window, centred frames,
    # zero padding), with the mel filter bank built once per process: adaptive analysis computes
    # the spectrogram of up to a hundred short stretches per track, and building the bank took
    # about as long as a 3-s stretch's spectrogram. The values are melspectrogram's, bit for bit
    # (tests/test_contract.py).
    spec = np.abs(librosa.stft(y, n_fft=params.n_fft, hop_length=params.hop_length, center=True,
                               window="hann", pad_mode="constant")) ** params.power
    basis = _mel_basis(params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax,
                       params.htk, params.mel_norm)
    S = np.einsum("...ft,mf->...mt", spec, basis, optimize=True)
    S = np.asarray(S, dtype=np.float32).T
    return _compress(S, params=params)


@functools.lru_cache(maxsize=16)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, htk: bool,
               norm: Any) -> np.ndarray:
    """librosa's mel filter bank for these settings (read-only: it is shared)."""
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    basis.setflags(write=False)
    return basis


def _compress(S: np.ndarray, *, params: FeatureParams) -> np.ndarray:
    if params.log == "log10p":
        S = np.log10(params.log_scale * S + 1.0)
    elif params.log == "db":
        S = 10.0 * np.log10(np.maximum(S, 1e-10))
    if params.mean is not None:
        S = S - params.mean
    if params.std is not None:
        S = S / params.std
    return S.astype(np.float32, copy=False)


def chunk_frames(S: np.ndarray, *, params: FeatureParams) -> np.ndarray:
    """Cut a (n_frames, ...) array into overlapping chunks along time.

    Chunks start every ``chunk_hop_frames`` frames and are ``chunk_frames`` long; a trailing
    partial chunk is dropped. Input shorter than one chunk is repeat-padded to one chunk.

    Returns
    -------
    np.ndarray, shape (n_chunks, chunk_frames, ...), a copy (C-contiguous)
    """
    S = np.asarray(S)
    if S.ndim < 1 or S.shape[0] == 0:
        raise ParameterError(f"chunk_frames: input has no frames (shape {S.shape})")
    n, hop = params.chunk_frames, params.chunk_hop_frames
    if S.shape[0] < n:
        reps = int(np.ceil(n / S.shape[0]))
        S = np.concatenate([S] * reps, axis=0)[:n]
    count = 1 + (S.shape[0] - n) // hop
    idx = np.arange(count)[:, None] * hop + np.arange(n)[None, :]
    return np.ascontiguousarray(S[idx])


# ---------------------------------------------------------------------------------------
# hand-crafted descriptors
# ---------------------------------------------------------------------------------------

_HANDCRAFTED_BLOCKS = ("mfcc", "chroma", "contrast", "rolloff", "zcr", "centroid", "rms")


def descriptor_rows(params: FeatureParams) -> int:
    """Descriptors per frame: n_mfcc MFCCs, 12 chroma, 7 spectral contrast bands, roll-off,
    zero-crossing rate, centroid, RMS."""
    return params.n_mfcc + 12 + 7 + 1 + 1 + 1 + 1


def descriptor_names(params: FeatureParams) -> list[str]:
    """Names of the :func:`handcrafted_matrix` rows, in order."""
    return ([f"mfcc{i}" for i in range(params.n_mfcc)] + [f"chroma{i}" for i in range(12)]
            + [f"contrast{i}" for i in range(7)] + ["rolloff", "zcr", "centroid", "rms"])


def handcrafted_names(params: FeatureParams) -> list[str]:
    """Names of the :func:`handcrafted_vector` entries: every descriptor's mean, then its std."""
    rows = descriptor_names(params)
    return [f"{r} mean" for r in rows] + [f"{r} std" for r in rows]


def handcrafted_size(params: FeatureParams) -> int:
    """Length of the hand-crafted vector: mean and std of each descriptor row."""
    return 2 * descriptor_rows(params)


def handcrafted_matrix(y: np.ndarray, *, params: FeatureParams) -> np.ndarray:
    """Frame-wise descriptors, shape (n_frames, n_rows): MFCC, chroma, spectral contrast,
    roll-off, zero-crossing rate, centroid and RMS, stacked.

    No numba-compiled code runs here (chroma assumes A440 tuning instead of librosa's per-call
    tuning estimate; the zero-crossing rate is :func:`zero_crossing_rate`): numba's on-disk cache
    is not safe when several fresh worker processes compile the same function at once (measured:
    segmentation faults on a fresh install), and these features run on many workers at once.
    """
    import librosa

    y = _check_audio(y)
    sr, n_fft, hop = params.sample_rate, params.n_fft, params.hop_length
    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    mel = librosa.feature.melspectrogram(S=S**2, sr=sr, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax)
    rows = [
        librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=params.n_mfcc),
        librosa.feature.chroma_stft(S=S**2, sr=sr, n_fft=n_fft, hop_length=hop, tuning=0.0),
        librosa.feature.spectral_contrast(S=S, sr=sr, n_fft=n_fft, hop_length=hop),
        librosa.feature.spectral_rolloff(S=S, sr=sr, n_fft=n_fft, hop_length=hop) / (sr / 2),
        zero_crossing_rate(y, frame_length=n_fft, hop_length=hop),
        librosa.feature.spectral_centroid(S=S, sr=sr, n_fft=n_fft, hop_length=hop) / (sr / 2),
        librosa.feature.rms(S=S, frame_length=n_fft, hop_length=hop),
    ]
    frames = min(r.shape[1] for r in rows)
    return np.concatenate([r[:, :frames] for r in rows], axis=0).T.astype(np.float32)


def zero_crossing_rate(y: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """librosa.feature.zero_crossing_rate (centred frames, edge padding, |x| <= 1e-10 counted as
    zero and zero as positive) in plain numpy, in O(n) time and memory.

    Returns shape (1, n_frames): crossings inside each frame over ``frame_length``.
    """
    y = np.pad(np.asarray(y, dtype=np.float32), frame_length // 2, mode="edge")
    n_frames = 1 + (y.shape[0] - frame_length) // hop_length
    positive = np.where(np.abs(y) <= 1e-10, 0.0, y) >= 0
    changes = np.concatenate([[0], np.cumsum(positive[1:] != positive[:-1])])
    starts = np.arange(n_frames) * hop_length
    count = changes[starts + frame_length - 1] - changes[starts]
    return (count / frame_length)[None, :]


def handcrafted_vector(M: np.ndarray) -> np.ndarray:
    """Summarise chunks of descriptor frames, (n_chunks, frames, rows) -> (n_chunks, 2*rows)."""
    return np.concatenate([M.mean(axis=1), M.std(axis=1)], axis=-1).astype(np.float32)


# ---------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------

def extract(y: np.ndarray, *, params: FeatureParams, skip_frames: int = 0) -> np.ndarray:
    """Model inputs for one stretch of mono audio.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,), float32 mono at ``params.sample_rate``

    Returns
    -------
    np.ndarray, shape (n_chunks, *params.input_shape), float32

    skip_frames : frames dropped from the start before chunking: a stretch decoded with
        :func:`lead_samples` of audio before it (tagger.analyse, adaptive stages) drops the frame
        centred in that lead-in, so that its first frame has real audio on both sides, as the
        same frame of the whole track has.

    Raises
    ------
    ParameterError
        if ``y`` is not 1-D, is shorter than half a chunk, or is not finite.
    """
    y = _check_audio(y)
    if y.shape[0] < params.min_samples:
        raise ParameterError(
            f"audio too short: {y.shape[0] / params.sample_rate:.2f} s, "
            f"need at least {params.min_samples / params.sample_rate:.2f} s"
        )
    if params.kind == "logmel":
        return chunk_frames(log_mel(y, params=params)[skip_frames:], params=params)
    if params.kind == "waveform":
        return standardise(chunk_frames(y[skip_frames:, None], params=params), params=params)
    M = chunk_frames(handcrafted_matrix(y, params=params)[skip_frames:], params=params)
    if params.kind == "descriptors":
        return standardise(M, params=params)
    return standardise(handcrafted_vector(M), params=params)


def standardise(x: np.ndarray, *, params: FeatureParams) -> np.ndarray:
    """The scalar standardisation of the parameters (none when unset): float32, minus
    ``params.mean``, over ``params.std``. Training applies it to cached raw chunks."""
    x = np.asarray(x, dtype=np.float32)
    if params.mean is not None:
        x = x - np.float32(params.mean)
    if params.std is not None:
        x = x / np.float32(params.std)
    return x


def lead_samples(params: FeatureParams) -> int:
    """Audio decoded before a stretch that must frame as the whole track does: one frame's hop
    (frames are centred, so a stretch's first frame would otherwise be padded); none for
    waveform models, whose frames are samples."""
    return 0 if params.kind == "waveform" else int(params.hop_length)


def extract_segments(segments: list[np.ndarray], *, params: FeatureParams,
                     skip_frames: list[int] | None = None) -> np.ndarray:
    """:func:`extract` over several stretches of one track, chunks concatenated in order.
    ``skip_frames``: per stretch, the frames to drop from its start (see :func:`extract`).

    Segments shorter than half a chunk are ignored as long as one segment is usable.
    """
    out, error = [], None
    skips = skip_frames or [0] * len(segments)
    for y, skip in zip(segments, skips, strict=True):
        try:
            out.append(extract(y, params=params, skip_frames=skip))
        except ParameterError as exc:
            error = exc
    if not out:
        raise error or ParameterError("no audio to analyse")
    return np.concatenate(out, axis=0)


def is_silent(y: np.ndarray) -> bool:
    """True for digital silence (peak below -80 dBFS)."""
    return y.size == 0 or float(np.max(np.abs(y))) < SILENCE_PEAK


def _check_audio(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"audio must be mono, 1-D; got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"audio must be floating point; got {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise ParameterError("audio contains NaN or infinity")
    return y.astype(np.float32, copy=False)
