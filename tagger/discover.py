"""Find the audio files to tag: a sorted, ignore-aware, loop-safe recursive walk.

Pure standard library (no numpy, TensorFlow or Ray) so a no-op re-run stays fast.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tagger.formats import EXTENSIONS

log = logging.getLogger(__name__)

#: Extensions tagger reads and writes (the one table: tagger.formats).
AUDIO_EXTS = EXTENSIONS


@dataclass(frozen=True)
class Found:
    path: str  # absolute, not resolved through symlinks (what the user sees)
    size: int
    mtime_ns: int


@dataclass
class Problem:
    """Something the walk met that gets a report row of its own: ``failed`` (unreadable
    folders, link loops, ...) or ``skipped`` (named like audio but not a file tagger can
    read: a FIFO, a socket, a device, a folder)."""

    path: str
    reason: str
    action: str = "failed"


def _not_regular(mode: int) -> str:
    """Why a path named like an audio file, of this ``st_mode``, is not one, in words."""
    if stat.S_ISDIR(mode):
        return "a folder named like an audio file, not a file (the files in it are walked as usual)"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")
    return f"not a regular file ({kind}); left alone"


def is_excluded(rel: str, name: str, patterns: Iterable[str]) -> bool:
    """A pattern matches the path relative to its root (``Live/*``), or the bare name (``*.tmp``)."""
    for pat in patterns:
        pat = pat.rstrip("/")
        if fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(name, pat):
            return True
        if fnmatch.fnmatchcase(rel, pat + "/*"):  # a directory pattern excludes what is below it
            return True
    return False


def walk(
    paths: Iterable[str | os.PathLike],
    *,
    exclude: Iterable[str] = (),
    problems: list[Problem] | None = None,
) -> Iterator[Found]:
    """Yield audio files under ``paths`` in sorted order, each at most once.

    Hidden files and folders (names starting with '.') are skipped, and so is anything matching an
    ``exclude`` glob. Symbolic links are followed, but a directory already visited (by its device and
    inode) is not entered again, so symlink loops cannot hang the walk. Problems (unreadable folders,
    dangling links, missing paths) are appended to ``problems`` and the walk goes on.
    """
    exclude = tuple(exclude)
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    problems = problems if problems is not None else []

    for root in paths:
        root_path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
        try:
            st = root_path.stat()
        except OSError as exc:
            problems.append(Problem(str(root_path), f"cannot read: {exc.strerror or exc}"))
            continue
        if root_path.is_dir():
            yield from _walk_dir(root_path, root_path, exclude, seen_dirs, seen_files, problems)
        elif not _is_regular(st.st_mode):  # a FIFO would block the first open() for ever
            key = (st.st_dev, st.st_ino)
            if key not in seen_files:
                seen_files.add(key)
                problems.append(Problem(str(root_path), _not_regular(st.st_mode), "skipped"))
        elif root_path.suffix.lower() in AUDIO_EXTS:
            key = (st.st_dev, st.st_ino)
            if key not in seen_files:
                seen_files.add(key)
                yield Found(str(root_path), st.st_size, st.st_mtime_ns)
        else:
            problems.append(Problem(str(root_path), "not a supported audio file (by extension)"))


def _walk_dir(root, directory, exclude, seen_dirs, seen_files, problems) -> Iterator[Found]:
    try:
        st = directory.stat()
    except OSError as exc:
        problems.append(Problem(str(directory), f"cannot read folder: {exc.strerror or exc}"))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen_dirs:
        if directory.is_symlink():
            log.debug("%s: symlink to a folder already visited; not entered again", directory)
        return
    seen_dirs.add(key)
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        problems.append(Problem(str(directory), f"cannot list folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        path = Path(entry.path)
        rel = path.relative_to(root).as_posix()
        if exclude and is_excluded(rel, name, exclude):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            if os.path.splitext(name)[1].lower() in AUDIO_EXTS:
                with contextlib.suppress(OSError):  # unreadable: _walk_dir says so
                    dst = entry.stat(follow_symlinks=True)
                    if (dst.st_dev, dst.st_ino) not in seen_dirs:  # once, however often it is reached
                        problems.append(Problem(str(path), _not_regular(dst.st_mode), "skipped"))
            yield from _walk_dir(root, path, exclude, seen_dirs, seen_files, problems)
            continue
        if os.path.splitext(name)[1].lower() not in AUDIO_EXTS:
            continue
        try:
            fst = entry.stat(follow_symlinks=True)
        except OSError as exc:
            hint = " (dangling link?)" if isinstance(exc, FileNotFoundError) and entry.is_symlink() else ""
            problems.append(Problem(str(path), f"cannot read: {exc.strerror or exc}{hint}"))
            continue
        fkey = (fst.st_dev, fst.st_ino)
        if not _is_regular(fst.st_mode):
            if fkey not in seen_files:  # once, however often it is reached
                seen_files.add(fkey)
                problems.append(Problem(str(path), _not_regular(fst.st_mode), "skipped"))
            continue
        if fkey in seen_files:
            continue  # the same file reached twice (a link): tag it once
        seen_files.add(fkey)
        yield Found(str(path), fst.st_size, fst.st_mtime_ns)


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def format_of(path: str) -> str:
    return AUDIO_EXTS.get(os.path.splitext(path)[1].lower(), "unknown")
