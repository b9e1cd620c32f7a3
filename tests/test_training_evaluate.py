"""Pure pieces of training: intervals, per-class scores, aggregation, plots, augmentation,
normalisation, the architecture registry. Fast (no Ray; Keras only for the small model tests)."""

from __future__ import annotations

import numpy as np
import pytest

from tagger.errors import ParameterError
from tagger.features import FeatureParams
from training import architectures
from training.evaluate import (
    confusion_matrix,
    per_class,
    plot_confusion,
    plot_learning_curves,
    summarise,
    t_interval,
    track_predictions,
    wilson_interval,
)
from training.train import Augment, augment_batch, class_weights, fit_normalisation, parse_augment, standardise

pytestmark = [pytest.mark.tf, pytest.mark.train]


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    with pytest.raises(ParameterError):
        wilson_interval(3, 2)


def test_t_interval_known_values():
    mean, lo, hi = t_interval([0.6, 0.7, 0.8])
    assert mean == pytest.approx(0.7)
    assert hi - mean == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    assert lo == pytest.approx(2 * mean - hi)
    assert t_interval([0.5]) == (0.5, 0.5, 0.5)


def test_per_class_and_summary():
    labels = ["a", "b", "c"]
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    cm = confusion_matrix(y_true, y_pred, n_classes=3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    pc = per_class(cm, labels)
    assert pc["a"] == {"precision": pytest.approx(2 / 3, abs=1e-4), "recall": pytest.approx(2 / 3, abs=1e-4),
                       "f1": pytest.approx(2 / 3, abs=1e-4), "support": 3}
    assert pc["b"]["precision"] == pytest.approx(2 / 3, abs=1e-4) and pc["b"]["recall"] == 1.0
    assert pc["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    s = summarise(y_true, y_pred, labels)
    assert s["accuracy"] == pytest.approx(4 / 6, abs=1e-4) and s["correct"] == 4 and s["tracks"] == 6
    assert s["accuracy_ci95"] == [pytest.approx(v, abs=1e-4) for v in wilson_interval(4, 6)]
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3, abs=1e-3)


def test_track_predictions_average_chunks():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], np.float32)
    owner = np.array([0, 0, 1, 1])
    scores = track_predictions(probs, owner, 2)
    np.testing.assert_allclose(scores, [[0.55, 0.45], [0.35, 0.65]], rtol=1e-6)


def test_plots_are_written(tmp_path):
    cm = np.array([[3, 1], [0, 4]])
    p = plot_confusion(cm, ["blues", "rock"], tmp_path / "cm.png", title="test: 87.5%")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.8, 0.9], "accuracy": [0.3, 0.6, 0.7],
               "val_accuracy": [0.3, 0.5, 0.5]}
    paths = plot_learning_curves(history, tmp_path, title="run")
    assert [q.name for q in paths] == ["learning_loss.png", "learning_accuracy.png"]
    assert all(q.stat().st_size > 5000 for q in paths)


def test_augment_batch_gain_mask_mixup():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 40, 20)).astype(np.float32) + 5.0
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    w = np.ones(6, np.float32)
    out, yo, wo = augment_batch(x, y, w, augment=Augment(("gain",), gain_db=6.0), rng=np.random.default_rng(1),
                                gain_scale=0.5)
    shift = (out - x).mean(axis=(1, 2))
    np.testing.assert_allclose(out - x, np.broadcast_to(shift[:, None, None], x.shape), atol=1e-5)
    assert np.all(np.abs(shift) <= 3.0) and np.ptp(shift) > 0
    np.testing.assert_array_equal(yo, y)
    out, _, _ = augment_batch(x, y, w, augment=Augment(("mask",), time_mask=10, freq_mask=5),
                              rng=np.random.default_rng(2), gain_scale=None)
    zeros = out == 0.0
    assert zeros.any() and np.all(out[~zeros] == x[~zeros])
    out, yo, wo = augment_batch(x, y, w, augment=Augment(("mixup",), mixup_alpha=0.4),
                                rng=np.random.default_rng(3), gain_scale=None)
    np.testing.assert_allclose(yo.sum(axis=1), 1.0, rtol=1e-6)
    assert (yo.max(axis=1) >= 0.5 - 1e-6).all()
    # same generator seed, same augmentation
    a = augment_batch(x, y, w, augment=Augment(("gain", "mask", "mixup")), rng=np.random.default_rng(9),
                      gain_scale=0.1)
    b = augment_batch(x, y, w, augment=Augment(("gain", "mask", "mixup")), rng=np.random.default_rng(9),
                      gain_scale=0.1)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_parse_augment_and_options():
    assert parse_augment(None, default=("gain",)) == ("gain",)
    assert parse_augment("none") == ()
    assert parse_augment("mask, gain,mask") == ("mask", "gain")
    assert parse_augment("pitch,stretch") == ("pitch", "stretch")  # audio-domain augmentations
    with pytest.raises(ParameterError, match="unknown augmentation reverb"):
        parse_augment("pitch,reverb")
    opts = architectures.parse_options(["filters=8,16", "dropout=0.5", "trainable-from=dense", "x=none"])
    assert opts == {"filters": (8, 16), "dropout": 0.5, "trainable_from": "dense", "x": None}
    with pytest.raises(ParameterError):
        architectures.parse_options(["novalue"])


