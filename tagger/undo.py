"""``tagger undo RUN``: put back the tag fields a run changed, from its journal.

Every tag write of a run is journaled (:meth:`tagger.state.StateDB.journal_add`) with the
touched fields before and after, and the file's size and mtime right after the write. Undo goes
through the run's entries, latest first:

* the file no longer exists -> ``missing`` (reported, nothing to do);
* its size or mtime differ from the journal's "after" values -> it was changed since (by a
  person, another program, or a later tagger run) -> ``skipped_modified`` with the reason,
  left alone (undo never overwrites changes it did not make; undo the later run first when the
  reason names one). The one exception: the last change was tagger's own and put back exactly
  the fields this run wrote (the later run was undone first) -> restored;
* the file is exactly as a later undo left it, and that undo put back the fields this undo
  would (typically: this run was undone already) -> ``already_restored`` with the undo run that
  did it; neither restored again nor counted as modified;
* otherwise the fields are restored (``tagger.tags.restore_fields``) -> ``restored``; a
  restore that fails -> ``failed`` with the one-line reason.

Every journal entry is written *ahead* of its file write (``pending``) and settled after it.
An entry left pending (the run was killed between the two, or the database refused the second
update) is settled by :func:`resolve_pending` before the next ``tagger tag`` and before every
undo, by looking at the file: it carries the intended fields -> the write happened (``done``,
with the file's size and mtime now, so undo restores it); it is as it was -> the write did not
happen (the entry is dropped); anything else -> changed since by someone else (``done`` with an
unknown size, so undo reports it changed and leaves it alone).

The undo is itself recorded as a run (status ``undo``, ``options["undo_of"]`` = the undone
run) with a journal of its own restores, so an undo can be undone in turn (a redo).

State after a restore: by default (``retag=True``) undo makes the file look as if the run never
happened: the file's state record is dropped, so the next ``tagger tag`` analyses it again
(with whatever model and options are then in effect; change them first, or the same run will
repeat). With ``retag=False`` (CLI ``--keep``) the record says ``undone`` with the file's new
size and mtime: later runs of the *same model* leave the file alone until it changes (or
``--force``); a different model still analyses it.

The caller holds the :class:`tagger.lock.RunLock` of the state database, like ``tagger tag``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from tagger.errors import FatalError, FileError
from tagger.state import JournalEntry, StateDB, WriteAhead, new_run_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UndoResult:
    """What an undo did (or, for a dry run, would do), path lists in the order handled."""

    restored: list[str]  # fields put back (dry run: would be)
    skipped_modified: list[tuple[str, str]]  # (path, reason): changed since the run, left alone
    missing: list[str]  # no longer exists
    failed: list[tuple[str, str]]  # (path, one-line reason)
    #: (path, who): the file already holds the fields undo would put back, and ``who``
    #: ("undo run ID", or "run ID" for another kind of run) is the run that put them there
    already_restored: list[tuple[str, str]] = field(default_factory=list)
    run_id: str = ""  # the run undone
    undo_id: str = ""  # the run recording this undo
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing failed (modified and missing files are not failures)."""
        return not self.failed


def _tags():
    # Imported at call time (mutagen is not needed to list runs), and through importlib so a
    # test can stand in a module for tagger.tags.
    return importlib.import_module("tagger.tags")


@dataclass(frozen=True)
class Settled:
    """How :func:`resolve_pending` settled one pending journal entry."""

    entry: JournalEntry
    outcome: str  # written | not written | changed | missing
    detail: str = ""


