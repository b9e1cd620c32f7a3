"""tagger.model: the inference-graph rewrites (exact, with a fallback when one is wrong), batch
slicing, close calls and the bfloat16 switch (the speed-ups bench/bench_throughput.py measures)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.tf, pytest.mark.ray]


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
