"""The ``tagger`` command line: the group, its own options and the table of its commands.

Each command lives in a module of its own under :mod:`tagger.commands` and is imported only
when it runs (or its ``--help`` is asked for), so ``tagger --help`` and ``tagger tag`` start
fast; the plumbing they share (exit codes on usage errors, logging, one-line errors) is
:mod:`tagger.commands.common`. Heavy imports live inside the command bodies.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from tagger import __version__
from tagger.commands import common
from tagger.commands.common import (  # noqa: F401 - the public names of tagger.cli, kept for their users
    EXIT_CODES_HELP,
    Context,
    UsageExit,
    UsageExitGroup,
    echo,
    fail,
    setup_logging,
)


class LazyGroup(common.LazyGroup):
    """``tagger``'s commands: name -> (module, attribute, its line in ``tagger --help``)."""

    lazy = {
        "config": ("tagger.commands.config", "config_cmd",
                   "Print the effective settings for `tagger tag` and where each came from."),
        "evaluate": ("tagger.commands.evaluate", "evaluate_cmd",
                     "How the model agrees with the genres you wrote; writes nothing."),
        "explain": ("tagger.commands.explain", "explain_cmd", "Show why a track got its genre (picture or JSON)."),
        "info": ("tagger.commands.info", "info_cmd", "Show the model in use, versions, and the compute Ray sees."),
        "learn": ("tagger.commands.learn", "learn_cmd", "Learn your library's own genres from the genres you wrote."),
        "runs": ("tagger.commands.runs", "runs_cmd",
                 "List recent runs (newest first) with their ids, for `tagger undo`."),
        "tag": ("tagger.commands.tag", "tag_cmd",
                "Analyse PATHS (files or folders) and write predicted genres into the files."),
        "train": ("training.cli", "train", "Build, evaluate and export models (GTZAN or your own folders)."),
        "undo": ("tagger.commands.undo", "undo_cmd", "Restore the tag fields run RUN_ID changed, exactly as they were."),
    }


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagger")
@click.option("-v", "--verbose", count=True, help="More log output; -v shows tracebacks of errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """tagger: predict music genres with a CNN and write them into your files' tags."""
    ctx.obj = Context(verbose)
    from tagger import dirs

    dirs.isolate()  # Keras and Matplotlib files under tagger's cache folder, not ~/.keras, ~/.config
    if verbose >= 2:
        os.environ["TAGGER_TF_VERBOSE"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def entry() -> None:
    main()


#: Names that lived here before the commands had modules of their own -> where they are now
#: (imported on first use, so that ``tagger --help`` does not load every command).
_MOVED = {
    "tag_cmd": "tagger.commands.tag", "run_tag": "tagger.commands.tag", "TAG_HELP": "tagger.commands.tag",
    "info_cmd": "tagger.commands.info", "runs_cmd": "tagger.commands.runs", "run_folders": "tagger.commands.runs",
    "run_json": "tagger.commands.runs", "RUNS_WIDTH": "tagger.commands.runs", "undo_cmd": "tagger.commands.undo",
    "config_cmd": "tagger.commands.config", "explain_cmd": "tagger.commands.explain",
    "TqdmProgress": "tagger.commands.progress", "make_progress": "tagger.commands.progress",
}
_RENAMED = {"_TqdmProgress": ("tagger.commands.progress", "TqdmProgress"),
            "_make_progress": ("tagger.commands.progress", "make_progress"),
            "_h": ("tagger.commands.options", "option_help")}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    if name in _RENAMED:
        module, attr = _RENAMED[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
