"""One run at a time per state database: an advisory ``flock`` on ``<state>.lock``.

Nightly cron jobs overlap when a run takes longer than a day (a first run over a big library),
or when a person starts ``tagger tag`` by hand while cron's run is going. The second run must
not start: it would analyse the same files and race on the same tags. :class:`RunLock` takes an
exclusive, non-blocking ``fcntl.flock`` on ``<state path>.lock`` and writes who holds it::

    pid=1234 started=2026-11-22T02:00:00Z host=nas

A second run gets :class:`tagger.errors.LockedError` (exit code 75, ``EX_TEMPFAIL``: cron may
simply retry later) naming that holder.

The kernel drops a ``flock`` when its holder dies, however it dies, so a killed run never
blocks the next one. A killed run does leave its line in the file; the next run notices
(the file is not empty although nobody holds the lock), logs a warning naming the dead holder,
and takes over. The lock file is never deleted (deleting a flock'ed file lets two processes
each lock a different inode); release empties it instead.

Linux emulates ``flock`` with POSIX byte-range locks on NFS, so a state database on NFS is
locked across machines as long as the NFS lock service runs.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import logging
import os
import socket
from pathlib import Path

from tagger.errors import LockedError, StateError

log = logging.getLogger(__name__)


def lock_path_for(state_path: str | os.PathLike) -> Path:
    """``<state path>.lock`` (``state.db`` -> ``state.db.lock``)."""
    return Path(str(Path(state_path).expanduser()) + ".lock")


def parse_holder(text: str) -> dict[str, str]:
    """``"pid=1234 started=... host=nas"`` -> ``{"pid": "1234", "started": ..., "host": "nas"}``."""
    out: dict[str, str] = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if sep and key:
            out[key] = value
    return out


def describe_holder(holder: dict[str, str]) -> str:
    """``pid 1234, started 2026-11-22 02:00:00 UTC`` (plus ``on host X`` when it is another host)."""
    parts = []
    if holder.get("pid"):
        parts.append(f"pid {holder['pid']}")
    started = holder.get("started")
    if started:
        parts.append(f"started {_human_time(started)}")
    host = holder.get("host")
    if host and host != socket.gethostname():
        parts.append(f"on host {host}")
    return ", ".join(parts) if parts else "holder unknown (it has only just started)"


def _human_time(iso: str) -> str:
    try:
        t = _dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return iso
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


class RunLock:
    """Exclusive lock of one state database for one run.

    Use as a context manager (``with RunLock(state_path): ...``) or call :meth:`acquire` and
    :meth:`release`. Non-blocking: :meth:`acquire` raises :class:`~tagger.errors.LockedError`
    at once when another run holds the lock. Problems creating or writing the lock file (a
    read-only folder, a full disk) raise :class:`~tagger.errors.StateError` (exit 1, one line).

    The descriptor is not inherited by programs the run starts (``O_CLOEXEC``), so a worker
    process that outlives a killed run cannot keep the lock held.
    """

    def __init__(self, state_path: str | os.PathLike):
        self.state_path = Path(state_path).expanduser()
        self.path = lock_path_for(self.state_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise LockedError naming the holder (pid, start time, host)."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(
                f"cannot open the lock file {self.path}: {exc.strerror or exc}; check the permissions of "
                f"the file and its folder, or pass --state-db PATH to use another state database"
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = parse_holder(_read_all(fd))
                raise LockedError(
                    f"another tagger run holds the lock on {self.state_path}: {describe_holder(holder)}"
                ) from None
            previous = _read_all(fd).strip()
            if previous:
                holder = parse_holder(previous)
                log.warning(
                    "taking over the lock on %s left by a run that did not finish (%s): that process is gone",
                    self.state_path,
                    describe_holder(holder),
                )
            started = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            line = f"pid={os.getpid()} started={started} host={socket.gethostname()}\n"
            try:
                os.ftruncate(fd, 0)
                written = os.pwrite(fd, line.encode("utf-8"), 0)
                if written != len(line.encode("utf-8")):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError as exc:  # a full disk (ENOSPC), a quota (EDQUOT), an I/O error
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                raise StateError(
                    f"cannot write the lock file {self.path}: {exc.strerror or exc}; "
                    f"{'free some space on that disk, or ' if full else ''}pass --state-db PATH to keep "
                    f"the state database elsewhere"
                ) from None
        except BaseException:
            os.close(fd)  # closing drops the flock if we got it
            raise
        self._fd = fd
        log.debug("locked %s", self.path)

    def release(self) -> None:
        """Empty the lock file and unlock. Safe to call when not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError as exc:  # the lock still goes away with the descriptor
            log.warning("cannot empty the lock file %s: %s", self.path, exc.strerror or exc)
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        log.debug("unlocked %s", self.path)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock still goes away with the process; be tidy earlier
        if getattr(self, "_fd", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"RunLock({str(self.state_path)!r}, held={self.held})"


def _read_all(fd: int) -> str:
    chunks = []
    offset = 0
    while True:
        block = os.pread(fd, 4096, offset)
        if not block:
            break
        chunks.append(block)
        offset += len(block)
        if offset > 65536:  # a lock file is one short line; do not read a huge stray file
            break
    return b"".join(chunks).decode("utf-8", "replace")
