"""Exceptions and exit codes shared by every command.

Every error that concerns one file derives from :class:`FileError` and carries the
path and a one-line reason; the pipeline turns it into a report row and goes on.
Errors that end a run derive from :class:`FatalError` and carry an exit code.
"""

from __future__ import annotations

from pathlib import Path

# Exit codes (documented in README and ``tagger tag --help``).
EXIT_OK = 0
EXIT_FATAL = 1  # fatal error: bad model or config file, Ray cannot start, corrupt state database
EXIT_FILES_FAILED = 2  # the run finished, but some files failed (cron/systemd treat it as done)
EXIT_USAGE = 64  # EX_USAGE (sysexits.h): a bad command line (unknown option, bad value); nothing ran
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock; cron may retry
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class TaggerError(Exception):
    """Base class of every error tagger raises on purpose."""


class FileError(TaggerError):
    """A problem with one file: reported, counted, never fatal to the run."""

    kind = "error"

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        # one line, always
        self.reason = " ".join(str(reason).split()) or self.kind
        super().__init__(f"{self.path}: {self.reason}")


class DecodeError(FileError):
    kind = "decode"


class AudioError(FileError):
    """The audio decoded but cannot be analysed (too short, silent, ...)."""

    kind = "audio"


class TagReadError(FileError):
    kind = "tag-read"


class TagWriteError(FileError):
    kind = "tag-write"


class JournalError(FileError):
    """The undo journal could not be saved ahead of a write: the file was left alone."""

    kind = "journal"


class FatalError(TaggerError):
    """Ends the run with one clear message and an exit code."""

    exit_code = EXIT_FATAL


class CommandLineError(FatalError):
    """A bad command line that Click's own checks do not catch (a value only tagger can judge).

    Exits :data:`EXIT_USAGE`, like Click's usage errors (see ``tagger.cli.UsageExit``), so a typo in
    a cron line never reads as "finished, some files failed" (2)."""

    exit_code = EXIT_USAGE


class ModelError(FatalError):
    """A missing, unreadable or inconsistent model or model metadata."""


class ParameterError(TaggerError, ValueError):
    """A bad parameter value passed to a pure function (librosa style)."""


class LockedError(FatalError):
    exit_code = EXIT_LOCKED


class StateError(FatalError):
    """A corrupt or unusable state database (never silently reset)."""
