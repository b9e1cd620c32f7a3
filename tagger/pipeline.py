"""Orchestration of ``tagger tag``: discover -> plan -> analyse on Ray -> predict in big batches ->
decide -> write (driver only) -> report, state and journal.

Memory stays flat: at most ``max_in_flight`` analyse tasks are outstanding, and finished tracks
wait for inference only until a batch is full. Signals stop new work; the write in progress
finishes; state and journal are flushed; Ray is shut down.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagger import discover
from tagger.aggregate import (
    TAG,
    UNCERTAIN,
    decide_for,
    thresholds_for,
    track_logits,
    track_scores,
    user_names,
)
from tagger.errors import EXIT_SIGINT, EXIT_SIGTERM, FileError, StateError
from tagger.modelmeta import ModelMeta, load_meta, locate
from tagger.options import TagOptions
from tagger.report import Report, Row, plural
from tagger.state import StoredAnalysis, WriteAhead, utc_now

log = logging.getLogger(__name__)

FLUSH_EVERY_FILES = 200
FLUSH_EVERY_SECONDS = 10.0


class Progress:
    """Callbacks the CLI implements (tqdm on a TTY, nothing otherwise)."""

    def start(self, total: int) -> None: ...
    def stage(self, text: str) -> None:
        """A start-up stage begins ("starting Ray", "loading the model"); "" when files flow."""
    def advance(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


class StopFlag:
    """Set by SIGINT/SIGTERM; polled between files. A write in progress always completes."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}.get(self.signum, "")

    @property
    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.signum == signal.SIGTERM else EXIT_SIGINT

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            log.warning("%s received: finishing the write in progress, then stopping",
                        signal.Signals(signum).name)
        self.signum = signum

    def install(self) -> None:
        """Install (or re-install: ray.init replaces the SIGTERM handler) the handlers."""
        if threading.current_thread() is not threading.main_thread():
            return
        for s in (signal.SIGINT, signal.SIGTERM):
            old = signal.signal(s, self._handle)
            self._old.setdefault(s, old)

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()


@dataclass
class Plan:
    todo: list[discover.Found]
    unchanged: int
    problems: list[discover.Problem]
    deferred: int = 0  # left for the next run by --max-files
    #: files of ``todo`` decided from the store of analyses (no decode, no model)
    stored: dict[str, StoredAnalysis] = field(default_factory=dict)
    #: files of ``todo`` this model handled under other decision settings: decided again even
    #: where this model wrote the genre
    redecide: set[str] = field(default_factory=set)
    found: list[str] = field(default_factory=list)  # every file the walk found
    left: set[str] = field(default_factory=set)  # files of the walk left for the next run by --max-files


def decision_key(options: TagOptions, meta: ModelMeta | None = None) -> str:
    """The decision settings (top-k, the thresholds in effect, --on-existing, [genres] names,
    --genre-style) as a short hash. ``meta``: the model, whose per-label thresholds apply unless
    --min-confidence was given (None: a model without thresholds). Runs with one threshold for
    every label, and the default style, keep the key they had before models carried thresholds
    and before --genre-style.

    A file handled under other settings is decided again (from the store of analyses, where its
    analysis is there); "nothing to do" means nothing would change."""
    import hashlib
    import json

    d = {"top_k": options.top_k, **thresholds_for(meta, options).key(),
         "on_existing": options.on_existing, "genres": sorted(options.genre_map.items()),
         **({"genre_style": options.genre_style} if options.genre_style != "as-is" else {}),
         "albums": bool(options.albums), "album_dissent": round(float(options.album_dissent), 6)}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def sampling_spec(options: TagOptions) -> str:
    """How a run chooses the audio it analyses; a stored analysis is used only by a run that
    would have analysed the same stretches (:func:`accepted_samplings`)."""
    if options.analysis_seconds is not None:
        return f"sample:{options.analysis_seconds:g}"
    if options.whole_track:
        return f"whole<={options.max_analysis_seconds:g}"
    from tagger import adaptive

    return adaptive.spec(adaptive.FIRST_SECONDS, options.max_analysis_seconds)


def accepted_samplings(spec: str) -> tuple[str, ...]:
    """The stored samplings a run of ``spec`` decides from. An adaptive run also takes an
    adaptive analysis whose rest was heard, and a whole-track analysis of the same cap (both
    heard what an adaptive re-check would); a first pass is extended where the decision is close
    (:func:`needs_extension`). Whole-track and fixed-sample runs take only their own."""
    if spec.startswith("adaptive:"):
        head, cap = spec.split("/", 1)
        return (spec, f"{head}+rest/{cap}", cap)
    return (spec,)


def usable_analyses(state, todo: list[discover.Found], meta: ModelMeta, spec: str) -> dict[str, StoredAnalysis]:
    """The stored analyses that fit ``todo``'s files as they are now: same size and mtime, same
    model and an accepted sampling (:func:`accepted_samplings`), and sound (a damaged or foreign
    row is ignored with a warning, and the file analysed again: never written from)."""
    rows = state.analyses([f.path for f in todo], meta.model_id)
    accepted = accepted_samplings(spec)
    out: dict[str, StoredAnalysis] = {}
    for f in todo:
        a = rows.get(f.path)
        if a is None or (a.size, a.mtime_ns) != (f.size, f.mtime_ns) or a.sampling not in accepted:
            continue
        why = a.problem(labels=len(meta.labels), model_id=meta.model_id)
        if why:
            log.warning("%s: stored analysis ignored (%s); analysing it again", f.path, why)
            continue
        out[f.path] = a
    return out


def needs_extension(a: StoredAnalysis, options: TagOptions, meta: ModelMeta) -> list[tuple[float, float]]:
    """The rest of the track to analyse before deciding from a stored adaptive first pass: empty
    where its decision under these settings is clear (or the track was heard whole). The first
    pass's stretches follow from its duration, so they need not be stored."""
    from tagger import adaptive

    first = adaptive.first_seconds_of(a.sampling)
    if first is None or not a.duration:
        return []
    fp = meta.features
    heard = adaptive.first_plan(a.duration, first_seconds=first, max_seconds=options.max_analysis_seconds, params=fp)
    rest, share = adaptive.plan_rest(a.duration, heard, max_seconds=options.max_analysis_seconds, params=fp)
    thr = thresholds_for(meta, options).for_close_call(meta.labels)
    if rest and adaptive.needs_rest(np.asarray(a.scores), share=share, top_k=options.top_k,
                                    min_confidence=thr, extra_error=adaptive.decision_error(a.chunks)):
        return rest
    return []


