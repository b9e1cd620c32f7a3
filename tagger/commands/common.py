"""The plumbing every command shares: exit codes on usage errors, the lazily loaded command
group, logging to the console and the log file, one-line errors (:func:`fail`) and
:func:`echo` for lines that may hold file names that are not valid UTF-8.

Nothing here imports more than click and the standard library (``tagger --help`` loads it), and
nothing here knows a command: the commands live in :mod:`tagger.commands`, one module each, and
:mod:`tagger.cli` puts them together.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

import click

from tagger.errors import EXIT_FATAL, EXIT_USAGE, TaggerError

EXIT_CODES_HELP = """\b
Exit codes:
  0    all well
  1    fatal error (bad model or config file, Ray cannot start, corrupt state database)
  2    finished, but some files failed (see the report / log)
  64   usage error: unknown option, bad option value, missing argument (nothing ran)
  75   another tagger run holds the lock (cron may simply retry later)
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM
"""


class UsageExit:
    """Mixin for Click groups: a usage error of the group or of any command below it (unknown
    option, bad value, missing argument, ``ctx.fail``) exits :data:`~tagger.errors.EXIT_USAGE`
    (64, EX_USAGE) instead of Click's 2, which tagger documents as "the run finished, some files
    failed" and which cron and systemd units treat as success. Click raises these errors while
    parsing (``make_context``) and inside sub-commands (``invoke``); both pass through here."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)  # type: ignore[misc]
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE  # type: ignore[misc]  # click types it ClassVar; click reads the instance's
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE  # type: ignore[misc]  # click types it ClassVar; click reads the instance's
            raise


class UsageExitGroup(UsageExit, click.Group):
    """A plain Click group with :class:`UsageExit` (``tagger train`` uses it)."""


class LazyGroup(UsageExit, click.Group):
    """A group whose sub-commands live in other modules, imported only when used (keeps
    ``--help`` and ``tag`` fast). Subclasses fill :attr:`lazy`."""

    #: command name -> (module, attribute, one line for the group's --help)
    lazy: ClassVar[dict[str, tuple[str, str, str]]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in self.lazy:
            return cmd
        module, attr, _ = self.lazy[cmd_name]
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                return None  # that part is not installed
            raise
        found: click.Command = getattr(mod, attr)
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            limit = formatter.width - 6 - len(name)
            if name in self.lazy and name not in self.commands:
                try:
                    if importlib.util.find_spec(self.lazy[name][0]) is None:
                        continue
                except ModuleNotFoundError:
                    continue
                # shortened as Click shortens a command's own help (without importing the command)
                rows.append((name, click.Command(name, help=self.lazy[name][2]).get_short_help_str(limit)))
            else:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class Context:
    """``ctx.obj`` of the root command: what every command may ask of the group's own options."""

    def __init__(self, verbose: int):
        self.verbose = verbose


def verbosity(ctx: click.Context) -> int:
    """The group's ``-v`` count (0 when a command runs without the group, as in a test)."""
    return int(getattr(ctx.find_root().obj, "verbose", 0) or 0)


class VisibleFormatter(logging.Formatter):
    """Log lines as valid UTF-8: a file name that is not valid UTF-8 shows its odd bytes as
    ``\\xNN`` (:func:`tagger.names.visible`) instead of making the handler fail (a UTF-8 stream
    refuses the surrogates ``os.fsdecode`` puts there, and logging then drops the line)."""

    def format(self, record: logging.LogRecord) -> str:
        from tagger.names import visible

        return visible(super().format(record))


def echo(message: str, **kwargs: Any) -> None:
    """``click.echo`` of a line that may hold file names that are not valid UTF-8."""
    from tagger.names import visible

    click.echo(visible(message), **kwargs)


def setup_logging(*, verbose: int = 0, quiet: bool = False, log_file: str | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tagger", False):
            root.removeHandler(h)
            h.close()  # a --log-file from an earlier set-up is closed, not left to the garbage collector
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING
    if quiet:
        level = logging.ERROR
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(VisibleFormatter("tagger: %(message)s"))
    console._tagger = True  # type: ignore[attr-defined]
    root.addHandler(console)
    if log_file:
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setLevel(logging.INFO)
        fh.setFormatter(VisibleFormatter("%(asctime)s %(levelname)s %(message)s"))
        fh._tagger = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    for noisy in ("ray", "absl", "tensorflow", "numba", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.INFO)


def fail(ctx: click.Context, exc: BaseException) -> None:
    """One clear line for known errors; a traceback only with -v. Ends the command with the
    error's exit code (1 unless it carries another)."""
    if verbosity(ctx):
        import traceback

        traceback.print_exception(exc)
    msg = str(exc) if isinstance(exc, TaggerError) else f"{type(exc).__name__}: {exc}"
    echo(f"tagger: error: {msg}", err=True)
    ctx.exit(getattr(exc, "exit_code", EXIT_FATAL))


def check_inputs(ctx: click.Context, paths: Sequence[str], reports: Sequence[str] = ()) -> None:
    """Before any work: every report path can be written (suffix, folder) and every path exists;
    else one line and the error's exit code (``tag``, ``learn``, ``evaluate``)."""
    import os

    from tagger.errors import FatalError
    from tagger.report import check_report_path

    for r in reports:
        try:
            check_report_path(r)
        except ValueError as exc:
            fail(ctx, FatalError(str(exc)))
    for p in paths:
        if not os.path.lexists(p):
            fail(ctx, FatalError(f"{p}: no such file or folder"))
