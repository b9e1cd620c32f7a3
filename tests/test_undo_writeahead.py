"""The write-ahead undo journal (issue 15.1), tried at the bad moments for real.

* the state database sits on a real file system that is full when the journal entry is due:
  the file is not touched, its row says why, the report is still written;
* a real ``tagger tag`` driver process is killed with SIGKILL just before and just after the
  temporary copy replaces the file: the next run (or undo) settles the entry from the file,
  and ``tagger undo`` restores the genre exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import mutagen
import numpy as np
import pytest
from click.testing import CliRunner

from tagger.cli import main
from tagger.state import StateDB
from tests.test_cron import env
from tests.test_pipeline import audio_of, genres_of, make_lib, tag_args

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def _tag_fields(p: Path) -> dict:
    """Every tag of the file, as mutagen reads it (to compare before/after exactly)."""
    f = mutagen.File(p)
    if f.tags is None:
        return {}
    if hasattr(f.tags, "getall"):  # ID3
        return {k: repr(v) for k, v in f.tags.items()}
    return {k: list(v) for k, v in f.tags.items()} if hasattr(f.tags, "items") else {}


@contextlib.contextmanager
def small_file_system(size: str = "4m"):
    """A real, small tmpfs mounted for the test (root only); skipped with the reason elsewhere."""
    d = Path(tempfile.mkdtemp(prefix="tagger-fullfs-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'not root'})")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)
        shutil.rmtree(d, ignore_errors=True)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 512, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size) == size:
                    pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.usefixtures("ray_session")
def test_full_disk_under_the_journal_leaves_the_file_alone(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    paths = make_lib(lib, n=2)
    original = {p: p.read_bytes() for p in paths}
    with small_file_system() as fs:
        state = fs / "state.db"
        real_intent = StateDB.journal_intent
        filled: list[Path] = []

        def intent_on_a_full_disk(self, *a, **kw):
            if not filled:  # the disk fills up the moment the first journal entry is due
                filled.append(fill(fs))
            return real_intent(self, *a, **kw)

        monkeypatch.setattr(StateDB, "journal_intent", intent_on_a_full_disk)
        report = tmp_path / "report.json"
        args = ["-v", "tag", str(lib), "--model", str(tiny_model.weights), "--state-db", str(state),
                "--min-confidence", "0", "--report", str(report)]
        r = CliRunner().invoke(main, args)
        assert filled, r.output + repr(r.exception)
        assert r.exit_code == 1, r.output
        assert "disk is full" in r.output and "undo record" in r.output
        rows = json.loads(report.read_text())["files"]
        assert {row["action"] for row in rows} == {"failed"}
        for row in rows:
            assert row["error_kind"] == "journal"
            assert "undo journal cannot be saved" in row["reason"] and "disk is full" in row["reason"]
        for p in paths:
            assert p.read_bytes() == original[p]  # not touched at all
        assert not list(lib.rglob("*.tagger-tmp*"))

        # space again: the next run tags them, and undo brings back exactly what was there
        monkeypatch.setattr(StateDB, "journal_intent", real_intent)
        filled[0].unlink()
        r = CliRunner().invoke(main, args[:-2])
        assert r.exit_code == 0, r.output
        assert all(genres_of(p) for p in paths)
        with StateDB(state) as db:
            run_id = db.runs()[0].run_id
            assert db.pending_journal() == []
        r = CliRunner().invoke(main, ["undo", run_id, "--state-db", str(state)])
        assert r.exit_code == 0 and "2 restored" in r.output, r.output
        for p in paths:
            assert genres_of(p) == [] and np.array_equal(audio_of(p), sf_audio(original[p], p))


def sf_audio(data: bytes, like: Path) -> np.ndarray:
    tmp = like.with_name("orig-" + like.name)
    tmp.write_bytes(data)
    try:
        return audio_of(tmp)
    finally:
        tmp.unlink()


KILLER = r"""
import os, signal, sys
when = sys.argv[1]
if when == "in-place":  # a hard-linked file is written in place, beside a byte backup
    import tagger.tags._safe as safe
    fsync = safe._fsync_path
    def _fsync_path(p):
        fsync(p)
        if not p.endswith(".tagger-bak"):  # the file itself, just written: killed before the backup goes
            os.kill(os.getpid(), signal.SIGKILL)
    safe._fsync_path = _fsync_path
real = os.replace
def replace(src, dst, *a, **kw):
    if os.fspath(src).endswith(".tagger-tmp"):
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, *a, **kw)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **kw)
os.replace = replace
from tagger.cli import main
main(sys.argv[2:])
"""


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after", "in-place"])
def test_sigkill_at_the_replace_is_undoable(tmp_path, tiny_model, when):
    lib = tmp_path / "lib"
    (path,) = make_lib(lib, n=1)
    original = path.read_bytes()
    if when == "in-place":
        os.link(path, tmp_path / "hard link.wav")
    mutagen_before = _tag_fields(path)
    audio = audio_of(path)
    state = tmp_path / "state.db"
    args = tag_args(lib, tiny_model, tmp_path, "--workers", "1")
    proc = subprocess.Popen([sys.executable, "-c", KILLER, when, *args], env=env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # Ray's processes of the killed driver
    assert proc.returncode == -signal.SIGKILL, (out, err)
    leftover = {"before": ".tagger-tmp", "after": None, "in-place": ".tagger-bak"}[when]
    assert [p.name.endswith(leftover) for p in lib.rglob(".*.tagger-*")] == ([True] if leftover else [])
    with StateDB(state) as db:
        (killed,) = db.runs()
        (pending,) = db.pending_journal()  # on disk before the replace
        assert pending.run_id == killed.run_id and pending.path == str(path)
    written = when == "after"
    assert bool(genres_of(path)) == (when != "before")

    # the next run settles the entry from the file (an interrupted in-place write is put back
    # from its backup first), removes what the killed run left, and says so
    r = CliRunner().invoke(main, ["-v", *args])
    assert r.exit_code == 0, r.output
    said = "the write had happened" if written else "the file is as it was"
    assert said in r.output
    assert not list(lib.rglob(".*.tagger-*"))
    if when == "in-place":
        assert "original bytes were put back" in r.output
        assert (tmp_path / "hard link.wav").stat().st_ino == path.stat().st_ino  # still one file
    with StateDB(state) as db:
        assert db.pending_journal() == []
        assert len(db.journal(killed.run_id)) == int(written)
    # undo of the killed run puts back exactly what was there (nothing, if nothing was written)
    r = CliRunner().invoke(main, ["undo", killed.run_id, "--state-db", str(state)])
    assert r.exit_code == 0, r.output
    assert f"{int(written)} restored" in r.output
    if written:
        assert genres_of(path) == [] and _tag_fields(path) == mutagen_before
        assert path.read_bytes() == original
    assert np.array_equal(audio_of(path), audio)