@dataclass
class Stats:
    """Per-stage times of a run, in seconds; the JSON report carries them as ``timing`` (the
    throughput benchmark reads them).

    Driver wall time: ``startup`` (Ray start, TensorFlow import, model load and first trace),
    ``stream`` (first task submitted to last file finished: the steady state), and within it
    ``infer`` (predict calls), ``write`` (tag writes). Worker time, summed over all workers (they
    run in parallel with each other and with the driver): ``worker`` (whole analyse tasks) and
    within it ``tags``, ``decode``, ``features``.
    """

    startup: dict[str, float] = field(default_factory=dict)
    stream: float = 0.0
    infer: float = 0.0
    write: float = 0.0
    worker: float = 0.0  # sum of worker task seconds (tags + decode + features)
    tags: float = 0.0
    decode: float = 0.0
    features: float = 0.0
    analysed: int = 0  # files that reached the model
    audio_seconds: float = 0.0  # audio those files' analysis decoded
    chunks: int = 0
    batches: int = 0
    rechecked: int = 0  # tracks predicted in bfloat16 whose close call float32 re-did
    rest: int = 0  # adaptive analysis: tracks whose sample was a close call, and the rest was heard too
    rest_seconds: float = 0.0  # audio those re-checks decoded (included in audio_seconds)
    extended: int = 0  # of ``rest``: first passes from the store of analyses, extended (not restarted)
    stored: int = 0  # files decided from the store of analyses (not decoded, no model)

    def add_worker(self, res: dict[str, Any]) -> None:
        self.worker += res.get("seconds", 0.0)
        for k, v in (res.get("timing") or {}).items():
            if k in ("tags", "decode", "features"):
                setattr(self, k, getattr(self, k) + v)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["startup"] = {k: round(v, 4) for k, v in self.startup.items()}
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def model_summary(meta: ModelMeta, options: TagOptions | None = None) -> dict[str, Any]:
    """The report's ``model``; ``thresholds`` (label -> threshold) where per-label thresholds
    are in effect (the model's, no --min-confidence given)."""
    out: dict[str, Any] = {
        "model_id": meta.model_id, "name": meta.name, "architecture": meta.architecture,
        "labels": list(meta.labels), "output_activation": meta.output_activation,
        "aggregation": meta.aggregation,
        "sample_rate": meta.features.sample_rate, "chunk_seconds": round(meta.features.chunk_seconds, 3),
        "metrics": meta.metrics,
    }
    if options is not None:
        t = thresholds_for(meta, options)
        out["threshold"] = t.default
        if not t.uniform:
            out["thresholds"] = {lab: t.of_label(lab) for lab in meta.labels}
    return out


def make_plan(paths, options: TagOptions, meta: ModelMeta, state) -> Plan:
    """Discover; drop files the state says are unchanged since this model handled them under
    these decision settings; find the stored analyses of the rest (``--force``: none)."""
    problems: list[discover.Problem] = []
    found = list(discover.walk(paths, exclude=options.exclude, problems=problems))
    unchanged = 0
    redecide: set[str] = set()
    if state is not None and not options.force:
        key = decision_key(options, meta)
        records = state.records(f.path for f in found)
        todo = []
        for f in found:
            r = records.get(f.path)
            if r is not None and r.is_current(size=f.size, mtime_ns=f.mtime_ns, model_id=meta.model_id, decided=key):
                unchanged += 1
                continue
            todo.append(f)
            if r is not None and r.model_id == meta.model_id and r.decided != key:
                redecide.add(f.path)
    else:
        todo = found
    deferred, left = 0, set()
    if options.max_files is not None and len(todo) > options.max_files:
        keep = album_cut(todo, options.max_files) if options.albums else todo[: options.max_files]
        kept = {f.path for f in keep}
        left = {f.path for f in todo if f.path not in kept}
        deferred, todo = len(left), keep
    stored = {} if state is None or options.force else usable_analyses(state, todo, meta, sampling_spec(options))
    return Plan(todo, unchanged, problems, deferred, stored, redecide, [f.path for f in found], left)


def album_cut(todo: list[discover.Found], limit: int) -> list[discover.Found]:
    """--max-files in album mode: whole album folders (:func:`tagger.albums.scope_of`) in walk
    order, as many as fit in ``limit`` files; the first is taken whole even when it alone holds
    more (else a big album would never be done). An album is never half-decided."""
    from tagger.albums import scope_of

    counts: dict[str, int] = {}
    for f in todo:
        sc = scope_of(f.path)
        counts[sc] = counts.get(sc, 0) + 1
    kept: set[str] = set()
    total = 0
    for sc, n in counts.items():
        if kept and total + n > limit:
            break
        kept.add(sc)
        total += n
    return [f for f in todo if scope_of(f.path) in kept]


