"""Features for training, computed on Ray workers and cached on disk.

The features are those ``tagger tag`` computes: :func:`tagger.decode.decode` then
:func:`tagger.features.extract_segments` with the architecture's
:class:`~tagger.features.FeatureParams` (long tracks sampled by
:func:`tagger.analyse.plan_segments`, as ``tagger tag`` samples them), in a Ray task per file.
The driver writes the cache; workers only read audio.

Cache layout (one folder per feature set)::

    CACHE/hashes.json                 path -> [size, mtime_ns, sha256]: skip re-hashing unchanged files
    CACHE/<key>/index.json            params, max_seconds, entries {sha: {chunks, dtype}}, failures
    CACHE/<key>/<sha[:2]>/<sha>.npy   one track's chunks, shape (n_chunks, *input_shape)

``key`` is ``FeatureParams.digest()`` (plus ``-m<seconds>`` when long tracks are sampled, and
``-<variant>`` for the features of an audio-domain augmentation such as ``pitch+2``) and
``sha`` the sha256 of the file's bytes, so an edited or replaced file is recomputed, a renamed or
copied one is not, and a re-run computes nothing. Features are cached *raw* (``mean``/``std``
unset): the scalar normalisation is fitted per training split and applied when loading.
Log-mel and waveform chunks are stored as float16, the precision ``tagger tag`` ships chunks to
its model in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import AudioError, FileError
from tagger.features import FeatureParams

log = logging.getLogger(__name__)

INDEX_VERSION = 1
#: Save the index every this many newly computed tracks, so an interrupted run keeps its work.
SAVE_EVERY = 50


def raw_params(params: FeatureParams) -> FeatureParams:
    """The parameters features are cached under: normalisation left out."""
    return dataclasses.replace(params, mean=None, std=None)


#: Bumped when :mod:`tagger.features` changes what a kind of feature computes for the same
#: parameters, so that caches made by the older code are not reused (the key gets ``-v<N>``).
#: descriptors/handcrafted 2: chroma without a tuning estimate, numpy zero-crossing rate.
CODE_VERSION = {"descriptors": 2, "handcrafted": 2}


def cache_key(params: FeatureParams, *, max_seconds: float | None, variant: str | None = None) -> str:
    key = raw_params(params).digest()
    if CODE_VERSION.get(params.kind, 1) > 1:
        key = f"{key}-v{CODE_VERSION[params.kind]}"
    if max_seconds is not None:
        key = f"{key}-m{float(max_seconds):g}"
    return key if variant is None else f"{key}-{variant}"


#: Audio-domain augmentations: each names the variants of a training track whose features are
#: computed (once, cached) and added to the training chunks.
VARIANTS = {"pitch": ("pitch-2", "pitch+2"), "stretch": ("stretch0.9", "stretch1.1")}


def apply_variant(y: np.ndarray, *, sample_rate: int, variant: str) -> np.ndarray:
    """One audio-domain augmentation of mono audio: ``pitch<+-n>`` shifts by n semitones (same
    length), ``stretch<rate>`` plays ``rate`` times as fast (librosa's phase vocoder).

    y : shape (n,), float32. Returns float32, shape (n,) for pitch, about (n / rate,) for stretch.
    """
    import librosa

    if variant.startswith("pitch"):
        steps = float(variant[len("pitch"):])
        out = librosa.effects.pitch_shift(y, sr=sample_rate, n_steps=steps)
    elif variant.startswith("stretch"):
        rate = float(variant[len("stretch"):])
        out = librosa.effects.time_stretch(y, rate=rate)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return np.asarray(out, dtype=np.float32)


def storage_dtype(params: FeatureParams) -> np.dtype:
    return np.dtype(np.float32 if params.kind in ("handcrafted", "descriptors") else np.float16)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# the worker's job (a plain function; Ray runs it as a task)
# ---------------------------------------------------------------------------------------

def warm_numba(*, sample_rate: int, variant: str) -> None:
    """Run :func:`apply_variant` once in this (the driver) process before workers do.

    librosa's inverse STFT (used by pitch shifting and time stretching) is numba code cached on
    disk; fresh worker processes compiling and writing that cache at the same moment can corrupt
    it (measured: segmentation faults on a fresh install). Compiled here first, the workers only
    read the cache."""
    noise = np.random.default_rng(0).standard_normal(sample_rate).astype(np.float32) * 0.1
    apply_variant(noise, sample_rate=sample_rate, variant=variant)


def extract_file(path: str, *, params: dict[str, Any], max_seconds: float | None, variant: str | None = None) -> tuple:
    """Decode one file and compute its chunks (of its ``variant``, see :func:`apply_variant`, when
    given): ``tagger tag``'s own decode-to-chunks path (:func:`tagger.analyse.decode_segments`,
    :func:`~tagger.analyse.chunks_of`) and error funnel (:func:`~tagger.analyse.failure_of`).
    Never raises for a problem with the file.

    Returns ``("ok", chunks)`` with chunks of shape (n_chunks, *input_shape) in the storage
    dtype, or ``("error", kind, reason)`` with a FileError kind and a one-line reason.
    """
    from tagger.analyse import chunks_of, decode_segments, failure_of, plan_segments
    from tagger.decode import probe

    try:
        fp = FeatureParams.from_dict(params)
        if max_seconds is None:
            segments: list[tuple[float, float | None]] = [(0.0, None)]
        else:
            duration = probe(path).duration
            segments = plan_segments(duration, analysis_seconds=None, max_seconds=max_seconds,
                                     chunk_seconds=fp.chunk_seconds)
        audio = decode_segments(path, segments, params=fp)
        if variant is not None:
            audio = [apply_variant(y, sample_rate=fp.sample_rate, variant=variant) for y in audio]
        chunks = chunks_of(path, audio, params=fp)
        return ("ok", chunks.astype(storage_dtype(fp), copy=False))
    except Exception as exc:  # one bad file must not end the run
        kind, reason = failure_of(path, exc)
        return ("error", kind, reason)


# ---------------------------------------------------------------------------------------
# the cache
# ---------------------------------------------------------------------------------------

@dataclass
class FeatureCache:
    """One feature set (params + sampling) under ``root``."""

    root: Path
    params: FeatureParams
    max_seconds: float | None = None
    variant: str | None = None
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.params = raw_params(self.params)
        self.dir = self.root / cache_key(self.params, max_seconds=self.max_seconds, variant=self.variant)
        index = self.dir / "index.json"
        if index.is_file():
            try:
                data = json.loads(index.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                log.warning("%s: unreadable feature index (%s); starting it again", index, exc)
                data = {}
            if data.get("version") == INDEX_VERSION and data.get("params") == self.params.to_dict():
                self.entries = dict(data.get("entries", {}))
                self.failures = dict(data.get("failures", {}))

    def path(self, sha: str) -> Path:
        return self.dir / sha[:2] / f"{sha}.npy"

    def has(self, sha: str) -> bool:
        return sha in self.entries and self.path(sha).is_file()

    def get(self, sha: str) -> np.ndarray:
        """Chunks of one track, shape (n_chunks, *input_shape), storage dtype."""
        return np.load(self.path(sha), allow_pickle=False)

    def put(self, sha: str, chunks: np.ndarray) -> None:
        p = self.path(sha)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "wb") as f:
            np.save(f, chunks, allow_pickle=False)
        os.replace(tmp, p)
        self.entries[sha] = {"chunks": int(chunks.shape[0]), "dtype": str(chunks.dtype)}
        self.failures.pop(sha, None)

    def put_failure(self, sha: str, kind: str, reason: str) -> None:
        self.failures[sha] = {"kind": kind, "reason": reason}

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {
            "version": INDEX_VERSION,
            "params": self.params.to_dict(),
            "max_seconds": self.max_seconds,
            "variant": self.variant,
            "entries": self.entries,
            "failures": self.failures,
        }
        tmp = self.dir / "index.json.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.dir / "index.json")


class HashMemo:
    """``path -> (size, mtime_ns, sha256)``: content hashes of files unchanged since last time."""

    def __init__(self, root: Path):
        self.file = Path(root) / "hashes.json"
        self.data: dict[str, list] = {}
        if self.file.is_file():
            try:
                self.data = json.loads(self.file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                self.data = {}
        self.dirty = False

    def sha(self, path: str) -> str:
        st = os.stat(path)
        hit = self.data.get(path)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        sha = sha256_file(path)
        self.data[path] = [st.st_size, st.st_mtime_ns, sha]
        self.dirty = True
        return sha

    def save(self) -> None:
        if self.dirty:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_name("hashes.json.tmp")
            tmp.write_text(json.dumps(self.data, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, self.file)
            self.dirty = False


@dataclass
class FeatureReport:
    """What :func:`compute_features` did."""

    shas: dict[str, str]  # path -> sha256, for every file with usable features
    failed: dict[str, FileError]  # path -> the reason it has none
    computed: int = 0  # files sent to workers
    cached: int = 0  # files (or known failures) found in the cache
    seconds: float = 0.0


def compute_features(
    paths: Sequence[str],
    *,
    params: FeatureParams,
    cache_dir: str | Path,
    max_seconds: float | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
    variant: str | None = None,
) -> FeatureReport:
    """Make sure every file in ``paths`` has cached features for ``params``.

    Files already cached (by content hash), and files that failed before, are not recomputed;
    the rest go to Ray tasks (Ray is started, or joined at ``ray_address``/``RAY_ADDRESS``, only
    when there is something to compute). Failures are returned, not raised.
    """
    t0 = time.perf_counter()
    cache_dir = Path(cache_dir)
    cache = FeatureCache(cache_dir, params, max_seconds, variant)
    memo = HashMemo(cache_dir)
    report = FeatureReport(shas={}, failed={})
    todo: list[tuple[str, str]] = []
    from tagger.errors import DecodeError

    for p in paths:
        try:
            sha = memo.sha(p)
        except OSError as exc:
            report.failed[p] = DecodeError(p, f"cannot read file: {exc.strerror or exc}")
            continue
        if cache.has(sha):
            report.shas[p] = sha
            report.cached += 1
        elif sha in cache.failures:
            fail = cache.failures[sha]
            report.failed[p] = _file_error(p, fail["kind"], fail["reason"])
            report.cached += 1
        else:
            todo.append((p, sha))
    memo.save()
    if todo:
        if variant is not None:
            warm_numba(sample_rate=params.sample_rate, variant=variant)
        _run_tasks(todo, cache, report, ray_address=ray_address, workers=workers)
    report.seconds = time.perf_counter() - t0
    log.info(
        "features %s: %d computed, %d from cache, %d unusable (%.1f s)",
        cache.dir.name, report.computed, report.cached, len(report.failed), report.seconds,
    )
    return report


def _run_tasks(todo: list[tuple[str, str]], cache: FeatureCache, report: FeatureReport, *,
               ray_address: str | None, workers: int | None) -> None:
    """Compute the features of ``todo`` ((path, sha) pairs) on Ray workers, with ``tagger tag``'s
    bounded loop (:func:`tagger.ray_backend.bounded`), into ``cache``."""
    import ray

    from tagger.ray_backend import bounded, connect, max_in_flight, one_line, remote_task

    connect(ray_address, num_cpus=workers)
    remote = remote_task(extract_file, max_retries=1)
    limit = max_in_flight(int(ray.cluster_resources().get("CPU", 1) or 1))
    params = cache.params.to_dict()

    def submit(item: tuple[str, str]) -> Any:
        return remote.remote(item[0], params=params, max_seconds=cache.max_seconds, variant=cache.variant)

    done_since_save = 0
    total = len(todo)
    log.info("computing features of %d file(s) on Ray workers", total)
    try:
        for done in bounded(todo, submit, limit=limit):
            p, sha = done.key
            if done.error is not None:  # the worker died twice
                result: tuple = ("error", "worker", f"worker failed: {one_line(done.error)}")
            else:
                result = done.value
            report.computed += 1
            if result[0] == "ok":
                cache.put(sha, result[1])
                report.shas[p] = sha
            else:
                _, kind, reason = result
                if kind != "worker":  # a crashed worker may be transient: retry next run
                    cache.put_failure(sha, kind, reason)
                report.failed[p] = _file_error(p, kind, reason)
            done_since_save += 1
            if done_since_save >= SAVE_EVERY:
                cache.save()
                done_since_save = 0
                log.info("features: %d/%d files", report.computed, total)
    finally:
        cache.save()


def _file_error(path: str, kind: str, reason: str) -> FileError:
    from tagger.errors import DecodeError

    cls = AudioError if kind == "audio" else DecodeError
    err = cls(path, reason)
    if kind not in ("audio", "decode"):
        err.kind = kind
    return err


def load_chunks(cache: FeatureCache, shas: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the cached chunks of several tracks.

    Returns
    -------
    chunks : np.ndarray, shape (total_chunks, *input_shape), storage dtype
    owner : np.ndarray, shape (total_chunks,), int: index (in ``shas`` order) of each chunk's track
    """
    arrays, owner = [], []
    for i, sha in enumerate(shas):
        a = cache.get(sha)
        arrays.append(a)
        owner.append(np.full(a.shape[0], i, dtype=np.int64))
    if not arrays:
        return np.zeros((0, *cache.params.input_shape), storage_dtype(cache.params)), np.zeros(0, np.int64)
    return np.concatenate(arrays), np.concatenate(owner)
