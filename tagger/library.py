"""A library's tracks as ``tagger learn`` (and ``tagger evaluate``) see them: every file's genres
as written, whether a person or tagger wrote them, its album and artist, and the model's stored
analysis of its audio (scores, pooled backbone embedding).

:func:`collect` does not analyse anything itself: it runs the ``tagger tag`` pipeline
(:class:`tagger.pipeline.Tagger`) as a **dry run** (nothing is written to any file), with
``--on-existing replace`` (so files with a person's genre are analysed too) and ``--no-albums``
(per-track analyses), without reports. That run analyses on Ray only what the store of analyses
lacks (``tagger.state``'s analyses table) and decides the rest from it; :func:`collect` then reads
each file's tags (:func:`tagger.tags.read_tags`) and its stored analysis. A second ``collect`` over
an unchanged library analyses nothing; one over a library that grew analyses the new files only.

Files that fail (unreadable, corrupt, silent, too short) come back in :attr:`Collected.failed`
with the run's one-line reason. Files tagger itself tagged are analysed and returned too, with
``tagger_owned`` set: their genres are tagger's, never a person's labels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from tagger.modelmeta import ModelMeta
from tagger.options import TagOptions
from tagger.state import StoredAnalysis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibraryTrack:
    path: str
    genres: tuple[str, ...]  # genre values as read from the file, raw ("" values dropped)
    tagger_owned: bool  # those genres were written by tagger (provenance), so they are not a person's
    album: str  # album grouping key (album artist + album, else the folder)
    artist: str  # artist grouping key ("" unknown)
    analysis: StoredAnalysis | None  # the model's stored analysis (scores, embedding, backbone); None if it failed


@dataclass(frozen=True)
class Collected:
    tracks: tuple[LibraryTrack, ...]  # every file whose tags could be read, in walk order
    failed: tuple[tuple[str, str], ...]  # (path, one-line reason): no usable analysis, or unreadable
    meta: ModelMeta  # the model whose analyses these are
    backbone: str  # its backbone id ("" where it computes no embedding)
    analysed: int = 0  # files analysed by this collect (not taken from the store of analyses)
    stored: int = 0  # files whose analysis came from the store
    interrupted: str = ""  # "SIGINT"/"SIGTERM" when the run was stopped (the result is partial)


# -- grouping keys (pure) ------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def album_key(path: str, album: str, albumartist: str) -> str:
    """The album a track belongs to, as a key: album artist + album where both are tagged, the
    album within the track's folder (disc folders count as their parent) where only the album is,
    else the folder itself. Same rules as ``tagger tag --albums`` (:mod:`tagger.albums`)."""
    from tagger.albums import scope_of

    if _norm(album):
        if _norm(albumartist):
            return f"{_norm(albumartist)} — {_norm(album)}"
        return f"{scope_of(path)} — {_norm(album)}"
    return scope_of(path)


def artist_key(artist: str, albumartist: str) -> str:
    """The artist a track is by, as a key ("" unknown): the album artist unless it is "Various
    Artists" and the like, else the track artist without its "feat. X"."""
    from tagger.albums import is_various, primary_artist

    if _norm(albumartist) and not is_various(albumartist):
        return primary_artist(albumartist)
    if _norm(artist) and not is_various(artist):
        return primary_artist(artist)
    return ""


def track_of(path: str, info, analysis: StoredAnalysis | None) -> LibraryTrack:
    """A :class:`LibraryTrack` from a file's :class:`tagger.tags.TagInfo`."""
    genres = tuple(g for g in (str(v).strip() for v in info.genres) if g)
    return LibraryTrack(path=path, genres=genres, tagger_owned=bool(info.tagger_owned and genres),
                        album=album_key(path, info.album, info.albumartist),
                        artist=artist_key(info.artist, info.albumartist), analysis=analysis)


def collect_options(options: TagOptions) -> TagOptions:
    """The options of the dry run :func:`collect` makes: nothing written, every file analysed
    (a person's genre too), per track, no reports, no limits."""
    return options.replace(dry_run=True, on_existing="replace", albums=False, reports=(),
                           explain_uncertain=False, max_files=None, time_budget=None, log_file=None)


# -- the driver ----------------------------------------------------------------------------------


def read_tracks(paths: Sequence[str], *, exclude: Sequence[str] = (), progress: bool = False,
                ) -> tuple[tuple[LibraryTrack, ...], tuple[tuple[str, str], ...]]:
    """Walk ``paths`` like ``tag`` and read every file's tags, nothing else (no analysis, no
    state database): the tracks (``analysis`` None) and the files whose tags cannot be read, with
    the reason. What ``tagger learn`` builds its taxonomy from before analysing anything."""
    from tagger import discover, tags
    from tagger.errors import FileError

    problems: list[discover.Problem] = []
    found = list(discover.walk(paths, exclude=exclude, problems=problems))
    failed = [(p.path, p.reason) for p in problems if p.action == "failed"]
    out: list[LibraryTrack] = []
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=len(found), unit="file", desc="reading tags", file=sys.stderr, dynamic_ncols=True,
                   leave=False)
    for f in found:
        try:
            out.append(track_of(f.path, tags.read_tags(f.path), None))
        except FileError as exc:
            failed.append((f.path, exc.reason))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return tuple(out), tuple(failed)


