"""``tagger undo RUN_ID``: put back the tag fields a run changed (tagger.undo does the work)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tagger.commands.common import echo, fail, setup_logging, verbosity
from tagger.commands.options import STATE_DB
from tagger.commands.runs import covered_text, mode_text, started_text
from tagger.errors import EXIT_FILES_FAILED, EXIT_OK, FatalError, TaggerError


def _complete_run_ids(ctx: click.Context, param, incomplete: str):
    """Shell completion of RUN_ID: the runs of the state database (the --state-db given
    earlier on the line, or the default), newest first, each with a short help. Never raises,
    never creates or changes a state database: a missing or broken one completes nothing."""
    from click.shell_completion import CompletionItem

    try:
        from tagger import state as st

        given = ctx.params.get("state_db")
        path = Path(given).expanduser() if given else st.default_state_path()
        items = []
        for r in st.peek_runs(path, limit=500):
            if not r.run_id.startswith(incomplete):
                continue
            what = f"undid {r.undo_of}" if r.undo_of else covered_text(r, 44)
            items.append(CompletionItem(r.run_id, help=f"{started_text(r)} {mode_text(r)}, {what}"))
        return items
    except Exception:
        return []


@click.command("undo")
@click.argument("run_id", shell_complete=_complete_run_ids)
@STATE_DB
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be restored.")
@click.option("--keep", is_flag=True,
              help="Do not re-analyse restored files on the next run (default: they are analysed again).")
@click.pass_context
def undo_cmd(ctx, run_id, state_db, dry_run, keep) -> None:
    """Restore the tag fields run RUN_ID changed, exactly as they were.

    RUN_ID comes from `tagger runs` (a unique start of it is enough; shell completion offers
    them, see the README). Files modified since that run are reported and left alone; files an
    earlier undo already put back are reported as already restored. Undoing an undo puts the
    run's tags back.
    """
    from tagger.lock import RunLock
    from tagger.state import StateDB, default_state_path
    from tagger.undo import undo_run

    setup_logging(verbose=verbosity(ctx))
    path = Path(state_db).expanduser() if state_db else default_state_path()
    if not path.exists():
        fail(ctx, FatalError(f"no state database at {path}: nothing to undo"))
    lock = RunLock(path)
    try:
        lock.acquire()
        with StateDB(path) as db:
            res = undo_run(db, run_id, dry_run=dry_run, retag=not keep, argv=sys.argv[1:])
    except TaggerError as exc:
        fail(ctx, exc)
        return
    finally:
        lock.release()
    verb = "would restore" if dry_run else "restored"
    for p in res.restored:
        echo(f"{verb}: {p}")
    for p, who in res.already_restored:
        echo(f"already restored: {p} (by {who})")
    for p, why in res.skipped_modified:
        echo(f"left alone (modified since that run): {p}: {why}", err=True)
    for p in res.missing:
        echo(f"missing (skipped): {p}", err=True)
    for p, why in res.failed:
        echo(f"failed: {p}: {why}", err=True)
    already = f"{len(res.already_restored)} already restored"
    if res.already_restored:
        already += f" (by {', '.join(dict.fromkeys(who for _, who in res.already_restored))})"
    click.echo(f"undo {res.run_id or run_id}: {len(res.restored)} {verb}, {already}, "
               f"{len(res.skipped_modified)} modified since, {len(res.missing)} missing, "
               f"{len(res.failed)} failed")
    ctx.exit(EXIT_FILES_FAILED if res.failed else EXIT_OK)

