"""``tagger runs``: recent runs with their ids (for ``tagger undo``), on one line each or as JSON.

The pure helpers (what a run covered, fitted to a line) are shared with the shell completion
of ``tagger undo RUN_ID``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from tagger.commands.common import fail
from tagger.commands.options import STATE_DB
from tagger.errors import TaggerError

#: Width `tagger runs` keeps its lines within (the folder list is shortened to fit).
RUNS_WIDTH = 120
#: Order of the counts in `tagger runs` (others follow, alphabetically).
_COUNT_ORDER = ("tagged", "would tag", "skipped", "uncertain", "failed", "restored", "already_restored",
                "modified", "missing")


def _shown(path: str) -> str:
    """A path for the terminal: bytes that are not UTF-8 as ``\\xNN`` escapes (never a crash)."""
    from tagger.names import visible

    return visible(path)


def run_folders(run) -> list[str] | None:
    """The PATHS a ``tagger tag`` run covered: recorded (``options["paths"]``, absolute) or, for
    runs recorded before that, parsed from its argv (as typed: relative ones stay relative).
    None when unknown (an undo run, or an argv that is not a `tagger tag` command line)."""
    if run.undo_of:
        return None
    if run.paths is not None:
        return run.paths
    argv = [a for a in run.argv if isinstance(a, str)]
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # the group's own options (-v)
        i += 1
    if i >= len(argv) or argv[i] != "tag":
        return None
    from tagger.commands.tag import tag_cmd

    try:
        with tag_cmd.make_context("tag", argv[i + 1:], resilient_parsing=True) as ctx:
            found = list(ctx.params.get("paths") or ())
    except (click.ClickException, click.exceptions.Exit, ValueError, TypeError):
        return None
    return found or None


def _fit_list(items: list[str], width: int) -> str:
    """``a, b, c`` within ``width`` characters: as many as fit, then ``… +N more``; one item too
    long on its own keeps its end (the folder's own name), cut at the start with ``…``."""
    full = ", ".join(items)
    if len(full) <= width:
        return full
    for k in range(len(items) - 1, 0, -1):
        text = ", ".join(items[:k]) + f" … +{len(items) - k} more"
        if len(text) <= width:
            return text
    more = f" … +{len(items) - 1} more" if len(items) > 1 else ""
    room = max(width - len(more) - 1, 8)
    tail = items[0][-room:]
    cut = tail.find("/", 1)
    if 0 < cut < len(tail) - 1:
        tail = tail[cut:]  # start at a folder boundary: …/lib/album0, not …3/lib/album0
    return "…" + tail + more


def _fit_folders(folders: list[str], width: int) -> str:
    """Folders within ``width``: all of them; else, when they share a parent, that parent once
    (``/music/{Jazz, Rock}``, shell brace style); else as many as fit (:func:`_fit_list`)."""
    full = ", ".join(folders)
    if len(full) <= width or len(folders) < 2:
        return _fit_list(folders, width)
    try:
        common = os.path.commonpath(folders)
    except ValueError:  # relative and absolute mixed
        common = ""
    rel = [os.path.relpath(f, common) for f in folders] if common not in ("", os.sep) else []
    if rel and all(r != os.curdir and not r.startswith(os.pardir) for r in rel):
        head = os.path.join(common, "{")
        inner = _fit_list(rel, width - len(head) - 1) if width - len(head) - 1 >= len(rel[0]) else ""
        if inner and not inner.startswith("…"):  # at least one whole name in the braces
            return head + inner + "}"
    return _fit_list(folders, width)


def covered_text(run, width: int) -> str:
    """What a run covered, for one line: its folders, or for an undo the run it undid."""
    if run.undo_of:
        return f"undid {run.undo_of}"
    folders = run_folders(run)
    if not folders:
        return "?"
    return _fit_folders([_shown(f) for f in folders], width)


def _counts_text(counts: dict) -> str:
    keys = [k for k in _COUNT_ORDER if k in counts] + sorted(k for k in counts if k not in _COUNT_ORDER)
    text = ", ".join(f"{counts[k]} {k.replace('_', ' ')}" for k in keys if counts[k])
    return text or "nothing"


def mode_text(run) -> str:
    return "dry run" if run.dry_run else "real"


def started_text(run, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """The start in local time, to the minute (the run id says it in UTC, to the second)."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(str(run.started).replace("Z", "+00:00")).astimezone().strftime(fmt)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(run.started)[:16].replace("T", " ")


def run_json(run) -> dict:
    """One run for `tagger runs --json`: every field of RunInfo, then undo_of and folders."""
    import dataclasses

    out = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
    out["undo_of"] = run.undo_of
    out["folders"] = run_folders(run)
    return out


def _json_default(obj):
    if isinstance(obj, (bytes, bytearray)):
        return os.fsdecode(bytes(obj))
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


RUNS_HELP = """List recent runs (newest first) with their ids, for `tagger undo`.

\b
One line per run:
  run id         give it (or a unique start of it) to `tagger undo`
  started        month-day hour:minute, local time (the run id: the start in UTC)
  status         finished, interrupted, failed, running; undo for `tagger undo`
  mode           real, or dry run (wrote nothing)
  changed        files whose tags the run wrote (what undo can restore)
  counts         what happened to the files
  covered        the folders the run covered; for an undo, the run it undid

Long folder lists are shortened (siblings as /music/{Jazz, Rock}, then … +N more); --json
has them all. Names that are not valid UTF-8 show their odd bytes as \\xNN; in --json they are
strings with \\udcNN escapes (Python's os.fsdecode: os.fsencode gives the bytes back).
"""


@click.command("runs", help=RUNS_HELP)
@STATE_DB
@click.option("--limit", type=click.IntRange(min=0), default=30, show_default=True,
              help="Show at most N runs (0: all).")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list of the runs, newest first: every recorded field and the folders.")
@click.pass_context
def runs_cmd(ctx, state_db, limit, as_json) -> None:
    import json

    from tagger.state import StateDB, default_state_path

    path = Path(state_db).expanduser() if state_db else default_state_path()
    if not path.exists():
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"no runs yet (no state database at {path})")
        return
    try:
        with StateDB(path) as db:
            runs = db.runs(limit=limit or None)
    except TaggerError as exc:
        fail(ctx, exc)
        return
    if as_json:
        click.echo(json.dumps([run_json(r) for r in runs], indent=2, default=_json_default))
        return
    if not runs:
        click.echo("no runs yet")
        return
    # fixed columns, the counts (aligned while short), then what the run covered in the rest
    counts = [_counts_text(r.counts) for r in runs]
    cw = min(max(len("counts"), *map(len, counts)), 28)
    click.echo(f"{'run id':<20} {'started':<11} {'status':<11} {'mode':<7} {'changed':>7}  "
               f"{'counts':<{cw}}  covered")
    for r, c in zip(runs, counts):
        line = (f"{r.run_id:<20} {started_text(r, '%m-%d %H:%M'):<11} {r.status:<11} {mode_text(r):<7} "
                f"{r.files_changed:>7}  {c:<{cw}}  ")
        click.echo(line + covered_text(r, max(RUNS_WIDTH - len(line), 16)))

