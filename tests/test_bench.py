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


# ---------------------------------------------------------------------------------------------
# the inference speed-ups the benchmark measures (tagger/model.py)
# ---------------------------------------------------------------------------------------------

def _random_bn(layer, rng, channels):
    """Trained-looking statistics, half the scales negative."""
    gamma = rng.uniform(0.5, 1.5, channels) * np.where(rng.random(channels) < 0.5, -1.0, 1.0)
    layer.set_weights([gamma.astype(np.float32), rng.normal(0, 0.5, channels).astype(np.float32),
                       rng.normal(0, 0.5, channels).astype(np.float32),
                       rng.uniform(0.2, 2.0, channels).astype(np.float32)])


def _patterns_net():
    """Every rewrite pattern: conv->BN->ReLU->pool (folded), conv(relu)->BN->pool (sign-split),
    BN->pool (pooled first), and a BN left alone (it feeds two layers)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    inp = keras.Input((20, 12), name="x")
    x = layers.Reshape((20, 12, 1))(inp)
    a = layers.Conv2D(6, 3, padding="same", use_bias=False, name="fold_conv")(x)
    a = layers.BatchNormalization(name="fold_bn")(a)
    a = layers.ReLU()(a)
    a = layers.MaxPooling2D((1, 12), name="fold_pool")(a)
    b = layers.Conv2D(5, (1, 4), activation="relu", name="split_conv")(x)
    b = layers.BatchNormalization(name="split_bn")(b)
    b = layers.MaxPooling2D((1, 9), name="split_pool")(b)
    c = layers.BatchNormalization(name="pool_bn")(x)
    c = layers.MaxPooling2D((1, 12), name="pool_pool")(c)
    d = layers.BatchNormalization(name="shared_bn")(c)
    e = layers.Add()([d, c])
    y = layers.Concatenate()([layers.Reshape((20, 6))(a), layers.Reshape((20, 5))(b), layers.Reshape((20, 1))(d),
                              layers.Reshape((20, 1))(e)])
    y = layers.GlobalMaxPooling1D()(y)
    out = layers.Dense(4, activation="softmax", name="genre")(y)
    net = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for name, ch in (("fold_bn", 6), ("split_bn", 5), ("pool_bn", 1), ("shared_bn", 1)):
        _random_bn(net.get_layer(name), rng, ch)
    return net


def test_inference_graph_rewrites_give_the_networks_answers():
    from tagger.model import inference_graph

    net = _patterns_net()
    fn, notes = inference_graph(net)
    assert sorted(notes) == sorted([
        "fold_bn folded into fold_conv", "split_pool before split_bn (sign-split split_conv)",
        "pool_pool before pool_bn"])  # shared_bn feeds two layers: left alone
    x = np.random.default_rng(1).normal(0, 2, (16, 20, 12)).astype(np.float32)
    want = np.asarray(net(x, training=False))
    got = np.asarray(fn(x))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()


def test_genre_model_falls_back_when_a_rewrite_is_wrong(monkeypatch):
    from tagger import model as tm
    from tagger.features import FeatureParams
    from tagger.modelmeta import ModelMeta

    net = _patterns_net()
    meta = ModelMeta(model_id="0" * 16, architecture="test", labels=("a", "b", "c", "d"), output_activation="softmax",
                     features=FeatureParams(kind="waveform", chunk_frames=20), input_shape=(20, 12))
    x = np.random.default_rng(2).normal(0, 2, (5, 20, 12)).astype(np.float32)
    want = np.asarray(net(x, training=False))
    good = tm.GenreModel(meta, net, batch_size=4)
    assert len(good.rewrites) == 3
    np.testing.assert_allclose(good.predict(x), want, atol=1e-6)
    monkeypatch.setattr(tm, "inference_graph", lambda n: (lambda t: net(t, training=False) * 0.5, ["broken"]))
    bad = tm.GenreModel(meta, net, batch_size=4)
    np.testing.assert_allclose(bad.predict(x), want, atol=1e-6)  # checked, found wrong, not used
    assert bad.rewrites == []
    plain = tm.GenreModel(meta, net, batch_size=4, optimize=False)
    assert plain.rewrites == []


def test_shipped_musicnn_rewrite_is_exact():
    """musicnn's front end (conv+ReLU -> BN -> max over frequency) computed pooled-first: the
    same float operations on fewer values, so the same scores."""
    from tagger.model import GenreModel

    m = GenreModel.load(vocabulary="msd", batch_size=4)
    assert len(m.rewrites) == 5
    x = np.random.default_rng(0).normal(1.5, 1.0, (3, *m.meta.input_shape)).astype(np.float32)
    np.testing.assert_allclose(m._fn(x).numpy(), m._plain(x).numpy(), rtol=0, atol=1e-6)


def test_batch_slices():
    from tagger.model import batch_slices

    assert batch_slices(71, 64) == [(0, 64), (64, 4), (68, 2), (70, 1)]
    assert batch_slices(128, 64) == [(0, 64), (64, 64)]
    assert batch_slices(0, 64) == []
    assert batch_slices(71, 64, pow2_tail=False) == [(0, 64), (64, 7)]
    for n in range(1, 200):
        parts = batch_slices(n, 32)
        assert sum(m for _, m in parts) == n and all(m in (1, 2, 4, 8, 16, 32) for _, m in parts)
        assert [s for s, _ in parts] == list(np.cumsum([0] + [m for _, m in parts[:-1]]))


def test_close_call():
    from tagger.model import close_call

    def close(scores, **kw):
        return close_call(np.array(scores), **{"top_k": 1, "min_confidence": 0.4, "error": 0.02, **kw})

    assert not close([0.9, 0.3, 0.1])
    assert close([0.9, 0.87, 0.1])  # the best two 0.03 apart: both may move 0.02
    assert not close([0.9, 0.85, 0.1])
    assert close([0.41, 0.1, 0.0])  # the best 0.01 from the threshold
    assert not close([0.43, 0.1, 0.0])
    assert not close([0.9, 0.41, 0.1])  # the second near the threshold: irrelevant with top_k 1
    assert not close([0.9, 0.5, 0.47, 0.0], min_confidence=0.2)  # the third: irrelevant with top_k 1
    assert close([0.9, 0.5, 0.47, 0.0], top_k=2, min_confidence=0.2)  # with top_k 2 it is not
    # without an explicit bound: a single chunk's bfloat16 error is larger than a long track's
    assert close_call(np.array([0.6, 0.52, 0.1]), top_k=1, min_confidence=0.4, chunks=1)
    assert not close_call(np.array([0.6, 0.52, 0.1]), top_k=1, min_confidence=0.4, chunks=70)


def test_bfloat16_switch(monkeypatch):
    from tagger import model as tm

    monkeypatch.setenv("TAGGER_CPU_BF16", "0")
    assert not tm.cpu_bfloat16_default(3e9)
    monkeypatch.setenv("TAGGER_CPU_BF16", "1")
    assert tm.cpu_bfloat16_default(1e3)
    monkeypatch.delenv("TAGGER_CPU_BF16")
    assert not tm.cpu_bfloat16_default(1e6)  # small models stay float32
    assert tm.cpu_bfloat16_default(3e9) == tm.cpu_has_amx_bf16()


@pytest.mark.slow
def test_bfloat16_run_decides_like_float32(tmp_path, tiny_model, ray_session, monkeypatch):
    """Forced bfloat16 (the tiny model's softmax scores sit near each other and near the
    threshold: close calls): every decision and written genre is float32's."""
    from click.testing import CliRunner

    from tagger.cli import main
    from tests.test_pipeline import make_lib

    lib = tmp_path / "lib"
    make_lib(lib, n=6)
    rows = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("TAGGER_CPU_BF16", flag)
        report = tmp_path / f"r{flag}.json"
        r = CliRunner().invoke(main, ["tag", str(lib), "--dry-run", "--model", str(tiny_model.weights), "--state-db",
                                      str(tmp_path / f"s{flag}.db"), "--min-confidence", "0.25",
                                      "--report", str(report)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        data = json.loads(report.read_text())
        rows[flag] = {f["path"]: (f["action"], f["written"], f["predicted"][0]["label"]) for f in data["files"]}
        if flag == "1":
            assert data["model"]["inference"]["predictors"][0]["precision"] == "mixed_bfloat16"
            assert data["timing"]["rechecked"] >= 1
    assert rows["0"] == rows["1"]


def test_whole_batches_carry_a_tracks_last_chunks_over(tiny_model, tmp_path):
    """While files keep coming, the pipeline predicts whole batches only; every track still gets
    the mean of exactly its own chunks' scores."""
    from tagger.contracts import Analysis
    from tagger.options import TagOptions
    from tagger.pipeline import Pending, Tagger

    t = Tagger([str(tmp_path)], TagOptions(model=str(tiny_model.weights)))
    finished, sizes = {}, []
    t._finish_analysed = lambda s, found: finished.__setitem__(s.path, s.scores)

    def predict(x):  # a chunk's "scores" are its first value and 1 - it
        sizes.append(len(x))
        return np.stack([x[:, 0, 0], 1 - x[:, 0, 0]], axis=1)

    rng = np.random.default_rng(0)
    tracks = [Pending(Analysis(f"t{i}", size=1, mtime_ns=1, features=rng.random((n, 3, 2)).astype(np.float32)))
              for i, n in enumerate([5, 3, 9, 1, 6])]
    by_path = {r.analysis.path: None for r in tracks}
    waiting = t._predict_and_write(tracks[:2], predict, by_path, flush=4)  # 8 chunks: 2 batches
    assert sizes == [8] and sorted(finished) == ["t0", "t1"] and waiting == []
    waiting = t._predict_and_write(tracks[2:4], predict, by_path, flush=4)  # 10 chunks: 8 now
    assert sizes[-1] == 8 and sorted(finished) == ["t0", "t1"] and [r.analysis.path for r in waiting] == ["t2", "t3"]
    waiting = t._predict_and_write(waiting + tracks[4:], predict, by_path, flush=None)  # the end: the rest
    assert sizes[-1] == 8 and waiting == [] and sorted(finished) == ["t0", "t1", "t2", "t3", "t4"]
    for r in tracks:
        f = r.analysis.features[:, 0, 0]
        np.testing.assert_allclose(finished[r.analysis.path], [f.mean(), 1 - f.mean()], rtol=1e-6)
    assert t.stats.analysed == 5 and t.stats.chunks == 24


@pytest.mark.parametrize("features", [
    dict(kind="logmel", sample_rate=16000, n_fft=512, hop_length=256, n_mels=32, chunk_frames=187,
         chunk_hop_frames=187),
    dict(kind="logmel", sample_rate=22050, n_fft=2048, hop_length=512, n_mels=32, log="db", chunk_frames=172,
         chunk_hop_frames=86),
])
def test_sampled_stretches_hold_whole_chunks(features):
    from tagger.analyse import fit_chunks, plan_segments
    from tagger.features import FeatureParams, extract

    fp = FeatureParams(**features)
    assert fit_chunks([(0.0, None)], params=fp) == [(0.0, None)]
    for budget in (15, 30, 60):
        plan = plan_segments(210, analysis_seconds=budget, max_seconds=900, chunk_seconds=fp.chunk_seconds)
        fit = fit_chunks(plan, params=fp)
        assert [o for o, _ in fit] == [o for o, _ in plan]
        counts = []
        for _, d in fit:
            n = int(d * fp.sample_rate)
            y = np.random.default_rng(0).standard_normal(n).astype(np.float32)
            c = extract(y, params=fp).shape[0]
            assert extract(y[:-8], params=fp).shape[0] == c  # a decoder a few samples short loses nothing
            # and no audio is decoded for nothing: less than one chunk hop beyond the last chunk
            assert n < fp.chunk_seconds * fp.sample_rate + c * fp.chunk_hop_seconds * fp.sample_rate
            counts.append(c)
        assert max(counts) - min(counts) <= 1
        assert abs(sum(d for _, d in fit) - budget) <= fp.chunk_seconds  # about the budget asked for
