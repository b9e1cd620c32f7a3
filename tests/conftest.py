"""Shared fixtures: a session-scoped local Ray instance, generated audio fixtures of every format,
and a tiny randomly initialised model (tests only; the shipped model is tested in
test_golden.py)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

ROOT = Path(__file__).resolve().parents[1]
GTZAN_MINI = ROOT.parent / "shared" / "data" / "gtzan_mini" / "genres"


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (tagger reuses an initialised Ray)."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}})
        started = True
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory) -> Path:
    """Tiny real files of every format and state, generated once per session (read-only use:
    copy before mutating, see ``library``)."""
    from tests.make_fixtures import make_fixtures

    dest = tmp_path_factory.mktemp("rsrc")
    make_fixtures(dest)
    return dest


@pytest.fixture
def library(fixture_dir, tmp_path) -> Path:
    """A fresh copy of the fixtures to mutate."""
    dest = tmp_path / "lib"
    shutil.copytree(fixture_dir, dest)
    return dest


TINY_FEATURES = dict(kind="logmel", sample_rate=8000, n_fft=256, hop_length=128, n_mels=16, log="log10p",
                     chunk_frames=31, chunk_hop_frames=31)
TINY_LABELS = ["blues", "classical", "hiphop", "jazz", "rock"]


def build_tiny_model(out: Path, *, seed: int = 0, name: str = "model", labels=None):
    """A randomly initialised 5-genre model with small features: tests only, never shipped."""
    import keras

    from tagger.features import FeatureParams
    from tagger.modelmeta import save_bundle

    labels = list(labels or TINY_LABELS)
    keras.utils.set_random_seed(seed)
    fp = FeatureParams(**TINY_FEATURES)
    net = keras.Sequential([
        keras.Input(fp.input_shape),
        keras.layers.Reshape((*fp.input_shape, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(len(labels), activation="softmax"),
    ])
    return save_bundle(net, out, name=name, meta_fields=dict(
        name="tiny-test", architecture="tiny-test", labels=labels, output_activation="softmax",
        features=fp, training={"description": "random weights, tests only"},
    ))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def tone(seconds: float = 3.0, sr: int = 22050, freq: float = 440.0, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    y = y.astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


# --------------------------------------------------------------------------------------------
# Test tiers. Every test module declares its tier(s) with ``pytestmark``: what it needs to run.
#   pure    - neither TensorFlow nor Ray (seconds; `pytest -m pure` checks that it stays so)
#   tf      - loads TensorFlow/Keras (a model, the tiny test model or the shipped one)
#   ray     - starts Ray (the session instance or a run of `tagger tag`)
#   train   - the training package (training/)
#   browser - Debian's chromium
# ``slow`` (more than a few seconds) is orthogonal to the tiers.
# --------------------------------------------------------------------------------------------

TIERS = ("pure", "tf", "ray", "train", "browser")
_RAY_BEFORE = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config, items):
    untiered = sorted({item.nodeid.split("::")[0] for item in items
                       if not any(item.get_closest_marker(t) for t in TIERS)})
    if untiered:
        raise pytest.UsageError(
            f"test modules without a tier marker ({', '.join(TIERS)}): {', '.join(untiered)}; "
            "add e.g. `pytestmark = pytest.mark.pure` (see tests/conftest.py)")


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and bool(getattr(ray, "is_initialized", lambda: False)())


def _only_pure(item) -> bool:
    return bool(item.get_closest_marker("pure")) and not any(item.get_closest_marker(t) for t in TIERS if t != "pure")


def pytest_runtest_setup(item):
    item.stash[_RAY_BEFORE] = _ray_running()


def pytest_runtest_teardown(item, nextitem):
    # a pure test must not start Ray (the session's instance, started by an earlier test, is fine)
    if _only_pure(item) and not item.stash.get(_RAY_BEFORE, True) and _ray_running():
        pytest.fail(f"{item.nodeid} is marked pure but started Ray: mark it ray", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    items = getattr(session, "items", None) or []
    if items and all(item.get_closest_marker("pure") for item in items):
        heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
        if heavy:
            session.config.pluginmanager.get_plugin("terminalreporter").write_line(
                f"tier check: only pure tests ran, yet {' and '.join(heavy)} got imported: "
                "some module marked pure is not", red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
