"""Faults during a run: a Ray worker killed mid-task, a decoder that hangs, Ray that cannot be
reached. The run always completes (or, for Ray, ends at once with one clear line), and the
outcome is what ``make_bad_corpus.FAULTS`` (and docs/bad-input.md) promise.

Faults are injected *in the worker process* by test doubles of the analyse task
(tests/bad_input_helpers.py: the pipeline's ``ray_backend.analyse_remote`` is monkeypatched in the
driver to return a Ray task with tagger's own task options that runs the real
``analyse_file`` after the fault). tagger's code has no test hooks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from tests.bad_input_helpers import (
    alive,
    attempts,
    install_double,
    matches,
    pid_file,
    report_rows,
    run_cli,
    snapshot,
    tag_args,
    task_options,
    wait_for,
)
from tests.conftest import tone
from tests.make_bad_corpus import FAULTS

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.tf, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[1]


def small_library(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True)
    for i, name in enumerate(names):
        sf.write(root / name, tone(2.0, sr=22050, freq=220.0 * (i + 1), seed=i), 22050)
    return root


def check_outcome(rows: dict, victim: str, fault, others: list[str]) -> None:
    row = rows[victim]
    assert row["action"] == fault.action, row
    if fault.kind:
        assert row["error_kind"] == fault.kind and matches(row["reason"], fault.reason), row
        assert "\n" not in row["reason"]
    for name in others:
        assert rows[name]["action"] == "tagged", rows[name]


def assert_audio_unchanged(before: dict, after: dict) -> None:
    assert set(before) == set(after)
    for name in before:
        assert after[name]["audio"] == before[name]["audio"], name
        assert after[name]["tags"] == before[name]["tags"], name


def test_worker_killed_mid_task_is_retried(tmp_path, tiny_model, monkeypatch):
    """SIGKILL from outside to the worker process while it holds the file's task."""
    fault = FAULTS["worker-killed-once"]
    assert task_options()["max_retries"] >= 1
    names = ["a.wav", "victim.wav", "z.wav"]
    lib = small_library(tmp_path / "lib", names)
    state = tmp_path / "double"
    state.mkdir()
    install_double(monkeypatch, {"victim.wav": "wait-for-kill"}, state_dir=state)
    killed: dict[str, object] = {}

    def killer():
        try:
            pf = pid_file(state, "victim.wav")
            wait_for(pf.exists, timeout=120, what="the worker to start on victim.wav")
            killed["pid"] = int(pf.read_text())
            os.kill(killed["pid"], signal.SIGKILL)
        except Exception as exc:
            killed["error"] = exc

    before = snapshot(lib)
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    report = tmp_path / "r.json"
    r = run_cli(tag_args([lib], tiny_model, tmp_path / "s.db", "--report", str(report)))
    thread.join(timeout=10)
    assert "pid" in killed, killed
    assert r.exit_code == fault.exit_code, r.output
    rows = report_rows(report, lib)
    check_outcome(rows, "victim.wav", fault, ["a.wav", "z.wav"])
    assert attempts(state, "victim.wav") == 2  # killed once, retried once
    wait_for(lambda: not alive(killed["pid"]), timeout=30, what="the killed worker to be gone")
    assert_audio_unchanged(before, snapshot(lib))


def test_worker_killed_on_every_attempt_is_reported(tmp_path, tiny_model, monkeypatch):
    fault = FAULTS["worker-killed-always"]
    names = ["a.wav", "victim.wav", "z.wav"]
    lib = small_library(tmp_path / "lib", names)
    state = tmp_path / "double"
    state.mkdir()
    install_double(monkeypatch, {"victim.wav": "kill-always"}, state_dir=state)
    before = snapshot(lib)
    report = tmp_path / "r.json"
    r = run_cli(tag_args([lib], tiny_model, tmp_path / "s.db", "--report", str(report)))
    assert r.exit_code == fault.exit_code, r.output
    rows = report_rows(report, lib)
    check_outcome(rows, "victim.wav", fault, ["a.wav", "z.wav"])
    assert attempts(state, "victim.wav") == 1 + task_options()["max_retries"]
    after = snapshot(lib)
    assert after["victim.wav"] == before["victim.wav"]  # never written
    assert_audio_unchanged(before, after)


def test_hanging_decoder_times_out(tmp_path, tiny_model, monkeypatch):
    """decode() blocks in the worker; --file-timeout stops it, kills the worker, and the other
    files (queued behind it and beside it) are not blamed for the time it took."""
    fault = FAULTS["decoder-hangs"]
    timeout = 8
    names = ["a.wav", "b.wav", "stuck.wav", "x.wav", "y.wav", "z.wav"]
    lib = small_library(tmp_path / "lib", names)
    state = tmp_path / "double"
    state.mkdir()
    double = install_double(monkeypatch, {"stuck.wav": "hang"}, state_dir=state)
    warm_workers(double, lib / "a.wav", tiny_model)
    before = snapshot(lib)
    report = tmp_path / "r.json"
    t = time.monotonic()
    r = run_cli(tag_args([lib], tiny_model, tmp_path / "s.db", "--report", str(report),
                         "--file-timeout", str(timeout), "--workers", "2"))
    elapsed = time.monotonic() - t
    assert r.exit_code == fault.exit_code, r.output
    rows = report_rows(report, lib)
    check_outcome(rows, "stuck.wav", fault, [n for n in names if n != "stuck.wav"])
    assert elapsed < timeout + 60, elapsed
    pid = int(pid_file(state, "stuck.wav").read_text())
    wait_for(lambda: not alive(pid), timeout=30, what="the hanging worker to be killed")
    assert_audio_unchanged(before, snapshot(lib))
    assert attempts(state, "stuck.wav") == 1  # a timed-out file is not retried


def warm_workers(task, path: Path, model, n: int = 4) -> None:
    """Run the task a few times first: a cold worker's first file includes starting Python and
    importing numpy, soundfile and librosa (several seconds on a busy 2-core machine), which would
    count against the short --file-timeout of the test."""
    import ray

    from tagger.modelmeta import load_meta

    meta = load_meta(model)
    params = meta.features.to_dict()
    policy = {"model_id": meta.model_id, "on_existing": "skip", "analysis_seconds": None,
              "max_seconds": 900.0}
    results = ray.get([task.remote(str(path), params=params, policy=policy) for _ in range(n)])
    assert all(r.error is None for r in results), [r.error for r in results]


def test_ray_unreachable_fails_fast_with_one_line(tmp_path, tiny_model):
    """A fresh process (this one's Ray is already initialised and would be reused)."""
    fault = FAULTS["ray-unreachable"]
    lib = small_library(tmp_path / "lib", ["a.wav"])
    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = snapshot(lib)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(ROOT)
    t = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "tagger", "tag", str(lib), "--model", str(tiny_model.weights),
         "--state-db", str(tmp_path / "s.db"), "--ray-address", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=180, env=env)
    elapsed = time.monotonic() - t
    assert out.returncode == fault.exit_code, (out.returncode, out.stderr[-2000:])
    errors = [line for line in out.stderr.splitlines() if line.startswith("tagger: error:")]
    assert len(errors) == 1 and fault.reason in errors[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert elapsed < 60, f"took {elapsed:.0f} s to give up"
    assert snapshot(lib) == before
