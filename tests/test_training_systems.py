"""Every architecture in the registry builds, trains for a step, exports, and is used by
`tagger tag` through the metadata contract; `train compare` and `train leakage` on a tiny
synthetic GTZAN-shaped tree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tagger.cli import main as tagger_main
from tagger.decode import decode
from tagger.features import FeatureParams, descriptor_names, extract, handcrafted_names, handcrafted_size
from tagger.model import GenreModel
from tests.training_helpers import invoke, make_tree, synth
from training import architectures
from training.cache import VARIANTS, apply_variant
from training.cli import train
from training.compare import chunk_folds, reusable
from training.datasets import load_work

pytestmark = [pytest.mark.slow, pytest.mark.tf, pytest.mark.ray, pytest.mark.train]

SYSTEMS = ("raw-cnn1d", "features-cnn", "features-dense", "features-gbt", "mel-cnn", "mel-cnn-small",
           "musicnn-transfer")


@pytest.fixture(scope="module")
def work(tmp_path_factory, ray_session):
    base = tmp_path_factory.mktemp("systems")
    make_tree(base / "data", per_genre=4, seconds=6.0)
    invoke("prepare", base / "data", "--out", base / "work", "--folds", "2", "--seed", "0")
    return base


def test_registry_has_every_seed_system():
    assert set(SYSTEMS) <= set(architectures.names())
    assert architectures.get("features-gbt").trainer == "trees"
    assert architectures.get("mel-cnn-small").augment == ("pitch", "stretch")
    assert architectures.get("features-cnn").features.kind == "descriptors"
    assert architectures.get("features-dense").features.kind == "handcrafted"
    assert architectures.get("raw-cnn1d").features.kind == "waveform"
    # caches of descriptors made by older feature code are not reused; log-mel caches stay valid
    from training.cache import cache_key

    assert "-v2" in cache_key(architectures.get("features-gbt").features, max_seconds=None)
    assert "-v" not in cache_key(architectures.get("mel-cnn").features, max_seconds=None)


@pytest.mark.parametrize("arch", SYSTEMS)
def test_each_system_trains_exports_and_tags(arch, work, tmp_path):
    run = tmp_path / "run"
    out = invoke("fit", work / "work", "--arch", arch, "--out", run, "--epochs", "1", "--seed", "0")
    assert f"{arch}: " in out and "validation track accuracy" in out
    rec = json.loads((run / "run.json").read_text())
    assert rec["arch"] == arch and rec["options"]["epochs_run"] >= 1
    assert np.all(np.isfinite(rec["history"]["loss"]))
    invoke("evaluate", run)
    assert json.loads((run / "metrics.json").read_text())["tracks"] == 3
    invoke("export", run, "--out", tmp_path / "export")
    meta = json.loads((tmp_path / "export" / "model.json").read_text())
    spec = architectures.get(arch)
    assert meta["architecture"] == arch and meta["backend"] == spec.trainer
    weights = list((tmp_path / "export").glob("model.*"))
    assert sorted(p.suffix for p in weights) == sorted([".json", ".npz" if spec.trainer == "trees" else ".keras"])
    # the same contract as every model: declared features in, probabilities out
    model = GenreModel.load(tmp_path / "export")
    params = model.meta.features
    assert params.kind == spec.features.kind
    clip = work / "data" / "genres" / "hiss" / "hiss.00001.wav"
    x = extract(decode(clip, sample_rate=params.sample_rate), params=params)
    p = model.predict(x)
    assert p.shape == (x.shape[0], 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)
    # tagger tag --model uses it (dry run over the training clips)
    res = CliRunner().invoke(tagger_main, ["tag", str(work / "data"), "--model", str(tmp_path / "export"), "--dry-run",
                                   "--min-confidence", "0", "--quiet", "--state-db", str(tmp_path / "state.db")])
    assert res.exit_code == 0, res.output


def test_descriptor_features_shapes_and_names():
    p = architectures.get("features-cnn").features
    y = synth("chirp", 0, seconds=6.0)
    d = extract(y, params=p)
    assert d.shape[1:] == (130, len(descriptor_names(p))) == p.input_shape
    h = extract(y, params=FeatureParams(**{**p.to_dict(), "kind": "handcrafted"}))
    assert h.shape == (d.shape[0], handcrafted_size(p)) and len(handcrafted_names(p)) == handcrafted_size(p)
    # the summary of a chunk is the mean and std of its descriptor frames
    np.testing.assert_allclose(h[0, : d.shape[2]], d[0].mean(axis=0), rtol=1e-5, atol=1e-5)
    # scalar standardisation applies to every kind
    scaled = extract(y, params=FeatureParams(**{**p.to_dict(), "mean": 1.0, "std": 2.0}))
    np.testing.assert_allclose(scaled, (d - 1.0) / 2.0, rtol=1e-5, atol=1e-5)


def test_audio_variants():
    y = synth("drone", 1, seconds=2.0)
    assert set(VARIANTS) == {"pitch", "stretch"}
    up = apply_variant(y, sample_rate=22050, variant="pitch+2")
    assert up.shape == y.shape and up.dtype == np.float32 and not np.allclose(up, y)
    slow = apply_variant(y, sample_rate=22050, variant="stretch0.9")
    assert abs(slow.shape[0] - y.shape[0] / 0.9) < 1024
    with pytest.raises(ValueError):
        apply_variant(y, sample_rate=22050, variant="reverse")


def test_chunk_folds_ignore_tracks_but_stratify():
    y = np.repeat(np.arange(3), 40)
    f = chunk_folds(y, k=4, seed=0)
    assert set(f.tolist()) == {0, 1, 2, 3}
    for c in range(3):
        assert np.bincount(f[y == c], minlength=4).tolist() == [10, 10, 10, 10]
    assert np.array_equal(f, chunk_folds(y, k=4, seed=0)) and not np.array_equal(f, chunk_folds(y, k=4, seed=1))


def test_compare_table_charts_and_resume(work, tmp_path):
    out = tmp_path / "cmp"
    text = invoke("compare", work / "work", "--arch", "features-gbt", "--arch", "features-dense", "--out", out,
                  "--epochs", "2")
    assert "| system | accuracy | 95% interval" in text and "features-gbt" in text and "features-dense" in text
    rec = json.loads((out / "compare.json").read_text())
    accs = [r["accuracy"] for r in rec["systems"]]
    assert accs == sorted(accs, reverse=True)  # best first
    for r in rec["systems"]:
        assert r["tracks"] == 12 and 0 <= r["accuracy_ci95"][0] <= r["accuracy"] <= r["accuracy_ci95"][1] <= 1
        assert r["model_ms"] > 0 and r["features_ms"] > 0 and r["train_s"] > 0 and not r["reused"]
        assert sum(map(sum, r["confusion"])) == 12
    for png in ("compare.png", "confusions.png", "feature_correlation.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert (out / "features-gbt" / "confusion.png").is_file()
    # a second run reuses what is there (same folds, same seed); --seed 1 does not
    wk = load_work(work / "work")
    assert reusable(out / "features-gbt", wk, arch="features-gbt", seed=0) is not None
    assert reusable(out / "features-gbt", wk, arch="features-gbt", seed=1) is None
    assert reusable(out / "features-gbt", wk, arch="features-dense", seed=0) is None
    text = invoke("compare", work / "work", "--arch", "features-gbt", "--out", out)
    assert "not retrained" in text
    assert json.loads((out / "compare.json").read_text())["systems"][0]["reused"] is True


def test_compare_refuses_unknown_system(work, tmp_path):
    res = CliRunner().invoke(train, ["compare", str(work / "work"), "--arch", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 64 and "nope" in res.output


def test_leakage_demo(work, tmp_path):
    out = invoke("leakage", work / "work", "--arch", "features-gbt", "--out", tmp_path / "leak")
    assert "chunk-level random split" in out and "track-level split" in out
    r = json.loads((tmp_path / "leak" / "leakage.json").read_text())
    assert r["track_split"]["tracks"] == 12
    # a random chunk split puts chunks of one track on both sides (2 chunks per 6-s clip here;
    # on 30-s GTZAN clips nearly every test chunk has a sibling in training)
    assert r["chunk_split"]["test_chunks_whose_track_is_in_training"] > 0.25
    assert r["chunk_split"]["chunks"] == r["track_split"]["chunks"]
    assert (tmp_path / "leak" / "leakage.png").read_bytes()[:4] == b"\x89PNG"
    # without overlapping chunks: every other 3-s chunk (hop 1.5 s), the same tracks
    invoke("leakage", work / "work", "--arch", "features-gbt", "--out", tmp_path / "leak2", "--no-overlap")
    r2 = json.loads((tmp_path / "leak2" / "leakage.json").read_text())
    assert r2["overlap"] is False and r2["chunk_hop_seconds"] == pytest.approx(2 * r["chunk_hop_seconds"], abs=0.01)
    per_clip = r["track_split"]["chunks"] // 12  # every clip has the same length
    assert r2["track_split"]["tracks"] == 12 and r2["track_split"]["chunks"] == 12 * ((per_clip + 1) // 2)


def test_zero_crossing_rate_equals_librosa():
    import librosa

    from tagger.features import zero_crossing_rate

    rng = np.random.default_rng(0)
    for n in (100, 5000, 66167):
        y = rng.standard_normal(n).astype(np.float32)
        y[::7], y[::11] = 0.0, 1e-12
        np.testing.assert_array_equal(zero_crossing_rate(y, frame_length=2048, hop_length=512),
                                      librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512))


def test_features_call_no_numba_code(tmp_path):
    """Workers compute features side by side, and numba's disk cache is not safe for fresh
    processes compiling at once (a fresh install segfaulted in chroma's tuning estimate), so no
    feature kind may call numba code: no gufunc call (librosa compiles those at import), and no
    lazily compiled function appearing in an empty NUMBA_CACHE_DIR once librosa's modules are
    imported)."""
    import os
    import subprocess
    import sys

    code = (
        "import json, pathlib, sys\n"
        "import numpy as np, librosa\n"
        "import librosa.core.audio, librosa.core.pitch, librosa.core.spectrum, librosa.util.utils\n"
        "import librosa.feature.spectral, librosa.effects, librosa.filters\n"
        "from numba.np.ufunc import gufunc\n"
        "from tagger.features import extract\n"
        "from training.architectures import REGISTRY\n"
        "cache = pathlib.Path(sys.argv[1])\n"
        "before = {p.name for p in cache.rglob('*.nb*')}\n"
        "calls = []\n"
        "real = gufunc.GUFunc.__call__\n"
        "def spy(self, *a, **k):\n"
        "    calls.append(getattr(self, '__name__', repr(self)))\n"
        "    return real(self, *a, **k)\n"
        "gufunc.GUFunc.__call__ = spy\n"
        "y = np.random.default_rng(0).standard_normal(4 * 22050).astype(np.float32) * 0.1\n"
        "for spec in REGISTRY.values():\n"
        "    extract(y[: int(4 * spec.features.sample_rate)], params=spec.features)\n"
        "after = {p.name for p in cache.rglob('*.nb*')}\n"
        "print(json.dumps({'calls': calls, 'compiled': sorted(after - before)}))\n"
    )
    cache = tmp_path / "numba"
    cache.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", code, str(cache)], check=True, env=env, timeout=300,
                         capture_output=True, text=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"calls": [], "compiled": []}
