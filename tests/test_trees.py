"""The trees backend (tagger.trees): scikit-learn's boosted trees as numpy arrays, their weights
file, the model contract for NAME.npz models, and a `tagger tag` run with one."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tagger.errors import ModelError, ParameterError
from tagger.features import FeatureParams, handcrafted_size
from tagger.modelmeta import copy_bundle, file_id, load_meta, locate, model_id_for, save_bundle
from tagger.trees import TreeEnsemble, TreeModel

ROOT = Path(__file__).resolve().parents[1]
GTZAN_LABELS = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
#: hand-crafted vectors of 1.5 s chunks at 22050 Hz (the generated fixtures last 1.5 s)
FEATURES = FeatureParams(kind="handcrafted", sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128,
                         chunk_frames=64, chunk_hop_frames=32)

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def fit(k: int, *, n_features: int = 8, n: int = 300, seed: int = 0, nan: float = 0.1, **params):
    """A HistGradientBoostingClassifier on seeded data with ``k`` classes 0..k-1 and NaNs."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    signal = x[:, :3] @ np.array([2.0, -1.0, 0.5]) + 0.5 * rng.normal(size=n)
    y = np.argsort(np.argsort(signal)) * k // n  # k balanced classes, ordered by the signal
    x[rng.random(x.shape) < nan] = np.nan
    params = {"max_iter": 15, "max_leaf_nodes": 7, "early_stopping": False, "random_state": seed, **params}
    return HistGradientBoostingClassifier(**params).fit(x, y)


def queries(n_features: int, *, n: int = 200, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    return x


@pytest.fixture(scope="module")
def clf3():
    return fit(3)


# ------------------------------------------------------------------------------------------
# prediction

@pytest.mark.parametrize("k", [2, 3, 10])
def test_predict_proba_equals_sklearn(k):
    clf = fit(k, n=400)
    trees = TreeEnsemble.from_sklearn(clf)
    x = queries(8)
    got = trees.predict_proba(x)
    assert got.dtype == np.float32 and got.shape == (len(x), k)
    assert trees.input_shape == (None, 8) and trees.output_shape == (None, k)
    assert trees.trees_per_iteration == (1 if k == 2 else k) and trees.n_iterations == 15
    np.testing.assert_allclose(got, clf.predict_proba(x), atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)


def test_values_on_a_threshold_go_left(clf3):
    """x == threshold goes left (``<=``), as in scikit-learn: float64 queries set exactly on
    split thresholds."""
    trees = TreeEnsemble.from_sklearn(clf3)
    nodes = [n for it in clf3._predictors for t in it for n in t.nodes if not n["is_leaf"]]
    x = queries(8, n=len(nodes), seed=4).astype(np.float64)
    for row, node in enumerate(nodes):
        x[row, node["feature_idx"]] = node["num_threshold"]
    np.testing.assert_allclose(trees.predict_proba(x), clf3.predict_proba(x), atol=1e-5, rtol=0)


def test_rows_walked_in_blocks_give_the_same_answer(clf3, monkeypatch):
    import tagger.trees

    trees = TreeEnsemble.from_sklearn(clf3)
    x = queries(8, n=50)
    whole = trees.predict_proba(x)
    monkeypatch.setattr(tagger.trees, "_BLOCK", 100)  # 45 trees: two rows per block
    np.testing.assert_array_equal(trees.predict_proba(x), whole)


def test_early_stopping_and_zero_rows():
    clf = fit(3, n=400, max_iter=200, early_stopping=True, n_iter_no_change=3, validation_fraction=0.25)
    assert clf.n_iter_ < 200
    trees = TreeEnsemble.from_sklearn(clf)
    x = queries(8)
    np.testing.assert_allclose(trees.predict_proba(x), clf.predict_proba(x), atol=1e-5, rtol=0)
    assert trees.predict_proba(np.zeros((0, 8), np.float32)).shape == (0, 3)


def test_wrong_input_shape_is_a_parameter_error(clf3):
    trees = TreeEnsemble.from_sklearn(clf3)
    with pytest.raises(ParameterError, match=r"\(n, 8\)"):
        trees.predict_proba(np.zeros((4, 7), np.float32))


def test_from_sklearn_refuses_what_it_cannot_represent():
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 4, 200), rng.normal(size=200)]).astype(np.float32)
    y = (x[:, 0] > 1).astype(int)
    with pytest.raises(ParameterError, match="categorical"):
        TreeEnsemble.from_sklearn(HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(x, y))
    with pytest.raises(ParameterError, match=r"0..k-1"):
        TreeEnsemble.from_sklearn(HistGradientBoostingClassifier(max_iter=5).fit(x, np.where(y, "pop", "jazz")))
    with pytest.raises(ParameterError, match=r"0..k-1"):
        TreeEnsemble.from_sklearn(HistGradientBoostingClassifier(max_iter=5).fit(x, y + 1))
    with pytest.raises(ParameterError, match="fitted"):
        TreeEnsemble.from_sklearn(HistGradientBoostingClassifier())
    with pytest.raises(ParameterError, match="fitted"):
        TreeEnsemble.from_sklearn(HistGradientBoostingRegressor(max_iter=5).fit(x, y))