class Tagger:
    """One run of ``tagger tag``. Construct, then :meth:`run`."""

    def __init__(self, paths, options: TagOptions, *, argv: list[str] | None = None,
                 progress: Progress | None = None, state=None, run_id: str | None = None,
                 stop: StopFlag | None = None):
        self.paths = [os.fspath(p) for p in paths]
        self.options = options
        self.argv = argv or []
        self.progress = progress or Progress()
        self.state = state
        self.stop = stop if stop is not None else StopFlag()
        self.files = locate(options.model, vocabulary=options.vocabulary)
        self.meta = load_meta(self.files)
        self.report = Report(dry_run=options.dry_run, run_id=run_id or "", model=model_summary(self.meta, options),
                             options=_options_dict(options))
        self.stats = Stats()
        self.deadline = None if options.time_budget is None else time.monotonic() + options.time_budget
        self._last_flush = time.monotonic()
        self._since_flush = 0
        self._explain: list[tuple[str, dict[str, Any]]] = []
        self._exact: Callable[[np.ndarray], np.ndarray] | None = None  # float32 re-check (bfloat16 CPU inference)
        self.state_problem: StateError | None = None  # the state database refused a write during the run
        self._decided = decision_key(options, self.meta)
        #: the thresholds in effect, as close calls take them (one number, or one per label)
        self._thr = thresholds_for(self.meta, options).for_close_call(self.meta.labels)
        self._agg = self.meta.aggregation
        self._sampling = sampling_spec(options)
        self._backbone = ""  # the predictor's backbone id, where its model computes embeddings
        # album mode (tagger.albums): analysed tracks wait here until every file of their album
        # folder in this run is done, then that folder's albums are decided together and written
        # (_decide_albums), while the rest of the run goes on; only scores and tags are kept
        self._albums = bool(options.albums)
        self._held: dict[str, tuple[dict[str, Any], np.ndarray, discover.Found]] = {}
        self._evidence: dict[str, tuple[dict[str, Any], Row]] = {}  # skipped with a person's genre
        self._scope_left: dict[str, int] = {}  # album folder -> this run's files in it not done yet
        self._by_scope: dict[str, list[str]] = {}  # album folder -> every file the walk found in it
        self._plan: Plan | None = None
        # adaptive analysis (the default): a sample first, the rest where the decision is close
        self._nice = 0  # niceness the decode workers add to themselves (ray_backend.cpu_split)
        self._adaptive = options.analysis_seconds is None and not options.whole_track
        self._rest_queue: list[tuple[discover.Found, list[tuple[float, float]]]] = []  # re-checks to submit
        self._priors: dict[str, dict[str, Any]] = {}  # path -> what was heard before its rest
        self._extend: dict[str, tuple[StoredAnalysis, list[tuple[float, float]]]] = {}  # stored first passes to extend

    # ------------------------------------------------------------------------------------
    def run(self) -> Report:
        t = time.perf_counter()
        plan = make_plan(self.paths, self.options, self.meta, self.state)
        self.stats.startup["discover"] = time.perf_counter() - t
        self.report.unchanged = plan.unchanged
        for p in plan.problems:
            self.report.add(Row(p.path, discover.format_of(p.path), p.action, p.reason, error_kind="discover"))
            if p.action == "failed":
                log.warning("%s: %s", p.path, p.reason)
            else:
                log.info("%s: %s (%s)", p.action, p.path, p.reason)
        self.report.pending = plan.deferred
        if plan.unchanged:
            self.report.notes.append(f"{plural(plan.unchanged, 'file')} unchanged since the last run (not re-analysed)")
        for path, a in list(plan.stored.items()):  # close calls under these settings: hear the rest
            rest = needs_extension(a, self.options, self.meta)
            if rest:
                self._extend[path] = (plan.stored.pop(path), rest)
        if self._extend:
            self.report.notes.append(f"{plural(len(self._extend), 'stored sampled analysis', 'stored sampled analyses')} "
                                     "extended: a close call under these settings (the rest of the track heard)")
        if plan.stored:
            self.report.notes.append(f"{plural(len(plan.stored), 'file')} decided from stored analyses (not re-analysed)")
        self.stats.stored = len(plan.stored)
        if not plan.todo:
            self._prune(plan)
            self.report.finished = time.time()
            self.report.timing = self.stats.to_dict()
            return self.report
        self.progress.start(len(plan.todo))
        if self._albums:
            from tagger.albums import scope_of

            self._plan = plan
            for f in plan.todo:
                s = scope_of(f.path)
                self._scope_left[s] = self._scope_left.get(s, 0) + 1
            for p in plan.found:
                self._by_scope.setdefault(scope_of(p), []).append(p)
        try:
            fresh = [f for f in plan.todo if f.path not in plan.stored]
            self._decide_stored([f for f in plan.todo if f.path in plan.stored], plan.stored)
            if fresh and not self.stop and not self._out_of_time():
                self._process(fresh, plan.redecide)
            else:
                self.report.pending += len(fresh)
            if self._albums:
                self.stop.install()  # Ray's shutdown may have put back the default SIGTERM handler
                self._decide_albums(plan)
        finally:
            self.progress.close()
            if self.state is not None:
                self._flush_state()
        if not self.stop:
            self._prune(plan)
        if self.stop:
            self.report.interrupted = self.stop.name
        self.report.finished = time.time()
        self.report.timing = self.stats.to_dict()
        return self.report

    def _prune(self, plan: Plan) -> None:
        """After a complete walk: drop the stored analyses of files under the walked folders
        that no longer exist (moved or deleted files; a moved file is analysed at its new path)."""
        if self.state is None or self.state_problem is not None:
            return
        found = set(plan.found)
        for root in self.paths:
            root = os.path.abspath(os.path.expanduser(root))
            if os.path.isdir(root):
                try:
                    gone = self.state.prune_analyses(root, found)
                except StateError as exc:
                    log.warning("cannot prune stored analyses: %s", exc)
                    return
                if gone:
                    log.info("%d stored analyses of files that no longer exist under %s dropped", gone, root)

    def _decide_stored(self, files: list[discover.Found], stored: dict[str, StoredAnalysis]) -> None:
        """Decide and write files from their stored analyses: tags are read here in the driver,
        nothing is decoded, no model runs (TensorFlow is not even imported)."""
        from tagger import tags

        for i, f in enumerate(files):
            if self.stop or self._out_of_time():
                self.report.pending += len(files) - i
                return
            a = stored[f.path]
            try:
                info = tags.read_tags(f.path)
            except FileError as exc:
                self._fail(f, exc.kind, exc.reason)
                continue
            res = {
                "path": f.path, "size": f.size, "mtime_ns": f.mtime_ns, "format": info.format,
                "existing": tuple(info.genres), "tagger_owned": info.tagger_owned,
                "owner_model": info.provenance.model_id if info.provenance is not None else None,
                "analysed": a.seconds, "duration": a.duration, "chunks": a.chunks, "node": "",
                "analysis": "stored", "analysed_at": a.analysed_at, "album_tags": info.album_tags(),
                **dict(zip(("sampling", "rechecked"), _adaptive().describe(a.sampling))),
            }
            self._finish_analysed(res, np.asarray(a.scores, dtype=np.float32), f)

    def _done_with(self, path: str) -> None:
        """Album mode: a file of this run has its outcome (held for its album, or a row). When
        it is the last of its album folder, that folder's albums are decided and written now."""
        if not self._albums or self._plan is None:
            return
        from tagger.albums import scope_of

        s = scope_of(path)
        left = self._scope_left.get(s)
        if left is None:
            return
        if left > 1:
            self._scope_left[s] = left - 1
            return
        del self._scope_left[s]
        self._decide_albums(self._plan, scopes={s})

    def _decide_albums(self, plan: Plan, scopes: set[str] | None = None) -> None:
        """Album mode: decide the albums of the album folders ``scopes`` (every file of this run
        in them is done), or, at the end of the run (None), of every folder still held. The held
        tracks are grouped, with the other tracks of their album folders (unchanged ones: their
        tags read here, their scores from the store), into albums (tagger.albums); each album is
        decided and its tracks written. An album with a file of this run still unfinished (time
        budget, interruption) is left whole for the next run, which decides it from the store;
        tracks of other runs are written only where their genre is tagger's own (or none) and
        their album's decision changed it."""
        from tagger import albums as al
        from tagger import tags

        if scopes is None:
            held, evidence = self._held, self._evidence
            self._held, self._evidence = {}, {}
        else:
            held = {p: v for p, v in self._held.items() if al.scope_of(p) in scopes}
            evidence = {p: v for p, v in self._evidence.items() if al.scope_of(p) in scopes}
            for p in held:
                del self._held[p]
            for p in evidence:
                del self._evidence[p]
        if not held and not evidence:
            return
        if self.stop and not self.options.dry_run:
            self.report.pending += len(held)  # nothing new is written while stopping
            return
        todo = {f.path for f in plan.todo}
        scopes = {al.scope_of(p) for p in list(held) + list(evidence)}
        open_scopes = set(self._scope_left)  # folders with a file of this run not done (stopped early)
        # the album folders' other files: unchanged since an earlier run (not this run's todo)
        others: dict[str, tuple[discover.Found, Any]] = {}
        for p in (q for s in scopes for q in self._by_scope.get(s, ())):
            if p in todo or p in plan.left:
                continue
            try:
                st = os.stat(p)
                others[p] = (discover.Found(p, st.st_size, st.st_mtime_ns), tags.read_tags(p))
            except (OSError, FileError) as exc:
                log.debug("%s: not part of its album this run (%s)", p, exc)
        stored = {} if self.state is None or not others else usable_analyses(
            self.state, [f for f, _ in others.values()], self.meta, self._sampling)
        tracks = [al.TrackTags.of(p, r.get("album_tags")) for p, (r, _, _) in held.items()]
        tracks += [al.TrackTags.of(p, r.get("album_tags")) for p, (r, _) in evidence.items()]
        tracks += [al.TrackTags.of(p, info.album_tags()) for p, (_, info) in others.items()]
        albums, alone = al.group(tracks)
        o, meta = self.options, self.meta
        t = thresholds_for(meta, o)
        kw = dict(top_k=o.top_k, min_confidence=t.default, thresholds=t.per_label, on_existing=o.on_existing,
                  model_id=meta.model_id, names=meta.display_names, user_map=user_names(meta, o), dissent=o.album_dissent,
                  aggregation=meta.aggregation)
        for p in alone:  # loose singles: decided per track
            if p in held:
                res, scores, found = held[p]
                ad = al.decide_album([self._member(p, res, scores)], meta.labels, **kw)
                self._finish_analysed(res, scores, found, album=(ad.outcomes[p], ""))
        for album in albums:
            if self.stop and not self.options.dry_run:
                self.report.pending += sum(1 for p in album.paths if p in held)
                continue
            if any(al.scope_of(p) in open_scopes for p in album.paths):
                self.report.pending += sum(1 for p in album.paths if p in held)
                continue
            members = []
            for p in album.paths:
                if p in held:
                    res, scores, _ = held[p]
                    members.append(self._member(p, res, scores))
                elif p in evidence:
                    members.append(self._member(p, evidence[p][0], None))
                    evidence[p][1].album = album.name
                else:
                    found, info = others[p]
                    a = stored.get(p)
                    members.append(al.Member(
                        p, None if a is None else np.asarray(a.scores, dtype=np.float32),
                        0.0 if a is None else a.seconds, tuple(info.genres), info.tagger_owned,
                        info.provenance.model_id if info.provenance is not None else None))
            ad = al.decide_album(members, meta.labels, name=album.name, compilation=album.compilation, **kw)
            for m in members:
                outcome = ad.outcomes.get(m.path)
                if outcome is None:
                    continue
                if m.path in held:
                    res, scores, found = held[m.path]
                    self._finish_analysed(res, scores, found, album=(outcome, album.name))
                elif m.path in others and outcome.decision.action == TAG and not m.person_genres:
                    # another run's track whose album decision moved: only tagger's own genre moves
                    found, info = others[m.path]
                    a = stored[m.path]
                    res = {
                        "path": m.path, "size": found.size, "mtime_ns": found.mtime_ns, "format": info.format,
                        "existing": tuple(info.genres), "tagger_owned": info.tagger_owned,
                        "owner_model": m.owner_model, "analysed": a.seconds, "duration": a.duration,
                        "chunks": a.chunks, "node": "", "analysis": "stored", "analysed_at": a.analysed_at,
                    }
                    self._finish_analysed(res, np.asarray(a.scores, dtype=np.float32), found,
                                          album=(outcome, album.name))

    @staticmethod
    def _member(path: str, res: dict[str, Any], scores: np.ndarray | None):
        from tagger.albums import Member

        return Member(path, scores, float(res.get("analysed") or 0.0), tuple(res.get("existing") or ()),
                      bool(res.get("tagger_owned")), res.get("owner_model"))

    def _store(self, res: dict[str, Any], scores: np.ndarray) -> None:
        """Keep what the model said about this file's audio in the store of analyses (dry runs too)."""
        if self.state is None or res.get("size") is None:
            return
        res["analysed_at"] = utc_now()
        self.state.store_analysis(StoredAnalysis(
            path=res["path"], model_id=self.meta.model_id, size=res["size"], mtime_ns=res["mtime_ns"],
            scores=tuple(float(s) for s in scores), chunks=int(res["chunks"]), seconds=float(res.get("analysed") or 0.0),
            duration=res.get("duration"), sampling=res.get("store_sampling") or self._sampling,
            analysed_at=res["analysed_at"],
            run_id=self.report.run_id, backbone=self._backbone if res.get("embedding") is not None else "",
            embedding=None if res.get("embedding") is None else tuple(float(v) for v in res["embedding"]),
        ))
        self._maybe_flush()

    # ------------------------------------------------------------------------------------
    def _process(self, todo: list[discover.Found], redecide: set[str] | None = None) -> None:
        from tagger import ray_backend as rb

        t = time.perf_counter()
        self._stage("starting Ray")
        handle = rb.connect(self.options.ray_address, num_cpus=self.options.workers)
        self.stop.install()  # Ray's core worker installs its own SIGTERM handler in ray.init
        self.stats.startup["ray"] = time.perf_counter() - t
        try:
            node_check = None
            if handle.nodes > 1:  # a cluster: does every node run tagger and see the library? (warms them)
                node_check = rb.start_node_check(_probe_paths(self.paths, todo),
                                                 params=self.meta.features.to_dict())
            else:  # warm the local workers while TensorFlow and the model load
                self._stage("starting the decode workers")
                rb.warm_workers(min(len(todo), int(handle.resources.get("CPU", 1))),
                                params=self.meta.features.to_dict())
            workers = self.options.workers or max(1, int(handle.resources.get("CPU", 1)))
            split = rb.cpu_split(os.cpu_count() or 1)  # the machine's cores, whatever --workers says
            if handle.nodes == 1 and not handle.resources.get("GPU") and split.worker_nice:
                self._nice = split.worker_nice  # the decode workers share this machine with inference
            # the first files are decoded while TensorFlow and the model load (node check apart:
            # on a cluster the nodes are checked first)
            stream = self._open_stream(todo, rb.analyse_remote(), rb.max_in_flight(workers), redecide or set())
            if node_check is None:
                self._submit(stream)
            plan = rb.plan_inference(handle.resources, batch_size=self.options.batch_size,
                                     backend=self.meta.backend)
            if plan.where != "actors" and self.meta.backend == "keras":  # start-up, apart from the model load
                from tagger.model import import_tensorflow

                t = time.perf_counter()
                self._stage("loading TensorFlow")
                import_tensorflow()
                if handle.nodes == 1:
                    from tagger.model import set_cpu_threads

                    set_cpu_threads(split.intra, split.inter)
                self.stats.startup["tensorflow"] = time.perf_counter() - t
            t = time.perf_counter()
            self._stage("loading the model")
            if plan.where == "actors":
                predictors = rb.make_actors(plan, self.options.model, self.options.vocabulary)
                predict = _actor_predict(predictors)
            else:
                predictors = [rb.Predictor(self.options.model, self.options.vocabulary,
                                           batch_size=plan.batch_size, mixed_precision=plan.mixed_precision)]
                predict = predictors[0].predict_full
                if predictors[0].approximate:  # bfloat16 on the CPU: close calls are re-done in float32
                    self._exact = predictors[0].predict_exact
            self.stats.startup["model"] = time.perf_counter() - t
            emb = (_predictor_info(predictors[:1]) or [{}])[0].get("embedding") or {}
            self._backbone = str(emb.get("backbone") or "") if emb.get("size") else ""
            if node_check is not None:
                t = time.perf_counter()
                self.report.notes.extend(node_check.result())
                self.stats.startup["node_check"] = time.perf_counter() - t
            res = handle.resources
            self.report.model["inference"] = {
                "where": plan.where, "actors": plan.actors, "gpus_per_actor": plan.gpus_per_actor,
                "batch_size": plan.batch_size,
                "cluster": {"address": handle.address, "nodes": handle.nodes, "driver_node": handle.node_id,
                            "cpus": res.get("CPU", 0), "gpus": res.get("GPU", 0)},
            }
            t = time.perf_counter()
            self._stage("")
            try:
                self._stream(stream, predict, plan.flush_chunks, handle, slots=max(1, int(res.get("CPU", 1))))
            finally:
                self.stats.stream = time.perf_counter() - t
                self.report.model["inference"]["predictors"] = _predictor_info(predictors)
                for name in handle.lost_nodes():
                    self.report.notes.append(f"Ray node {name} left the cluster during the run: the files it "
                                             "held were retried on the other nodes, or failed with the reason")
        finally:
            t = time.perf_counter()
            handle.shutdown()
            self.stats.startup["ray_shutdown"] = time.perf_counter() - t

    def _stage(self, text: str) -> None:
        if text:
            log.info("start-up: %s", text)
        self.progress.stage(text)

    def _open_stream(self, todo, task, limit: int, redecide) -> dict[str, Any]:
        """The analyse tasks of ``todo``, at most ``limit`` in flight: what :meth:`_submit` and
        :meth:`_stream` share (submitting may start before the model is loaded)."""
        params = self.meta.features.to_dict()
        policy = {
            "model_id": self.meta.model_id, "on_existing": self.options.on_existing,
            "analysis_seconds": self.options.analysis_seconds,
            "adaptive_first": _adaptive().FIRST_SECONDS if self._adaptive else None,
            "max_seconds": self.options.max_analysis_seconds, "float16": False, "nice": self._nice,
        }
        # decision settings changed since this model wrote the file's genre: look again
        return {"params": params, "policy": policy, "policy_redecide": {**policy, "redecide": True},
                "by_path": {f.path: f for f in todo}, "queue": list(reversed(todo)),
                "in_flight": {},  # ref -> [path, monotonic time its clock started or None]
                "task": task, "limit": limit, "redecide": redecide}

    def _submit(self, st: dict[str, Any]) -> None:
        """Submit analyse tasks up to the stream's limit: re-checks first (they finish started
        tracks; the time budget only stops new files), then new files."""
        in_flight, limit, task, params = st["in_flight"], st["limit"], st["task"], st["params"]

        def policy_of(path):
            # album mode: tracks tagger wrote are analysed too (their scores make their album's)
            again = self._albums or path in st["redecide"]
            return st["policy_redecide"] if again else st["policy"]

        while self._rest_queue and len(in_flight) < limit and not self.stop:
            f, rest = self._rest_queue.pop(0)
            pol = {**policy_of(f.path), "segments": rest, "adaptive_first": None}
            in_flight[task.remote(f.path, params=params, policy=pol)] = [f.path, None]
        queue = st["queue"]
        while queue and len(in_flight) < limit and not self.stop and not self._out_of_time():
            f = queue.pop()
            pol = policy_of(f.path)
            if f.path in self._extend:  # a stored first pass, close under these settings: its rest only
                a, rest = self._extend.pop(f.path)
                self._priors[f.path] = {
                    "scores": np.asarray(a.scores, np.float32), "chunks": a.chunks, "seconds": a.seconds,
                    "embedding": None if a.embedding is None else np.asarray(a.embedding, np.float32),
                    "features": None, "size": a.size, "mtime_ns": a.mtime_ns, "stored": True}
                pol = {**pol, "segments": rest, "adaptive_first": None}
            in_flight[task.remote(f.path, params=params, policy=pol)] = [f.path, None]

    def _stream(self, st: dict[str, Any], predict, batch_size: int, handle, slots: int | None = None) -> None:
        """Collect the stream's analyses, predict them in batches, decide and write; keep
        submitting. ``slots``: how many analyse tasks the cluster runs at once (the rest of the
        limit in flight wait in Ray's queue, and their --file-timeout clock has not started)."""
        import ray

        by_path, queue, in_flight = st["by_path"], st["queue"], st["in_flight"]
        ready: list[dict[str, Any]] = []  # analysed tracks waiting for a batch (or its end)
        ready_chunks = 0  # their chunks not yet predicted
        timeout = self.options.file_timeout

        def submit():
            self._submit(st)

        submit()
        while in_flight or ready or self._rest_queue:
            if self.stop:
                for ref in in_flight:
                    ray.cancel(ref, force=True)
                self.report.pending += len(in_flight) + len(ready) + len(self._rest_queue)
                in_flight.clear()
                self._rest_queue.clear()
                ready = []
                break
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5) if in_flight else ([], [])
            # collect everything already finished, without waiting
            if done and len(in_flight) > 1:
                more, _ = ray.wait([r for r in in_flight if r not in done], num_returns=len(in_flight) - 1, timeout=0)
                done = done + more
            for ref in done:
                path, _ = in_flight.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - worker died twice, node lost, task cancelled, ...
                    from tagger.ray_backend import task_failure

                    res = {"path": path, "error": ("worker", task_failure(exc, handle)),
                           "format": None, "existing": (), "node": "", "seconds": 0.0}
                self.stats.add_worker(res)
                prior = self._priors.pop(path, None)
                if prior is not None and not self._rest_fits(res, prior, by_path[path]):
                    continue
                if prior is not None:
                    res["_prior"] = prior
                if res.get("features") is not None:
                    ready.append(res)
                    ready_chunks += res["features"].shape[0]
                else:
                    self._finish_unanalysed(res, by_path[path], handle)
            self._check_timeouts(in_flight, timeout, by_path, slots)
            submit()
            flush = ready and (ready_chunks >= batch_size or not in_flight)
            if flush:
                # whole batches only while more tracks are coming: a track's last chunks wait for
                # the next batch instead of making a small one (they cost up to twice as much)
                ready = self._predict_and_write(ready, predict, by_path,
                                                batch=None if not in_flight else batch_size)
                ready_chunks = sum(r["features"].shape[0] - r["_done"] for r in ready)
            if not in_flight and not queue and not self._rest_queue:
                break
        if queue:
            self.report.pending += len(queue)

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _check_timeouts(self, in_flight, timeout, by_path, slots: int | None = None) -> None:
        """Stop files analysed for longer than ``timeout``. A task's clock starts when it is
        among the ``slots`` oldest outstanding tasks (Ray runs them in order), not when it was
        submitted: time spent waiting in the queue behind slow files is not the file's fault."""
        import ray

        if not timeout:
            return
        now = time.monotonic()
        for i, (ref, entry) in enumerate(list(in_flight.items())):
            if slots is not None and i >= slots:
                break
            path, started = entry
            if started is None:
                entry[1] = now
                continue
            if now - started > timeout:
                ray.cancel(ref, force=True)
                del in_flight[ref]
                self._fail(by_path[path], "timeout", f"analysis took longer than {timeout:.0f} s; stopped")

    # ------------------------------------------------------------------------------------
    def _predict_and_write(self, ready: list[dict[str, Any]], predict, by_path,
                           batch: int | None = None) -> list[dict[str, Any]]:
        """Predict the chunks of ``ready`` not yet predicted (a multiple of ``batch`` of them, or
        all with None), finish every track whose chunks are all predicted, and return the
        others (their scores so far kept in ``_probs``, ``_done`` chunks of them)."""
        for r in ready:
            if "_probs" not in r:
                r["_probs"], r["_done"] = None, 0
        todo = sum(r["features"].shape[0] - r["_done"] for r in ready)
        count = todo if batch is None else todo - todo % batch
        if count == 0:
            return ready
        parts, left = [], count
        for r in ready:
            if left == 0:
                break
            f = r["features"][r["_done"]:][:left]
            parts.append(f)
            left -= f.shape[0]
        t = time.perf_counter()
        x = np.concatenate(parts).astype(np.float32, copy=False)
        try:
            probs = predict(x)
        except Exception as exc:
            import ray

            if not isinstance(exc, ray.exceptions.RayError):
                raise
            # the predictor actors are lost (their GPU node left the cluster, restarts used up):
            # the tracks of this batch fail with the reason; what is already written stays
            for r in ready[:len(parts)]:
                self._fail(by_path[r["path"]], "worker", f"inference lost: {_one_line(exc)}")
            return ready[len(parts):]
        self.stats.infer += time.perf_counter() - t
        self.stats.chunks += x.shape[0]
        self.stats.batches += 1
        start, waiting = 0, []
        for r in ready:
            n = r["features"].shape[0]
            take = min(n - r["_done"], count - start)
            if take > 0:
                if r["_probs"] is None:
                    r["_probs"] = np.empty((n, probs.shape[1]), np.float32)
                r["_probs"][r["_done"]:r["_done"] + take] = probs[start:start + take]
                r["_done"] += take
                start += take
            if r["_done"] < n:
                waiting.append(r)
                continue
            prior = r.pop("_prior", None)
            if prior is None or prior.get("stored"):
                self.stats.analysed += 1
            self.stats.audio_seconds += r.get("analysed") or 0.0
            r["chunks"], r["analysis"] = n, "now"
            full = r.pop("_probs")
            labels = len(self.meta.labels)
            scores = track_scores(full[:, :labels], self._agg)
            # a logit-mean model's exact mean logits: an adaptive rest combines with them
            r["_logits"] = track_logits(full[:, :labels]) if self._agg == "logit-mean" else None
            # the backbone's pooled track embedding (mean over chunks), for heads trained later
            r["embedding"] = full[:, labels:].mean(axis=0) if full.shape[1] > labels else None
            if prior is None and self._adaptive and self._wants_rest(r, scores, by_path):
                continue  # a close call on the sample: decided once the rest is heard
            features = r["features"]
            if prior is not None:
                scores, features = self._with_prior(r, prior, scores)
            if self._exact is not None and _close_call(scores, top_k=self.options.top_k,
                                                       min_confidence=self._thr, chunks=r["chunks"]):
                t = time.perf_counter()  # computed in bfloat16 and too close to call: float32 decides
                out = self._exact(np.asarray(features, dtype=np.float32))
                exact = track_scores(out, self._agg)
                if prior is not None and prior["features"] is None:  # a stored first pass: the new part only
                    exact = _adaptive().combine_scores(
                        prior["scores"], prior["chunks"], exact, n, aggregation=self._agg,
                        rest_logits=track_logits(out) if self._agg == "logit-mean" else None)
                scores = exact
                self.stats.infer += time.perf_counter() - t
                self.stats.rechecked += 1
            self._conclude(r, scores, by_path)
        return waiting

    def _wants_rest(self, r: dict[str, Any], scores: np.ndarray, by_path) -> bool:
        """After an adaptive first pass: queue the rest of the track where the decision on the
        sample is a close call (True), or mark the track decided on what was heard (False)."""
        ad = _adaptive()
        rest, share = ad.plan_rest(r.get("duration"), r.get("plan") or [(0.0, None)],
                                   max_seconds=self.options.max_analysis_seconds, params=self.meta.features)
        n = r["chunks"]
        if rest and ad.needs_rest(scores, share=share, top_k=self.options.top_k,
                                  min_confidence=self._thr, extra_error=ad.decision_error(n)):
            self._priors[r["path"]] = {"scores": scores, "logits": r.get("_logits"), "chunks": n,
                                       "seconds": r.get("analysed") or 0.0,
                                       "embedding": r.get("embedding"), "features": r["features"],
                                       "size": r.get("size"), "mtime_ns": r.get("mtime_ns"), "stored": False}
            self._rest_queue.append((by_path[r["path"]], rest))
            return True
        whole = not rest
        r["sampling"], r["rechecked"] = ("whole" if whole else "adaptive"), False
        if whole:  # nothing left to hear: stored as complete
            r["store_sampling"] = ad.spec(ad.FIRST_SECONDS, self.options.max_analysis_seconds, complete=True)
        return False

    def _with_prior(self, r: dict[str, Any], prior: dict[str, Any], scores: np.ndarray):
        """Scores (and embedding, chunks, seconds) over the first pass and its rest together:
        chunk-weighted means. Returns (scores, the features of everything heard in this run)."""
        ad = _adaptive()
        n = r["chunks"]
        total = prior["chunks"] + n
        combined = ad.combine_scores(prior["scores"], prior["chunks"], scores, n, aggregation=self._agg,
                                     first_logits=prior.get("logits"), rest_logits=r.get("_logits"))
        if r.get("embedding") is not None and prior.get("embedding") is not None \
                and len(prior["embedding"]) == len(r["embedding"]):
            r["embedding"] = ad.combine(prior["embedding"], prior["chunks"], r["embedding"], n)
        else:
            r["embedding"] = None
        self.stats.rest += 1
        self.stats.rest_seconds += r.get("analysed") or 0.0
        self.stats.extended += int(bool(prior.get("stored")))
        r["chunks"], r["analysed"] = total, prior["seconds"] + (r.get("analysed") or 0.0)
        r["sampling"], r["rechecked"] = "adaptive+rest", True
        r["store_sampling"] = ad.spec(ad.FIRST_SECONDS, self.options.max_analysis_seconds, complete=True)
        features = r["features"] if prior["features"] is None else np.concatenate([prior["features"], r["features"]])
        return combined, features

    def _rest_fits(self, res: dict[str, Any], prior: dict[str, Any], found: discover.Found) -> bool:
        """A re-check's result belongs with its first pass (False: the file was dealt with here)."""
        if res.get("size") is not None and (res["size"], res["mtime_ns"]) != (prior["size"], prior["mtime_ns"]):
            self._fail(found, "decode", "file changed while it was analysed; analysed again next run", res)
            return False
        if res.get("features") is None and not prior.get("stored"):
            # the rest could not be heard (a damaged stretch, silence): decide on the sample
            reason = (res.get("error") or ("", res.get("skip") or "no audio"))[1]
            log.warning("%s: the rest of the track could not be analysed (%s); decided on the sample", res["path"], reason)
            r = {**res, "features": prior["features"], "analysed": prior["seconds"], "chunks": prior["chunks"],
                 "embedding": prior["embedding"], "analysis": "now", "sampling": "adaptive", "rechecked": False,
                 "error": None, "skip": None}
            if r.get("format") is None:
                r["format"] = discover.format_of(res["path"])
            self._conclude(r, prior["scores"], {res["path"]: found})
            return False
        return True

    def _conclude(self, r: dict[str, Any], scores: np.ndarray, by_path) -> None:
        """Store a track's analysis, then decide and write it."""
        if self.options.analysis_seconds is not None or self.options.whole_track:
            sampled = any(d is not None for _, d in (r.get("plan") or [(0.0, None)]))
            r.setdefault("sampling", "sample" if sampled else "whole")
        self._store(r, scores)
        if self.stop and not self.options.dry_run:
            # stopping: nothing new is written; the file stays for the next run
            self.report.pending += 1
            return
        self._finish_analysed(r, scores, by_path[r["path"]])

    def _finish_analysed(self, res: dict[str, Any], scores: np.ndarray, found: discover.Found,
                         album: tuple[Any, str] | None = None) -> None:
        """Decide (per track, or with ``album`` = (tagger.albums.TrackOutcome, album name) the
        album's outcome for this track), write, report, record. In album mode without ``album``
        the track is held until its album is decided (:meth:`_decide_albums`)."""
        o, meta = self.options, self.meta
        if self._albums and album is None:
            res.pop("features", None)
            res.pop("audio", None)
            self._held[res["path"]] = (res, np.asarray(scores, dtype=np.float32), found)
            self.progress.advance()
            self._done_with(res["path"])
            return
        if album is None:
            d, reason, album_name, genre_from = None, "", "", ""
            d = decide_for(scores, res=res, meta=meta, options=o)
            reason = d.reason
        else:
            outcome, album_name = album
            d, genre_from = outcome.decision, outcome.genre_from
            reason = d.reason + (f"; {outcome.note}" if outcome.note else "")
        row = Row(
            res["path"], res["format"] or discover.format_of(res["path"]), "", reason,
            existing=list(res["existing"]),
            predicted=[{"genre": r.genre, "label": r.label, "score": round(r.score, 4)} for r in d.ranked[:5]],
            duration=round(res["analysed"], 2) if res.get("analysed") else None,
            chunks=int(res["chunks"]), node=res.get("node", ""),
            analysis=res.get("analysis", ""), analysed_at=res.get("analysed_at", ""),
            album=album_name, genre_from=genre_from if d.action == TAG else "",
            sampling=res.get("sampling", ""), rechecked=res.get("rechecked"),
        )
        if album is not None:
            row.album_genres = list(album[0].album_genres)
            row.dissent = bool(album[0].dissent)
        if d.action == TAG:
            row.written = list(d.genres)
            try:
                self._write(res, found, d)
                row.action = "tagged"
            except FileError as exc:
                row.action, row.reason, row.error_kind = "failed", exc.reason, exc.kind
        else:
            row.action = "uncertain" if d.action == UNCERTAIN else "skipped"
        self.report.add(row)
        log.info("%s: %s (%s)", row.action, row.path, "; ".join(row.written) if row.written else row.reason)
        if row.action == "uncertain" and o.explain_uncertain:
            self._explain.append((res["path"], {"scores": scores}))
        self._record(res, row.action)
        if album is None:
            self.progress.advance()

    def _write(self, res: dict[str, Any], found: discover.Found, d) -> None:
        from tagger import __version__, tags

        prov = tags.Provenance(
            model_id=self.meta.model_id, genres=tuple(r.genre for r in d.chosen),
            scores=tuple(round(r.score, 4) for r in d.chosen), date=_now_iso(), tool=f"tagger {__version__}",
        )
        path, state = res["path"], self.state
        # write-ahead: the undo record is on disk before the file is replaced, or nothing is written
        ahead = None if state is None else WriteAhead(state, self.report.run_id, path, refusal="left alone")
        t = time.perf_counter()
        try:
            change = tags.write_genres(path, list(d.genres), prov, id3v23=self.options.id3v23,
                                       dry_run=self.options.dry_run, expect=(res["size"], res["mtime_ns"]),
                                       before_save=None if ahead is None else ahead.before_save)
        except BaseException:
            if ahead is not None:  # the write failed and the file is as it was (or a signal: settled next time)
                ahead.void()
            raise
        finally:
            self.stats.write += time.perf_counter() - t
        if self.options.dry_run or ahead is None:
            return
        try:
            st = ahead.done(after=change.after)
        except StateError as exc:  # written, journaled ahead: the next run or undo settles the entry
            log.warning("%s: written, but the journal entry could not be settled (%s); the next run "
                        "settles it from the file", path, exc)
            st = os.stat(path)
        res["size"], res["mtime_ns"] = st.st_size, st.st_mtime_ns

    def _finish_unanalysed(self, res: dict[str, Any], found: discover.Found, handle) -> None:
        if res.get("error"):
            kind, reason = res["error"]
            if kind == "decode" and "not found" in reason and res.get("node") and res["node"] != handle.node_id:
                reason += f" on worker node {res['node'][:12]} (is the library on a path shared by every node?)"
            if kind != "audio":
                self._fail(found, kind, reason, res)
                return
            # digital silence, too short: the file is fine, there is nothing to classify. Skipped
            # (exit 0) and remembered, so a nightly run does not fail on it forever.
            log.info("skipped: %s (%s)", res["path"], reason)
            res["skip"] = reason
        row = Row(res["path"], res["format"] or discover.format_of(res["path"]), "skipped", res["skip"],
                  existing=list(res["existing"]), node=res.get("node", ""),
                  error_kind="audio" if res.get("error") else "")
        self.report.add(row)
        if self._albums and not res.get("error") and res.get("existing"):
            # a person's genre (--on-existing skip): evidence about its album, no scores
            self._evidence[res["path"]] = (res, row)
        self._record(res, "skipped")
        self.progress.advance()
        self._done_with(res["path"])

    def _fail(self, found: discover.Found, kind: str, reason: str, res: dict[str, Any] | None = None) -> None:
        res = res or {}
        self.report.add(Row(found.path, res.get("format") or discover.format_of(found.path), "failed", reason,
                            existing=list(res.get("existing") or ()), node=res.get("node", ""), error_kind=kind))
        log.warning("%s: %s", found.path, reason)
        self.progress.advance()
        self._done_with(found.path)

    def _record(self, res: dict[str, Any], outcome: str) -> None:
        if self.state is None or self.options.dry_run or res.get("size") is None:
            return
        self.state.record_file(res["path"], size=res["size"], mtime_ns=res["mtime_ns"],
                               model_id=self.meta.model_id, outcome=outcome, run_id=self.report.run_id,
                               decided=self._decided)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        self._since_flush += 1
        now = time.monotonic()
        if self._since_flush >= FLUSH_EVERY_FILES or now - self._last_flush >= FLUSH_EVERY_SECONDS:
            self._since_flush, self._last_flush = 0, now
            self._flush_state()

    def _flush_state(self) -> None:
        """Commit buffered file records. A database that refuses them (full disk) does not end
        the run: the records stay buffered for the next try, and writes stop for want of a journal."""
        try:
            self.state.flush()
        except StateError as exc:
            if self.state_problem is None:
                log.warning("cannot save file records (%s); files are still analysed, and none is written "
                            "without its undo record", exc)
            self.state_problem = exc


