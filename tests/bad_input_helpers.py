"""Helpers of the bad-input and fault tests: running ``tagger tag`` over a corpus, snapshots of a
folder (bytes, decoded audio, other tags) to prove nothing else changed, and test doubles of the
Ray analyse task that inject faults *inside the worker process*.

The worker doubles (:func:`worker_double`) replace the task the pipeline submits
(``tagger.ray_backend.analyse_remote``, monkeypatched in the driver); nothing in tagger's own code
knows about them. They run the real :func:`tagger.analyse.analyse_file` with the real task options
(``num_cpus``, ``max_retries``), after injecting the fault named by a rule for that file:

``kill-once``      the worker SIGKILLs itself on the first attempt; the retry analyses normally
``kill-always``    the worker SIGKILLs itself on every attempt
``wait-for-kill``  first attempt: write the worker's pid to ``<state>/<file>.pid`` and block until
                   the test kills that process from outside; the retry analyses normally
``hang``           ``tagger.decode.decode`` blocks (bounded by ``HANG_SECONDS``) inside the worker,
                   whose pid is written to ``<state>/<file>.pid``
``as-nobody``      the analysis runs with effective uid/gid ``nobody`` (tests run as root, and root
                   ignores permission bits)

This module is pickled *by value* for the workers (``ray.cloudpickle.register_pickle_by_value``),
so it works whatever the workers' ``sys.path`` is; it imports only the standard library and
tagger at module level.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NOBODY = 65534
HANG_SECONDS = 120.0  # a hanging decode gives up after this long (the test never waits for it)
RULES = ("kill-once", "kill-always", "wait-for-kill", "hang", "as-nobody")


# --------------------------------------------------------------------------------------------------
# running the CLI


def tag_args(paths, model, state_db, *extra) -> list[str]:
    """``tagger tag`` arguments for a test run: the tiny model, a private state DB, every
    prediction confident enough to be written."""
    return ["tag", *[str(p) for p in paths], "--model", str(model.weights), "--state-db", str(state_db),
            "--min-confidence", "0", *extra]


def run_cli(args: list[str]):
    from click.testing import CliRunner

    from tagger.cli import main

    return CliRunner().invoke(main, args, catch_exceptions=False)


def report_rows(report: Path, root: Path) -> dict[str, dict[str, Any]]:
    """``{path relative to root: row}`` of a JSON report (paths outside root stay absolute)."""
    rows = {}
    for row in json.loads(Path(report).read_text())["files"]:
        p = Path(row["path"])
        key = p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)
        assert key not in rows, f"{key!r} reported twice"
        rows[key] = row
    return rows


def matches(text: str | None, alternatives: str) -> bool:
    """``text`` contains one of the ``|``-separated alternatives (case-insensitive)."""
    text = (text or "").lower()
    return any(a.lower() in text for a in alternatives.split("|"))


# --------------------------------------------------------------------------------------------------
# snapshots: proof that nothing else changed


def audio_digest(path: str | os.PathLike) -> str | None:
    """sha256 of every decoded sample (PyAV, in the decoder's own format, frame by frame: the
    memory of one frame). A damaged file decodes up to its first error, which is part of the
    digest; None when FFmpeg decodes nothing at all."""
    import av

    h = hashlib.sha256()
    n, error = 0, ""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                a = frame.to_ndarray()
                h.update(f"{a.dtype}{a.shape}".encode())
                h.update(a.tobytes())
                n += a.shape[-1]
    except Exception as exc:
        error = f":{type(exc).__name__}"
    return f"{n}{error}:{h.hexdigest()}" if n else None


_GENRE_KEYS = {"tcon", "genre", "\xa9gen", "gnre", "wm/genre", "wm/genreid"}


def other_tags(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Every tag field except the two tagger writes (genre, provenance), as sorted (key, value)
    pairs: mutagen's view plus libsndfile's string metadata (WAV INFO chunk, ...)."""
    import mutagen
    import soundfile as sf

    out: list[tuple[str, str]] = []
    try:
        f = mutagen.File(str(path))
    except Exception:
        f = None
    if f is not None and f.tags is not None:
        for key in f.tags.keys():
            k = str(key)
            if k.lower() in _GENRE_KEYS or "tagger_provenance" in k.lower():
                continue
            out.append((k, repr(f.tags[key])))
    with contextlib.suppress(Exception), sf.SoundFile(str(path)) as s:
        out.extend((f"sndfile:{k}", v) for k, v in s.copy_metadata().items() if k != "genre")
    return sorted(out)


def file_state(path: Path) -> dict[str, Any]:
    """What a file is: its bytes (digest), its decoded audio and its other tags; for a symbolic
    link, where it points."""
    if path.is_symlink():
        return {"link": os.readlink(path)}
    data = path.read_bytes()
    return {"sha": hashlib.sha256(data).hexdigest(), "size": len(data), "audio": audio_digest(path),
            "tags": other_tags(path), "mode": path.stat().st_mode}