# ------------------------------------------------------------------------------------------
# the weights file

def test_save_is_byte_identical_and_round_trips(tmp_path, clf3):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    TreeEnsemble.from_sklearn(clf3).save(a)
    TreeEnsemble.from_sklearn(clf3).save(b)
    assert a.read_bytes() == b.read_bytes()
    loaded = TreeEnsemble.load(a)
    x = queries(8)
    np.testing.assert_array_equal(loaded.predict_proba(x), TreeEnsemble.from_sklearn(clf3).predict_proba(x))
    loaded.save(b)
    assert b.read_bytes() == a.read_bytes()
    with np.load(a, allow_pickle=False) as plain:  # a plain .npz of numeric arrays
        assert all(plain[k].dtype.kind in "iuf" for k in plain.files)
    assert {i.date_time for i in zipfile.ZipFile(a).infolist()} == {(1980, 1, 1, 0, 0, 0)}
    other = tmp_path / "other.npz"
    TreeEnsemble.from_sklearn(fit(3, seed=5)).save(other)
    assert file_id(other) != file_id(a)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _internal_node(arrays: dict[str, np.ndarray]) -> int:
    return int(np.flatnonzero(arrays["is_leaf"] == 0)[0])


def _hostile(arrays):
    """Ways to break a valid file's arrays: (name, change, expected message)."""
    i = _internal_node(arrays)

    def child(name, value):
        def change(a):
            a[name] = a[name].copy()
            a[name][i] = value
        return change

    def put(name, value):
        def change(a):
            a[name] = value
        return change

    return [
        ("child out of range", child("left", 10**6), "left child"),
        ("child points back (a loop)", child("right", 0), "right child"),
        ("negative child", child("left", -1), "left child"),
        ("feature out of range", child("feature", 8), "split feature"),
        ("NaN threshold", child("threshold", np.nan), "threshold"),
        ("object array", put("value", np.array([object()] * len(arrays["value"]), dtype=object)), "object"),
        ("wrong dtype", put("left", arrays["left"].astype(np.float64)), "float64"),
        ("short node array", put("right", arrays["right"][:-1]), "differ in length"),
        ("tree_start beyond the nodes", put("tree_start", arrays["tree_start"] + 1), "tree_start"),
        ("wrong baseline", put("baseline", np.zeros(2)), "baseline"),
        ("one class", put("n_classes", np.array(1)), "n_classes"),
        ("future version", put("version", np.array(2)), "version 2"),
        ("missing member", lambda a: a.pop("value"), "missing value"),
        ("extra member", put("pickle", np.zeros(1)), "unexpected pickle"),
    ]


@pytest.mark.parametrize("case", range(14))
def test_load_refuses_a_broken_file(tmp_path, clf3, case):
    good = tmp_path / "good.npz"
    TreeEnsemble.from_sklearn(clf3).save(good)
    arrays = _arrays(good)
    name, change, message = _hostile(arrays)[case]
    change(arrays)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)  # allow_pickle: an object array goes in as a pickle
    with pytest.raises(ModelError, match=message) as exc:
        TreeEnsemble.load(bad)
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value), name