def _probe_paths(roots: list[str], todo: list[discover.Found]) -> list[str]:
    """What every node of a cluster must see: the library roots and a sample of the files."""
    sample = [f.path for f in todo[:: max(1, len(todo) // 8)]][:8] + [todo[-1].path]
    return list(dict.fromkeys([os.path.abspath(os.path.expanduser(r)) for r in roots] + sample))


def _adaptive():
    from tagger import adaptive

    return adaptive


def _close_call(scores: np.ndarray, *, top_k: int, min_confidence: float | np.ndarray, chunks: int) -> bool:
    from tagger.model import close_call

    return close_call(scores, top_k=top_k, min_confidence=min_confidence, chunks=chunks)


def _predictor_info(predictors) -> list[dict[str, Any]]:
    """Where each predictor ran and in which precision (local Predictors or Ray actor handles)."""
    from tagger.ray_backend import Predictor

    try:
        if predictors and not isinstance(predictors[0], Predictor):
            import ray

            return ray.get([a.info.remote() for a in predictors], timeout=30)
        return [p.info() for p in predictors]
    except Exception as exc:  # noqa: BLE001 - an actor lost at the end must not lose the report
        log.debug("predictor info unavailable: %s", exc)
        return []


def _actor_predict(actors) -> Callable[[np.ndarray], np.ndarray]:
    import ray

    def predict(x: np.ndarray) -> np.ndarray:
        parts = np.array_split(x, len(actors))
        refs = [a.predict_full.remote(p) for a, p in zip(actors, parts) if len(p)]
        return np.concatenate(ray.get(refs))

    return predict


def _options_dict(o: TagOptions) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(o)
    d["reports"] = list(o.reports)
    d["exclude"] = list(o.exclude)
    return d


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
