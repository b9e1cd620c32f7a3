"""Labelled audio for training: a folder per genre, and the prepared work directory.

Layouts read (the first that applies)::

    DATA_DIR/genres/<genre>/<genre>.NNNNN.wav|.au     GTZAN as distributed (or gtzan_mini)
    DATA_DIR/genres_original/<genre>/...              the Kaggle copy of GTZAN
    DATA_DIR/<genre>/**/<any audio file>              a user's own music, one folder per genre

Within a genre folder, sub-folders (artist/album) are walked too; hidden files and folders are
skipped; files are recognised by extension (:data:`AUDIO_EXTS`). A track is named by its path
relative to the genre root, ``<genre>/<...>/<file>`` with forward slashes; that name is what split
files list and what every run records.

:func:`prepare` turns DATA_DIR into a work directory: features for every track (cached), the
unusable tracks skipped with a warning and counted, a single stratified split (or the one given by
split files) and stratified k folds, all written to ``WORK/dataset.json``. Everything that can be
wrong with the data (no genres, an empty genre, a genre too small for the split asked for) is a
:class:`DatasetError` raised before any training starts.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger.errors import TaggerError
from training import splits as _splits

log = logging.getLogger(__name__)

AUDIO_EXTS = (".mp3", ".flac", ".ogg", ".opus", ".m4a", ".wav", ".aiff", ".aif", ".wma", ".au")
WORK_FORMAT = 1
DATASET_FILE = "dataset.json"


class DatasetError(TaggerError):
    """Data that cannot be trained on as asked; the message is one line."""


@dataclass(frozen=True)
class Track:
    name: str  # "<genre>/<file>", relative to the genre root, forward slashes
    label: str
    path: str  # absolute


@dataclass(frozen=True)
class Dataset:
    root: Path  # the folder holding one folder per genre
    name: str  # a short description: the data folder's name
    layout: str  # "gtzan" | "folders"
    labels: tuple[str, ...]
    tracks: tuple[Track, ...]


def find_genre_root(data_dir: str | Path) -> tuple[Path, str]:
    """The folder holding the genre folders, and the layout name."""
    d = Path(data_dir).expanduser().resolve()
    if not d.is_dir():
        raise DatasetError(f"{data_dir}: not a folder")
    for sub in ("genres", "genres_original"):
        if (d / sub).is_dir():
            return d / sub, "gtzan"
    return d, "folders"


def scan(data_dir: str | Path) -> Dataset:
    """Find every audio file under each genre folder (sorted; no decoding).

    Raises DatasetError if there are fewer than two genre folders or a genre folder holds no
    audio file.
    """
    root, layout = find_genre_root(data_dir)
    genre_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(genre_dirs) < 2:
        raise DatasetError(
            f"{root}: found {len(genre_dirs)} genre folder(s); need at least two "
            "(one folder per genre, named after it)"
        )
    tracks: list[Track] = []
    empty = []
    for gdir in genre_dirs:
        found = _audio_files(gdir)
        if not found:
            empty.append(gdir.name)
        for f in found:
            rel = f.relative_to(root).as_posix()
            tracks.append(Track(rel, gdir.name, str(f)))
    if empty:
        raise DatasetError(
            f"{root}: genre folder(s) {', '.join(map(repr, empty))} hold no audio file "
            f"({' '.join(e[1:] for e in AUDIO_EXTS)}); remove them or add tracks"
        )
    name = root.parent.name if layout == "gtzan" else root.name
    return Dataset(root, name, layout, tuple(g.name for g in genre_dirs), tuple(tracks))


def _audio_files(folder: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if not fn.startswith(".") and os.path.splitext(fn)[1].lower() in AUDIO_EXTS:
                out.append(Path(dirpath) / fn)
    return sorted(out)


# ---------------------------------------------------------------------------------------
# prepare: scan -> features -> skip unusable -> splits -> WORK/dataset.json
# ---------------------------------------------------------------------------------------

def prepare(
    data_dir: str | Path,
    *,
    out: str | Path,
    arch: str = "mel-cnn",
    split_files: str | Path | None = None,
    folds: int = 5,
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_seconds: float | None = 120.0,
    cache_dir: str | Path | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Prepare a work directory; returns the dataset description written to ``out/dataset.json``.

    ``folds=0`` makes no cross-validation folds. ``max_seconds``: longer tracks are sampled
    (evenly spaced stretches adding up to this, as ``tagger tag`` samples long files).
    """
    from training.architectures import get as get_arch
    from training.cache import cache_key, compute_features

    t0 = time.perf_counter()
    spec = get_arch(arch)
    out = Path(out).expanduser().resolve()
    cache_dir = Path(cache_dir).expanduser().resolve() if cache_dir else out / "cache"
    ds = scan(data_dir)
    scan_s = time.perf_counter() - t0
    lists = _splits.read_split_files(split_files) if split_files else None
    counts = Counter(t.label for t in ds.tracks)
    log.info("%s: %d tracks in %d genres (%s layout)", ds.root, len(ds.tracks), len(ds.labels), ds.layout)
    # Fail early, before hours of feature extraction, when the split cannot work even if every
    # file decodes.
    _check_counts(counts, ds.labels, folds=folds, valid_fraction=valid_fraction,
                  test_fraction=test_fraction, split_files=lists is not None)

    report = compute_features([t.path for t in ds.tracks], params=spec.features, cache_dir=cache_dir,
                              max_seconds=max_seconds, ray_address=ray_address, workers=workers)
    usable = [t for t in ds.tracks if t.path in report.shas]
    skipped = [t for t in ds.tracks if t.path in report.failed]
    for t in skipped:
        log.warning("skipped %s: %s", t.name, report.failed[t.path].reason)
    usable_counts = Counter(t.label for t in usable)
    for lab in ds.labels:
        if usable_counts[lab] == 0:
            raise DatasetError(f"genre {lab!r}: none of its {counts[lab]} file(s) could be used")
    _check_counts(usable_counts, ds.labels, folds=folds, valid_fraction=valid_fraction,
                  test_fraction=test_fraction, split_files=lists is not None, after_skips=len(skipped))

    names = [t.name for t in usable]
    labels = [t.label for t in usable]
    try:
        if lists is not None:
            split, stats = _splits.split_from_lists(lists, names, labels)
            if stats["unmatched"]:
                log.warning("split files: %d listed track(s) are not in the data (absent or skipped)",
                            stats["unmatched"])
            if stats["unlisted"]:
                log.info("split files: %d track(s) are in no list and are not used", stats["unlisted"])
            split_desc: dict[str, Any] = {"method": "files", "source": str(Path(split_files).resolve()), **stats}
        else:
            split = _splits.stratified_split(names, labels, valid_fraction=valid_fraction,
                                             test_fraction=test_fraction, seed=seed)
            split_desc = {"method": "stratified", "seed": seed, "valid_fraction": valid_fraction,
                          "test_fraction": test_fraction}
        _splits.check_disjoint(split)
        fold_splits = (_splits.kfold_splits(names, labels, k=folds, valid_fraction=valid_fraction, seed=seed)
                       if folds else [])
        for f in fold_splits:
            _splits.check_disjoint(f)
    except _splits.SplitError as exc:
        raise DatasetError(str(exc)) from None

    data: dict[str, Any] = {
        "format": WORK_FORMAT,
        "name": ds.name,
        "source": str(ds.root),
        "layout": ds.layout,
        "labels": list(ds.labels),
        "arch": arch,
        "features": spec.features.to_dict(),
        "features_key": cache_key(spec.features, max_seconds=max_seconds),
        "max_seconds": max_seconds,
        "cache": _relative_to(cache_dir, out),
        "seed": seed,
        "tracks": [{"track": t.name, "label": t.label, "sha256": report.shas[t.path]} for t in usable],
        "skipped": [{"track": t.name, "label": t.label, "kind": report.failed[t.path].kind,
                     "reason": report.failed[t.path].reason} for t in skipped],
        "class_counts": {lab: usable_counts[lab] for lab in ds.labels},
        "split": {**split_desc, **split},
        "folds": ({"k": folds, "seed": seed, "valid_fraction": valid_fraction, "splits": fold_splits}
                  if folds else None),
        "timings": {"scan_s": round(scan_s, 2), "features_s": round(report.seconds, 2),
                    "features_computed": report.computed, "features_cached": report.cached,
                    "total_s": round(time.perf_counter() - t0, 2)},
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (DATASET_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / DATASET_FILE)
    return data


def _relative_to(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (a work dir can then be moved), else absolute."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _check_counts(counts: Counter, labels: tuple[str, ...], *, folds: int, valid_fraction: float,
                  test_fraction: float, split_files: bool, after_skips: int = 0) -> None:
    note = f" after skipping {after_skips} unusable file(s)" if after_skips else ""
    names, labs = [], []
    for lab in labels:
        names += [f"{lab}/{i}" for i in range(counts[lab])]
        labs += [lab] * counts[lab]
    try:
        if not split_files:
            _splits.stratified_split(names, labs, valid_fraction=valid_fraction, test_fraction=test_fraction)
        if folds:
            _splits.kfold_splits(names, labs, k=folds, valid_fraction=valid_fraction)
    except _splits.SplitError as exc:
        hint = " (use --folds with a smaller number, or --folds 0 for no cross-validation)" if (
            folds and "fold" in str(exc)) else ""
        raise DatasetError(f"{exc}{note}{hint}") from None


# ---------------------------------------------------------------------------------------
# reading a work directory
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Work:
    """A prepared work directory."""

    dir: Path
    data: dict[str, Any]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.data["labels"])

    @property
    def source(self) -> Path:
        return Path(self.data["source"])

    @property
    def cache_dir(self) -> Path:
        return self.dir / self.data["cache"]  # an absolute path stays as it is

    @property
    def label_of(self) -> dict[str, str]:
        return {t["track"]: t["label"] for t in self.data["tracks"]}

    @property
    def sha_of(self) -> dict[str, str]:
        return {t["track"]: t["sha256"] for t in self.data["tracks"]}

    def path_of(self, track: str) -> str:
        return str(self.source / track)

    @property
    def n_folds(self) -> int:
        folds = self.data.get("folds")
        return int(folds["k"]) if folds else 0

    def split(self, fold: int | None = None, *, final: bool = False) -> dict[str, list[str]]:
        """The split to train on: the single split, fold ``fold`` (0-based), or ``final``:
        everything but the single split's validation side for training, no test side."""
        if final:
            s = self.data["split"]
            valid = set(s["valid"])
            train = sorted(t for t in self.label_of if t not in valid)
            return {"train": train, "valid": sorted(valid), "test": []}
        if fold is None:
            s = self.data["split"]
            return {side: list(s[side]) for side in _splits.SIDES}
        if not self.n_folds:
            raise DatasetError(f"{self.dir}: prepared without cross-validation folds (--folds 0)")
        if not 0 <= fold < self.n_folds:
            raise DatasetError(f"fold {fold} does not exist: this work dir has folds 0..{self.n_folds - 1}")
        return {side: list(v) for side, v in self.data["folds"]["splits"][fold].items()}

    def describe(self) -> dict[str, Any]:
        """The data description recorded with every model."""
        return {
            "dataset": self.data["name"],
            "source": self.data["source"],
            "layout": self.data["layout"],
            "tracks": len(self.data["tracks"]),
            "skipped": len(self.data["skipped"]),
            "class_counts": dict(self.data["class_counts"]),
            "max_seconds": self.data.get("max_seconds"),
        }


def load_work(work_dir: str | Path) -> Work:
    d = Path(work_dir).expanduser().resolve()
    f = d / DATASET_FILE
    if not f.is_file():
        raise DatasetError(f"{d}: not a prepared work directory (no {DATASET_FILE}; run `tagger train prepare`)")
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{f}: unreadable: {exc}") from None
    if data.get("format") != WORK_FORMAT:
        raise DatasetError(f"{f}: work format {data.get('format')!r} is not supported (expected {WORK_FORMAT})")
    return Work(d, data)
