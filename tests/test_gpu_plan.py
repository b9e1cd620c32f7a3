"""The GPU path without a GPU: placement and batch decisions from faked resource views, the
float16-vs-float32 decision as a pure function, the mixed-precision clone of real networks, and
the predictor-actor code path run for real on CPU (a plan with ``gpus_per_actor=0``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tagger import ray_backend as rb
from tagger.model import keep_mixed_precision, top1_agreement
from tagger.ray_backend import InferencePlan, plan_inference

pytestmark = [pytest.mark.tf, pytest.mark.ray]


# ------------------------------------------------------------------------------------------
# placement and batch size from the cluster's resources
@pytest.mark.parametrize("resources, where, actors, batch, mixed", [
    ({"CPU": 64, "GPU": 4}, "actors", 4, 512, True),
    ({"CPU": 16, "GPU": 1, "accelerator_type:H100": 1}, "actors", 1, 512, True),
    ({"CPU": 96, "GPU": 8.0, "memory": 5e11}, "actors", 8, 512, True),
    ({"CPU": 64, "GPU": 2.5}, "actors", 2, 512, True),  # whole GPUs only: an actor asks num_gpus=1
    ({"CPU": 64, "GPU": 0.5}, "driver", 0, 64, False),  # no whole GPU: CPU in the driver
    ({"CPU": 64}, "driver", 0, 64, False),
    ({"CPU": 2, "GPU": 0}, "driver", 0, 64, False),
    ({}, "driver", 0, 64, False),
])
def test_plan_from_resources(resources, where, actors, batch, mixed):
    plan = plan_inference(resources)
    assert (plan.where, plan.actors, plan.batch_size, plan.mixed_precision) == (where, actors, batch, mixed)
    assert plan.gpus_per_actor == (1.0 if where == "actors" else 0.0)
    # the driver gathers a full batch for every actor before one predict call
    assert plan.flush_size == batch * max(1, actors)


def test_batch_size_override_and_actor_cap():
    assert plan_inference({"CPU": 64, "GPU": 4}, batch_size=128).batch_size == 128
    assert plan_inference({"CPU": 64, "GPU": 4}, batch_size=128).flush_size == 512
    assert plan_inference({"CPU": 4}, batch_size=256).batch_size == 256
    capped = plan_inference({"CPU": 64, "GPU": 8}, max_gpu_actors=2)
    assert (capped.actors, capped.gpus_per_actor, capped.flush_size) == (2, 1.0, 1024)
    assert plan_inference({"CPU": 64, "GPU": 2}, max_gpu_actors=16).actors == 2
    with pytest.raises(ValueError):
        plan_inference({"CPU": 4}, batch_size=0)


def test_tasks_in_flight_grow_with_the_cluster():
    assert rb.max_in_flight(1) == 4
    assert rb.max_in_flight(2) == 6
    assert rb.max_in_flight(64) == 130


# ------------------------------------------------------------------------------------------
# float16 vs float32: the pure decision
def test_top1_agreement():
    a = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], np.float32)
    assert top1_agreement(a, a) == 1.0
    b = a.copy()
    b[2] = [0.5, 0.2, 0.3]  # row 2's best label changes
    assert top1_agreement(a, b) == pytest.approx(2 / 3)
    assert top1_agreement(np.zeros((0, 3)), np.zeros((0, 3))) == 1.0
    with pytest.raises(ValueError):
        top1_agreement(a, a[:2])
    with pytest.raises(ValueError):
        top1_agreement(a[0], a[0])


def test_keep_mixed_precision_only_when_top1_labels_agree():
    rng = np.random.default_rng(0)
    ref = rng.dirichlet(np.ones(10), size=256).astype(np.float32)
    # float16 rounding that leaves every best label alone: kept
    close = ref.astype(np.float16).astype(np.float32)
    assert keep_mixed_precision(ref, close)
    # a single chunk whose best label flips: float32 stays (default: every row must agree)
    flipped = close.copy()
    i = 17
    top, second = np.argsort(ref[i])[-1], np.argsort(ref[i])[-2]
    flipped[i, [top, second]] = flipped[i, [second, top]]
    assert not keep_mixed_precision(ref, flipped)
    assert keep_mixed_precision(ref, flipped, min_agreement=0.99)  # a looser threshold accepts it
    # overflow in float16 shows as inf/nan: never kept
    bad = close.copy()
    bad[3, 0] = np.nan
    assert not keep_mixed_precision(ref, bad, min_agreement=0.0)


# ------------------------------------------------------------------------------------------
# the mixed-precision clone of real networks
def test_with_precision_clones_the_tiny_model(tiny_model):
    from tagger.model import GenreModel

    m32 = GenreModel.load(tiny_model.weights, batch_size=16)
    m16 = m32.with_precision("mixed_float16")
    assert m16 is not m32 and m32.precision == "float32" and m16.precision == "mixed_float16"
    assert m32.with_precision("float32") is m32
    policies = [layer.dtype_policy.name for layer in m16.net.layers]
    assert policies[-1] == "float32"  # the output layer stays float32, as Keras advises
    assert "mixed_float16" in policies[:-1]
    assert all(layer.dtype_policy.name == "float32" for layer in m32.net.layers)  # original untouched
    x = np.random.default_rng(1).standard_normal((40, *m32.meta.input_shape)).astype(np.float32)
    p32, p16 = m32.predict(x), m16.predict(x)
    assert p16.dtype == np.float32 and p16.shape == p32.shape
    assert np.abs(p32 - p16).max() < 1e-2  # float16 arithmetic, not another model
    assert not np.array_equal(p32, p16)  # and really computed in float16
    with pytest.raises(ValueError):
        m32.with_precision("bfloat8")


@pytest.mark.slow
def test_with_precision_on_the_shipped_musicnn_model():
    """The shipped functional network (batch norm, concatenations) clones too, and float16 keeps
    its top-1 tags on real audio (a GTZAN clip when present, else a generated chord)."""
    from tagger.features import extract
    from tagger.model import GenreModel
    from tests.conftest import GTZAN_MINI, tone

    model = GenreModel.load(vocabulary="msd", batch_size=16)
    fp = model.meta.features
    clip = next(iter(sorted(GTZAN_MINI.glob("rock/*.wav"))), None) if GTZAN_MINI.exists() else None
    if clip is not None:
        from tagger.decode import decode

        y = decode(clip, sample_rate=fp.sample_rate)
    else:
        y = sum(tone(12.0, sr=fp.sample_rate, freq=f, seed=i) for i, f in enumerate((220.0, 277.2, 329.6)))
    x = extract(y, params=fp)[:8]
    p32 = model.predict(x)
    p16 = model.with_precision("mixed_float16").predict(x)
    assert np.abs(p32 - p16).max() < 2e-2
    assert keep_mixed_precision(p32, p16)


# ------------------------------------------------------------------------------------------
# the Predictor's first-batch decision
class _Scripted:
    """Stands in for the float16 clone: returns what the test says."""

    def __init__(self, fn):
        self.fn, self.precision, self.batch_size, self.calls = fn, "mixed_float16", 16, 0
        self.rewrites = ()

    def predict(self, x):
        self.calls += 1
        return self.fn(x)

    predict_full = predict  # the tiny model has no embedding: its full output is its scores
    embedding_size, backbone_id = 0, ""


def _predictor(tiny_model, monkeypatch, candidate_fn):
    from tagger.model import GenreModel

    monkeypatch.setattr(GenreModel, "with_precision",
                        lambda self, p: _Scripted(lambda x: candidate_fn(self, x)))
    return rb.Predictor(tiny_model, batch_size=16, mixed_precision=True)


def test_predictor_keeps_float16_when_the_first_batch_agrees(tiny_model, monkeypatch):
    p = _predictor(tiny_model, monkeypatch, lambda m, x: m.predict(x))
    assert p.info()["precision"] == "undecided"
    x = np.random.default_rng(2).standard_normal((20, *p.model.meta.input_shape)).astype(np.float32)
    ref = p.model.predict(x)
    first = p.predict(x)
    np.testing.assert_array_equal(first, ref)  # the first batch's answer is float32's
    assert p.info()["precision"] == "mixed_float16" and p.info()["agreement"] == 1.0
    assert p.model.calls == 1  # the trial
    np.testing.assert_array_equal(p.predict(x), ref)
    assert p.model.calls == 2  # later batches go to the float16 model only


def test_predictor_falls_back_to_float32_when_labels_change(tiny_model, monkeypatch):
    p = _predictor(tiny_model, monkeypatch, lambda m, x: m.predict(x)[:, ::-1].copy())  # labels reversed
    f32 = p.model
    x = np.random.default_rng(3).standard_normal((20, *f32.meta.input_shape)).astype(np.float32)
    np.testing.assert_array_equal(p.predict(x), f32.predict(x))
    info = p.info()
    assert info["precision"] == "float32" and info["agreement"] < 1.0
    assert p.model is f32
    np.testing.assert_array_equal(p.predict(x), f32.predict(x))


def test_predictor_without_mixed_precision_is_plain_float32(tiny_model):
    p = rb.Predictor(tiny_model, batch_size=8)
    info = p.info()
    assert info["precision"] == "float32" and info["agreement"] is None and info["batch_size"] == 8
    assert info["devices"] == []  # no GPU on this machine


# ------------------------------------------------------------------------------------------
# the actor path, for real, on CPU
def _make_lib(root: Path, n: int = 6) -> None:
    import soundfile as sf

    from tests.conftest import tone

    root.mkdir(parents=True)
    for i in range(n):
        sf.write(root / f"t{i}.flac", tone(4.0, sr=22050, freq=150.0 * (i + 1), seed=i), 22050)


def _tag(lib: Path, tiny_model, tmp_path: Path, name: str) -> dict:
    from tagger.cli import main

    report = tmp_path / f"{name}.json"
    r = CliRunner().invoke(main, ["tag", str(lib), "--model", str(tiny_model.weights), "--dry-run",
                                  "--state-db", str(tmp_path / f"{name}.db"), "--min-confidence", "0",
                                  "--batch-size", "8", "--report", str(report)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(report.read_text())


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("mixed", [False, True])
def test_cpu_actor_path_end_to_end(tmp_path, tiny_model, monkeypatch, mixed):
    """Force the GPU plan's shape with gpus_per_actor=0: a Ray actor on CPU holds the model;
    its predictions equal the driver's (and with mixed precision the first-batch check runs)."""
    lib = tmp_path / "lib"
    _make_lib(lib)
    driver = _tag(lib, tiny_model, tmp_path, "driver")
    assert driver["model"]["inference"]["where"] == "driver"

    real_plan = rb.plan_inference
    forced = []

    def plan(resources, *, batch_size=None, max_gpu_actors=None, backend="keras"):
        forced.append(real_plan(resources, batch_size=batch_size))
        return InferencePlan("actors", 1, 0.0, batch_size or rb.CPU_BATCH, mixed)

    monkeypatch.setattr(rb, "plan_inference", plan)
    actor = _tag(lib, tiny_model, tmp_path, "actor")
    assert forced and forced[0].where == "driver"  # this machine really has no GPU
    info = actor["model"]["inference"]
    assert (info["where"], info["actors"], info["gpus_per_actor"]) == ("actors", 1, 0.0)
    assert info["batch_size"] == 8
    [pred] = info["predictors"]
    import ray

    assert pred["node"] in {n["NodeID"] for n in ray.nodes()}  # it ran in a Ray actor, not here
    assert pred["devices"] == [] and pred["batch_size"] == 8
    if mixed:
        assert pred["precision"] in ("mixed_float16", "float32")
        assert pred["agreement"] is not None
        assert (pred["precision"] == "mixed_float16") == (pred["agreement"] == 1.0)
    else:
        assert pred["precision"] == "float32" and pred["agreement"] is None

    a = {Path(r["path"]).name: r for r in actor["files"]}
    d = {Path(r["path"]).name: r for r in driver["files"]}
    assert set(a) == set(d) and all(r["action"] == "would tag" for r in a.values())
    tol = 1e-2 if mixed else 1e-4  # float16 after the first batch; float32 equals the driver's
    for name in d:
        np.testing.assert_allclose([p["score"] for p in a[name]["predicted"]],
                                   [p["score"] for p in d[name]["predicted"]], atol=tol, err_msg=name)
        if not mixed:
            assert a[name]["written"] == d[name]["written"], name
