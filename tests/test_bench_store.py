"""The store-of-analyses benchmarks (bench/bench_store.py, bench/bench_noop.py) and their
measuring helper (bench/tagger_run.py) work: CPU of a process tree, the import probe, the
correctness checks, and one tiny end-to-end run of each (a few short files, the tiny test
model). No figure is asserted here: speed lives in the benchmarks' output and docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import bench_store as bs  # noqa: E402
import tagger_run  # noqa: E402

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmarks read /proc"), pytest.mark.tf]

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"


def _elsewhere(fn: str, *args, **kwargs) -> dict:
    """``tagger_run.<fn>(*args, **kwargs)`` in a process of its own: measuring makes the caller a
    child subreaper, which the test session must never become (other tests' orphans, Ray's
    processes among them, would be re-parented to it and reaped by the benchmark)."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import tagger_run; "
            "a, k = json.loads(sys.argv[3]), json.loads(sys.argv[4]); "
            "print(json.dumps(getattr(tagger_run, sys.argv[2])(*a, **k), default=str))")
    r = subprocess.run([sys.executable, "-c", code, str(BENCH), fn, json.dumps(args), json.dumps(kwargs)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_cpu_of_a_child_the_kernel_reaps_is_counted():
    """A parent that ignores SIGCHLD (as Ray's raylet does for its workers): its child's CPU is
    in nobody's rusage, so the sampler must count it; a waited-for child comes through rusage."""
    parent = ("import signal, subprocess, sys, time\n"
              "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
              f"subprocess.Popen([sys.executable, '-c', {BURN!r}])\n"
              "time.sleep(2.0)\n")
    r = _elsewhere("measure", [sys.executable, "-c", parent], interval=0.05)
    assert r["exit"] == 0
    assert r["lost_to_rusage_s"] >= 0.4, r
    assert r["cpu_s"] >= 0.55 and r["cpu_s"] - r["lost_to_rusage_s"] < 0.5, r
    waits = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN!r}])"
    waited = _elsewhere("measure", [sys.executable, "-c", waits], interval=0.05)
    assert waited["lost_to_rusage_s"] == 0 and waited["cpu_s"] >= 0.55, waited


def test_cpu_of_an_orphan_is_counted():
    """A child that outlives its parent is re-parented to the benchmark (subreaper) and counted."""
    parent = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {BURN!r}])"
    r = _elsewhere("measure", [sys.executable, "-c", parent], interval=0.05)
    if r["cpu_counted"].startswith("reaped children only"):
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) unavailable")
    assert r["cpu_s"] >= 0.55 and r["still_running"] == [], r


def test_import_probe(tmp_path):
    r = _elsewhere("run_tagger", ["config", "--example"], env=tagger_run.bench_env(tmp_path))
    assert r["exit"] == 0 and r["probe_ran"]
    assert r["imported"]["tensorflow"] is False and r["imported"]["ray"] is False
    assert Path(r["tagger_file"]).resolve().parent == ROOT / "tagger"  # this checkout, not an installed one


def _rows(**rows):
    return {"rows": {p: {"action": a, "written": w} for p, (a, w) in rows.items()}}


def test_checks_find_what_differs():
    dry = _rows(x=("would tag", ["Rock"]), y=("uncertain", []))
    good = _rows(x=("tagged", ["Rock"]), y=("uncertain", []))
    assert bs.check_apply(dry, good, {"x": ["Rock"], "y": []}, {"x": [], "y": []})["ok"]
    none = {"x": [], "y": []}
    assert not bs.check_apply(dry, good, {"x": ["Jazz"], "y": []}, none)["ok"]  # wrote another genre
    assert not bs.check_apply(dry, good, {"x": ["Rock"], "y": ["Rock"]}, none)["ok"]  # touched y
    assert not bs.check_apply(dry, _rows(x=("uncertain", []), y=("uncertain", [])), {"x": ["Rock"], "y": []},
                              {"x": [], "y": []})["ok"]  # the report says otherwise

    preview = _rows(x=("would tag", ["Rock", "Pop"]), y=("skipped", []))
    applied = _rows(x=("tagged", ["Rock", "Pop"]), y=("skipped", []))
    before = {"x": (1, 1), "y": (1, 1)}
    genres_b = {"x": ["Rock"], "y": ["Jazz"]}
    genres_d = {"x": ["Rock", "Pop"], "y": ["Jazz"]}
    ok = bs.check_change(preview, applied, before, {"x": (2, 2), "y": (1, 1)}, genres_b, genres_d)
    assert ok["ok"] and ok["changed"] == 1
    # y changed though c did not say so
    assert not bs.check_change(preview, applied, before, {"x": (2, 2), "y": (2, 2)}, genres_b, genres_d)["ok"]
    assert not bs.check_change(preview, applied, before, {"x": (1, 1), "y": (1, 1)}, genres_b, genres_b)["ok"]


@pytest.mark.slow
def test_store_benchmark_end_to_end(tmp_path, tiny_model):
    out = tmp_path / "store.json"
    r = subprocess.run([sys.executable, str(BENCH / "bench_store.py"), "--files", "3", "--seconds", "5",
                        "--model", str(tiny_model.weights), "--keep", str(tmp_path / "work"),
                        "--tagger-arg=--min-confidence", "--tagger-arg=0", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert list(data["steps"]) == ["a", "b", "c", "d", "c2", "d2", "e"]
    a, b, d = data["steps"]["a"], data["steps"]["b"], data["steps"]["d"]
    assert a["analysis"]["now"] == 3 and a["imported"]["tensorflow"] and a["ray_started"]
    assert a["cpu_s"] > 0 and a["lost_to_rusage_s"] > 0  # Ray workers are counted
    assert b["analysis"]["stored"] == 3 and b["counts"]["tagged"] == 3  # min-confidence 0: every file tagged
    assert d["counts"]["tagged"] == 3  # --top-k 2: a second genre for every file
    assert data["checks"]["apply_wrote_the_dry_run"]["would_tag"] == 3
    assert data["checks"]["d_wrote_what_c_said"]["changed"] == 3
    assert data["checks"]["d2_wrote_what_c2_said"]["ok"]
    assert data["ok"] and all(v["ok"] if isinstance(v, dict) else v for v in data["checks"].values())
    assert "| b: apply |" in r.stdout
    # the pristine library is kept for the next run and was never written
    import mutagen

    for p in (tmp_path / "work").glob("library-*/**/*.*"):
        assert not (mutagen.File(p, easy=True).tags or {}).get("genre")


@pytest.mark.slow
def test_noop_benchmark_with_recorded_copies(tmp_path, tiny_model):
    out = tmp_path / "noop.json"
    r = subprocess.run([sys.executable, str(BENCH / "bench_noop.py"), "--files", "40", "--real", "4",
                        "--runs", "1", "--model", str(tiny_model.weights), "--keep", str(tmp_path / "work"),
                        "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["fill"]["copies"] == 36
    assert data["size"]["rows"]["files"] == 40 and data["size"]["rows"]["analyses"] == 40
    assert data["changed_nothing"] and data["nothing_to_do"] and data["no_tensorflow_no_ray"]
    assert data["runs"][0]["summary"].startswith("nothing to do: 40 files unchanged")
    assert data["size"]["compacted_without_analyses_bytes"] < data["size"]["compacted_bytes"]
