"""Scanning labelled folders (GTZAN layouts, a user's own folders) and the errors that must come
before any training starts. No Ray, no TensorFlow."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.training_helpers import make_tree
from training.cli import train
from training.datasets import DatasetError, Work, find_genre_root, scan

pytestmark = pytest.mark.train


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_scan_gtzan_layout(tmp_path):
    make_tree(tmp_path / "gtzan", per_genre=2, seconds=1.0)
    touch(tmp_path / "gtzan" / "genres" / "drone" / ".hidden.wav")
    touch(tmp_path / "gtzan" / "genres" / "drone" / "notes.txt")
    touch(tmp_path / "gtzan" / "genres" / ".git" / "x.wav")
    ds = scan(tmp_path / "gtzan")
    assert ds.layout == "gtzan" and ds.name == "gtzan"
    assert ds.labels == ("chirp", "drone", "hiss")
    assert [t.name for t in ds.tracks][:2] == ["chirp/chirp.00000.wav", "chirp/chirp.00001.wav"]
    assert len(ds.tracks) == 6
    assert all(t.path.startswith(str(tmp_path)) for t in ds.tracks)
    # pointing at genres/ itself works the same
    assert [t.name for t in scan(tmp_path / "gtzan" / "genres").tracks] == [t.name for t in ds.tracks]


def test_scan_kaggle_layout_and_au_files(tmp_path):
    for g in ("blues", "jazz"):
        touch(tmp_path / "Data" / "genres_original" / g / f"{g}.00000.au")
    root, layout = find_genre_root(tmp_path / "Data")
    assert root.name == "genres_original" and layout == "gtzan"
    assert [t.name for t in scan(tmp_path / "Data").tracks] == ["blues/blues.00000.au", "jazz/jazz.00000.au"]


def test_scan_user_folders_any_format_nested(tmp_path):
    lib = tmp_path / "My Music"
    for rel in ("Jazz/Miles/Kind of Blue/01 So What.flac", "Jazz/b.MP3", "Rock/x/y/z.ogg", "Rock/a.m4a",
                "Rock/c.opus", "Rock/d.wma", "Rock/e.aiff", "Rock/f.aif", "Rock/cover.jpg"):
        touch(lib / rel)
    ds = scan(lib)
    assert ds.layout == "folders" and ds.name == "My Music"
    assert ds.labels == ("Jazz", "Rock")
    names = [t.name for t in ds.tracks]
    assert "Jazz/Miles/Kind of Blue/01 So What.flac" in names and "Jazz/b.MP3" in names
    assert "Rock/cover.jpg" not in names
    assert len(names) == 8


def test_empty_genre_and_too_few_genres_are_errors(tmp_path):
    touch(tmp_path / "lib" / "a" / "1.wav")
    (tmp_path / "lib" / "b" / "sub").mkdir(parents=True)
    touch(tmp_path / "lib" / "b" / "readme.txt")
    with pytest.raises(DatasetError, match="'b' hold no audio file"):
        scan(tmp_path / "lib")
    touch(tmp_path / "solo" / "a" / "1.wav")
    with pytest.raises(DatasetError, match="need at least two"):
        scan(tmp_path / "solo")


def test_prepare_cli_refuses_bad_data_before_computing_anything(tmp_path):
    # no Ray and no decoding happen: these files are not even audio
    for g, n in (("a", 6), ("b", 6), ("c", 3)):
        for i in range(n):
            touch(tmp_path / "lib" / g / f"{i}.wav")
    runner = CliRunner()
    res = runner.invoke(train, ["prepare", str(tmp_path / "lib"), "--out", str(tmp_path / "work")])
    assert res.exit_code == 64, res.output
    assert "class 'c' has 3 track(s): 5-fold cross-validation needs at least 5" in res.output
    assert "--folds" in res.output
    assert not (tmp_path / "work").exists()
    (tmp_path / "lib" / "d").mkdir()
    res = runner.invoke(train, ["prepare", str(tmp_path / "lib"), "--folds", "0"])
    assert res.exit_code == 64 and "'d' hold no audio file" in res.output


def test_work_split_final_keeps_validation_out(tmp_path):
    data = {
        "format": 1, "labels": ["a", "b"], "source": str(tmp_path), "cache": str(tmp_path / "c"),
        "tracks": [{"track": f"{g}/{i}", "label": g, "sha256": "0"} for g in "ab" for i in range(4)],
        "split": {"method": "stratified", "train": ["a/0", "a/1", "b/0", "b/1"], "valid": ["a/2", "b/2"],
                  "test": ["a/3", "b/3"]},
        "folds": None,
    }
    w = Work(tmp_path, json.loads(json.dumps(data)))
    final = w.split(final=True)
    assert final["test"] == [] and final["valid"] == ["a/2", "b/2"]
    assert final["train"] == ["a/0", "a/1", "a/3", "b/0", "b/1", "b/3"]
    assert w.split() == {k: data["split"][k] for k in ("train", "valid", "test")}
    with pytest.raises(DatasetError, match="without cross-validation folds"):
        w.split(0)
