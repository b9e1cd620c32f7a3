"""The training commands end to end on a tiny synthetic GTZAN-shaped tree:
prepare -> fit -> evaluate -> export (-> the default model) -> tagger's GenreModel loads and
predicts; cross-validation; seeded re-runs agree."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tagger.decode import decode
from tagger.features import extract
from tagger.model import GenreModel
from tests.training_helpers import GENRES, invoke, make_tree
from training import architectures
from training.cli import train

pytestmark = [pytest.mark.slow, pytest.mark.tf, pytest.mark.ray, pytest.mark.train]


@pytest.fixture(scope="module")
def work(tmp_path_factory, ray_session):
    base = tmp_path_factory.mktemp("flow")
    make_tree(base / "data", per_genre=4, seconds=8.0)
    out = invoke("prepare", base / "data", "--out", base / "work", "--folds", "2", "--seed", "0")
    assert "12 usable tracks in 3 genres, 0 skipped" in out
    assert "split (stratified): train 6, valid 3, test 3; 2 folds for cv" in out
    return base


def test_prepare_fit_evaluate_export(work, tmp_path, monkeypatch):
    run = tmp_path / "run"
    out = invoke("fit", work / "work", "--out", run, "--epochs", "4", "--seed", "0")
    assert "validation track accuracy" in out
    rec = json.loads((run / "run.json").read_text())
    assert set(rec["split"]["train"]).isdisjoint(rec["split"]["test"] + rec["split"]["valid"])
    assert len(rec["history"]["loss"]) == 4
    assert rec["options"]["augment"] == list(architectures.get("mel-cnn").augment)  # the default
    # the run directory itself is a model tagger can use
    meta = json.loads((run / "model.json").read_text())
    assert meta["architecture"] == "mel-cnn" and meta["labels"] == list(GENRES)
    assert meta["features"]["mean"] is not None and meta["features"]["std"] > 0
    assert meta["training"]["split"]["train"] == 6 and meta["training"]["data"]["tracks"] == 12

    out = invoke("evaluate", run)
    assert "test split: accuracy" in out
    m = json.loads((run / "metrics.json").read_text())
    assert m["tracks"] == 3 and m["level"] == "track" and set(m["per_class"]) == set(GENRES)
    lo, hi = m["accuracy_ci95"]
    assert 0 <= lo <= m["accuracy"] <= hi <= 1
    assert sum(map(sum, m["confusion"])) == 3
    for png in ("confusion.png", "learning_loss.png", "learning_accuracy.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"

    shipped = tmp_path / "shipped"
    monkeypatch.setattr("tagger.modelmeta.shipped_dir", lambda: shipped)
    out = invoke("export", run, "--out", tmp_path / "export", "--as-default")
    assert "installed as the default model" in out
    exported = json.loads((tmp_path / "export" / "model.json").read_text())
    assert exported["metrics"]["accuracy"] == m["accuracy"]
    assert exported["metrics"]["evaluated_on"] == "test split"
    command = exported["training"]["command"]
    assert command.startswith(f"train fit {work / 'work'} --arch mel-cnn --out {run}") and "--seed 0" in command
    assert "--epochs 4" in command and "--patience 8" in command

    # tagger loads the default model and predicts on features made the tag pipeline's way
    model = GenreModel.load(vocabulary="gtzan")
    assert model.meta.model_id == exported["model_id"]
    clip = work / "data" / "genres" / "drone" / "drone.00003.wav"
    chunks = extract(decode(clip, sample_rate=model.meta.features.sample_rate), params=model.meta.features)
    probs = model.predict(chunks)
    assert probs.shape == (chunks.shape[0], 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)


def test_evaluate_refuses_a_run_without_test_tracks(work, tmp_path):
    run = tmp_path / "final"
    invoke("fit", work / "work", "--out", run, "--all", "--epochs", "1", "--augment", "gain,mask,mixup")
    rec = json.loads((run / "run.json").read_text())
    assert rec["split"]["test"] == [] and len(rec["split"]["train"]) == 9
    assert rec["options"]["augment"] == ["gain", "mask", "mixup"] and np.isfinite(rec["history"]["loss"][0])
    res = CliRunner().invoke(train, ["evaluate", str(run)])
    assert res.exit_code == 64 and "no test tracks" in res.output


def test_cv_pools_every_track_and_export_carries_it(work, tmp_path):
    cv = tmp_path / "cv"
    out = invoke("cv", work / "work", "--out", cv, "--epochs", "1", "--augment", "none")
    assert "2-fold cross-validation on 12 tracks" in out
    m = json.loads((cv / "metrics.json").read_text())
    assert m["tracks"] == 12 and len(m["folds"]) == 2
    pooled = json.loads((cv / "predictions.json").read_text())["tracks"]
    assert sorted(p["track"] for p in pooled) == sorted(
        f"{g}/{g}.{i:05d}.wav" for g in GENRES for i in range(4))
    fold_tests = [set(json.loads((cv / f"fold-{k}" / "run.json").read_text())["split"]["test"]) for k in (0, 1)]
    assert fold_tests[0].isdisjoint(fold_tests[1])
    lo, hi = m["fold_accuracy_ci95"]
    assert lo <= m["fold_accuracy_mean"] <= hi
    assert (cv / "confusion.png").is_file()
    res = invoke("export", cv / "fold-0", "--cv", cv)
    exported = json.loads((cv / "fold-0" / "export" / "model.json").read_text())
    assert exported["metrics"]["accuracy"] == m["accuracy"]
    assert exported["metrics"]["accuracy_ci95"] == m["accuracy_ci95"]
    assert exported["metrics"]["cross_validation"]["fold_accuracies"] == [f["accuracy"] for f in m["folds"]]
    assert "cross-validation" in res


def test_seeded_reruns_agree(work, tmp_path):
    """Same work dir, options and seed: byte-identical weights (fresh processes, as a user runs)."""
    ids = []
    for name in ("a", "b"):
        code = (
            "from training.cli import main; import sys; "
            f"sys.argv = ['tagger-train', '-q', 'fit', {str(work / 'work')!r}, '--out', "
            f"{str(tmp_path / name)!r}, '--epochs', '2', '--seed', '3']; main()"
        )
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
        ids.append(json.loads((tmp_path / name / "model.json").read_text())["model_id"])
    assert ids[0] == ids[1]
    a = json.loads((tmp_path / "a" / "run.json").read_text())["history"]
    b = json.loads((tmp_path / "b" / "run.json").read_text())["history"]
    assert a == b
