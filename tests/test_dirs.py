"""tagger.dirs: a run leaves its files in tagger's XDG folders, not ~/.ray, ~/.keras, ~/.config/matplotlib."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tagger import dirs

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.tf


def test_library_env_is_under_the_cache_dir_and_keeps_what_a_person_set(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", "/my/mpl")
    got = dirs.isolate()
    assert got == {"KERAS_HOME": str(tmp_path / "c" / "tagger" / "keras"), "MPLCONFIGDIR": "/my/mpl"}
    assert os.environ["KERAS_HOME"] == got["KERAS_HOME"]


def test_ray_temp_dir_falls_back_when_sockets_would_not_fit(monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "/home/me/.cache")
    assert dirs.ray_temp_dir() == "/home/me/.cache/tagger/ray"
    monkeypatch.setenv("XDG_CACHE_HOME", "/home/" + "x" * 60 + "/.cache")
    assert dirs.ray_temp_dir() is None  # Ray's /tmp/ray then: a socket path is at most 107 bytes


def test_prune_keeps_running_and_newest_sessions(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    gone = int(dead.stdout)
    names = [f"session_2026-01-0{d}_03-30-00_000001_{gone}" for d in range(1, 6)]
    running = f"session_2026-01-01_00-00-00_000001_{os.getpid()}"  # oldest, but its process lives
    for n in [*names, running]:
        (tmp_path / n / "logs").mkdir(parents=True)
    (tmp_path / "session_latest").symlink_to(tmp_path / names[-1])
    (tmp_path / "other").mkdir()
    removed = dirs.prune_ray_sessions(tmp_path, keep=2)
    assert removed == names[:3]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*names[3:], running, "session_latest", "other"])


def test_private_ray_auth_token_stays_in_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(k, raising=False)
    dirs.private_ray_auth()
    assert len(os.environ["RAY_AUTH_TOKEN"]) == 64 and not (tmp_path / ".ray").exists()
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    dirs.private_ray_auth()
    assert "RAY_AUTH_TOKEN" not in os.environ
    monkeypatch.delenv("RAY_AUTH_MODE")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("mine")
    dirs.private_ray_auth()
    assert "RAY_AUTH_TOKEN" not in os.environ  # the person's own token is used as it is


@pytest.mark.slow
def test_a_run_with_a_fresh_home_leaves_only_tagger_folders(tiny_model):
    """Before: ~/.keras/keras.json, ~/.config/matplotlib, ~/.cache/matplotlib, ~/.ray/auth_token."""
    home = Path(tempfile.mkdtemp(prefix="tgr-h-", dir="/tmp"))  # short: Ray's sockets go below it
    try:
        lib = home.parent / f"{home.name}-lib"
        lib.mkdir()
        import soundfile as sf

        from tests.conftest import tone

        sf.write(lib / "a.wav", tone(3.0, sr=22050), 22050)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("XDG_", "RAY_", "KERAS_", "MPL")) and k != "TF_CPP_MIN_LOG_LEVEL"}
        env.update(HOME=str(home), PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
        r = subprocess.run([sys.executable, "-m", "tagger", "tag", str(lib), "--model", str(tiny_model.weights),
                            "--min-confidence", "0"], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if not p.is_dir())
        outside = [f for f in files
                   if not f.startswith((".cache/tagger/", ".local/state/tagger/", ".config/tagger/"))]
        assert not outside, outside
        assert (home / ".cache/tagger/keras/keras.json").exists()
        assert list((home / ".cache/tagger/ray").glob("session_*"))
        assert (home / ".local/state/tagger/state.db").exists()
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(home.parent / f"{home.name}-lib", ignore_errors=True)
