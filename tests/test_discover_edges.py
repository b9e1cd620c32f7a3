"""What the walk meets that is named like audio but is no file tagger can read (issue 15, item
12): a FIFO, a folder called ``x.mp3``; and a file that is not audio by its extension. Each gets
one report row with its reason, and the console says so; a FIFO is never opened (its first
open() would block for ever).

The CLI runs here find nothing to analyse, so they start neither Ray nor TensorFlow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tagger.discover import walk
from tests.bad_input_helpers import run_cli

pytestmark = [pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)"), pytest.mark.pure]


def _lib(root: Path) -> Path:
    (root / "album.mp3").mkdir(parents=True)  # a folder named like an audio file...
    (root / "album.mp3" / "01.flac").write_bytes(b"fLaC")  # ...with a file in it
    os.mkfifo(root / "pipe.mp3")
    return root


def test_walk_reports_fifo_and_folder_named_like_audio(tmp_path):
    lib = _lib(tmp_path / "lib")
    problems = []
    found = [f.path for f in walk([lib], problems=problems)]
    assert found == [str(lib / "album.mp3" / "01.flac")]  # the folder is walked as usual
    got = {p.path: (p.action, p.reason) for p in problems}
    assert got == {
        str(lib / "album.mp3"): ("skipped", "a folder named like an audio file, not a file "
                                            "(the files in it are walked as usual)"),
        str(lib / "pipe.mp3"): ("skipped", "not a regular file (a FIFO (named pipe)); left alone"),
    }


def test_walk_never_yields_a_fifo_given_by_name(tmp_path):
    os.mkfifo(tmp_path / "pipe.ogg")
    problems = []
    assert list(walk([tmp_path / "pipe.ogg"], problems=problems)) == []  # never analysed (open() blocks)
    assert [(p.action, p.reason) for p in problems] == [("skipped", "not a regular file (a FIFO (named pipe)); left alone")]


def test_cli_rows_and_console_lines(tmp_path):
    lib = _lib(tmp_path / "lib")
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    report = tmp_path / "r.json"
    # the FIFO named twice (by name, and in its folder): one row
    r = run_cli(["tag", str(lib / "pipe.mp3"), str(lib), str(notes), "--dry-run",
                 "--state-db", str(tmp_path / "state.db"), "--report", str(report), "--exclude", "01.flac"])
    assert r.exit_code == 2, r.output  # notes.txt failed
    files = json.loads(report.read_text())["files"]
    rows = {Path(f["path"]).name: f for f in files}
    assert len(rows) == len(files) == 3
    assert {k: (v["action"], v["error_kind"]) for k, v in rows.items()} == {
        "pipe.mp3": ("skipped", "discover"), "album.mp3": ("skipped", "discover"),
        "notes.txt": ("failed", "discover")}
    # the failure's reason is on the console, not only in the report
    assert f"tagger: {notes}: not a supported audio file (by extension)" in r.output, r.output
    assert "dry run: 3 files: 0 would tag, 2 skipped, 0 uncertain, 1 failed" in r.output, r.output


def test_cli_one_file_is_singular(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    r = run_cli(["tag", str(notes), "--state-db", str(tmp_path / "state.db")])
    assert r.exit_code == 2, r.output
    assert "\n1 file: 0 tagged, 0 skipped, 0 uncertain, 1 failed (" in "\n" + r.output, r.output
