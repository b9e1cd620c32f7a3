"""Golden test: the shipped models' scores on one deterministic clip, through `tagger tag`.

The clip is synthesised here (seeded, written as 16-bit WAV, so it is the same bytes everywhere).
If a shipped model is retrained or reconverted, its model id changes and this test says so;
regenerate the golden values with

    TAGGER_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

and commit tests/golden/shipped_scores.json together with the new model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tagger.cli import main
from tagger.modelmeta import SHIPPED, load_meta, locate

GOLDEN = Path(__file__).parent / "golden" / "shipped_scores.json"
UPDATE = bool(os.environ.get("TAGGER_UPDATE_GOLDEN"))

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.tf, pytest.mark.ray]


def golden_clip(path: Path, seconds: float = 8.0, sr: int = 22050) -> Path:
    """Chords over a kick-and-hat pattern: deterministic, music-like, 16-bit PCM."""
    rng = np.random.default_rng(1234)
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for i, root in enumerate([220.0, 174.61, 261.63, 196.0]):  # A F C G
        seg = (t >= i * seconds / 4) & (t < (i + 1) * seconds / 4)
        for ratio in (1.0, 1.26, 1.5):
            y[seg] += 0.12 * np.sin(2 * np.pi * root * ratio * t[seg])
    beat = 0.5
    for k in range(int(seconds / beat)):
        s = int(k * beat * sr)
        n = int(0.12 * sr)
        env = np.exp(-np.arange(n) / (0.03 * sr))
        y[s:s + n] += 0.5 * env * np.sin(2 * np.pi * 60 * np.arange(n) / sr)
        h = s + int(beat / 2 * sr)
        m = min(int(0.03 * sr), len(y) - h)
        if m > 0:
            y[h:h + m] += 0.15 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.005 * sr))
    y = np.clip(y, -1, 1)
    sf.write(path, (y * 32767).astype(np.int16), sr, subtype="PCM_16")
    return path


def shipped_vocabularies() -> list[str]:
    """Every vocabulary the golden file covers: a shipped model that has gone missing is a failure
    of its case (locate raises), never a case quietly left out."""
    return sorted(json.loads(GOLDEN.read_text())) if GOLDEN.exists() and not UPDATE else list(SHIPPED)


def test_golden_cases_cover_every_shipped_model():
    assert shipped_vocabularies() == sorted(SHIPPED)


@pytest.mark.parametrize("vocab", shipped_vocabularies())
def test_shipped_model_scores_are_golden(vocab, tmp_path, monkeypatch):
    # float32 scores, on every CPU (with AMX, tag computes large models in bfloat16 by default:
    # same decisions, scores within a few thousandths; see tagger.model.cpu_bfloat16_default)
    monkeypatch.setenv("TAGGER_CPU_BF16", "0")
    lib = tmp_path / "lib"
    lib.mkdir()
    clip = golden_clip(lib / "golden.wav")
    report = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["tag", str(lib), "--vocabulary", vocab, "--dry-run", "--state-db",
                                  str(tmp_path / "s.db"), "--report", str(report)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    row = json.loads(report.read_text())["files"][0]
    assert row["path"] == str(clip)
    meta = load_meta(locate(None, vocabulary=vocab))
    got = {p["label"]: p["score"] for p in row["predicted"]}

    data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if UPDATE:
        data[vocab] = {"model_id": meta.model_id, "top5": got, "chunks": row["chunks"]}
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(data, indent=2) + "\n")
        pytest.skip("golden values updated")
    assert vocab in data, f"no golden values for {vocab}: run with TAGGER_UPDATE_GOLDEN=1"
    want = data[vocab]
    assert want["model_id"] == meta.model_id, (
        f"the shipped {vocab} model changed ({want['model_id']} -> {meta.model_id}): "
        "regenerate golden values with TAGGER_UPDATE_GOLDEN=1")
    assert row["chunks"] == want["chunks"]
    assert list(got) == list(want["top5"])  # same ranking
    for label, score in want["top5"].items():
        assert got[label] == pytest.approx(score, abs=2e-4), label
