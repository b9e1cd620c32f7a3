"""The built wheel carries the shipped models, their licence and the training package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_models_and_training(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("tagger-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.name for p in (ROOT / "tagger" / "models").iterdir() if p.suffix in (".keras", ".json", ".txt"))
    assert "msd.keras" in shipped and "LICENSE-musicnn.txt" in shipped
    for name in shipped:
        assert f"tagger/models/{name}" in names
    for module in ("tagger/cli.py", "tagger/tags/__init__.py", "training/cli.py"):
        assert module in names
    assert not any(n.startswith("tests/") for n in names)
    entry = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry[0]).decode()
    assert "tagger = tagger.cli:main" in text