def test_normalisation_and_weights():
    x = np.random.default_rng(0).normal(-30, 12, size=(50, 17, 8)).astype(np.float16)
    mean, std = fit_normalisation(x, block=7)
    assert mean == pytest.approx(float(x.astype(np.float64).mean()), rel=1e-9)
    assert std == pytest.approx(float(x.astype(np.float64).std()), rel=1e-9)
    p = FeatureParams(mean=mean, std=std)
    z = standardise(x, p)
    assert z.dtype == np.float32 and abs(float(z.mean())) < 1e-3 and float(z.std()) == pytest.approx(1, abs=1e-3)
    w = class_weights(np.array([0, 0, 0, 1]), 2)
    np.testing.assert_allclose(w, [4 / 6, 4 / 6, 4 / 6, 2.0])


def test_registry():
    assert {"mel-cnn", "musicnn-transfer"} <= set(architectures.names())
    spec = architectures.get("mel-cnn")
    f = spec.features
    assert (f.sample_rate, f.hop_length, f.n_mels, f.log, f.chunk_frames, f.chunk_hop_frames) == (
        22050, 512, 128, "db", 172, 86)
    assert f.chunk_seconds == pytest.approx(4.0, abs=0.01) and f.chunk_hop_seconds == pytest.approx(2.0, abs=0.01)
    with pytest.raises(ParameterError, match="unknown architecture 'nope'"):
        architectures.get("nope")
    with pytest.raises(ParameterError, match="already registered"):
        architectures.register(spec)


def test_mel_cnn_builds_with_stock_layers():
    from tagger.model import quiet_tensorflow

    quiet_tensorflow()
    spec = architectures.get("mel-cnn")
    net = spec.build(4, features=spec.features, filters=(4, 8))
    assert net.input_shape[1:] == (172, 128) and net.output_shape[1:] == (4,)
    kinds = {type(layer).__module__.split(".")[0] for layer in net.layers}
    assert kinds == {"keras"}
    out = net.predict(np.zeros((2, 172, 128), np.float32), verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_frozen_split_trains_the_head_in_place():
    """The frozen-backbone fast path: head layers are shared with the full network."""
    from tagger.model import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from training.train import frozen_cut, frozen_split

    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    h = keras.layers.Dense(5, name="body")(inp)
    h = keras.layers.Dense(4, name="penultimate")(h)
    h = keras.layers.Dropout(0.2)(h)
    out = keras.layers.Dense(3, activation="softmax", name="head")(h)
    net = keras.Model(inp, out)
    assert frozen_split(net, "penultimate") is None  # backbone still trainable
    assert frozen_cut(net, "penultimate") is None
    net.get_layer("body").trainable = False
    assert frozen_cut(net, "penultimate") == "body"  # fine-tuning from "penultimate" on
    net.get_layer("penultimate").trainable = False
    assert frozen_cut(net, "penultimate") == "penultimate"
    backbone, head = frozen_split(net, "penultimate")
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    np.testing.assert_allclose(head.predict(backbone.predict(x, verbose=0), verbose=0), net.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    before = net.get_layer("head").get_weights()[0].copy()
    head.compile(optimizer="sgd", loss="categorical_crossentropy")
    head.fit(backbone.predict(x, verbose=0), np.eye(3)[np.arange(8) % 3], epochs=1, verbose=0)
    assert not np.allclose(before, net.get_layer("head").get_weights()[0])
    assert frozen_split(net, "no-such-layer") is None
