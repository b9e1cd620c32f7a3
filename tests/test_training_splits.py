"""Track-level splits: stratified, k-fold, split files. No track may be on two sides."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.splits import (
    SplitError,
    check_disjoint,
    kfold_splits,
    read_split_files,
    split_from_lists,
    stratified_split,
    track_key,
)

pytestmark = pytest.mark.train


def corpus(sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    tracks, labels = [], []
    for lab, n in sizes.items():
        for i in range(n):
            tracks.append(f"{lab}/{lab}.{i:05d}.wav")
            labels.append(lab)
    return tracks, labels


GTZAN_MINI = {"blues": 7, "classical": 7, "country": 7, "disco": 7, "hiphop": 7, "jazz": 8, "metal": 7,
              "pop": 7, "reggae": 7, "rock": 7}


def test_stratified_split_partitions_by_track_and_class():
    tracks, labels = corpus(GTZAN_MINI)
    s = stratified_split(tracks, labels, valid_fraction=0.1, test_fraction=0.1, seed=0)
    check_disjoint(s)
    assert sorted(s["train"] + s["valid"] + s["test"]) == sorted(tracks)
    label_of = dict(zip(tracks, labels))
    for side in ("valid", "test"):
        # every class on every side: one track each for classes of 7-8
        assert sorted(label_of[t] for t in s[side]) == sorted(GTZAN_MINI)
    assert len(s["train"]) == 71 - 20


def test_stratified_split_is_seeded():
    tracks, labels = corpus(GTZAN_MINI)
    a = stratified_split(tracks, labels, seed=3)
    assert a == stratified_split(list(reversed(tracks)), list(reversed(labels)), seed=3)
    assert a != stratified_split(tracks, labels, seed=4)


def test_stratified_split_without_test_side():
    tracks, labels = corpus({"a": 2, "b": 3})
    s = stratified_split(tracks, labels, valid_fraction=0.2, test_fraction=0.0)
    assert s["test"] == []
    check_disjoint(s)
    assert len(s["valid"]) == 2


def test_stratified_split_refuses_a_too_small_class():
    tracks, labels = corpus({"a": 5, "b": 2})
    with pytest.raises(SplitError, match="class 'b' has 2 track"):
        stratified_split(tracks, labels)


def test_kfold_tests_every_track_once_and_never_leaks():
    tracks, labels = corpus(GTZAN_MINI)
    folds = kfold_splits(tracks, labels, k=5, valid_fraction=0.1, seed=0)
    assert len(folds) == 5
    tested = [t for f in folds for t in f["test"]]
    assert sorted(tested) == sorted(tracks)  # each exactly once
    label_of = dict(zip(tracks, labels))
    for f in folds:
        check_disjoint(f)
        assert sorted(f["train"] + f["valid"] + f["test"]) == sorted(tracks)
        assert {label_of[t] for t in f["test"]} == set(GTZAN_MINI)  # stratified
        assert {label_of[t] for t in f["valid"]} == set(GTZAN_MINI)
        assert {label_of[t] for t in f["train"]} == set(GTZAN_MINI)
    sizes = sorted(len(f["test"]) for f in folds)
    assert sizes[-1] - sizes[0] <= 1


def test_kfold_is_seeded():
    tracks, labels = corpus(GTZAN_MINI)
    assert kfold_splits(tracks, labels, k=5, seed=1) == kfold_splits(tracks, labels, k=5, seed=1)
    assert kfold_splits(tracks, labels, k=5, seed=1) != kfold_splits(tracks, labels, k=5, seed=2)


def test_kfold_refuses_classes_smaller_than_k():
    tracks, labels = corpus({"a": 6, "b": 4})
    with pytest.raises(SplitError, match="class 'b' has 4 track.*5-fold"):
        kfold_splits(tracks, labels, k=5)
    with pytest.raises(SplitError, match="k >= 2"):
        kfold_splits(tracks, labels, k=1)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(min_value=4, max_value=15), min_size=2, max_size=5),
       k=st.integers(min_value=2, max_value=4), seed=st.integers(0, 1000))
def test_kfold_property_no_track_on_two_sides(sizes, k, seed):
    tracks, labels = corpus({f"g{i}": n for i, n in enumerate(sizes)})
    folds = kfold_splits(tracks, labels, k=k, valid_fraction=0.15, seed=seed)
    assert sorted(t for f in folds for t in f["test"]) == sorted(tracks)
    for f in folds:
        check_disjoint(f)
        assert len(f["train"]) + len(f["valid"]) + len(f["test"]) == len(tracks)


def test_check_disjoint_catches_a_leak():
    with pytest.raises(SplitError, match="both train and test"):
        check_disjoint({"train": ["a/1", "a/2"], "valid": [], "test": ["a/2"]})


def test_track_key_matches_au_and_wav_and_prefixes():
    assert track_key("blues/blues.00012.wav") == ("blues", "blues.00012")
    assert track_key("genres/blues/blues.00012.au") == ("blues", "blues.00012")
    assert track_key("blues/blues.00012") == ("blues", "blues.00012")
    assert track_key("  jazz\\jazz.00054.wav \n") == ("jazz", "jazz.00054")


def test_split_files_map_published_lists(tmp_path):
    (tmp_path / "train_filtered.txt").write_text("# comment\nblues/blues.00000.au\nblues/blues.00001.wav\n"
                                                 "rock/rock.00000.wav\nrock/rock.00009.wav\n")
    (tmp_path / "valid_filtered.txt").write_text("blues/blues.00002.wav\n\nrock/rock.00001.wav\n")
    (tmp_path / "test_filtered.txt").write_text("rock/rock.00002.wav\njazz/jazz.00054.wav\n")
    lists = read_split_files(tmp_path)
    tracks, labels = corpus({"blues": 4, "rock": 3})
    split, stats = split_from_lists(lists, tracks, labels)
    assert split["train"] == ["blues/blues.00000.wav", "blues/blues.00001.wav", "rock/rock.00000.wav"]
    assert split["valid"] == ["blues/blues.00002.wav", "rock/rock.00001.wav"]
    assert split["test"] == ["rock/rock.00002.wav"]
    assert stats == {"unmatched": 2, "unlisted": 1}  # rock.00009 + jazz.00054 absent; blues.00003 unlisted
    check_disjoint(split)


def test_split_files_errors(tmp_path):
    (tmp_path / "train.txt").write_text("a/a.00000.wav\n")
    with pytest.raises(SplitError, match="no valid list"):
        read_split_files(tmp_path)
    (tmp_path / "valid.txt").write_text("a/a.00000.wav\nb/b.00000.wav\n")
    lists = read_split_files(tmp_path)
    tracks, labels = corpus({"a": 2, "b": 2})
    with pytest.raises(SplitError, match="twice"):
        split_from_lists(lists, tracks, labels)
    lists = {"train": ["a/a.00000.wav"], "valid": ["b/b.00000.wav"], "test": []}
    with pytest.raises(SplitError, match="'b' without training"):
        split_from_lists(lists, tracks, labels)
