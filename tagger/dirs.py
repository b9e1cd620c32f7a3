"""Where tagger, and the libraries it runs, keep their files: under tagger's own XDG folders.

tagger's own files: the config in ``platformdirs.user_config_dir("tagger")``, the state database
and its lock in ``user_state_dir("tagger")``. The libraries would otherwise leave folders of
their own in a person's home on the first run (``~/.keras/keras.json``, ``~/.config/matplotlib``
and ``~/.cache/matplotlib``, ``~/.ray/auth_token``); :func:`isolate` points them into
``user_cache_dir("tagger")`` (``~/.cache/tagger`` on Linux) before they are imported:

- ``KERAS_HOME`` = ``<cache>/keras`` and ``MPLCONFIGDIR`` = ``<cache>/matplotlib`` (set in the
  driver's environment, which the local Ray instance and its workers inherit; a value the
  person has set is kept);
- the private local Ray instance keeps its sessions (logs, sockets, spilled objects) in
  ``<cache>/ray`` (:func:`ray_temp_dir`; old sessions are pruned, :func:`prune_ray_sessions`),
  not ``/tmp/ray``, and its token (Ray 2.60 turns token authentication on for a local
  instance) lives in the environment of this run only (:func:`private_ray_auth`), not in
  ``~/.ray/auth_token``.

A cluster tagger joins (``--ray-address``) is left as its nodes were started: its sessions are
where ``ray start`` put them (``/tmp/ray`` by default) and its token is the one its nodes use.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

#: Longest Unix socket path (``sun_path``) Linux allows, less its NUL.
_SOCKET_MAX = 107
#: The longest socket path Ray creates below its temp dir (session name with a 7-digit pid).
_RAY_SOCKET_TAIL = "/session_2026-12-01_19-26-28_288170_4194304/sockets/plasma_store"
_SESSION = re.compile(r"^session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_(\d+)$")
#: Ended sessions of the private local Ray kept for debugging (the newest; the rest are removed).
KEEP_SESSIONS = 3


def cache_dir() -> Path:
    """``platformdirs.user_cache_dir("tagger")`` (``$XDG_CACHE_HOME/tagger``, ``~/.cache/tagger``)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("tagger"))


def library_env() -> dict[str, str]:
    """The environment that keeps Keras and Matplotlib files under tagger's cache folder."""
    base = cache_dir()
    return {"KERAS_HOME": str(base / "keras"), "MPLCONFIGDIR": str(base / "matplotlib")}


def isolate() -> dict[str, str]:
    """Set :func:`library_env` in ``os.environ`` (values already set are kept) and return the
    variables now in effect. Call before Keras or Matplotlib are imported (they read these once)."""
    out = {}
    for key, value in library_env().items():
        out[key] = os.environ.setdefault(key, value)
    return out


def ray_temp_dir() -> str | None:
    """``<cache>/ray`` for the private local Ray instance, or None (Ray's default, ``/tmp/ray``)
    when that path is too long for the Unix sockets Ray creates in it (a very long home path)."""
    path = str(cache_dir() / "ray")
    if len(path) + len(_RAY_SOCKET_TAIL) > _SOCKET_MAX:
        return None
    return path


def prune_ray_sessions(temp_dir: str | os.PathLike, *, keep: int = KEEP_SESSIONS) -> list[str]:
    """Remove ended sessions of the private Ray in ``temp_dir`` but the newest ``keep``.

    Ray never removes its sessions (in ``/tmp`` a reboot does); in a cache folder a nightly run
    would add one every night. A session whose creating process (the pid ending its name) is
    still running is never removed: another tagger run (another state database) may be using it.
    Returns the names removed."""
    root = Path(temp_dir)
    try:
        entries = sorted(p for p in root.iterdir() if _SESSION.match(p.name) and not p.is_symlink())
    except OSError:
        return []
    ended = [p for p in entries
             if (m := _SESSION.match(p.name)) is not None and not _pid_alive(int(m.group(1)))]
    removed = []
    for p in ended[: max(0, len(ended) - keep)]:  # names sort by time: the oldest first
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p.name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def private_ray_auth() -> None:
    """For a private local Ray instance: if Ray would create ``~/.ray/auth_token`` (token
    authentication on, no token given), give it a random token for this run instead, in the
    environment the instance inherits. Token authentication stays on; nothing is written."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    if (Path.home() / ".ray" / "auth_token").exists():
        return  # the person's own token: Ray uses it, and writes nothing
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
