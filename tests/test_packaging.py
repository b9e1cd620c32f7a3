"""The built wheel carries the shipped models, their licence, the HTML report's assets and the training package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.pure


def _source_copy(dest: Path) -> Path:
    """What the build reads, without this checkout's build/ folder: setuptools adds whatever an
    earlier build left in build/lib (a module since moved, say) to the wheel."""
    dest.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    for package in ("tagger", "training"):
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.mark.slow
def test_wheel_contains_models_and_training(tmp_path):
    src = _source_copy(tmp_path / "src")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("tagger-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.name for p in (ROOT / "tagger" / "models").iterdir() if p.suffix in (".keras", ".json", ".txt"))
    assert "msd.keras" in shipped and "LICENSE-musicnn.txt" in shipped
    for name in shipped:
        assert f"tagger/models/{name}" in names
    for module in ("tagger/cli.py", "tagger/tags/__init__.py", "training/cli.py", "tagger/commands/tag.py",
                   "tagger/report/__init__.py", "tagger/report/html_report.py"):
        assert module in names
    # the HTML report's style sheet and script are package data, read with importlib.resources
    assets = sorted(p.name for p in (ROOT / "tagger" / "assets").iterdir() if p.is_file())
    assert {"report.css", "report.js"} <= set(assets)
    for name in assets:
        assert f"tagger/assets/{name}" in names
        assert zipfile.ZipFile(wheel).read(f"tagger/assets/{name}") == (ROOT / "tagger" / "assets" / name).read_bytes()
    assert not any(n.startswith("tests/") for n in names)
    assert "tagger/report.py" not in names and "tagger/html_report.py" not in names  # now tagger/report/
    entry = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry[0]).decode()
    assert "tagger = tagger.cli:main" in text