def resolve_pending(db: StateDB) -> list[Settled]:
    """Settle every journal entry whose write may or may not have happened, by looking at its
    file (see the module docstring). Logs one line per entry; returns what was done.

    Cheap when there is nothing pending (one indexed query; tagger.tags is not imported).
    """
    pending = db.pending_journal()
    if not pending:
        return []
    tags = _tags()
    out: list[Settled] = []
    for e in pending:
        _put_back_interrupted_in_place_write(e)
        try:
            st = os.stat(e.path)
        except FileNotFoundError:
            db.journal_void(e.id)
            out.append(Settled(e, "missing"))
            log.warning("run %s was stopped while writing %s; the file no longer exists", e.run_id, e.path)
            continue
        except OSError as exc:
            log.warning("run %s was stopped while writing %s; cannot look at it now (%s): settled later",
                        e.run_id, e.path, exc.strerror or exc)
            continue
        try:
            written = tags.fields_match(e.path, e.after)
            unwritten = not written and tags.fields_match(e.path, e.before)
        except FileError as exc:
            written = unwritten = False
            detail = exc.reason
        else:
            detail = ""
        if written:
            db.journal_done(e.id, size_after=st.st_size, mtime_ns_after=st.st_mtime_ns)
            out.append(Settled(e, "written"))
            log.warning("run %s was stopped while writing %s: the write had happened (journaled; "
                        "`tagger undo %s` restores it)", e.run_id, e.path, e.run_id)
        elif unwritten and (st.st_size, st.st_mtime_ns) == (e.size_before, e.mtime_ns_before):
            db.journal_void(e.id)
            out.append(Settled(e, "not written"))
            log.warning("run %s was stopped before writing %s: the file is as it was", e.run_id, e.path)
        else:
            # neither what was there nor what tagger meant to write: someone changed it since.
            # Kept with an unknown size, so undo says "changed since" and leaves it alone.
            db.journal_done(e.id, size_after=-1, mtime_ns_after=-1)
            out.append(Settled(e, "changed", detail))
            log.warning("run %s was stopped while writing %s, and the file has changed since%s: "
                        "undo will leave it alone", e.run_id, e.path, f" ({detail})" if detail else "")
    return out


def _put_back_interrupted_in_place_write(e: JournalEntry) -> None:
    """A killed run leaves at most one of tagger's temporaries beside a file: a copy that never
    replaced it (removed: the file itself is whole), or the byte backup of a file written in
    place (hard links), whose bytes are put back (and the file's modification time before the
    write), whether or not the write had finished: the file is then exactly as it was."""
    path = e.path
    try:
        from tagger.tags import _safe
    except ImportError:  # a stand-in for tagger.tags (tests of undo alone)
        return
    real = os.path.realpath(path)
    for tmp in _safe.leftovers(real, _safe.TMP_SUFFIX):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
            log.info("removed %s, a temporary copy a killed run left behind", tmp)
    for backup in _safe.leftovers(real, _safe.BAK_SUFFIX):
        try:
            _safe._copy_back(backup, real)
            if not _safe._same_bytes(backup, real):
                raise OSError("the copy differs from the backup")
        except OSError as exc:
            log.error("%s: cannot put back the backup %s of an interrupted write (%s); it is kept",
                      path, backup, exc.strerror or exc)
            continue
        os.unlink(backup)
        if e.mtime_ns_before is not None:
            with contextlib.suppress(OSError):
                os.utime(real, ns=(os.stat(real).st_atime_ns, e.mtime_ns_before))
        log.warning("%s: an in-place write was interrupted; the file's original bytes were put back "
                    "from %s", path, backup)


