"""The model contract for learnt heads (issue 17): aggregation "logit-mean", per-genre thresholds
in the model metadata, and tagger.heads' backbone + linear head bundles. Heads here have random
or hand-set weights (tests only)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tagger import adaptive
from tagger.aggregate import (
    TAG,
    UNCERTAIN,
    Thresholds,
    chunk_probabilities,
    decide,
    logit,
    sigmoid,
    thresholds_for,
    track_scores,
    weighted_scores,
)
from tagger.errors import ModelError
from tagger.heads import head_scores
from tagger.modelmeta import ModelMeta, load_meta, model_id_for
from tagger.options import TagOptions
from tests.conftest import TINY_FEATURES, TINY_LABELS, build_tiny_model

LABELS = ("blues", "hiphop", "jazz", "rock")
TINY_RATE = int(TINY_FEATURES["sample_rate"])

pytestmark = [pytest.mark.tf, pytest.mark.ray]


# -- pure: aggregation ---------------------------------------------------------------------------


def test_logit_mean_of_chunk_logits_is_the_head_on_the_mean_embedding():
    """sigmoid(mean_c(W.e_c + b)) == sigmoid(W.mean_c(e_c) + b): what tag computes from a head's
    per-chunk logits is what a head trained on stored track embeddings computes, to float32."""
    rng = np.random.default_rng(0)
    for n, d, g in ((1, 8, 3), (7, 200, 12), (70, 200, 40)):
        e = rng.normal(0.0, 1.0, (n, d)).astype(np.float32)
        w = rng.normal(0.0, 0.3, (d, g)).astype(np.float32)
        b = rng.normal(0.0, 1.0, g).astype(np.float32)
        chunk_logits = (e @ w + b).astype(np.float32)  # as the network computes them, in float32
        got = track_scores(chunk_logits, "logit-mean")
        want = head_scores(e.mean(axis=0, keepdims=True), w, b)[0]
        assert got.dtype == np.float32 and want.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
        # not the mean of the chunk probabilities, which a "mean" model would give
        if n > 1:
            assert np.max(np.abs(track_scores(chunk_probabilities(chunk_logits, "logit-mean")) - got)) > 1e-3


def test_head_scores_checks_shapes_and_is_the_sigmoid():
    e, w, b = np.ones((2, 3)), np.zeros((3, 4)), np.array([0.0, 2.0, -2.0, 40.0])
    np.testing.assert_allclose(head_scores(e, w, b), [sigmoid(b)] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="need embeddings"):
        head_scores(np.ones((2, 4)), w, b)


def test_sigmoid_and_logit_are_inverse_and_saturated_scores_stay_finite():
    x = np.array([-30.0, -5.0, 0.0, 0.3, 9.0, 16.0])
    np.testing.assert_allclose(logit(sigmoid(x)), x, atol=1e-9)
    assert np.all(np.isfinite(logit(np.array([0.0, 1.0], np.float32))))
    assert logit(np.float32(1.0)) > logit(np.float32(1.0 - 2 ** -24)) > 16  # 1.0: the least logit rounding to it
    assert np.isfinite(sigmoid(np.array([-1000.0, 1000.0]))).all()


def test_mean_models_keep_their_scores():
    p = np.array([[0.1, 0.2, 0.3, 0.4], [0.3, 0.2, 0.1, 0.4]], np.float32)
    np.testing.assert_array_equal(track_scores(p), track_scores(p, "mean"))
    np.testing.assert_array_equal(chunk_probabilities(p), p)
    with pytest.raises(ValueError, match="unknown aggregation"):
        track_scores(p, "median")


@pytest.mark.parametrize("aggregation", ["mean", "logit-mean"])
def test_combining_two_partial_analyses_equals_the_whole(aggregation):
    """An adaptive first pass and its rest, combined, are the whole track's scores: for
    logit-mean in logit space (exact logits, or read back from the float32 scores)."""
    rng = np.random.default_rng(5)
    outputs = rng.normal(0.0, 3.0, (26, 6)).astype(np.float32)
    if aggregation == "mean":
        outputs = sigmoid(outputs).astype(np.float32)
    first, rest = outputs[:9], outputs[9:]
    whole = track_scores(outputs, aggregation)
    a, b = track_scores(first, aggregation), track_scores(rest, aggregation)
    got = adaptive.combine_scores(a, 9, b, 17, aggregation=aggregation)
    np.testing.assert_allclose(got, whole, atol=2e-6)
    if aggregation == "logit-mean":
        exact = adaptive.combine_scores(a, 9, b, 17, aggregation=aggregation,
                                        first_logits=first.astype(np.float64).mean(0),
                                        rest_logits=rest.astype(np.float64).mean(0))
        np.testing.assert_allclose(exact, whole, atol=1e-7)
        # the chunk-probability mean is not the answer for such a model
        assert np.max(np.abs(adaptive.combine(a, 9, b, 17) - whole)) > 1e-3


def test_combining_saturated_scores_is_guarded():
    # a first pass saturated at 1.0 (logit beyond float32's reach) combined with a clearly negative rest
    got = adaptive.combine_scores(np.array([1.0, 0.0], np.float32), 10, np.array([0.2, 0.5], np.float32), 10,
                                  aggregation="logit-mean")
    assert np.all(np.isfinite(got)) and 0.5 < got[0] < 1.0 and 0.0 < got[1] < 0.5


def test_album_scores_follow_the_models_aggregation():
    from tagger.albums import album_scores

    s1, s2 = np.array([0.9, 0.2]), np.array([0.3, 0.2])
    np.testing.assert_allclose(album_scores([s1, s2], [60, 180]), (s1 * 60 + s2 * 180) / 240)
    got = album_scores([s1, s2], [60, 180], "logit-mean")
    np.testing.assert_allclose(got, sigmoid((logit(s1) * 60 + logit(s2) * 180) / 240))
    np.testing.assert_allclose(weighted_scores([s1], [1.0], "logit-mean"), s1, atol=1e-12)


# -- pure: thresholds ------------------------------------------------------------------------------


def test_each_label_qualifies_at_its_own_threshold():
    s = np.array([0.05, 0.5, 0.3, 0.6])
    # rock scores best but is below its own 0.7; hip-hop reaches its 0.45
    d = decide(s, LABELS, thresholds={"rock": 0.7, "hiphop": 0.45})
    assert d.action == TAG and d.genres == ("Hip-Hop",)
    d = decide(s, LABELS, top_k=3, min_confidence=0.25, thresholds={"rock": 0.7})
    assert d.genres == ("Hip-Hop", "Jazz")
    d = decide(s, LABELS, thresholds={"rock": 0.7, "hiphop": 0.52, "jazz": 0.9})
    assert d.action == UNCERTAIN
    assert d.reason == "no genre reaches its threshold (best Rock 0.60 < 0.70)"
    # one threshold for every label: the reason reads as before
    assert decide(s, LABELS, min_confidence=0.65).reason == "no genre reaches the threshold 0.65 (best Rock 0.60)"


def test_a_uniform_threshold_decides_as_before():
    """Picking the best top-k among qualifying labels is the old rule when every label has the
    same threshold: the top-k best, those reaching it."""
    rng = np.random.default_rng(1)
    for _ in range(300):
        s = rng.random(4)
        k, thr = int(rng.integers(1, 4)), float(rng.random())
        ranked = sorted(range(4), key=lambda i: -s[i])[:k]
        old = tuple(LABELS[i] for i in ranked if s[i] >= thr)
        d = decide(s, LABELS, top_k=k, min_confidence=thr)
        assert tuple(r.label for r in d.chosen) == old


def test_explicit_min_confidence_overrides_the_models_thresholds():
    t = Thresholds.of({"rock": 0.7}, None)
    assert t.of_label("rock") == 0.7 and t.of_label("jazz") == 0.4 and not t.uniform
    t = Thresholds.of({"rock": 0.7}, 0.3)
    assert t.uniform and t.of_label("rock") == 0.3
    assert Thresholds.of({}, None) == Thresholds(0.4)


def test_close_calls_with_per_label_thresholds():
    from tagger.model import close_call

    thr = np.array([0.95, 0.3, 0.3, 0.3])
    # blues is best but cannot reach its 0.95: hip-hop, far above its threshold and from jazz, decides
    assert not close_call(np.array([0.9, 0.6, 0.2, 0.1]), top_k=1, min_confidence=thr, error=0.02)
    # hip-hop and jazz both qualify and are neighbours: close
    assert close_call(np.array([0.5, 0.6, 0.59, 0.1]), top_k=1, min_confidence=thr, error=0.02)
    # blues near its own threshold: it may qualify and win
    assert close_call(np.array([0.94, 0.5, 0.2, 0.1]), top_k=1, min_confidence=thr, error=0.02)
    # clear: blues far from 0.95, hip-hop far from its threshold and from the next that could qualify
    assert not close_call(np.array([0.7, 0.55, 0.2, 0.1]), top_k=1, min_confidence=thr, error=0.02)
    # the same numbers as one threshold give the old answers
    for s in (np.array([0.7, 0.55, 0.2, 0.1]), np.array([0.41, 0.2, 0.1, 0.0]), np.array([0.2, 0.19, 0.1, 0.0])):
        assert close_call(s, top_k=1, min_confidence=0.4, error=0.02) == \
            close_call(s, top_k=1, min_confidence=np.full(4, 0.4), error=0.02)


def test_a_heads_bfloat16_bound_follows_its_weights_and_its_scores():
    from tagger.model import HEAD_BF16_LOGIT, HEAD_BF16_LOGIT_CHUNK, close_call, head_bf16_error

    norms = np.array([1.0, 2.0, 2.0, 0.0])
    s = np.array([0.5, 0.5, 0.999999, 0.5])
    err = head_bf16_error(s, norms, chunks=1)
    d = HEAD_BF16_LOGIT + HEAD_BF16_LOGIT_CHUNK
    assert err[0] == pytest.approx(sigmoid(d) - 0.5) and err[1] == pytest.approx(sigmoid(2 * d) - 0.5)
    assert err[2] < 1e-5 and err[3] == 0.0  # a saturated score barely moves; a zero column not at all
    assert np.all(head_bf16_error(s, norms, chunks=100) < err + 1e-12)
    # per-label errors in close_call: one scalar for every label gives the old answers
    scores = np.array([0.6, 0.55, 0.2, 0.1])
    assert close_call(scores, top_k=1, min_confidence=0.4, error=np.full(4, 0.02)) == \
        close_call(scores, top_k=1, min_confidence=0.4, error=0.02)
    assert not close_call(scores, top_k=1, min_confidence=0.4, error=np.array([0.01, 0.01, 0.3, 0.3]))
    assert close_call(scores, top_k=1, min_confidence=0.4, error=np.array([0.01, 0.05, 0.0, 0.0]))


def _old_decision_key(o: TagOptions, min_confidence: float) -> str:
    d = {"top_k": o.top_k, "min_confidence": round(float(min_confidence), 6), "on_existing": o.on_existing,
         "genres": sorted(o.genre_map.items()), "albums": bool(o.albums),
         "album_dissent": round(float(o.album_dissent), 6)}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def test_decision_key_is_stable_and_names_the_thresholds_in_effect(tmp_path):
    from tagger.pipeline import decision_key

    plain = load_meta(build_tiny_model(tmp_path / "plain"))
    assert decision_key(TagOptions(), plain) == decision_key(TagOptions()) == _old_decision_key(TagOptions(), 0.4)
    o = TagOptions(min_confidence=0.55, top_k=2)
    assert decision_key(o, plain) == _old_decision_key(o, 0.55)
    with_thr = ModelMeta(**{**plain.__dict__, "thresholds": {"rock": 0.7}})
    assert decision_key(TagOptions(), with_thr) != decision_key(TagOptions(), plain)
    other = ModelMeta(**{**plain.__dict__, "thresholds": {"rock": 0.71}})
    assert decision_key(TagOptions(), with_thr) != decision_key(TagOptions(), other)
    # an explicit --min-confidence overrides the model's thresholds: the plain key
    assert decision_key(TagOptions(min_confidence=0.4), with_thr) == decision_key(TagOptions(), plain)
    assert thresholds_for(with_thr, TagOptions()).per_label == {"rock": 0.7}


def test_albums_use_the_per_label_thresholds():
    from tagger.albums import Member, decide_album

    s = {"blues": 0.05, "hiphop": 0.3, "jazz": 0.1, "rock": 0.55}
    scores = np.array([s[x] for x in LABELS])
    members = [Member("/m/a/1.flac", scores, 100.0), Member("/m/a/2.flac", scores, 100.0)]
    plain = decide_album(members, LABELS, name="A")
    assert plain.genres == ("Rock",)
    own = decide_album(members, LABELS, name="A", thresholds={"rock": 0.6, "hiphop": 0.25})
    assert own.genres == ("Hip-Hop",)
    assert all(o.decision.genres == ("Hip-Hop",) for o in own.outcomes.values())
    none = decide_album(members, LABELS, name="A", thresholds={"rock": 0.6})
    assert none.genres == () and "its threshold" in none.per_track


# -- metadata ----------------------------------------------------------------------------------------


def _meta_dict(tmp_path: Path) -> tuple[dict, Path]:
    files = build_tiny_model(tmp_path)
    return json.loads(files.meta.read_text()), files.weights


@pytest.mark.parametrize("change, message", [
    ({"aggregation": "logit-mean"}, "needs output_activation sigmoid"),  # the tiny model is softmax
    ({"aggregation": "max"}, "not supported"),
    ({"thresholds": {"nope": 0.5}}, "not one of the model's labels"),
    ({"thresholds": {"rock": 1.5}}, "from 0 to 1"),
    ({"thresholds": {"rock": True}}, "from 0 to 1"),
    ({"thresholds": {"rock": "0.5"}}, "from 0 to 1"),
    ({"thresholds": [0.5]}, "must be an object"),
])
def test_inconsistent_contract_fields_are_refused_with_one_line(tmp_path, change, message):
    data, _ = _meta_dict(tmp_path)
    data.update(change)
    with pytest.raises(ModelError, match=message) as exc:
        ModelMeta.from_dict(data, source="m.json")
    assert "\n" not in str(exc.value)


def test_thresholds_are_in_the_model_id_and_none_keeps_old_ids(tmp_path):
    data, weights = _meta_dict(tmp_path)
    meta = ModelMeta.from_dict(data)
    assert meta.thresholds == {} and meta.to_dict()["thresholds"] == {}
    assert model_id_for(weights, meta) == data["model_id"]  # written before, or with {}: the same id
    without = {k: v for k, v in meta.to_dict().items() if k != "thresholds"}
    assert model_id_for(weights, without) == model_id_for(weights, meta)
    with_thr = ModelMeta.from_dict({**data, "thresholds": {"rock": 0.6}})
    assert with_thr.thresholds == {"rock": 0.6} and with_thr.to_dict()["thresholds"] == {"rock": 0.6}
    assert model_id_for(weights, with_thr) != model_id_for(weights, meta)
    assert model_id_for(weights, ModelMeta.from_dict({**data, "thresholds": {"rock": 0.61}})) != \
        model_id_for(weights, with_thr)


def test_shipped_model_ids_do_not_change():
    from tagger.modelmeta import locate

    assert load_meta(locate(None, vocabulary="gtzan")).model_id == "488692b6e774bf79"
    assert load_meta(locate(None, vocabulary="msd")).model_id == "055d704fd46c86f1"


def test_logit_mean_needs_a_network_that_outputs_logits(tmp_path):
    """A sigmoid model whose last layer applies the sigmoid cannot claim logit-mean (it would be
    squashed twice)."""
    import keras

    from tagger.features import FeatureParams
    from tagger.modelmeta import save_bundle
    from tests.conftest import TINY_FEATURES

    fp = FeatureParams(**TINY_FEATURES)
    net = keras.Sequential([keras.Input(fp.input_shape), keras.layers.Flatten(),
                            keras.layers.Dense(len(TINY_LABELS), activation="sigmoid")])
    with pytest.raises(ModelError, match="outputs logits"):
        save_bundle(net, tmp_path, meta_fields=dict(architecture="t", labels=TINY_LABELS, output_activation="sigmoid",
                                                    aggregation="logit-mean", features=fp))


# -- heads.build_head_bundle -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from tests.test_embedding import _model_with_embedding

    return _model_with_embedding(tmp_path_factory.mktemp("backbone"))


def _head(backbone, out: Path, *, weights=None, bias=None, thresholds=None, seed: int = 0, labels=LABELS,
          training=None):
    from tagger.heads import build_head_bundle, embedding_size

    rng = np.random.default_rng(seed)
    d = embedding_size(backbone)
    w = rng.normal(0.0, 0.5, (d, len(labels))) if weights is None else weights
    b = rng.normal(0.0, 0.5, len(labels)) if bias is None else bias
    return build_head_bundle(backbone, weights=w, bias=b, labels=labels, display_names={"hiphop": "Hip Hop"},
                             thresholds=thresholds or {}, out_dir=out, model_name="my-genres",
                             training=training or {"description": "random head, tests only"},
                             metrics={"note": "none"}), w, b


def test_a_head_bundle_scores_as_its_head_on_the_backbones_embeddings(backbone, tmp_path):
    from tagger.model import GenreModel

    files, w, b = _head(backbone, tmp_path / "head", thresholds={"rock": 0.55})
    meta = load_meta(files)
    assert (meta.aggregation, meta.output_activation, meta.architecture) == ("logit-mean", "sigmoid", "tiny-head")
    assert meta.labels == LABELS and meta.thresholds == {"rock": 0.55}
    assert meta.display_names == {"hiphop": "Hip Hop"} and meta.name == "my-genres"
    base, head = GenreModel.load(backbone, batch_size=4), GenreModel.load(files, batch_size=4)
    assert meta.features == base.meta.features
    assert head.backbone_id == base.backbone_id != ""
    assert meta.training["backbone"]["model_id"] == base.meta.model_id
    assert meta.training["backbone"]["backbone_id"] == base.backbone_id
    x = np.random.default_rng(1).normal(0.0, 2.0, (9, *meta.input_shape)).astype(np.float32)
    emb = base.predict_full(x)[:, len(base.meta.labels):]
    full = head.predict_full(x)
    logits, head_emb = full[:, :len(LABELS)], full[:, len(LABELS):]
    np.testing.assert_allclose(head_emb, emb, atol=1e-5)  # the same backbone, the same embedding
    np.testing.assert_allclose(logits, emb @ w + b, atol=1e-4)
    np.testing.assert_allclose(track_scores(logits, "logit-mean"), head_scores(emb.mean(0, keepdims=True), w, b)[0],
                               atol=1e-5)


def test_bad_heads_are_refused_before_anything_is_written(backbone, tmp_path):
    with pytest.raises(ModelError, match="do not fit"):
        _head(backbone, tmp_path / "a", weights=np.zeros((3, 4)))
    with pytest.raises(ModelError, match="not one of the model's labels"):
        _head(backbone, tmp_path / "b", thresholds={"polka": 0.5})
    with pytest.raises(ModelError, match="NaN"):
        _head(backbone, tmp_path / "c", bias=np.array([0.0, np.nan, 0.0, 0.0]))
    assert not any((tmp_path / d).exists() and any((tmp_path / d).iterdir()) for d in "abc")
    with pytest.raises(ModelError, match="no 'penultimate' layer"):
        _head(build_tiny_model(tmp_path / "flat"), tmp_path / "d")


# -- through the command line --------------------------------------------------------------------------


def _fixed_head(backbone, out: Path, scores: dict[str, float], thresholds: dict[str, float]):
    """A head whose every track scores ``scores`` (zero weights, bias = their logits)."""
    from tagger.heads import embedding_size

    d = embedding_size(backbone)
    bias = logit(np.array([scores[x] for x in LABELS]))
    files, _, _ = _head(backbone, out, weights=np.zeros((d, len(LABELS))), bias=bias, thresholds=thresholds,
                        training={"library": {"path": "/music", "files": 1234, "date": "2026-12-01"}})
    return files


def _tag(lib: Path, model: Path, db: Path, *extra) -> dict:
    r = CliRunner().invoke(main_cli(), ["tag", str(lib), "--model", str(model), "--state-db", str(db), "--dry-run",
                                        "--no-albums", "--report", str(db.with_suffix(".json")), *extra])
    assert r.exit_code == 0, r.output
    return json.loads(db.with_suffix(".json").read_text())


def main_cli():
    from tagger.cli import main

    return main


@pytest.mark.usefixtures("ray_session")
def test_tag_info_and_explain_work_with_a_head_and_its_thresholds_decide(backbone, tmp_path):
    from tests.test_pipeline import make_lib

    lib = tmp_path / "lib"
    make_lib(lib, n=2)
    scores = {"blues": 0.2, "hiphop": 0.1, "jazz": 0.15, "rock": 0.6}
    low = _fixed_head(backbone, tmp_path / "low", scores, {"rock": 0.5})
    high = _fixed_head(backbone, tmp_path / "high", scores, {"rock": 0.7})

    rep = _tag(lib, low.meta.parent, tmp_path / "low.db")
    assert [r["action"] for r in rep["files"]] == ["would tag", "would tag"]
    assert all(r["written"] == ["Rock"] for r in rep["files"])
    assert rep["model"]["thresholds"]["rock"] == 0.5 and rep["model"]["aggregation"] == "logit-mean"
    assert abs(rep["files"][0]["predicted"][0]["score"] - 0.6) < 1e-4  # sigmoid(mean logit), the head's score

    rep = _tag(lib, high.meta.parent, tmp_path / "high.db")
    assert [r["action"] for r in rep["files"]] == ["uncertain", "uncertain"]
    assert rep["files"][0]["reason"] == "no genre reaches its threshold (best Rock 0.60 < 0.70)"
    # --min-confidence overrides the model's thresholds, on the command line or in the config file
    rep = _tag(lib, high.meta.parent, tmp_path / "cli.db", "--min-confidence", "0.5")
    assert all(r["written"] == ["Rock"] for r in rep["files"]) and "thresholds" not in rep["model"]
    cfg = tmp_path / "config.toml"
    cfg.write_text("[tag]\nmin-confidence = 0.55\n")
    rep = _tag(lib, high.meta.parent, tmp_path / "cfg.db", "--config", str(cfg))
    assert all(r["written"] == ["Rock"] for r in rep["files"])

    r = CliRunner().invoke(main_cli(), ["info", "--no-ray", "--model", str(high.meta.parent)])
    assert r.exit_code == 0, r.output
    assert "thresholds: Rock 0.700" in r.stdout and "learnt from: /music (1234 files, 2026-12-01)" in r.stdout
    assert "logit-mean" in r.stdout
    r = CliRunner().invoke(main_cli(), ["info", "--no-ray", "--json", "--model", str(high.meta.parent)])
    info = json.loads(r.stdout)["model"]
    assert info["thresholds"] == {"rock": 0.7} and info["aggregation"] == "logit-mean"
    assert info["training"]["library"]["files"] == 1234

    track = sorted(lib.rglob("*.wav"))[0]
    r = CliRunner().invoke(main_cli(), ["explain", str(track), "--model", str(high.meta.parent), "--json",
                                        "--state-db", str(tmp_path / "explain.db")])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["model"]["aggregation"] == "logit-mean"
    assert data["decision"]["action"] == "uncertain" and data["decision"]["thresholds"]["rock"] == 0.7
    chunk = data["chunks"][0]
    np.testing.assert_allclose(chunk["probs"], sigmoid(np.array(chunk["logits"])), atol=1e-5)
    rock = next(s for s in data["track_scores"] if s["label"] == "rock")
    assert abs(rock["score"] - 0.6) < 1e-4


@pytest.mark.usefixtures("ray_session")
def test_explain_draws_a_head_with_per_genre_thresholds(backbone, tmp_path):
    from tests.test_pipeline import make_lib

    lib = tmp_path / "lib"
    make_lib(lib, n=1)
    files, _, _ = _head(backbone, tmp_path / "head", thresholds={"rock": 0.3, "jazz": 0.8})
    png = tmp_path / "why.png"
    track = sorted(lib.rglob("*.wav"))[0]
    r = CliRunner().invoke(main_cli(), ["explain", str(track), "--model", str(files.weights), "--out", str(png),
                                        "--state-db", str(tmp_path / "e.db")])
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 10_000


def _changing_track(path: Path, seconds: float, parts: int = 6, sr: int = 22050,
                    shares: tuple[tuple[float, float], ...] | None = None) -> Path:
    """Tones that change along the track, so that its chunks (and their logits) differ:
    ``parts`` equal parts, or ``shares`` ((share of the track, frequency), ...)."""
    import soundfile as sf

    from tests.conftest import tone

    freqs = [110, 330, 660, 1320, 220, 2640]
    plan = shares or tuple((1 / parts, freqs[i % 6]) for i in range(parts))
    y = np.concatenate([tone(seconds * share, sr=sr, freq=f, seed=i) for i, (share, f) in enumerate(plan)])
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr)
    return path


def _spreading_head(backbone, track: Path) -> tuple[np.ndarray, np.ndarray]:
    """Head weights whose chunk logits on ``track`` spread around 0 (std 3 along the embedding's
    main direction of change), where sigmoid(mean) and mean(sigmoid) differ most."""
    from tagger.analyse import analyse_file
    from tagger.model import GenreModel

    base = GenreModel.load(backbone, batch_size=4)
    res = analyse_file(str(track), params=base.meta.features.to_dict(), policy={
        "model_id": "", "on_existing": "replace", "analyse_all": True, "analysis_seconds": None,
        "max_seconds": 900.0, "float16": False})
    emb = base.predict_full(res.features)[:, len(base.meta.labels):].astype(np.float64)
    centred = emb - emb.mean(axis=0)
    u = np.linalg.svd(centred, full_matrices=False)[2][0]
    spread = float(np.std(centred @ u))
    w = np.stack([u * (3.0 / spread) * sign for sign in (1, -1, 0.5, -0.5)], axis=1)
    return w, -(emb.mean(axis=0) @ w)


def _scores(report: dict) -> dict[str, float]:
    (row,) = report["files"]
    return {p["label"]: p["score"] for p in row["predicted"]}


@pytest.mark.usefixtures("ray_session")
def test_tag_scores_a_track_as_the_sigmoid_of_its_mean_chunk_logit(backbone, tmp_path):
    """Through the pipeline (Ray, batches of chunks of several tracks): the report's scores are
    sigmoid(mean of the chunk logits) that explain shows, not the mean of the chunk probabilities."""
    track = _changing_track(tmp_path / "lib" / "t.wav", 6.0)
    w, b = _spreading_head(backbone, track)
    files, _, _ = _head(backbone, tmp_path / "head", weights=w, bias=b)
    rep = _tag(track.parent, files.weights, tmp_path / "s.db", "--whole-track", "--min-confidence", "0")
    r = CliRunner().invoke(main_cli(), ["explain", str(track), "--model", str(files.weights), "--json",
                                        "--state-db", str(tmp_path / "e.db")])
    data = json.loads(r.stdout)
    logits = np.array([c["logits"] for c in data["chunks"]])
    probs = np.array([c["probs"] for c in data["chunks"]])
    assert len(logits) == rep["files"][0]["chunks"] >= 10
    want = dict(zip(data["labels"], sigmoid(logits.mean(axis=0)), strict=True))
    got = _scores(rep)
    assert max(abs(got[k] - want[k]) for k in got) < 2e-4  # the report rounds to 4 decimals
    mean_of_probs = dict(zip(data["labels"], probs.mean(axis=0), strict=True))
    assert max(abs(got[k] - mean_of_probs[k]) for k in got) > 2e-3  # ten times the tolerance above


@pytest.mark.usefixtures("ray_session")
def test_an_adaptive_rest_combines_with_its_first_pass_into_the_whole_track(backbone, tmp_path, monkeypatch):
    """A head's adaptive first pass and its rest, combined in logit space, score as the whole
    track (the same chunks, up to the frames at stretch edges): in one run, and from a stored
    first pass extended by a later run. Combining the scores as probabilities instead would be
    off by more than five times the tolerance."""
    # at the model's sample rate; the stages' stretches are decoded as the whole track has them
    # (aligned, with a frame of lead-in), hence to float rounding, 1e-3 below a fortiori.
    # The chunks the first pass hears are one tone and all the others another: the first pass and
    # the rest differ as much as they can, as their combination must show
    from tagger.features import FeatureParams

    fp = FeatureParams(**TINY_FEATURES)
    hop = fp.chunk_hop_frames * fp.samples_per_frame / fp.sample_rate
    total = int(150.0 / hop)
    heard = set(adaptive.heard_chunks(total, adaptive.first_chunks(adaptive.FIRST_SECONDS, fp), 0).tolist())
    track = _changing_track(tmp_path / "lib" / "long.wav", total * hop + 0.2, sr=TINY_RATE,
                            shares=tuple((hop / (total * hop + 0.2), 110 if k in heard else 2640) for k in range(total))
                            + ((0.2 / (total * hop + 0.2), 2640),))
    w, b = _spreading_head(backbone, track)
    files, _, _ = _head(backbone, tmp_path / "head", weights=w, bias=b)
    whole = _tag(track.parent, files.weights, tmp_path / "w.db", "--whole-track", "--min-confidence", "0")
    monkeypatch.setattr(adaptive, "SAMPLING_ERROR", 10.0)  # every sample a close call: the rest is heard
    both = _tag(track.parent, files.weights, tmp_path / "r.db", "--min-confidence", "0")
    (row,) = both["files"]
    n = whole["files"][0]["chunks"]
    assert row["sampling"] == "adaptive+rest" and row["chunks"] == n
    sw, sb = _scores(whole), _scores(both)
    assert max(abs(sw[k] - sb[k]) for k in sw) < 1e-3

    # a stored first pass (clear under its settings), extended under others where it is close
    monkeypatch.setattr(adaptive, "SAMPLING_ERROR", 0.0)
    monkeypatch.setattr(adaptive, "decision_error", lambda chunks: 0.0)
    first = _tag(track.parent, files.weights, tmp_path / "x.db", "--min-confidence", "0")
    assert first["files"][0]["sampling"] == "adaptive"
    monkeypatch.setattr(adaptive, "SAMPLING_ERROR", 10.0)
    ext = _tag(track.parent, files.weights, tmp_path / "x.db", "--min-confidence", "0", "--top-k", "2")
    assert ext["timing"]["extended"] == 1 and ext["files"][0]["chunks"] == n
    se = _scores(ext)
    assert max(abs(sw[k] - se[k]) for k in sw) < 1e-3

    # what a probability-space combination would have given: the first pass's scores and the
    # rest's (the whole track's logits less the first pass's), averaged as probabilities
    n1, s1 = first["files"][0]["chunks"], _scores(first)
    labels = sorted(sw)
    l1, lw = logit(np.array([s1[k] for k in labels])), logit(np.array([sw[k] for k in labels]))
    s2 = sigmoid((n * lw - n1 * l1) / (n - n1))
    naive = (n1 * sigmoid(l1) + (n - n1) * s2) / n
    assert np.max(np.abs(naive - np.array([sw[k] for k in labels]))) > 5e-3


@pytest.mark.usefixtures("ray_session")
def test_bfloat16_close_calls_of_a_head_are_redone_in_float32(backbone, tmp_path, monkeypatch):
    from tagger import model

    track = _changing_track(tmp_path / "lib" / "t.wav", 6.0)
    files, _, _ = _head(backbone, tmp_path / "head", weights=np.random.default_rng(4).normal(0, 3.0, (8, 4)))
    exact = _tag(track.parent, files.weights, tmp_path / "f.db", "--whole-track", "--min-confidence", "0")
    monkeypatch.setenv("TAGGER_CPU_BF16", "1")
    # the head's own bound decides (the shipped models' one is not used for it)
    monkeypatch.setattr(model, "BF16_ERROR", 10.0)
    monkeypatch.setattr(model, "HEAD_BF16_LOGIT", 0.0)
    monkeypatch.setattr(model, "HEAD_BF16_LOGIT_CHUNK", 0.0)
    clear = _tag(track.parent, files.weights, tmp_path / "c.db", "--whole-track", "--min-confidence", "0")
    assert clear["timing"]["rechecked"] == 0
    monkeypatch.setattr(model, "HEAD_BF16_LOGIT", 100.0)  # every decision a close call
    rep = _tag(track.parent, files.weights, tmp_path / "b.db", "--whole-track", "--min-confidence", "0")
    assert rep["timing"]["rechecked"] == 1
    assert any(p.get("exact_fallback") == "float32" for p in rep["model"]["inference"]["predictors"])
    a, b = _scores(exact), _scores(rep)
    assert max(abs(a[k] - b[k]) for k in a) < 2e-4
