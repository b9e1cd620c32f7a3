import os

import pytest

from tagger.analyse import plan_segments
from tagger.discover import Problem, walk

pytestmark = pytest.mark.pure


def _touch(p, data=b"x"):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def test_sorted_recursive_hidden_and_exclude(tmp_path):
    for rel in ["b/2.mp3", "a/1.flac", "a/cover.jpg", ".hidden/x.mp3", "a/.y.mp3", "Live/z.ogg",
                "c/UPPER.MP3", "c/tmp.wma.part"]:
        _touch(tmp_path / rel)
    found = [os.path.relpath(f.path, tmp_path) for f in walk([tmp_path], exclude=["Live"])]
    assert found == ["a/1.flac", "b/2.mp3", "c/UPPER.MP3"]
    found = [os.path.relpath(f.path, tmp_path) for f in walk([tmp_path], exclude=["*.mp3", "*.MP3"])]
    assert found == ["Live/z.ogg", "a/1.flac"]


def test_symlink_loop_terminates_and_files_once(tmp_path):
    _touch(tmp_path / "m/a.mp3")
    os.symlink(tmp_path / "m", tmp_path / "m" / "loop")
    os.symlink(tmp_path / "m" / "a.mp3", tmp_path / "m" / "alias.mp3")
    os.symlink(tmp_path / "nowhere.mp3", tmp_path / "m" / "dangling.mp3")
    problems: list[Problem] = []
    found = list(walk([tmp_path, tmp_path / "m"], problems=problems))
    assert len(found) == 1
    assert any("dangling" in p.path for p in problems)


def test_missing_root_is_a_problem_not_a_crash(tmp_path):
    problems = []
    assert list(walk([tmp_path / "gone"], problems=problems)) == []
    assert problems and "cannot read" in problems[0].reason


def test_plan_segments():
    assert plan_segments(200, analysis_seconds=None, max_seconds=900, chunk_seconds=3) == [(0.0, None)]
    segs = plan_segments(7200, analysis_seconds=None, max_seconds=900, chunk_seconds=3)
    assert sum(d for _, d in segs) == 900 and all(720 <= o <= 6480 for o, _ in segs)
    segs = plan_segments(240, analysis_seconds=30, max_seconds=900, chunk_seconds=3)
    assert len(segs) == 4 and abs(sum(d for _, d in segs) - 30) < 1e-6
    assert segs == sorted(segs) and segs[0][0] >= 24 and segs[-1][0] + segs[-1][1] <= 216 + 1e-6
    assert plan_segments(20, analysis_seconds=30, max_seconds=900, chunk_seconds=3) == [(0.0, None)]
