"""Damage-free saving: every save goes to a verified copy that atomically replaces the original,
or — where replacing would break something (hard links, an owner we cannot give the copy) — to the
file itself with a byte backup that is put back if anything fails.

All failures leave the original byte-identical and raise :class:`~tagger.errors.TagWriteError`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import stat
from typing import Any

from tagger.errors import TagWriteError
from tagger.tags._base import Handler, describe, detect_format, guard

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tagger-tmp"
BAK_SUFFIX = ".tagger-bak"
_COPY_BLOCK = 1 << 20


class FileChangedError(TagWriteError):
    """The file changed since it was analysed (or while tagger was writing it); it was left alone."""

    kind = "changed"


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders; the rename is done all the same
        pass
    finally:
        os.close(fd)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def check_unchanged(path: str, st: os.stat_result, shown: str) -> None:
    now = os.stat(path)
    if _identity(now) != _identity(st):
        raise FileChangedError(shown, "file changed while tagger was writing it; left alone")


def _can_give_owner(st: os.stat_result) -> bool:
    """Whether a new file can get the original's owner and group."""
    if not hasattr(os, "geteuid"):  # no POSIX owners (Windows)
        return True
    if os.geteuid() == 0:
        return True
    if st.st_uid != os.geteuid():
        return False
    return st.st_gid == os.getegid() or st.st_gid in os.getgroups()


def _access(path: str, mode: int) -> bool:
    """os.access for the *effective* user (the one whose writes count), where the OS allows."""
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def check_writable(real: str, st: os.stat_result, shown: str) -> None:
    """Refuse read-only files and folders (TagWriteError), as a real write would."""
    if not stat.S_ISREG(st.st_mode):
        raise TagWriteError(shown, "not a regular file")
    if not _access(real, os.W_OK):
        raise TagWriteError(shown, "file is read-only")
    folder = os.path.dirname(real) or "."
    if not _access(folder, os.W_OK | os.X_OK):
        raise TagWriteError(shown, "folder is read-only")


def _same_bytes(a: str, b: str) -> bool:
    def digest(p: str) -> bytes:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(_COPY_BLOCK), b""):
                h.update(block)
        return h.digest()

    return os.path.getsize(a) == os.path.getsize(b) and digest(a) == digest(b)


def verify(
    target: str,
    *,
    fmt: str,
    kind: str,
    handler_cls: type[Handler],
    expected: dict[str, Any],
    genres: tuple[str, ...] | None,
    shown: str,
) -> dict[str, Any]:
    """Re-read ``target`` from scratch; raise TagWriteError unless it carries ``expected``.

    Returns the snapshot read back.
    """
    with guard(shown, TagWriteError, fmt=fmt, prefix="written file does not read back: "):
        fmt2, kind2 = detect_format(target, TagWriteError)
        if (fmt2, kind2) != (fmt, kind):
            raise TagWriteError(shown, f"written file is no longer {fmt} (detected {fmt2})")
        h = handler_cls(target, fmt, kind)
        snap = h.snapshot()
        got_genres = h.genres()
    if handler_cls.comparable(snap) != handler_cls.comparable(expected):
        raise TagWriteError(
            shown, "verification failed: the tags written do not read back (is the file damaged?); left alone"
        )
    if genres is not None and tuple(got_genres) != tuple(genres):
        raise TagWriteError(
            shown, f"verification failed: genres read back as {list(got_genres)!r}, not {list(genres)!r}"
        )
    return snap


def save_safely(
    real: str,
    st: os.stat_result,
    handler: Handler,
    *,
    expected: dict[str, Any],
    genres: tuple[str, ...] | None,
    shown: str,
) -> dict[str, Any]:
    """Save ``handler``'s changed tags into ``real`` without ever damaging it.

    Returns the snapshot read back from the saved file.
    """
    check = {
        "fmt": handler.fmt,
        "kind": handler.kind,
        "handler_cls": type(handler),
        "expected": expected,
        "genres": genres,
        "shown": shown,
    }
    if st.st_nlink > 1 or not _can_give_owner(st):
        return _save_in_place(real, st, handler, check, shown)
    return _save_via_copy(real, st, handler, check, shown)


def name_max(folder: str) -> int:
    """The longest file name (in bytes) the file system of ``folder`` allows (255 where it
    does not say)."""
    try:
        n = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no answer
        return 255
    return n if isinstance(n, int) and n >= 32 else 255


