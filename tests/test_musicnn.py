"""The musicnn backbone: conversion proof against the original TF1 graph, the shipped msd model,
reproducibility, and the transfer-learning building blocks.

Tests that need musicnn's weights find the wheel through ``TAGGER_MUSICNN_WHEEL`` or at
``.cache/musicnn-0.1.0-py3-none-any.whl`` in the repository root (the CI script downloads it
there with ``pip download --no-deps musicnn==0.1.0 -d .cache``), and skip without it.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tagger.errors import ModelError, ParameterError
from tagger.features import extract
from tagger.model import quiet_tensorflow

quiet_tensorflow()

from training import musicnn

REPO = Path(__file__).resolve().parents[1]
GTZAN = Path(os.environ.get("TAGGER_GTZAN_DIR", "/work/shared/data/gtzan_mini")) / "genres"
GTZAN_CLIPS = ("jazz/jazz.00000.wav", "metal/metal.00000.wav", "classical/classical.00000.wav")
#: The original graph's 200-unit back-end BatchNorm output (musicnn's "penultimate" feature).
TF1_PENULTIMATE = "model/batch_normalization_10/batchnorm/add_1:0"
TOLERANCE = 1e-4

pytestmark = [pytest.mark.tf, pytest.mark.train]


def _wheel_path() -> Path | None:
    env = os.environ.get("TAGGER_MUSICNN_WHEEL")
    candidate = Path(env) if env else REPO / ".cache" / musicnn.WHEEL_NAME
    return candidate if candidate.is_file() else None


@pytest.fixture(scope="module")
def wheel() -> Path:
    path = _wheel_path()
    if path is None:
        pytest.skip(
            f"musicnn wheel not found: set TAGGER_MUSICNN_WHEEL or put {musicnn.WHEEL_NAME} in .cache/ "
            "(pip download --no-deps musicnn==0.1.0 -d .cache)"
        )
    return path


@pytest.fixture(scope="module")
def checkpoint(wheel, tmp_path_factory) -> Path:
    return musicnn.find_checkpoint(wheel, extract_to=tmp_path_factory.mktemp("musicnn"))


@pytest.fixture(scope="module")
def full_model(checkpoint):
    return musicnn.convert_checkpoint(checkpoint)


def _test_signal(seconds: float = 12.0, sr: int = 16000) -> np.ndarray:
    """A deterministic music-like signal: decaying harmonic notes over noise hits."""
    rng = np.random.default_rng(1234)
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for start in np.arange(0.0, seconds, 0.25):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        idx = (t >= start) & (t < start + 0.5)
        tt = t[idx] - start
        y[idx] += sum(np.sin(2 * np.pi * f0 * k * tt) / k for k in range(1, 6)) * np.exp(-6 * tt)
        if rng.random() < 0.5:
            hit = idx & (t < start + 0.05)
            y[hit] += rng.normal(0, 0.5, hit.sum()) * np.exp(-60 * (t[hit] - start))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def chunks() -> tuple[np.ndarray, bool]:
    """(n, 187, 96) musicnn features of real GTZAN audio where available, else a test signal."""
    from tagger.decode import decode

    clips = [GTZAN / c for c in GTZAN_CLIPS if (GTZAN / c).is_file()]
    if clips:
        x = np.concatenate(
            [extract(decode(c, sample_rate=16000), params=musicnn.MUSICNN_FEATURES) for c in clips]
        )
        return x, True
    return extract(_test_signal(), params=musicnn.MUSICNN_FEATURES), False


def run_original_graph(checkpoint_dir: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """musicnn's own TF1 graph (from the checkpoint's .meta) under tf.compat.v1.

    Returns (sigmoid outputs (n, 50), penultimate (n, 200)).
    """
    import tensorflow as tf

    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString((checkpoint_dir / ".meta").read_bytes())
    for node in meta.graph_def.node:  # TF 1.12 shape annotations do not import into TF 2
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, musicnn.checkpoint_prefix(checkpoint_dir))
            tags, pen = sess.run(
                ["model/Sigmoid:0", TF1_PENULTIMATE],
                feed_dict={"model/Placeholder:0": x, "model/Placeholder_2:0": False},
            )
    return tags, pen


# --------------------------------------------------------------------------------------------
# the numerical proof
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_keras_model_equals_original_graph(checkpoint, full_model, chunks):
    x, real = chunks
    if GTZAN.is_dir():
        assert real, "GTZAN is present: the proof must run on real audio"
    ref_tags, ref_pen = run_original_graph(checkpoint, x)
    ours = full_model.predict(x, batch_size=64, verbose=0)
    pen = musicnn.embedding_model(full_model).predict(x, batch_size=64, verbose=0)
    assert ours.shape == ref_tags.shape == (x.shape[0], 50)
    assert pen.shape == ref_pen.shape == (x.shape[0], 200)
    # the outputs are not degenerate (a broken conversion tends to saturate or flatten them)
    assert ref_tags.std(axis=0).max() > 0.01
    assert np.abs(ours - ref_tags).max() <= TOLERANCE
    assert np.abs(pen - ref_pen).max() <= TOLERANCE * max(1.0, float(np.abs(ref_pen).max()))


def test_tolerance_detects_a_wrong_weight(full_model, chunks):
    """The comparison is sensitive: perturbing one BatchNorm weight breaks the 1e-4 bound."""
    import keras

    x, _ = chunks
    x = x[:4]
    clone = keras.models.clone_model(full_model)
    clone.set_weights(full_model.get_weights())
    gamma, beta, mean, var = clone.get_layer("midend_2_bn").get_weights()
    clone.get_layer("midend_2_bn").set_weights([gamma * 1.05, beta, mean, var])
    ref = full_model.predict(x, verbose=0)
    assert np.abs(clone.predict(x, verbose=0) - ref).max() > TOLERANCE


# --------------------------------------------------------------------------------------------
# the shipped msd model
# --------------------------------------------------------------------------------------------

def test_shipped_msd_model_loads_safely_with_stock_layers():
    import keras

    from tagger.model import GenreModel
    from tagger.modelmeta import locate

    files = locate(vocabulary="msd")
    with zipfile.ZipFile(files.weights) as zf:
        config = json.loads(zf.read("config.json"))
    modules = {layer["module"] for layer in config["config"]["layers"]}
    classes = {layer["class_name"] for layer in config["config"]["layers"]}
    assert modules == {"keras.layers"}
    assert "Lambda" not in classes
    keras.saving.load_model(files.weights, compile=False, safe_mode=True)

    model = GenreModel.load(vocabulary="msd")
    meta = model.meta
    assert meta.labels == tuple(musicnn.MSD_GENRES)
    assert meta.display_names == musicnn.MSD_GENRES
    assert meta.features == musicnn.MUSICNN_FEATURES
    assert meta.output_activation == "sigmoid"
    assert meta.licence == "ISC"
    assert "Jordi Pons" in meta.credits and "Xavier Serra" in meta.credits
    assert "musicnn: pre-trained convolutional neural networks for music audio tagging" in meta.credits
    assert model.net.get_layer(musicnn.PENULTIMATE).output.shape[-1] == musicnn.EMBEDDING_SIZE
    y = model.predict(extract(_test_signal(), params=meta.features))
    assert y.shape[1] == len(musicnn.MSD_GENRES)
    assert np.all((y >= 0) & (y <= 1)) and np.all(np.isfinite(y))


def test_vocabulary_is_genres_only():
    kept, dropped = set(musicnn.MSD_GENRES), set(musicnn.MSD_DROPPED)
    assert kept | dropped == set(musicnn.MSD_LABELS) and not kept & dropped
    assert list(musicnn.MSD_GENRES) == [t for t in musicnn.MSD_LABELS if t in kept]  # checkpoint order
    assert not any(t[:2].isdigit() for t in kept)  # no decades
    assert musicnn.MSD_GENRES["rnb"] == "R&B" and musicnn.MSD_GENRES["Hip-Hop"] == "Hip-Hop"


def test_shipped_licence_is_musicnns():
    from tagger.modelmeta import shipped_dir

    text = (shipped_dir() / "LICENSE-musicnn.txt").read_text(encoding="utf-8")
    assert " ".join(text.split()) == " ".join(musicnn.LICENCE_TEXT.split())


def test_shipped_model_equals_sliced_full_model(full_model, chunks):
    from tagger.model import GenreModel

    x, _ = chunks
    shipped = GenreModel.load(vocabulary="msd")
    cols = [musicnn.MSD_LABELS.index(t) for t in shipped.meta.labels]
    full = full_model.predict(x, verbose=0)
    np.testing.assert_allclose(shipped.predict(x), full[:, cols], rtol=0, atol=1e-6)


def test_conversion_is_reproducible(wheel, checkpoint, full_model, tmp_path):
    """Converting again gives the same weights bit for bit, equal to the shipped ones; with the
    Keras/TF/h5py versions that wrote the shipped file, the same file (model id)."""
    import keras
    from click.testing import CliRunner

    from tagger.modelmeta import load_meta, locate

    again = musicnn.convert_checkpoint(checkpoint)
    for a, b in zip(full_model.get_weights(), again.get_weights(), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)

    result = CliRunner().invoke(musicnn.convert_musicnn, [str(wheel), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = locate(tmp_path / "msd.keras")
    meta = load_meta(files)
    assert meta.model_id in result.output
    assert (tmp_path / "LICENSE-musicnn.txt").is_file()

    shipped_files = locate(vocabulary="msd")
    shipped_meta = load_meta(shipped_files)
    shipped = keras.saving.load_model(shipped_files.weights, compile=False, safe_mode=True)
    fresh = keras.saving.load_model(files.weights, compile=False, safe_mode=True)
    for a, b in zip(shipped.get_weights(), fresh.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert meta.labels == shipped_meta.labels
    if shipped_meta.training.get("converted_with") == musicnn._versions():
        assert meta.model_id == shipped_meta.model_id
    else:  # a different Keras/h5py serialises the same weights into different bytes
        pytest.skip("library versions differ from the shipped conversion: weights compared, file not")


# --------------------------------------------------------------------------------------------
# find_checkpoint / CLI errors (no wheel needed)
# --------------------------------------------------------------------------------------------

def _fake_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in musicnn.CHECKPOINT_FILES + (".meta",):
            zf.writestr(f"musicnn/MSD_musicnn/{name}", b"x")
        zf.writestr("musicnn/MTT_musicnn/.index", b"x")
        zf.writestr("musicnn-0.1.0.dist-info/LICENSE.md", musicnn.LICENCE_TEXT)
    return path


def test_find_checkpoint_accepts_wheel_unpacked_folder_and_checkpoint_folder(tmp_path):
    wheel = _fake_wheel(tmp_path / musicnn.WHEEL_NAME)
    found = musicnn.find_checkpoint(wheel, extract_to=tmp_path / "unpacked")
    assert found == tmp_path / "unpacked" / "musicnn" / "MSD_musicnn"
    assert (found / ".index").is_file() and not (tmp_path / "unpacked" / "musicnn" / "MTT_musicnn").exists()
    assert musicnn.find_checkpoint(tmp_path / "unpacked") == found
    assert musicnn.find_checkpoint(tmp_path / "unpacked" / "musicnn") == found
    assert musicnn.find_checkpoint(found) == found


def test_find_checkpoint_refuses_other_sources(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        musicnn.find_checkpoint(tmp_path / "missing.whl")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="not a wheel"):
        musicnn.find_checkpoint(tmp_path / "notes.txt")
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as zf:
        zf.writestr("other/__init__.py", "")
    with pytest.raises(ModelError, match="no musicnn/MSD_musicnn checkpoint"):
        musicnn.find_checkpoint(tmp_path / "other.whl", extract_to=tmp_path / "x")
    with pytest.raises(ModelError, match="no MSD_musicnn checkpoint"):
        musicnn.find_checkpoint(tmp_path)


def test_convert_command_reports_a_bad_source_in_one_line(tmp_path):
    from click.testing import CliRunner

    result = CliRunner().invoke(musicnn.convert_musicnn, [str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert not (tmp_path / "out" / "msd.keras").exists()


def test_convert_checkpoint_refuses_a_foreign_checkpoint(tmp_path):
    """A TF1 checkpoint whose variables do not fit MSD_musicnn is refused with one line."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.get_variable("conv2d/kernel", shape=[3, 3, 1, 8])
        tf.compat.v1.get_variable("conv2d/bias", shape=[8])
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(tmp_path) + "/", write_meta_graph=False)
    with pytest.raises(ModelError, match="lacks variable batch_normalization/gamma"):
        musicnn.convert_checkpoint(tmp_path)