def test_load_refuses_truncated_garbage_and_lying_headers(tmp_path, clf3):
    good = tmp_path / "good.npz"
    TreeEnsemble.from_sklearn(clf3).save(good)
    data = good.read_bytes()
    cases = {"truncated": data[: len(data) // 2], "empty": b"", "garbage": bytes(range(256)) * 40}
    # a header claiming far more data than the member holds (must not allocate it)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    member = header.getvalue() + bytes(64)
    with zipfile.ZipFile(good) as zin:
        entries = {i.filename: zin.read(i) for i in zin.infolist()}
    entries["value.npy"] = member
    lying = tmp_path / "lying.npz"
    with zipfile.ZipFile(lying, "w") as zout:
        for n, b in entries.items():
            zout.writestr(n, b)
    cases["lying"] = lying.read_bytes()
    for name, content in cases.items():
        p = tmp_path / f"{name}.npz"
        p.write_bytes(content)
        with pytest.raises(ModelError) as exc:
            TreeEnsemble.load(p)
        assert "\n" not in str(exc.value), name
    with pytest.raises(ModelError, match="No such file"):
        TreeEnsemble.load(tmp_path / "absent.npz")


# ------------------------------------------------------------------------------------------
# the model contract

def trees_bundle(out: Path, *, seed: int = 0, name: str = "model", n: int = 400, **fields):
    """A NAME.npz + NAME.json model over FEATURES and the 10 GTZAN labels, trained on seeded
    random vectors (tests only). Returns (files, trees)."""
    d = handcrafted_size(FEATURES)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = np.arange(n) % len(GTZAN_LABELS)
    x[np.arange(n), y] += 3.0  # class c: feature c large
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(max_iter=10, max_leaf_nodes=5, early_stopping=False,
                                         random_state=seed).fit(x, y)
    trees = TreeEnsemble.from_sklearn(clf)
    meta_fields = dict(name="trees-test", architecture="features-gbt", backend="trees", labels=GTZAN_LABELS,
                       output_activation="softmax", features=FEATURES,
                       training={"description": "seeded random vectors, tests only"}, **fields)
    return save_bundle(trees, out, meta_fields=meta_fields, name=name), trees


@pytest.fixture(scope="module")
def trees_model(tmp_path_factory):
    return trees_bundle(tmp_path_factory.mktemp("trees-model"))


def test_bundle_round_trip_and_genre_model_load(trees_model):
    from tagger.model import GenreModel

    files, trees = trees_model
    assert files.weights.suffix == ".npz" and files.weights.with_suffix(".json") == files.meta
    for given in (files.weights, files.meta, files.weights.parent):
        assert locate(given) == files
    meta = load_meta(files)
    assert meta.backend == "trees" and meta.model_id == model_id_for(files.weights, meta)
    assert meta.input_shape == (handcrafted_size(FEATURES),)
    model = GenreModel.load(str(files.weights.parent), batch_size=32)
    assert isinstance(model, TreeModel) and model.batch_size == 32
    assert model.precision == "float32" and model.jit is False and model.rewrites == []
    assert model.with_precision("mixed_bfloat16") is model and model.with_precision("float32") is model
    with pytest.raises(ValueError):
        model.with_precision("int8")
    model.warm_up()
    x = queries(meta.input_shape[0], n=30)
    np.testing.assert_array_equal(model.predict(x), trees.predict_proba(x))
    with pytest.raises(ModelError, match="expects chunks of shape"):
        model.predict(np.zeros((2, 5), np.float32))


def test_loading_a_trees_model_needs_neither_tensorflow_nor_sklearn(trees_model):
    files, _ = trees_model
    code = (
        "import sys, numpy as np\n"
        "from tagger.model import GenreModel\n"
        f"m = GenreModel.load({str(files.meta)!r})\n"
        "p = m.predict(np.zeros((3, *m.meta.input_shape), np.float32))\n"
        "assert p.shape == (3, 10), p.shape\n"
        "heavy = [n for n in ('tensorflow', 'keras', 'sklearn') if n in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('OK')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr


def test_metadata_and_weights_must_agree(tmp_path, trees_model):
    files, _ = trees_model
    d = tmp_path / "m"
    shutil.copytree(files.weights.parent, d)
    (d / "model.npz").rename(d / "model.keras")  # trees weights under a Keras name
    with pytest.raises(ModelError, match=r"trees model's weights are NAME.npz"):
        load_meta(locate(d / "model.keras"))
    with pytest.raises(ModelError, match="output_activation must be softmax"):
        save_bundle(TreeEnsemble.load(files.weights), tmp_path / "sigmoid", meta_fields=dict(
            architecture="features-gbt", backend="trees", labels=GTZAN_LABELS,
            output_activation="sigmoid", features=FEATURES))
    wrong = FeatureParams(kind="handcrafted", n_mfcc=13)  # another input size
    with pytest.raises(ModelError, match="does not match metadata"):
        save_bundle(TreeEnsemble.load(files.weights), tmp_path / "wrong", meta_fields=dict(
            architecture="features-gbt", backend="trees", labels=GTZAN_LABELS,
            output_activation="softmax", features=wrong))


def test_locate_in_folders(tmp_path, trees_model, tiny_model):
    files, _ = trees_model
    two = tmp_path / "two"
    two.mkdir()
    for f in (files.weights, files.meta):
        shutil.copy(f, two / f.name)
    for f in (tiny_model.weights, tiny_model.meta):
        shutil.copy(f, two / f"keras{f.suffix}")
    with pytest.raises(ModelError, match=r"exactly one model in the folder.*found 2"):
        locate(two)
    (two / "keras.json").unlink()  # weights without metadata do not count as a model
    assert locate(two) == type(files)(two / "model.npz", two / "model.json")
    # the same NAME with both suffixes: the json's backend decides
    shutil.copy(tiny_model.weights, two / "model.keras")
    assert locate(two).weights.name == "model.npz"
    assert locate(two / "model.json").weights.name == "model.npz"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="found 0"):
        locate(empty)
    with pytest.raises(ModelError, match=r"a .keras or .npz file with a .json beside it"):
        locate(tmp_path / "model.txt")
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(files.meta, lone / "model.json")
    with pytest.raises(ModelError, match=r"no model.keras or model.npz beside it"):
        locate(lone / "model.json")


def test_copy_bundle_replaces_a_keras_default(tmp_path, trees_model, tiny_model, monkeypatch):
    import tagger.modelmeta as mm

    files, _ = trees_model
    shipped = tmp_path / "models"
    copy_bundle(tiny_model, shipped, "default")
    monkeypatch.setattr(mm, "shipped_dir", lambda: shipped)
    assert locate(vocabulary="gtzan").weights == shipped / "default.keras"
    dest = copy_bundle(files, shipped, "default")
    assert dest.weights == shipped / "default.npz"
    assert sorted(p.name for p in shipped.iterdir()) == ["default.json", "default.npz"]
    found = locate(vocabulary="gtzan")
    assert found == dest and load_meta(found).model_id == load_meta(files).model_id
    back = copy_bundle(tiny_model, shipped, "default")  # and back again
    assert sorted(p.name for p in shipped.iterdir()) == ["default.json", "default.keras"]
    assert locate(vocabulary="gtzan") == back


# ------------------------------------------------------------------------------------------
# the pipeline's use of it

def test_trees_models_are_planned_on_the_driver():
    from tagger.ray_backend import plan_inference

    assert plan_inference({"CPU": 8, "GPU": 2}).where == "actors"
    plan = plan_inference({"CPU": 8, "GPU": 2}, backend="trees")
    assert (plan.where, plan.actors, plan.mixed_precision, plan.batch_size) == ("driver", 0, False, 64)


def test_predictor_runs_a_trees_model_as_it_is(trees_model):
    from tagger import ray_backend as rb

    files, trees = trees_model
    p = rb.Predictor(files, batch_size=16, mixed_precision=True, cpu_bfloat16=True)
    assert isinstance(p.model, TreeModel) and not p.approximate
    info = p.info()
    assert info["precision"] == "float32" and info["devices"] == [] and info["batch_size"] == 16
    x = queries(trees.n_features, n=20)
    np.testing.assert_array_equal(p.predict(x), trees.predict_proba(x))
    np.testing.assert_array_equal(p.predict_exact(x), trees.predict_proba(x))


@pytest.mark.usefixtures("ray_session")
def test_tag_dry_run_with_a_trees_model(tmp_path, fixture_dir, trees_model):
    from tagger.cli import main

    files, _ = trees_model
    lib = tmp_path / "lib"
    lib.mkdir()
    decodable = [p for p in sorted(Path(fixture_dir).iterdir()) if "-garbage" not in p.name]
    for p in decodable:
        shutil.copy(p, lib / p.name)
    report = tmp_path / "r.json"
    r = CliRunner().invoke(main, [
        "tag", str(lib), "--dry-run", "--model", str(files.weights.parent),
        "--state-db", str(tmp_path / "s.db"), "--on-existing", "replace", "--min-confidence", "0",
        "--report", str(report)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(report.read_text())
    assert data["model"]["model_id"] == load_meta(files).model_id
    assert data["model"]["inference"]["where"] == "driver"
    rows = data["files"]
    assert sorted(Path(x["path"]).name for x in rows) == [p.name for p in decodable] and len(rows) == 18
    for row in rows:
        assert row["action"] == "would tag", row
        assert row["predicted"] and row["predicted"][0]["label"] in GTZAN_LABELS, row
        assert 0.0 <= row["predicted"][0]["score"] <= 1.0 and row["chunks"] >= 1


def test_info_shows_a_trees_model(trees_model):
    from tagger.cli import main

    files, _ = trees_model
    r = CliRunner().invoke(main, ["info", "--model", str(files.weights.parent), "--no-ray", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["model"]
    assert m["path"] == str(files.weights) and m["architecture"] == "features-gbt"
    assert m["model_id"] == load_meta(files).model_id and m["features"]["kind"] == "handcrafted"
