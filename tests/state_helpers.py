"""Helpers for the state / lock / undo / config tests (not fixtures of the whole suite)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path

NOBODY = 65534


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block with file permissions enforced.

    Tests often run as root (containers, CI), and root ignores permission bits. Then the block
    runs with effective uid/gid ``nobody`` (restored afterwards; the real uid stays root, so
    switching back is allowed). As an ordinary user, nothing changes.
    """
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@contextlib.contextmanager
def open_tmpdir() -> Iterator[Path]:
    """A temporary folder that ``nobody`` can reach (pytest's tmp_path sits below a 0700 folder)."""
    d = Path(tempfile.mkdtemp(prefix="tagger-state-test-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        for root, dirs, _files in os.walk(d):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(d, ignore_errors=True)


# -- a stand-in for tagger.tags in undo tests: a "tagged file" is a JSON document of its fields --


def write_fields(path: Path, fields: dict, *, mtime_ns: int | None = None) -> os.stat_result:
    """Write ``fields`` as the whole content of ``path``; optionally pin its mtime."""
    path.write_text(json.dumps(fields, sort_keys=True), encoding="utf-8")
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return os.stat(path)


def fake_tags_module(*, fail: dict[str, str] | None = None) -> types.ModuleType:
    """A module with ``snapshot_fields`` / ``restore_fields`` over :func:`write_fields` files.

    ``fail`` maps paths to a reason: restoring those raises TagWriteError. Each restore pins a
    new, distinct mtime so tests do not depend on the clock's resolution.
    """
    from tagger.errors import TagWriteError

    mod = types.ModuleType("tagger.tags")
    fail = dict(fail or {})
    mod.calls = []  # type: ignore[attr-defined]
    counter = [10**18]

    def snapshot_fields(path):
        return json.loads(Path(path).read_text(encoding="utf-8"))

    def restore_fields(path, before, *, before_save=None):
        mod.calls.append((str(path), before))  # type: ignore[attr-defined]
        if str(path) in fail:
            raise TagWriteError(path, fail[str(path)])
        if before_save is not None:  # the write-ahead journal, as tagger.tags calls it
            before_save(types.SimpleNamespace(before=snapshot_fields(path), after=before), os.stat(path))
        counter[0] += 1_000_000_007
        write_fields(Path(path), before, mtime_ns=counter[0])

    def fields_match(path, snapshot):
        return snapshot_fields(path) == snapshot

    mod.snapshot_fields = snapshot_fields  # type: ignore[attr-defined]
    mod.restore_fields = restore_fields  # type: ignore[attr-defined]
    mod.fields_match = fields_match  # type: ignore[attr-defined]
    return mod
