"""The backbone's track embedding: computed in the same forward pass as the scores, identified
by a backbone id, and kept in the store of analyses (issue 16), so a head trained later on the
same backbone needs no decode and no CNN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tagger.cli import main
from tagger.state import StateDB
from tests.conftest import TINY_FEATURES, TINY_LABELS
from tests.test_pipeline import make_lib

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def _model_with_embedding(out, *, seed=0, head_seed=None):
    """A tiny random model (tests only) with a named 8-unit embedding layer before its head."""
    import keras

    from tagger.features import FeatureParams
    from tagger.modelmeta import save_bundle

    keras.utils.set_random_seed(seed)
    fp = FeatureParams(**TINY_FEATURES)
    x = keras.Input(fp.input_shape)
    h = keras.layers.Reshape((*fp.input_shape, 1))(x)
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(8, activation="relu")(h)
    emb = keras.layers.BatchNormalization(name="penultimate")(h)
    if head_seed is not None:
        keras.utils.set_random_seed(head_seed)
    out_t = keras.layers.Dense(len(TINY_LABELS), activation="softmax")(emb)
    return save_bundle(keras.Model(x, out_t), out, name="model", meta_fields=dict(
        name="tiny-emb", architecture="tiny-test", labels=list(TINY_LABELS), output_activation="softmax",
        features=fp, training={"description": "random weights, tests only"}))


def test_predict_full_is_scores_then_embedding(tmp_path):
    import keras

    from tagger.model import GenreModel

    files = _model_with_embedding(tmp_path / "m")
    m = GenreModel.load(files, batch_size=4)
    assert m.embedding_size == 8 and len(m.backbone_id) == 16
    x = np.random.default_rng(0).normal(0, 1, (5, *m.meta.input_shape)).astype(np.float32)
    full = m.predict_full(x)
    assert full.shape == (5, len(TINY_LABELS) + 8)
    np.testing.assert_allclose(full[:, : len(TINY_LABELS)], m.predict(x), atol=1e-7)
    sub = keras.Model(m.net.inputs[0], m.net.get_layer("penultimate").output)
    np.testing.assert_allclose(full[:, len(TINY_LABELS):], sub(x, training=False).numpy(), atol=1e-5)


def test_backbone_id_names_the_backbone_not_the_head(tmp_path):
    from tagger.model import GenreModel

    a = GenreModel.load(_model_with_embedding(tmp_path / "a", seed=0, head_seed=1))
    b = GenreModel.load(_model_with_embedding(tmp_path / "b", seed=0, head_seed=2))  # new head
    c = GenreModel.load(_model_with_embedding(tmp_path / "c", seed=3, head_seed=1))  # other backbone
    assert a.meta.model_id != b.meta.model_id
    assert a.backbone_id == b.backbone_id != c.backbone_id


@pytest.mark.slow
def test_shipped_models_share_their_backbone():
    from tagger.model import GenreModel

    a, b = GenreModel.load(vocabulary="gtzan", batch_size=4), GenreModel.load(vocabulary="msd", batch_size=4)
    assert a.embedding_size == b.embedding_size == 200
    assert a.backbone_id == b.backbone_id


@pytest.mark.usefixtures("ray_session")
def test_the_store_keeps_the_pooled_embedding(tmp_path):
    from tagger.model import GenreModel

    files = _model_with_embedding(tmp_path / "m")
    lib = tmp_path / "lib"
    paths = make_lib(lib, n=2)
    db = tmp_path / "state.db"
    r = CliRunner().invoke(main, ["tag", str(lib), "--model", str(files.weights), "--state-db", str(db),
                                  "--min-confidence", "0", "--dry-run"])
    assert r.exit_code == 0, r.output
    model_id = json.loads(files.meta.read_text())["model_id"]
    with StateDB(db) as d:
        rows = d.analyses([str(p) for p in paths], model_id)
    assert set(rows) == {str(p) for p in paths}
    backbone = GenreModel.load(files).backbone_id
    for a in rows.values():
        assert a.backbone == backbone and len(a.embedding) == 8 and np.all(np.isfinite(a.embedding))
        assert a.problem(labels=len(TINY_LABELS), model_id=model_id, embedding_size=8) is None
