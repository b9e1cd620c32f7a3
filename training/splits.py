"""Track-level splits: stratified train/validation/test, split files, stratified k-fold.

Everything here works on *tracks* (their relative paths, like ``blues/blues.00012.wav``), never on
chunks: the 4 s chunks of one clip are near-duplicates, so a clip with chunks on both sides of a
split inflates accuracy. Functions are pure (no file access except :func:`read_split_files`),
seeded, and deterministic: the same tracks, labels and seed give the same split on any machine.

A split is a dict ``{"train": [...], "valid": [...], "test": [...]}`` of sorted track names.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from tagger.errors import TaggerError

SIDES = ("train", "valid", "test")

#: File names accepted for each side of a published split, first match wins. The fault-filtered
#: GTZAN split (Kereliuk, Sturm & Larsen 2015) is published as ``*_filtered.txt``.
SPLIT_FILE_NAMES = {
    "train": ("train_filtered.txt", "train.txt"),
    "valid": ("valid_filtered.txt", "valid.txt", "validation.txt", "val.txt"),
    "test": ("test_filtered.txt", "test.txt"),
}


class SplitError(TaggerError):
    """A split that cannot be made (too few tracks in a class, unknown split file...)."""


Split = dict[str, list[str]]


def _by_class(tracks: Sequence[str], labels: Sequence[str]) -> dict[str, list[str]]:
    if len(tracks) != len(labels):
        raise SplitError(f"{len(tracks)} tracks but {len(labels)} labels")
    if len(set(tracks)) != len(tracks):
        raise SplitError("track names must be unique")
    groups: dict[str, list[str]] = defaultdict(list)
    for t, lab in zip(tracks, labels):
        groups[lab].append(t)
    return {lab: sorted(groups[lab]) for lab in sorted(groups)}


def _class_rng(seed: int, label: str, salt: int = 0) -> np.random.Generator:
    # One generator per class, keyed by the label's bytes: adding a class does not reshuffle
    # the others.
    return np.random.default_rng([int(seed), salt, *label.encode("utf-8")])


def _count(n: int, fraction: float) -> int:
    """Tracks of a class of size ``n`` that go to a side of ``fraction`` (at least 1 if > 0)."""
    if fraction <= 0:
        return 0
    return max(1, int(round(n * fraction)))


def stratified_split(
    tracks: Sequence[str],
    labels: Sequence[str],
    *,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Split:
    """Seeded, stratified train/validation/test split by track.

    Per class, ``round(n * fraction)`` tracks (at least one when the fraction is positive) go to
    validation and to test, the rest to training. ``test_fraction=0`` gives an empty test side
    (a final model trained on everything but a validation set for early stopping).

    Raises SplitError naming the class when a class is too small to put a track on every side.
    """
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise SplitError(f"bad fractions: valid {valid_fraction}, test {test_fraction}")
    out: Split = {s: [] for s in SIDES}
    for lab, members in _by_class(tracks, labels).items():
        n = len(members)
        n_test, n_valid = _count(n, test_fraction), _count(n, valid_fraction)
        if n - n_test - n_valid < 1:
            need = 1 + (test_fraction > 0) + (valid_fraction > 0)
            raise SplitError(
                f"class {lab!r} has {n} track(s): a train/validation{'/test' if n_test else ''} "
                f"split needs at least {need} per class"
            )
        order = [members[i] for i in _class_rng(seed, lab).permutation(n)]
        out["test"] += order[:n_test]
        out["valid"] += order[n_test : n_test + n_valid]
        out["train"] += order[n_test + n_valid :]
    return {s: sorted(v) for s, v in out.items()}


def kfold_splits(
    tracks: Sequence[str],
    labels: Sequence[str],
    *,
    k: int = 5,
    valid_fraction: float = 0.1,
    seed: int = 0,
) -> list[Split]:
    """Stratified k-fold cross-validation by track.

    Each class's tracks are shuffled (seeded) and dealt round-robin into ``k`` folds, the dealing
    continuing from class to class so fold sizes stay within one track of each other. Fold ``i``
    is the test side of split ``i``; its validation side is carved, stratified, from the other
    folds (``round(n_rest * valid_fraction)`` per class, at least one), the rest is training.
    Every track is tested exactly once over the ``k`` splits.

    Raises SplitError naming the class when a class has fewer than ``k`` tracks or leaves too few
    for training and validation.
    """
    if k < 2:
        raise SplitError(f"k-fold cross-validation needs k >= 2 (got {k})")
    groups = _by_class(tracks, labels)
    folds: list[list[str]] = [[] for _ in range(k)]
    start = 0
    for lab, members in groups.items():
        n = len(members)
        if n < k:
            raise SplitError(
                f"class {lab!r} has {n} track(s): {k}-fold cross-validation needs at least {k} per class"
            )
        largest_test = math.ceil(n / k)
        if n - largest_test < 2:
            raise SplitError(
                f"class {lab!r} has {n} track(s): too few to train and validate in each of {k} folds"
            )
        order = [members[i] for i in _class_rng(seed, lab).permutation(n)]
        for j, t in enumerate(order):
            folds[(start + j) % k].append(t)
        start = (start + n) % k
    label_of = {t: lab for lab, members in groups.items() for t in members}
    out: list[Split] = []
    for i in range(k):
        test = sorted(folds[i])
        rest = [t for j in range(k) if j != i for t in folds[j]]
        rest_groups = _by_class(rest, [label_of[t] for t in rest])
        valid: list[str] = []
        for lab, members in rest_groups.items():
            n_valid = min(_count(len(members), valid_fraction), len(members) - 1)
            order = [members[m] for m in _class_rng(seed, lab, salt=1 + i).permutation(len(members))]
            valid += order[:n_valid]
        vset = set(valid)
        out.append({"train": sorted(t for t in rest if t not in vset), "valid": sorted(valid), "test": test})
    return out


def check_disjoint(split: Split) -> None:
    """Raise SplitError if any track is on two sides of ``split``."""
    seen: dict[str, str] = {}
    for side in SIDES:
        for t in split.get(side, []):
            if t in seen:
                raise SplitError(f"track {t} is in both {seen[t]} and {side}")
            seen[t] = side


def track_key(name: str) -> tuple[str, str]:
    """Key matching a split-file line to a track: (genre folder, file stem).

    ``blues/blues.00012.wav``, ``genres/blues/blues.00012.au`` and ``blues/blues.00012``
    all give ``("blues", "blues.00012")``, so published lists written for the ``.au`` download
    match a ``.wav`` copy and the other way round.
    """
    p = PurePosixPath(name.strip().replace("\\", "/"))
    parts = p.parts
    stem = p.name
    suffix = p.suffix.lower()
    if suffix and len(suffix) <= 6 and suffix[1:].isalnum() and not suffix[1:].isdigit():
        stem = p.stem
    return (parts[-2] if len(parts) >= 2 else "", stem)


def read_split_files(directory: str | Path) -> dict[str, list[str]]:
    """Read ``train/valid/test`` lists from a folder (``*_filtered.txt`` or ``*.txt``).

    Blank lines and ``#`` comments are ignored. Train and validation lists are required, test is
    optional. Returns the raw lines per side.
    """
    d = Path(directory)
    if not d.is_dir():
        raise SplitError(f"{d}: split-file folder not found")
    out: dict[str, list[str]] = {}
    for side, names in SPLIT_FILE_NAMES.items():
        for name in names:
            f = d / name
            if f.is_file():
                lines = f.read_text(encoding="utf-8").splitlines()
                out[side] = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
                break
    for side in ("train", "valid"):
        if side not in out:
            raise SplitError(f"{d}: no {side} list (looked for {', '.join(SPLIT_FILE_NAMES[side])})")
    out.setdefault("test", [])
    return out


def split_from_lists(
    lists: dict[str, list[str]], tracks: Sequence[str], labels: Sequence[str]
) -> tuple[Split, dict[str, int]]:
    """Map split-file lines onto the tracks present.

    Returns the split and counts of ``unmatched`` lines (listed but not present, e.g. skipped as
    corrupt or absent from a subset) and ``unlisted`` tracks (present but in no list: the filtered
    split leaves out faulty clips on purpose; they are not used). Raises SplitError when a line is
    listed twice, or when a class has no training track.
    """
    key_to_track: dict[tuple[str, str], str] = {}
    for t in tracks:
        key = track_key(t)
        if key in key_to_track:
            raise SplitError(f"tracks {key_to_track[key]} and {t} are the same entry for split files")
        key_to_track[key] = t
    split: Split = {s: [] for s in SIDES}
    seen: dict[tuple[str, str], str] = {}
    unmatched = 0
    for side in SIDES:
        for line in lists.get(side, []):
            key = track_key(line)
            if key in seen:
                raise SplitError(f"split files list {line} twice ({seen[key]} and {side})")
            seen[key] = side
            t = key_to_track.get(key)
            if t is None:
                unmatched += 1
            else:
                split[side].append(t)
    label_of = dict(zip(tracks, labels))
    in_train = {label_of[t] for t in split["train"]}
    missing = sorted(set(labels) - in_train)
    if missing:
        raise SplitError(f"split files leave class(es) {', '.join(map(repr, missing))} without training tracks")
    if not split["valid"]:
        raise SplitError("split files give no validation track that is present in the data")
    used = sum(len(v) for v in split.values())
    return {s: sorted(v) for s, v in split.items()}, {"unmatched": unmatched, "unlisted": len(tracks) - used}


def class_counts(tracks: Iterable[str], label_of: dict[str, str], labels: Sequence[str]) -> dict[str, int]:
    counts = {lab: 0 for lab in labels}
    for t in tracks:
        counts[label_of[t]] += 1
    return counts