def collect(paths: Sequence[str], options: TagOptions, *, progress: bool = True) -> Collected:
    """Walk ``paths`` like ``tag``, analyse on Ray only what the store of analyses lacks (a dry
    run that writes nothing to any file), and return every track with its stored analysis.

    Holds the state database's run lock while it runs (another run: LockedError, exit 75)."""
    from tagger.lock import RunLock
    from tagger.state import StateDB, default_state_path

    opts = collect_options(options)
    for p in paths:
        if not os.path.lexists(p):
            from tagger.errors import FatalError

            raise FatalError(f"{p}: no such file or folder")
    state_path = os.path.expanduser(opts.state_db) if opts.state_db else default_state_path()
    with RunLock(state_path), StateDB(state_path) as state:
        return _collect(list(paths), opts, state, progress=progress)


def _collect(paths: list[str], opts: TagOptions, state, *, progress: bool) -> Collected:
    from tagger import discover
    from tagger.pipeline import StopFlag, sampling_spec, usable_analyses

    stop = StopFlag()
    stop.install()
    try:
        first = _run(paths, opts, state, stop, progress=progress)
        meta = first.meta
        failed: dict[str, str] = {}
        analysed = first.stats.analysed
        _note_failures(first.report, failed)
        if stop:
            return _result([], failed, meta, analysed, stop.name)
        found = list(discover.walk(paths, exclude=opts.exclude, problems=[]))
        stored = usable_analyses(state, found, meta, sampling_spec(opts))
        has_embedding = any(a.embedding is not None for a in stored.values())
        # analyses made (now or stored) and no embedding anywhere: the model computes none (a model
        # either computes one in every forward pass or never), so nothing is analysed again for it
        no_embeddings = not has_embedding and (first.stats.analysed > 0 or bool(stored))
        again = [f.path for f in found if f.path not in failed
                 and (f.path not in stored or (stored[f.path].embedding is None and not no_embeddings))]
        if again:
            # not failed, yet no usable stored analysis: recorded as unchanged by an earlier real
            # run whose analysis was not kept, or stored before embeddings were: analysed now.
            # --force ignores the records; album mode analyses the files this very model tagged
            # too (a plain forced run would skip them as "already tagged by this model")
            log.info("%d file(s) without a stored analysis with an embedding: analysing them", len(again))
            second = _run(again, opts.replace(force=True, albums=True), state, stop, progress=progress)
            analysed += second.stats.analysed
            _note_failures(second.report, failed)
            if stop:
                return _result([], failed, meta, analysed, stop.name)
            stored = usable_analyses(state, found, meta, sampling_spec(opts))
        return _result(_tracks(found, stored, failed), failed, meta, analysed, "")
    finally:
        stop.restore()


def _tracks(found, stored: dict[str, StoredAnalysis], failed: dict[str, str]) -> list[LibraryTrack]:
    """Every found file whose tags can be read, with its usable stored analysis (or None, and a
    reason in ``failed``). Files whose tags cannot be read are added to ``failed``."""
    from tagger import tags
    from tagger.errors import FileError

    out: list[LibraryTrack] = []
    for f in found:
        try:
            info = tags.read_tags(f.path)
        except FileError as exc:
            failed.setdefault(f.path, exc.reason)
            continue
        a = stored.get(f.path)
        if a is None:
            failed.setdefault(f.path, "no analysis of its audio could be made or stored")
        else:
            failed.pop(f.path, None)
        out.append(track_of(f.path, info, a))
    return out


def _run(paths: list[str], opts: TagOptions, state, stop, *, progress: bool):
    """One dry run of the tag pipeline over ``paths`` (it stores what it analyses); returns the Tagger."""
    from tagger.pipeline import Progress, Tagger
    from tagger.state import new_run_id

    bar = _progress(opts) if progress else Progress()
    t = Tagger(paths, opts, argv=[], progress=bar, state=state, run_id=new_run_id(), stop=stop)
    t.run()
    state.flush()
    return t


def _progress(opts: TagOptions):
    from tagger.commands.progress import make_progress

    return make_progress(opts)


def _note_failures(report, failed: dict[str, str]) -> None:
    """The files a run could not analyse, with its reasons: failures, and audio it skipped
    (silence, too short). Rows of the walk that are not audio files (a FIFO) are not tracks."""
    for row in report.rows:
        if row.action == "failed" or (row.action == "skipped" and row.error_kind == "audio"):
            failed[row.path] = row.reason


def _result(tracks: list[LibraryTrack], failed: dict[str, str], meta: ModelMeta, analysed: int,
            interrupted: str) -> Collected:
    backbones = [t.analysis.backbone for t in tracks if t.analysis is not None and t.analysis.backbone]
    backbone = max(sorted(set(backbones)), key=backbones.count) if backbones else ""
    stored = sum(1 for t in tracks if t.analysis is not None)
    return Collected(tracks=tuple(tracks), failed=tuple(failed.items()), meta=meta, backbone=backbone,
                     analysed=analysed, stored=max(0, stored - analysed), interrupted=interrupted)
