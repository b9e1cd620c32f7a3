"""The apply stage of ``tagger tag``: a scored track in, its report row out.

deciding (:func:`tagger.aggregate.decide`, or its album's :func:`tagger.albums.decide_album`)
-> writing (``tagger.tags.write_genres``, the undo journal written ahead: ``state.WriteAhead``)
-> recording (the state database: the file's record, the store of analyses)
-> the report row.

:class:`ApplyStage` does this for every track the orchestrator (:class:`tagger.pipeline.Tagger`)
hands it, whether analysed in this run, decided from the store of analyses, or decided with its
album (:func:`album_decisions`); and it makes the rows of files with nothing to decide (skipped
before analysis, failed). The orchestrator streams, batches and runs Ray; every side effect on
the user's files and the state database happens here, in the driver.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from tagger import discover
from tagger.aggregate import TAG, UNCERTAIN, Decision, decide_for, thresholds_for, user_names
from tagger.contracts import Analysis, FileTags, Scored
from tagger.errors import FileError, StateError
from tagger.modelmeta import ModelMeta
from tagger.options import TagOptions
from tagger.report import Report, Row
from tagger.state import StoredAnalysis, WriteAhead, utc_now

log = logging.getLogger(__name__)

#: Commit buffered state records every this many files, or this many seconds.
FLUSH_EVERY_FILES = 200
FLUSH_EVERY_SECONDS = 10.0

#: An album's outcome for one of its tracks, and the album's name ("" for a loose single).
AlbumPart = tuple[Any, str]  # (tagger.albums.TrackOutcome, str)


def from_store(found: discover.Found, info: Any, a: StoredAnalysis, *, describe: bool = True) -> Scored:
    """A track decided from its stored analysis ``a``, its tags ``info`` (a TagInfo) read now.
    ``describe``: say how it was sampled (the report's sampling/rechecked) from the stored spec."""
    sampling, rechecked = "", None
    if describe:
        from tagger.adaptive import describe as describe_spec

        sampling, rechecked = describe_spec(a.sampling)
    return Scored(found.path, found.size, found.mtime_ns, info.format, FileTags.of(info),
                  np.asarray(a.scores, dtype=np.float32), a.chunks, a.seconds, duration=a.duration,
                  analysis="stored", analysed_at=a.analysed_at, sampling=sampling, rechecked=rechecked)


class ApplyStage:
    """Decide, write, record and report, one track at a time (see the module's doc).

    ``decided``: the run's decision settings (``pipeline.decision_key``), recorded with each file;
    ``sampling``: the run's sampling spec (``pipeline.sampling_spec``), stored with each analysis
    unless the track's own says otherwise. ``backbone``: the predictor's backbone id, stored with
    embeddings (set once the model is loaded).
    """

    def __init__(self, *, meta: ModelMeta, options: TagOptions, report: Report, state: Any = None,
                 decided: str = "", sampling: str = ""):
        self.meta, self.options, self.report, self.state = meta, options, report, state
        self.decided, self.sampling = decided, sampling
        self.backbone = ""
        self.write_seconds = 0.0  # time spent writing tags (pipeline.Stats.write)
        #: the state database refused a write during the run (the run goes on; cli reports it)
        self.state_problem: StateError | None = None
        self._last_flush = time.monotonic()
        self._since_flush = 0

    # -- deciding ------------------------------------------------------------------------
    def decide(self, s: Scored) -> Decision:
        """The track's own decision (the one ``tagger explain`` shows)."""
        return decide_for(s.scores, res=s, meta=self.meta, options=self.options)

    # -- the stage -----------------------------------------------------------------------
    def apply(self, s: Scored, *, album: AlbumPart | None = None) -> Row:
        """Decide ``s`` (alone, or with ``album``: its album's outcome for it), write what the
        decision says, record the file, add its row to the report; returns the row."""
        if album is None:
            d = self.decide(s)
            reason, album_name, genre_from = d.reason, "", ""
        else:
            outcome, album_name = album
            d, genre_from = outcome.decision, outcome.genre_from
            reason = d.reason + (f"; {outcome.note}" if outcome.note else "")
        row = Row(
            s.path, s.format or discover.format_of(s.path), "", reason,
            existing=list(s.tags.existing),
            predicted=[{"genre": r.genre, "label": r.label, "score": round(r.score, 4)} for r in d.ranked[:5]],
            duration=round(s.heard, 2) if s.heard else None,
            chunks=int(s.chunks), node=s.node, analysis=s.analysis, analysed_at=s.analysed_at,
            album=album_name, genre_from=genre_from if d.action == TAG else "",
            sampling=s.sampling, rechecked=s.rechecked,
        )
        if album is not None:
            row.album_genres = list(album[0].album_genres)
            row.dissent = bool(album[0].dissent)
        now: tuple[int | None, int | None] = (s.size, s.mtime_ns)
        if d.action == TAG:
            row.written = list(d.genres)
            try:
                now = self.write(s, d)
                row.action = "tagged"
            except FileError as exc:
                row.action, row.reason, row.error_kind = "failed", exc.reason, exc.kind
        else:
            row.action = "uncertain" if d.action == UNCERTAIN else "skipped"
        self.report.add(row)
        log.info("%s: %s (%s)", row.action, row.path, "; ".join(row.written) if row.written else row.reason)
        self.record(s.path, now, row.action)
        return row

    def write(self, s: Scored, d: Decision) -> tuple[int | None, int | None]:
        """Write ``d``'s genres and provenance to ``s``'s file (a dry run only says what it would
        write), the undo journal entry on disk before the file is replaced. Returns the file's
        (size, mtime_ns) afterwards; raises FileError (the file is as it was)."""
        from tagger import __version__, tags

        prov = tags.Provenance(
            model_id=self.meta.model_id, genres=tuple(r.genre for r in d.chosen),
            scores=tuple(round(r.score, 4) for r in d.chosen), date=_now_iso(), tool=f"tagger {__version__}",
        )
        path, state = s.path, self.state
        # write-ahead: the undo record is on disk before the file is replaced, or nothing is written
        ahead = None if state is None else WriteAhead(state, self.report.run_id, path, refusal="left alone")
        t = time.perf_counter()
        try:
            change = tags.write_genres(path, list(d.genres), prov, id3v23=self.options.id3v23,
                                       dry_run=self.options.dry_run, expect=(s.size, s.mtime_ns),
                                       before_save=None if ahead is None else ahead.before_save)
        except BaseException:
            if ahead is not None:  # the write failed and the file is as it was (or a signal: settled next time)
                ahead.void()
            raise
        finally:
            self.write_seconds += time.perf_counter() - t
        if self.options.dry_run or ahead is None:
            return s.size, s.mtime_ns
        try:
            st = ahead.done(after=change.after)
        except StateError as exc:  # written, journaled ahead: the next run or undo settles the entry
            log.warning("%s: written, but the journal entry could not be settled (%s); the next run "
                        "settles it from the file", path, exc)
            st = os.stat(path)
        return st.st_size, st.st_mtime_ns

    # -- files with nothing to decide ----------------------------------------------------
    def skipped(self, a: Analysis, reason: str) -> Row:
        """The row of a file the worker left alone: the policy skips it (``a.skip``), or its audio
        has nothing to classify (an ``audio`` error: silence, too short; the file is fine)."""
        row = Row(a.path, a.format or discover.format_of(a.path), "skipped", reason,
                  existing=list(a.tags.existing), node=a.node, error_kind="audio" if a.error else "")
        self.report.add(row)
        self.record(a.path, (a.size, a.mtime_ns), "skipped")
        return row

    def failed(self, path: str, kind: str, reason: str, a: Analysis | None = None) -> Row:
        """The row of a file that failed (``kind``: a FileError kind, or timeout/worker)."""
        row = Row(path, (a.format if a is not None else None) or discover.format_of(path), "failed", reason,
                  existing=list(a.tags.existing) if a is not None else [], node=a.node if a is not None else "",
                  error_kind=kind)
        self.report.add(row)
        log.warning("%s: %s", path, reason)
        return row

    # -- recording -----------------------------------------------------------------------
    def store(self, s: Scored) -> Scored:
        """Keep what the model said about this file's audio in the store of analyses (dry runs
        too); returns ``s`` with the time it was stored."""
        if self.state is None:
            return s
        s = dataclasses.replace(s, analysed_at=utc_now())
        self.state.store_analysis(StoredAnalysis(
            path=s.path, model_id=self.meta.model_id, size=s.size, mtime_ns=s.mtime_ns,
            scores=tuple(float(v) for v in s.scores), chunks=int(s.chunks), seconds=float(s.heard or 0.0),
            duration=s.duration, sampling=s.store_sampling or self.sampling, analysed_at=s.analysed_at,
            run_id=self.report.run_id, backbone=self.backbone if s.embedding is not None else "",
            embedding=None if s.embedding is None else tuple(float(v) for v in s.embedding),
        ))
        self.maybe_flush()
        return s

    def record(self, path: str, now: tuple[int | None, int | None], outcome: str) -> None:
        """What tagger did with the file (its size and mtime ``now``), under the run's settings."""
        size, mtime_ns = now
        if self.state is None or self.options.dry_run or size is None:
            return
        self.state.record_file(path, size=size, mtime_ns=mtime_ns, model_id=self.meta.model_id, outcome=outcome,
                               run_id=self.report.run_id, decided=self.decided)
        self.maybe_flush()

    def maybe_flush(self) -> None:
        self._since_flush += 1
        now = time.monotonic()
        if self._since_flush >= FLUSH_EVERY_FILES or now - self._last_flush >= FLUSH_EVERY_SECONDS:
            self._since_flush, self._last_flush = 0, now
            self.flush()

    def flush(self) -> None:
        """Commit buffered file records. A database that refuses them (full disk) does not end
        the run: the records stay buffered for the next try, and writes stop for want of a journal."""
        if self.state is None:
            return
        try:
            self.state.flush()
        except StateError as exc:
            if self.state_problem is None:
                log.warning("cannot save file records (%s); files are still analysed, and none is written "
                            "without its undo record", exc)
            self.state_problem = exc


def album_decisions(held: Mapping[str, Scored], evidence: Mapping[str, tuple[Analysis, Row]],
                    others: Mapping[str, tuple[discover.Found, Any]], stored: Mapping[str, StoredAnalysis], *,
                    meta: ModelMeta, options: TagOptions, open_scopes: set[str],
                    stopping: Callable[[], bool],
                    recheck: Callable[[list[Any], Any], bool] | None = None) -> Iterator[tuple[Scored, AlbumPart]]:
    """Decide the albums of some album folders (:mod:`tagger.albums`): each track to apply, with
    its album's outcome for it, in order. Lazy: ``stopping()`` is asked before each album.

    ``held``: this run's scored tracks of those folders; ``evidence``: tracks skipped for a
    person's genre (their report rows get the album's name); ``others``: the folders' files of
    earlier runs, (Found, TagInfo), with their usable stored analyses ``stored``. Loose singles
    of ``held`` are decided alone; an album with a file in ``open_scopes`` (a folder with a file
    of this run not done), or met while stopping, is left whole for the next run (its held tracks
    are not yielded). ``recheck(members, album_decision)``: True where the album is to be decided
    again once more of its tracks was heard (adaptive analysis; its held tracks are not yielded).
    Other runs' tracks are yielded only where the album writes them a genre and
    it is not a person's.
    """
    from tagger import albums as al

    tracks = [al.TrackTags.of(p, s.tags.album_tags) for p, s in held.items()]
    tracks += [al.TrackTags.of(p, a.tags.album_tags) for p, (a, _) in evidence.items()]
    tracks += [al.TrackTags.of(p, info.album_tags()) for p, (_, info) in others.items()]
    albums, alone = al.group(tracks)
    o = options
    t = thresholds_for(meta, o)
    kw: dict[str, Any] = dict(top_k=o.top_k, min_confidence=t.default, thresholds=t.per_label,
                              on_existing=o.on_existing, model_id=meta.model_id, names=meta.display_names,
                              user_map=user_names(meta, o), dissent=o.album_dissent, aggregation=meta.aggregation)

    def member(p: str, tags: FileTags, scores: np.ndarray | None, seconds: float) -> al.Member:
        return al.Member(p, scores, seconds, tuple(tags.existing), bool(tags.tagger_owned), tags.owner_model)

    def weight(duration: float | None, heard: float | None) -> float:
        # what a whole-track run hears of the track (its length, up to the cap), so that how much
        # of it a sampled or adaptive analysis heard does not move its album's scores
        if duration and duration > 0:
            return min(float(duration), float(o.max_analysis_seconds))
        return float(heard or 0.0)

    for p in alone:  # loose singles: decided per track
        if p in held:
            s = held[p]
            ad = al.decide_album([member(p, s.tags, s.scores, weight(s.duration, s.heard))], meta.labels, **kw)
            yield s, (ad.outcomes[p], "")
    for album in albums:
        if (stopping() and not o.dry_run) or any(al.scope_of(p) in open_scopes for p in album.paths):
            continue
        members = []
        for p in album.paths:
            if p in held:
                s = held[p]
                members.append(member(p, s.tags, s.scores, weight(s.duration, s.heard)))
            elif p in evidence:
                a, row = evidence[p]
                members.append(member(p, a.tags, None, weight(a.duration, a.heard)))
                row.album = album.name
            else:
                found, info = others[p]
                st = stored.get(p)
                members.append(member(p, FileTags.of(info), None if st is None else np.asarray(st.scores, np.float32),
                                      0.0 if st is None else weight(st.duration, st.seconds)))
        ad = al.decide_album(members, meta.labels, name=album.name, compilation=album.compilation, **kw)
        if recheck is not None and recheck(members, ad):
            continue
        for m in members:
            outcome = ad.outcomes.get(m.path)
            if outcome is None:
                continue
            if m.path in held:
                yield held[m.path], (outcome, album.name)
            elif m.path in others and outcome.decision.action == TAG and not m.person_genres:
                # another run's track whose album decision moved: only tagger's own genre moves
                found, info = others[m.path]
                yield from_store(found, info, stored[m.path], describe=False), (outcome, album.name)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
