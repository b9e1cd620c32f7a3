"""The throughput benchmark's harness (bench/bench_throughput.py) works: its library generator,
its memory sampler, its figures, and one tiny end-to-end run (a few short files, the tiny test
model). No figure is asserted here: speed lives in the benchmark's output and docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import bench_throughput as bt  # noqa: E402
import musiclib  # noqa: E402

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def test_library_plan_is_a_prefix_and_deterministic():
    small = musiclib.plan(4, seconds=(180, 240), seed=3)
    large = musiclib.plan(9, seconds=(180, 240), seed=3)
    assert small == large[:4]
    assert [p[3] for p in large[:3]] == ["mp3", "flac", "m4a"]
    assert all(180 <= p[1] <= 240 for p in large)
    assert musiclib.plan(4, seconds=(180, 240), seed=4) != small


def test_rendered_tracks_are_music_like_and_distinct():
    a = musiclib.render(musiclib.random_style(np.random.default_rng(1)), 6.0, seed=1, sr=16000)
    again = musiclib.render(musiclib.random_style(np.random.default_rng(1)), 6.0, seed=1, sr=16000)
    b = musiclib.render(musiclib.random_style(np.random.default_rng(2)), 6.0, seed=2, sr=16000)
    assert a.shape == (2, 96000) and a.dtype == np.float32
    np.testing.assert_array_equal(a, again)
    assert np.max(np.abs(a)) <= 0.9 + 1e-6 and np.std(a) > 0.01
    assert not np.allclose(a, b)
    # structure: loudness changes over time (notes, drums, sections), unlike a steady tone
    frames = np.sqrt(np.mean(a[0, : 96000 // 400 * 400].reshape(-1, 400) ** 2, axis=1))
    assert frames.std() / frames.mean() > 0.1


def test_encoded_formats_decode(tmp_path):
    from tagger.decode import decode, probe

    x = musiclib.render(musiclib.random_style(np.random.default_rng(5)), 3.0, seed=5)
    for ext in ("mp3", "flac", "m4a"):
        p = tmp_path / f"t.{ext}"
        musiclib.encode(p, x)
        assert abs(probe(p).duration - 3.0) < 0.2
        y = decode(p, sample_rate=16000)
        assert abs(y.shape[0] - 48000) < 0.1 * 48000 and np.std(y) > 0.01


def test_peak_rss_sees_the_whole_process_tree():
    """A parent (small) whose child, named like a Ray worker, holds 120 MB: the sampler files the
    child's peak under workers and the parent's under driver."""
    child = ("import sys, numpy as np; a = np.ones(120 * 2**20 // 8); "
             "print('ready', flush=True); sys.stdin.read()")
    # argv[0] "ray::fake": how a Ray worker's command line reads
    parent = ("import subprocess, sys; "
              f"p = subprocess.Popen(['ray::fake', '-c', {child!r}], executable=sys.executable, "
              "stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True); "
              "print(p.stdout.readline().strip(), flush=True); sys.stdin.read(); p.stdin.close(); p.wait()")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        sampler = bt.PeakRSS(proc.pid)
        sampler.sample()
        mem = sampler.summary()
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert mem["workers"] == 1
    assert mem["worker_mb"] >= 120
    assert 0 < mem["driver_mb"] < 120


def test_figures():
    agree = bt.agreement({"x": "rock", "y": "jazz", "z": "pop"}, {"x": "rock", "y": "blues", "w": "pop"})
    assert agree["files"] == 2 and agree["same"] == 1 and agree["agreement"] == 0.5
    assert agree["differ"] == [{"path": "y", "a": "jazz", "b": "blues"}]
    assert bt.agreement({}, {"x": "rock"})["agreement"] is None
    report = {
        "counts": {"tagged": 2, "failed": 0},
        "timing": {"startup": {"ray": 2.0, "tensorflow": 3.0}, "stream": 4.0, "infer": 2.0, "write": 0.2,
                   "tags": 0.1, "decode": 1.0, "features": 1.2, "analysed": 2, "audio_seconds": 400.0},
        "files": [{"path": "/lib/a.mp3", "action": "tagged", "written": ["Rock"],
                   "predicted": [{"label": "rock", "score": 0.9}]},
                  {"path": "/lib/b.mp3", "action": "uncertain", "written": [],
                   "predicted": [{"label": "jazz", "score": 0.5}]}],
    }
    s = bt.summarise_tagger("b", report, 12.0, {"driver_mb": 1.0}, 400.0, Path("/lib"), 0)
    assert s["tracks"] == 2 and s["tracks_per_s"] == pytest.approx(0.5)
    assert s["audio_h_per_h"] == pytest.approx(100.0)
    assert s["ms_per_track"]["inference"] == pytest.approx(1000.0)
    assert s["ms_per_track"]["other"] == pytest.approx(900.0)
    assert s["startup"]["process"] == pytest.approx(3.0)  # 12 s wall - 4 s stream - 5 s start-up
    assert s["top1"] == {"a.mp3": "rock", "b.mp3": "jazz"}
    assert s["decisions"] == {"a.mp3": "tagged: Rock", "b.mp3": "uncertain: "}
    text = bt.table([s])
    assert text.splitlines()[2].startswith("| b | 2 | 0.500 | 100 | 2000 |")
    s["memory"]["cpu_s"] = {"driver": 3.0, "worker": 1.0, "system": 0.0}
    assert bt.cpu_per_track(s) == pytest.approx(2.0)


@pytest.mark.slow
def test_harness_end_to_end(tmp_path):
    from tests.conftest import build_tiny_model

    model = build_tiny_model(tmp_path / "model")
    out = tmp_path / "bench.json"
    work = tmp_path / "work"
    r = subprocess.run([sys.executable, str(BENCH / "bench_throughput.py"), "--files", "3", "--seconds", "5,6",
                        "--model", str(model.weights), "--work", str(work),
                        "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["runs"]) == {"a", "b", "c", "w"}
    for key, run in data["runs"].items():
        assert run["tracks"] == 3, key
        assert run["tracks_per_s"] > 0, key
    assert data["library"]["formats"] == ["flac", "m4a", "mp3"]
    # the same model on the same features: the seed loop and tagger agree on every file
    assert data["figures"]["top1 a vs b"]["agreement"] == 1.0
    assert data["figures"]["b/a"] > 0 and data["figures"]["b/c"] > 0
    b = data["runs"]["b"]
    assert {"ray", "tensorflow", "model"} <= set(b["startup"])
    assert b["memory"]["driver_mb"] > 50 and b["memory"]["worker_mb"] > 0 and b["memory"]["workers"] >= 1
    assert data["runs"]["a"]["memory"]["driver_mb"] > 50
    assert {s["format"] for s in data["seek"]} == {"mp3", "flac", "m4a"}
    assert "| a: seed-style loop | 3 |" in r.stdout
    # both wrote their genres into their own copies; the library itself is untouched
    import mutagen

    lib = Path(data["library"]["root"])
    for p in sorted(lib.rglob("*.mp3")):
        rel = p.relative_to(lib)
        assert not (mutagen.File(p, easy=True).tags or {}).get("genre")
        assert mutagen.File(work / "copy-a" / rel, easy=True)["genre"]