# --------------------------------------------------------------------------------------------
# transfer learning
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_backbone():
    import keras

    keras.utils.set_random_seed(7)
    return musicnn.build_musicnn()


@pytest.mark.slow
def test_build_transfer_freezes_the_backbone_and_trains_the_head(random_backbone, tmp_path):
    import keras

    keras.utils.set_random_seed(11)
    backbone = keras.models.clone_model(random_backbone)
    backbone.set_weights(random_backbone.get_weights())
    model = musicnn.build_transfer(10, backbone=backbone, head_units=32, dropout=0.2)
    assert model.input_shape == (None, 187, 96) and model.output_shape == (None, 10)
    trainable_layers = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable_layers == {"head_dense", "head_logits"}

    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 0.5, (16, 187, 96)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    before = {w.path: np.array(w) for w in model.weights}
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for w in model.weights:
        changed = not np.array_equal(before[w.path], np.array(w))
        assert changed == (w.path.split("/")[0] in ("head_dense", "head_logits")), w.path

    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "transfer.keras")
    loaded = keras.saving.load_model(tmp_path / "transfer.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), p, atol=1e-6)


def test_build_transfer_unfreezes_from_a_named_layer(random_backbone):
    model = musicnn.build_transfer(4, backbone=random_backbone, trainable_from="dense", dropout=0.0)
    trainable_layers = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable_layers == {"dense", musicnn.PENULTIMATE, "head_logits"}
    assert not any(layer.name.startswith("head_dropout") for layer in model.layers)
    with pytest.raises(ParameterError, match="no such layer"):
        musicnn.build_transfer(4, backbone=random_backbone, trainable_from="nope")
    with pytest.raises(ParameterError, match="num_classes"):
        musicnn.build_transfer(1, backbone=random_backbone)
    with pytest.raises(ParameterError, match="dropout"):
        musicnn.build_transfer(4, backbone=random_backbone, dropout=1.0)


def test_build_transfer_defaults_to_the_shipped_backbone():
    from tagger.model import GenreModel

    shipped = GenreModel.load(vocabulary="msd").net
    model = musicnn.build_transfer(10)
    for name in ("midend_1_conv", "dense", musicnn.PENULTIMATE):
        ours, theirs = model.get_layer(name).get_weights(), shipped.get_layer(name).get_weights()
        for a, b in zip(ours, theirs, strict=True):
            assert np.array_equal(a, b)
    assert not any(w.path.startswith(("dense/", "input_bn/")) for w in model.trainable_weights)


def test_embed_equals_the_cut_network(random_backbone):
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 0.5, (20, 187, 96)).astype(np.float32)
    feat = musicnn.embedding_model(random_backbone)
    e = musicnn.embed(x, model=feat, batch_size=8)
    assert e.shape == (20, musicnn.EMBEDDING_SIZE) and e.dtype == np.float32
    np.testing.assert_allclose(e, feat.predict(x, verbose=0), atol=1e-5)
    assert musicnn.embed(x[:0], model=feat).shape == (0, musicnn.EMBEDDING_SIZE)
    with pytest.raises(ParameterError, match="chunks"):
        musicnn.embed(x[:, :100], model=feat)