def temp_name(name: str, suffix: str, *, limit: int = 255, token: str = "") -> str:
    """The name of a temporary file beside the file called ``name``:
    ``.<name>.<token><suffix>``, hidden (tagger's walk skips it) and recognisable, and never
    longer than ``limit`` bytes.

    Where the whole name does not fit, its start is kept (cut at a character boundary) and a
    hash of the whole name added: ``.<start of name>~<8 hex>.<token><suffix>``. A temporary
    copy must fit wherever the file fits, or a file with a long name could never be tagged.
    """
    raw = os.fsencode(name)
    room = limit - len(b"." + b"." + os.fsencode(token) + os.fsencode(suffix))
    if len(raw) > room:
        digest = hashlib.sha256(raw).hexdigest()[:8]
        cut = raw[: max(0, room - 1 - len(digest))]
        for drop in range(min(4, len(cut)) + 1):  # do not split a UTF-8 character
            try:
                cut[: len(cut) - drop].decode("utf-8")
            except UnicodeDecodeError:
                continue
            cut = cut[: len(cut) - drop]
            break
        raw = cut + b"~" + digest.encode()
    return "." + os.fsdecode(raw) + "." + token + suffix


def leftovers(real: str, suffix: str) -> list[str]:
    """Temporary files (:func:`temp_name` with ``suffix``) a killed run left beside ``real``."""
    import re

    folder = os.path.dirname(real) or "."
    probe = temp_name(os.path.basename(real), suffix, limit=name_max(folder), token="\0" * 8)
    pattern = re.compile(re.escape(probe).replace(re.escape("\0" * 8), "[0-9a-f]{8}") + r"\Z", re.S)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(os.path.join(folder, n) for n in names if pattern.match(n))


def open_temp_beside(real: str, suffix: str, *, mode: int = 0o600) -> tuple[int, str]:
    """Create a new, empty temporary file in ``real``'s folder (see :func:`temp_name`);
    returns ``(fd, path)``. ``mode`` is masked by the umask, as for any new file."""
    folder = os.path.dirname(real) or "."
    limit = name_max(folder)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, temp_name(os.path.basename(real), suffix, limit=limit,
                                             token=os.urandom(4).hex()))
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.path.join(folder, "." + suffix))


def _temp_beside(real: str, suffix: str) -> str:
    fd, tmp = open_temp_beside(real, suffix)
    os.close(fd)
    return tmp


def _save_via_copy(
    real: str, st: os.stat_result, handler: Handler, check: dict, shown: str
) -> dict[str, Any]:
    tmp = None
    try:
        with guard(shown, TagWriteError, fmt=handler.fmt):
            tmp = _temp_beside(real, TMP_SUFFIX)
            shutil.copyfile(real, tmp)
            shutil.copystat(real, tmp)  # permissions (and extended attributes) of the original
            if hasattr(os, "geteuid") and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                os.chown(tmp, st.st_uid, st.st_gid)
            check_unchanged(real, st, shown)
            handler.save(tmp)
            _fsync_path(tmp)
            after = verify(tmp, **check)
            check_unchanged(real, st, shown)
            os.replace(tmp, real)
            tmp = None
            _fsync_dir(os.path.dirname(real) or ".")
        return after
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _copy_back(backup: str, real: str) -> None:
    """Put the backup's bytes back into ``real`` (same inode: hard links stay linked)."""
    with open(backup, "rb") as src, open(real, "r+b") as dst:
        shutil.copyfileobj(src, dst, _COPY_BLOCK)
        dst.truncate()
        dst.flush()
        os.fsync(dst.fileno())


def _save_in_place(
    real: str, st: os.stat_result, handler: Handler, check: dict, shown: str
) -> dict[str, Any]:
    backup = None
    with guard(shown, TagWriteError, fmt=handler.fmt, prefix="cannot back up the file: "):
        try:
            backup = _temp_beside(real, BAK_SUFFIX)
            shutil.copyfile(real, backup)
            _fsync_path(backup)
        except BaseException:
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
            raise
    try:
        with guard(shown, TagWriteError, fmt=handler.fmt):
            check_unchanged(real, st, shown)
            handler.save(real)
            _fsync_path(real)
            after = verify(real, **check)
    except BaseException as exc:
        try:
            _copy_back(backup, real)
            if not _same_bytes(backup, real):
                raise OSError("restored copy differs from the backup")
        except Exception as again:
            reason = exc.reason if isinstance(exc, TagWriteError) else describe(exc, fmt=handler.fmt)
            log.error(
                "%s: restoring after a failed write failed (%s); original kept in %s", real, again, backup
            )
            raise TagWriteError(
                shown,
                f"{reason}; putting the original back failed too ({describe(again)}); it is kept in {backup}",
            ) from exc
        os.unlink(backup)
        raise
    os.unlink(backup)
    return after


def stat_target(path: str, shown: str) -> tuple[str, os.stat_result]:
    """The real path behind ``path`` (symbolic links followed) and its stat."""
    with guard(shown, TagWriteError):
        real = os.path.realpath(path)
        st = os.stat(real)
    return real, st
