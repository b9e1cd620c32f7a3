"""tagger.lock: one run per state database, held across processes, taken over from dead holders."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.errors import EXIT_LOCKED, LockedError, StateError
from tagger.lock import RunLock, describe_holder, lock_path_for, parse_holder
from tests.state_helpers import open_tmpdir, unprivileged

# A child process that takes the lock, says so on stdout, and holds it until stdin closes.
HOLDER = r"""
import sys
from tagger.lock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
print("released", flush=True)
"""

pytestmark = pytest.mark.pure


class Holder:
    """A real second process holding the lock (synchronised through pipes, no sleeps)."""

    def __init__(self, state: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(state)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            self.proc.kill()
            raise AssertionError(f"holder did not lock: {line!r} {self.proc.stderr.read()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def finish(self) -> str:
        out, err = self.proc.communicate("", timeout=60)
        assert self.proc.returncode == 0, err
        return out.strip()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=60)
        assert self.proc.returncode == -signal.SIGKILL


@pytest.fixture
def state(tmp_path):
    return tmp_path / "st" / "state.db"


def test_lock_file_records_the_holder_and_is_emptied_on_release(state):
    lock = RunLock(state)
    assert lock.path == lock_path_for(state) == Path(str(state) + ".lock")
    lock.acquire()
    assert lock.held
    text = lock.path.read_text()
    assert re.fullmatch(r"pid=\d+ started=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ host=\S+\n", text)
    info = parse_holder(text)
    assert info["pid"] == str(os.getpid())
    lock.release()
    assert not lock.held
    assert lock.path.exists() and lock.path.read_text() == ""  # kept, emptied (never unlinked)
    lock.release()  # twice is fine
    with RunLock(state) as again:  # and it can be taken again
        assert again.held


def test_double_acquire_is_a_programming_error(state):
    with RunLock(state) as lock, pytest.raises(RuntimeError):
        lock.acquire()


def test_second_lock_in_the_same_process_is_refused(state):
    with RunLock(state), pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        RunLock(state).acquire()


def test_lock_held_by_another_process(state):
    holder = Holder(state)
    try:
        with pytest.raises(LockedError) as exc:
            RunLock(state).acquire()
        msg = str(exc.value)
        assert msg.startswith(f"another tagger run holds the lock on {state}: pid {holder.pid}, started ")
        assert re.search(r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", msg)
        assert "on host" not in msg  # same host
        assert exc.value.exit_code == EXIT_LOCKED == 75
    finally:
        assert holder.finish() == "released"
    with RunLock(state) as lock:  # free once the holder has finished
        assert parse_holder(lock.path.read_text())["pid"] == str(os.getpid())


def test_dead_holder_is_taken_over_with_a_warning(state, caplog):
    holder = Holder(state)
    pid = holder.pid
    holder.kill()  # SIGKILL: no release, its line stays in the file
    assert f"pid={pid} " in lock_path_for(state).read_text()
    with caplog.at_level(logging.WARNING, logger="tagger.lock"), RunLock(state) as lock:
        assert parse_holder(lock.path.read_text())["pid"] == str(os.getpid())
    assert "did not finish" in caplog.text and f"pid {pid}" in caplog.text


def test_clean_release_leaves_no_stale_warning(state, caplog):
    with caplog.at_level(logging.WARNING, logger="tagger.lock"):
        with RunLock(state):
            pass
        with RunLock(state):
            pass
    assert caplog.text == ""


def test_descriptor_is_close_on_exec(state):
    # A program the run starts (a Ray raylet, ffmpeg) must not inherit the lock: if it outlived a
    # killed run it would keep the lock held and block every later run.
    with RunLock(state) as lock:
        assert fcntl.fcntl(lock._fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert not os.get_inheritable(lock._fd)


def test_holder_description():
    assert describe_holder({}) == "holder unknown (it has only just started)"
    d = describe_holder(parse_holder("pid=42 started=2026-11-22T02:00:00Z host=some-other-host"))
    assert d == "pid 42, started 2026-11-22 02:00:00 UTC, on host some-other-host"


def test_unwritable_folder_is_a_state_error():
    with open_tmpdir() as d, unprivileged(), pytest.raises(StateError) as exc:
        RunLock(d / "state.db").acquire()
    assert "cannot open the lock file" in str(exc.value)


def test_lock_file_on_a_full_disk_is_one_clear_line_exit_1(tmp_path, monkeypatch):
    """ENOSPC while writing the holder line (the lock file is created, the disk is full): once
    'internal error (OSError ...)'. Now one line naming the file and what to do; the lock is
    not left held, and no run starts."""
    import errno

    from click.testing import CliRunner

    from tagger import lock as lock_mod
    from tagger.cli import main

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(lock_mod.os, "pwrite", full)
    (tmp_path / "empty").mkdir()
    state = tmp_path / "state.db"
    r = CliRunner().invoke(main, ["tag", str(tmp_path / "empty"), "--state-db", str(state)])
    assert r.exit_code == 1, r.output
    [line] = r.output.splitlines()
    assert line == (f"tagger: error: cannot write the lock file {state}.lock: No space left on device; "
                    "free some space on that disk, or pass --state-db PATH to keep the state database elsewhere")
    assert not state.exists()  # no run started
    monkeypatch.undo()
    with RunLock(state):  # not left locked
        pass
