"""Unattended use: lock (75), SIGTERM / SIGINT mid-run (143 / 130, nothing half-written), undo, config,
bounded runs. The other exit codes: tests/test_exit_codes.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mutagen
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tagger.cli import main
from tests.test_pipeline import audio_of, genres_of, make_lib, tag_args

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled", "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_concurrent_run_exits_75_naming_the_holder(tmp_path, tiny_model):
    from tagger.lock import RunLock

    lib = tmp_path / "lib"
    make_lib(lib, n=1)
    state = tmp_path / "state.db"
    # hold the lock from another process, exactly as a running tagger would
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from tagger.lock import RunLock;"
         f"l = RunLock(Path({str(state)!r})); l.acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert holder.stdout.readline().strip() == "held"
        r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path))
        assert r.exit_code == 75, r.output
        assert f"pid {holder.pid}" in r.output and "started" in r.output
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    # the holder is gone: its lock is taken over
    lock = RunLock(state)
    lock.acquire()
    lock.release()


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, name, albums", [
    (signal.SIGTERM, 143, "SIGTERM", "--no-albums"), (signal.SIGINT, 130, "SIGINT", "--no-albums"),
    (signal.SIGTERM, 143, "SIGTERM", "--albums"),  # album folders are written as each is done
])
def test_signal_mid_run_loses_nothing(tmp_path, tiny_model, sig, code, name, albums):
    lib = tmp_path / "lib"
    paths = make_lib(lib, n=40)
    audio = {p: audio_of(p) for p in paths}
    state = tmp_path / "state.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tagger", "-v", "tag", str(lib), "--model", str(tiny_model.weights),
         "--state-db", str(state), "--min-confidence", "0", "--workers", "1", "--batch-size", "1",
         albums],  # files are written while others are analysed: the signal lands mid-writes
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    # wait (event-driven, not by time) until the first file has been tagged, then SIGTERM
    err = []
    for line in proc.stderr:
        err.append(line)
        if "tagged:" in line:
            proc.send_signal(sig)
            break
    err.append(proc.stderr.read())
    out = proc.stdout.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(timeout=120) == code, out + "".join(err)[-3000:]
    assert f"interrupted by {name}" in out

    from tagger.state import StateDB

    with StateDB(state) as db:
        records = db.records(str(p) for p in paths)
        run = db.runs()[0]
        journal = {e.path for e in db.journal(run.run_id)}
        # the store survives the interruption: every file analysed before it is kept
        stored = set(db.analyses([str(p) for p in paths], json.loads(tiny_model.meta.read_text())["model_id"]))
    assert run.status == "interrupted"
    tagged = [p for p in paths if str(p) in records]
    assert 0 < len(tagged) < len(paths), "the signal should land mid-run"
    for p in paths:
        assert mutagen.File(p) is not None  # every file parses
        assert np.array_equal(audio_of(p), audio[p])  # audio unchanged
        rec = records.get(str(p))
        if rec is None:
            assert genres_of(p) == []  # not handled: untouched
            assert str(p) not in journal
        else:
            st = p.stat()
            assert (rec.size, rec.mtime_ns) == (st.st_size, st.st_mtime_ns)  # state matches the file
            assert genres_of(p) and str(p) in journal
    assert {str(p) for p in tagged} <= stored
    # the next run carries on where this one stopped (what was analysed is not analysed again)
    report = tmp_path / "next.json"
    r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path, "--report", str(report), albums))
    rows = {row["path"]: row for row in json.loads(report.read_text())["files"]}
    assert all(rows[p]["analysis"] == "stored" for p in stored if p in rows)
    assert r.exit_code == 0
    assert f"{len(paths) - len(tagged)} tagged" in r.output and f"{len(tagged)} unchanged" in r.output


def test_undo_restores_exactly_and_reports_modified(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    paths = make_lib(lib, n=4)  # wav, flac, wav, flac
    f = mutagen.File(paths[1])  # a FLAC with a person's genre: replaced with --on-existing replace
    f["genre"] = ["Shoegaze", "Dream Pop"]
    f.save()
    audio = {p: audio_of(p) for p in paths}
    r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path, "--on-existing", "replace"))
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["runs", "--state-db", str(tmp_path / "state.db")])
    run_id = r.output.splitlines()[1].split()[0]
    # a person edits one file after the run: undo must leave it alone
    g = mutagen.File(paths[3])
    g["genre"] = ["Edited"]
    g.save()
    r = CliRunner().invoke(main, ["undo", run_id, "--state-db", str(tmp_path / "state.db")])
    assert r.exit_code == 0, r.output
    assert "3 restored" in r.output and "1 modified since" in r.output
    assert mutagen.File(paths[1])["genre"] == ["Shoegaze", "Dream Pop"]
    assert "TAGGER_PROVENANCE" not in mutagen.File(paths[1])
    assert genres_of(paths[0]) == [] and genres_of(paths[2]) == []
    assert mutagen.File(paths[3])["genre"] == ["Edited"]
    assert all(np.array_equal(audio_of(p), audio[p]) for p in paths)


def test_max_files_continues_next_time(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    make_lib(lib, n=4)
    # per track, the cut is exact (album mode cuts at album folders: tests/test_albums_cli.py)
    r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path, "--max-files", "3", "--no-albums"))
    assert "3 tagged" in r.output and "1 left for the next run" in r.output
    r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path, "--max-files", "3", "--no-albums"))
    assert "1 tagged" in r.output and "3 unchanged" in r.output


def test_config_file_precedence_and_tagger_config(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    make_lib(lib, n=1)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[tag]\nmodel = "{tiny_model.weights}"\ntop_k = 2\nmin_confidence = 0.0\n'
                   f'state_db = "{tmp_path / "s.db"}"\n\n[genres]\nblues = "Delta Blues"\n')
    r = CliRunner().invoke(main, ["config", "--config", str(cfg)])
    assert r.exit_code == 0
    assert "top-k = 2" in r.output and str(cfg) in r.output
    report = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["tag", str(lib), "--config", str(cfg), "--top-k", "1", "--dry-run",
                                  "--report", str(report)])
    assert r.exit_code == 0, r.output
    data = json.loads(report.read_text())
    assert data["options"]["top_k"] == 1  # command line beats the file
    assert len(data["files"][0]["written"]) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[tag]\ntop_kk = 3\n")
    r = CliRunner().invoke(main, ["tag", str(lib), "--config", str(bad)])
    assert r.exit_code == 1 and "top_kk" in r.output


def test_quiet_prints_nothing_on_success(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    make_lib(lib, n=1)
    r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path, "--quiet", "--log-file", str(tmp_path / "log")))
    assert r.exit_code == 0 and r.output == ""
    assert "tagged:" in (tmp_path / "log").read_text()


def test_corrupt_state_db_is_exit_1_not_reset(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    make_lib(lib, n=1)
    db = tmp_path / "state.db"
    db.write_bytes(b"garbage" * 1000)
    r = CliRunner().invoke(main, tag_args(lib, tiny_model, tmp_path))
    assert r.exit_code == 1 and "state" in r.output.lower()
    assert db.read_bytes() == b"garbage" * 1000


def _unused(p):  # keep imports used for type checkers
    return sf, p