def snapshot(root: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: file_state}`` of everything below ``root`` (links not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_dir() and not p.is_symlink():
                continue
            out[p.relative_to(root).as_posix()] = file_state(p)
    return out


def genres_of(path: Path) -> list[str]:
    """The genres a file carries now, read the way tagger reads them."""
    from tagger.tags import read_tags

    return list(read_tags(path).genres)


# --------------------------------------------------------------------------------------------------
# permissions


@contextlib.contextmanager
def effective_user(uid: int = NOBODY, gid: int = NOBODY) -> Iterator[None]:
    """Run the block with effective uid/gid ``uid``/``gid`` (root only; restored afterwards)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


# --------------------------------------------------------------------------------------------------
# worker doubles


def worker_double(rules: dict[str, str], *, state_dir: str | os.PathLike, warm_up: str | None = None):
    """A Ray task like ``tagger.ray_backend.analyse_remote()`` (same options) that injects the
    fault ``rules[file name]`` (or ``rules["*"]``) in the worker, then runs the real analysis.

    ``state_dir``: a folder the workers and the test share (attempt counters, pid files).
    ``warm_up``: a good file analysed as root before an ``as-nobody`` analysis, so that every
    module is imported before the effective user changes.
    """
    import sys

    import ray
    import ray.cloudpickle

    from tagger import ray_backend as rb

    bad = set(rules.values()) - set(RULES)
    if bad:
        raise ValueError(f"unknown rule(s) {sorted(bad)}")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    options = dict(rb.analyse_remote()._default_options)
    rules, state = dict(rules), str(state_dir)

    def analyse_file(path, *, params, policy):
        return _double(path, params=params, policy=policy, rules=rules, state=state, warm_up=warm_up)

    return ray.remote(**options)(analyse_file)


def install_double(monkeypatch, rules: dict[str, str], *, state_dir, warm_up: str | None = None):
    """Make the pipeline submit :func:`worker_double` instead of tagger's analyse task."""
    from tagger import ray_backend as rb

    double = worker_double(rules, state_dir=state_dir, warm_up=warm_up)
    monkeypatch.setattr(rb, "analyse_remote", lambda: double)
    return double


def task_options() -> dict[str, Any]:
    """The options of tagger's own analyse task (``max_retries``, ``num_cpus``)."""
    from tagger import ray_backend as rb

    return dict(rb.analyse_remote()._default_options)


def _key(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:12]


def attempts(state_dir: str | os.PathLike, name: str) -> int:
    """How many times the double started on the file called ``name``."""
    return sum(1 for p in Path(state_dir).glob(_key(name) + ".attempt.*"))


def pid_file(state_dir: str | os.PathLike, name: str) -> Path:
    return Path(state_dir) / (_key(name) + ".pid")


def _next_attempt(state: str, name: str) -> int:
    n = 1
    while True:
        try:
            os.close(os.open(os.path.join(state, f"{_key(name)}.attempt.{n}"), os.O_CREAT | os.O_EXCL, 0o666))
            return n
        except FileExistsError:
            n += 1


def _write_pid(state: str, name: str) -> None:
    tmp = pid_file(state, name).with_suffix(".tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, pid_file(state, name))  # appears complete or not at all


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _double(path, *, params, policy, rules, state, warm_up):
    from tagger.analyse import analyse_file

    name = os.path.basename(path)
    rule = rules.get(name, rules.get("*"))
    if rule is None:
        return analyse_file(path, params=params, policy=policy)
    attempt = _next_attempt(state, name)
    if rule == "kill-always" or (rule == "kill-once" and attempt == 1):
        os.kill(os.getpid(), signal.SIGKILL)
    if rule == "wait-for-kill" and attempt == 1:
        _write_pid(state, name)
        deadline = time.monotonic() + HANG_SECONDS
        while time.monotonic() < deadline:  # blocked "mid-task" until the test kills this process
            time.sleep(0.05)
    if rule == "hang":
        import tagger.decode

        _write_pid(state, name)

        real = tagger.decode.decode

        def hanging_decode(*args, **kwargs):
            deadline = time.monotonic() + HANG_SECONDS
            while time.monotonic() < deadline:
                time.sleep(0.05)
            return real(*args, **kwargs)

        tagger.decode.decode = hanging_decode
        try:
            return analyse_file(path, params=params, policy=policy)
        finally:
            tagger.decode.decode = real
    if rule == "as-nobody":
        if warm_up:
            analyse_file(warm_up, params=params, policy=policy)
        with effective_user():
            return analyse_file(path, params=params, policy=policy)
    return analyse_file(path, params=params, policy=policy)


def wait_for(predicate, *, timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true (a condition wait with a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)