def undo_run(
    db: StateDB,
    run_id: str,
    *,
    dry_run: bool = False,
    retag: bool = True,
    argv: Sequence[str] = (),
) -> UndoResult:
    """Restore the tag fields run ``run_id`` (an id or a unique prefix) changed.

    ``dry_run``: check every file and report what would be restored; write nothing (the undo
    is recorded as a dry run). ``retag``: see the module docstring. ``argv`` is recorded with
    the undo run. Raises FatalError when no run matches ``run_id``; per-file problems end up
    in the result, never raised.
    """
    info = db.run(run_id)
    if info is None:
        raise FatalError(f"no run {run_id!r} in the state database {db.path}: `tagger runs` lists them")
    resolve_pending(db)
    entries = db.journal(info.run_id)

    # One group per path, latest write first; the check uses the latest write's "after", the
    # restore the earliest write's "before" (a run may write a file more than once).
    groups: dict[str, list[JournalEntry]] = {}
    for e in reversed(entries):
        groups.setdefault(e.path, []).append(e)

    undo_id = new_run_id()
    db.begin_run(undo_id, model_id=info.model_id, argv=list(argv), dry_run=dry_run,
                 options={"undo_of": info.run_id, "retag": retag})
    restored: list[str] = []
    modified: list[tuple[str, str]] = []
    missing: list[str] = []
    failed: list[tuple[str, str]] = []
    already: list[tuple[str, str]] = []
    status = "interrupted"

    def counts() -> dict[str, int]:
        return {"restored": len(restored), "already_restored": len(already), "modified": len(modified),
                "missing": len(missing), "failed": len(failed)}

    try:
        if info.dry_run:
            log.info("run %s was a dry run: it changed nothing", info.run_id)
        for path, group in groups.items():
            latest, earliest = group[0], group[-1]
            try:
                st = os.stat(path)
            except FileNotFoundError:
                missing.append(path)
                log.info("%s: no longer exists", path)
                continue
            except OSError as exc:
                failed.append((path, f"cannot read the file: {exc.strerror or exc}"))
                continue
            if (st.st_size, st.st_mtime_ns) != (latest.size_after, latest.mtime_ns_after):
                later = db.journal_after(path, info.run_id)
                last = later[-1] if later else None
                # Changed since, but by tagger only, and the fields are back to what this run
                # wrote (a later run was undone first): restoring is as safe as without it.
                if not (last is not None and last.after == latest.after
                        and (st.st_size, st.st_mtime_ns) == (last.size_after, last.mtime_ns_after)):
                    who = _restored_by(db, info.run_id, earliest.before, st, later)
                    if who is not None:
                        already.append((path, who))
                        log.info("%s: already restored by %s", path, who)
                        continue
                    reason = _modified_reason(db, info.run_id, st, later)
                    modified.append((path, reason))
                    log.info("%s: %s", path, reason)
                    continue
            if dry_run:
                restored.append(path)
                continue
            try:
                _restore_one(db, undo_id, path, earliest.before, retag=retag, model_id=info.model_id)
            except FileError as exc:
                failed.append((path, exc.reason))
                log.warning("%s: %s", path, exc.reason)
                continue
            except OSError as exc:
                failed.append((path, " ".join(str(exc.strerror or exc).split())))
                log.warning("%s: %s", path, exc)
                continue
            restored.append(path)
            log.debug("%s: restored", path)
        status = "undo"
    finally:
        try:
            db.finish_run(undo_id, status=status, counts=counts())
        except Exception as exc:
            if status == "undo":
                raise
            log.warning("cannot record the end of undo run %s: %s", undo_id, exc)

    log.info(
        "undo of run %s%s: %d restored, %d already restored, %d changed since (left alone), %d missing, "
        "%d failed", info.run_id, " (dry run)" if dry_run else "", len(restored), len(already), len(modified),
        len(missing), len(failed),
    )
    return UndoResult(restored, modified, missing, failed, already_restored=already, run_id=info.run_id,
                      undo_id=undo_id, dry_run=dry_run, counts=counts())


def _restore_one(db: StateDB, undo_id: str, path: str, before: dict, *, retag: bool, model_id: str) -> None:
    tags = _tags()
    # the fields now are this undo's "before" (an undo can be undone), on disk before the write
    ahead = WriteAhead(db, undo_id, path, refusal="not restored")
    try:
        tags.restore_fields(path, before, before_save=ahead.before_save)
    except BaseException:
        ahead.void()
        raise
    st = ahead.done()
    if retag:
        db.forget(path)
    else:
        db.record_file(path, size=st.st_size, mtime_ns=st.st_mtime_ns, model_id=model_id, outcome="undone",
                       run_id=undo_id)


def _last_writer(st: os.stat_result, later_entries: list[JournalEntry]) -> JournalEntry | None:
    """The later journal entry that left the file as it is now (same size and mtime), if any."""
    for later in reversed(later_entries):
        if (later.size_after, later.mtime_ns_after) == (st.st_size, st.st_mtime_ns):
            return later
    return None


def _restored_by(db: StateDB, run_id: str, before: dict, st: os.stat_result,
                 later_entries: list[JournalEntry]) -> str | None:
    """Who already put back what undoing ``run_id`` would (``"undo run ID"`` or ``"run ID"``), or
    None. The file must be exactly as a later tagger write left it (size and mtime), and that
    write must be an undo of ``run_id`` or have written the very fields undo would restore
    (``before``; e.g. the undo of a later run that had re-tagged the file after this run was
    undone). Such a file is not "modified since": undoing again has nothing left to do.
    """
    writer = _last_writer(st, later_entries)
    if writer is None:
        return None
    other = db.run(writer.run_id)
    is_undo = other is not None and other.undo_of is not None
    if (other is not None and other.undo_of == run_id) or writer.after == before:
        return f"{'undo run' if is_undo else 'run'} {writer.run_id}"
    return None


def _modified_reason(db: StateDB, run_id: str, st: os.stat_result, later_entries: list[JournalEntry]) -> str:
    """Why a file is left alone: a later run that changed it, or a change outside tagger."""
    writer = _last_writer(st, later_entries)
    if writer is not None:
        return f"changed since by run {writer.run_id}: undo that run first"
    return f"changed since run {run_id} wrote it (size or modification time differ): left alone"
