"""Orchestration of ``tagger tag``: discover -> plan -> analyse on Ray -> predict in big batches ->
apply (decide -> write, driver only -> state and journal -> report row: :mod:`tagger.apply`).

The stages pass typed values (:mod:`tagger.contracts`): workers return an ``Analysis``, the
driver makes a ``Scored`` of it (or of a stored analysis), the apply stage decides and writes it.

Memory stays flat: at most ``max_in_flight`` analyse tasks are outstanding, and finished tracks
wait for inference only until a batch is full. Signals stop new work; the write in progress
finishes; state and journal are flushed; Ray is shut down.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tagger import discover
from tagger.aggregate import thresholds_for, track_logits, track_scores
from tagger.contracts import Analysis, Policy, Scored, Segment
from tagger.errors import EXIT_SIGINT, EXIT_SIGTERM, FileError, StateError
from tagger.modelmeta import ModelMeta, load_meta, locate
from tagger.options import TagOptions
from tagger.report import Report, Row, plural
from tagger.state import StoredAnalysis

if TYPE_CHECKING:
    from tagger.ray_backend import TaskStream

log = logging.getLogger(__name__)


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
        if self.signum is None:
            return ""
        return {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}.get(signal.Signals(self.signum), "")

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
    would have analysed the same stretches (:func:`accepts`)."""
    if options.analysis_seconds is not None:
        return f"sample:{options.analysis_seconds:g}"
    if options.whole_track:
        return f"whole<={options.max_analysis_seconds:g}"
    from tagger import adaptive

    return adaptive.spec(adaptive.FIRST_SECONDS, options.max_analysis_seconds)


def accepts(spec: str, sampling: str) -> bool:
    """Whether a run of ``spec`` decides from a stored analysis of ``sampling``. An adaptive run
    takes its own first passes and their later stages (extended where the decision is close under
    its settings: :func:`needs_extension`), any adaptive analysis that heard everything a
    whole-track run hears (whatever its first pass: an earlier version's too), and a whole-track
    analysis of the same cap. Whole-track and fixed-sample runs take only their own."""
    if sampling == spec:
        return True
    if not spec.startswith("adaptive:"):
        return False
    from tagger import adaptive

    cap = spec.split("/", 1)[1]
    if sampling == cap:
        return True
    if sampling.partition("/")[2] != cap:
        return False
    if adaptive.is_complete(sampling):
        return True
    mine, theirs = adaptive.parse_spec(spec), adaptive.parse_spec(sampling)
    return mine is not None and theirs is not None and theirs[0] == mine[0]


def usable_analyses(state, todo: list[discover.Found], meta: ModelMeta, spec: str) -> dict[str, StoredAnalysis]:
    """The stored analyses that fit ``todo``'s files as they are now: same size and mtime, same
    model and an accepted sampling (:func:`accepts`), and sound (a damaged or foreign
    row is ignored with a warning, and the file analysed again: never written from)."""
    rows = state.analyses([f.path for f in todo], meta.model_id)
    out: dict[str, StoredAnalysis] = {}
    for f in todo:
        a = rows.get(f.path)
        if a is None or (a.size, a.mtime_ns) != (f.size, f.mtime_ns) or not accepts(spec, a.sampling):
            continue
        why = a.problem(labels=len(meta.labels), model_id=meta.model_id)
        if why:
            log.warning("%s: stored analysis ignored (%s); analysing it again", f.path, why)
            continue
        out[f.path] = a
    return out


def needs_extension(a: StoredAnalysis, options: TagOptions, meta: ModelMeta) -> list[Segment]:
    """What to analyse next of a track before deciding from its stored adaptive analysis (a first
    pass or a later stage): empty where its decision under these settings is clear (or the track
    was heard whole). The stretches heard follow from the duration and the stage in the spec, so
    they need not be stored."""
    from tagger import adaptive

    parsed = adaptive.parse_spec(a.sampling)
    if parsed is None or not a.duration:
        return []
    first, stage = parsed
    share, nxt = adaptive.progress(a.duration, first_seconds=first, stage=stage,
                                   max_seconds=options.max_analysis_seconds, params=meta.features)
    thr = thresholds_for(meta, options).for_close_call(meta.labels)
    if nxt and adaptive.needs_rest(np.asarray(a.scores), share=share, chunks=a.chunks, top_k=options.top_k,
                                   min_confidence=thr, extra_error=adaptive.decision_error(a.chunks)):
        return nxt.segments
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
    album_rechecks: int = 0  # next stages heard because an album's decision was a close call
    stored: int = 0  # files decided from the store of analyses (not decoded, no model)

    def add_worker(self, a: Analysis) -> None:
        self.worker += a.timing.total
        self.tags += a.timing.tags
        self.decode += a.timing.decode
        self.features += a.timing.features

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


@dataclass(frozen=True, eq=False)
class Prior:
    """What was heard of a track before its next stage (adaptive analysis): the scores, chunks,
    seconds, embedding and (``logit-mean`` models) exact mean logits of everything heard so far;
    ``features``: the chunks heard in this run (for a float32 re-check), None where none were;
    ``base``: the stored analysis it began from (scores, chunks), None for a track first heard in
    this run; ``stage``: the last stage heard; ``extensions``: stages this run heard after the first."""

    scores: np.ndarray
    chunks: int
    heard: float
    embedding: np.ndarray | None
    features: np.ndarray | None
    size: int
    mtime_ns: int
    stored: bool = False
    logits: np.ndarray | None = None  # a logit-mean model's exact mean logits (None: stored, or a mean model)
    stage: int = 0
    base: tuple[np.ndarray, int] | None = None
    extensions: int = 0


@dataclass(eq=False)
class Pending:
    """The driver's own record of an :class:`Analysis` waiting for the model: the chunk
    probabilities so far (``probs``, ``done`` chunks of them) and what was heard before it."""

    analysis: Analysis
    prior: Prior | None = None
    probs: np.ndarray | None = None
    done: int = 0

    @property
    def left(self) -> int:
        """Chunks not predicted yet."""
        return self.analysis.chunks - self.done


@dataclass
class Stream:
    """The analyse tasks of one run: the files still to submit (``queue``, last first) and
    the tasks in flight (``tasks``, at most its limit)."""

    params: dict[str, Any]
    policy: Policy
    again: Policy  # the policy of a file decided again (decision settings changed; album mode)
    by_path: dict[str, discover.Found]
    queue: list[discover.Found]
    tasks: TaskStream[str]  # keyed by path
    task: Any  # the Ray task (tagger.ray_backend.analyse_remote())
    redecide: set[str]


class Tagger:
    """One run of ``tagger tag``. Construct, then :meth:`run`.

    The orchestrator: plans, streams analyses through Ray, batches chunks for the predictor,
    holds album tracks until their folder is done. What each track's scores lead to (deciding,
    writing, recording, the report row) is the apply stage's (:class:`tagger.apply.ApplyStage`).
    """

    def __init__(self, paths, options: TagOptions, *, argv: list[str] | None = None,
                 progress: Progress | None = None, state=None, run_id: str | None = None,
                 stop: StopFlag | None = None):
        from tagger.apply import ApplyStage

        self.paths = [os.fspath(p) for p in paths]
        self.options = options
        self.argv = argv or []
        self.progress = progress or Progress()
        self.state = state
        self.stop = stop if stop is not None else StopFlag()
        # the model's files, located and verified here once; the predictors get them as they are
        self.files = locate(options.model, vocabulary=options.vocabulary)
        self.meta = load_meta(self.files)
        self._shipped = options.vocabulary if options.model is None else None
        self.report = Report(dry_run=options.dry_run, run_id=run_id or "", model=model_summary(self.meta, options),
                             options=_options_dict(options))
        self.stats = Stats()
        self.deadline = None if options.time_budget is None else time.monotonic() + options.time_budget
        self._exact: Callable[[np.ndarray], np.ndarray] | None = None  # float32 re-check (bfloat16 CPU inference)
        self._head_norms: np.ndarray | None = None  # a logit-mean head's column norms (its bfloat16 bound)
        #: the thresholds in effect, as close calls take them (one number, or one per label)
        self._thr = thresholds_for(self.meta, options).for_close_call(self.meta.labels)
        self._agg = self.meta.aggregation
        self._sampling = sampling_spec(options)
        self.apply = ApplyStage(meta=self.meta, options=options, report=self.report, state=state,
                                decided=decision_key(options, self.meta), sampling=self._sampling)
        # album mode (tagger.albums): analysed tracks wait here until every file of their album
        # folder in this run is done, then that folder's albums are decided together and written
        # (_decide_albums), while the rest of the run goes on; only scores and tags are kept
        self._albums = bool(options.albums)
        self._held: dict[str, tuple[Scored, discover.Found]] = {}
        self._evidence: dict[str, tuple[Analysis, Row]] = {}  # skipped with a person's genre
        self._scope_left: dict[str, int] = {}  # album folder -> this run's files in it not done yet
        self._by_scope: dict[str, list[str]] = {}  # album folder -> every file the walk found in it
        self._again: set[str] = set()  # held tracks sent for another stage by their album's close call
        self._streaming = False  # analyse tasks can be submitted (an album's close call can hear more)
        self._plan: Plan | None = None
        # adaptive analysis (the default): a sample first, more of the track where the decision is close
        self._nice = 0  # niceness the decode workers add to themselves (ray_backend.cpu_split)
        self._adaptive = options.analysis_seconds is None and not options.whole_track
        self._rest_queue: list[tuple[discover.Found, list[Segment]]] = []  # re-checks to submit
        self._priors: dict[str, Prior] = {}  # path -> what was heard before its rest
        self._extend: dict[str, tuple[StoredAnalysis, list[Segment]]] = {}  # stored first passes to extend

    @property
    def state_problem(self) -> StateError | None:
        """The state database refused a write during the run (the run went on)."""
        return self.apply.state_problem

    @state_problem.setter
    def state_problem(self, exc: StateError | None) -> None:
        self.apply.state_problem = exc

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
            n = plural(len(self._extend), "stored sampled analysis", "stored sampled analyses")
            self.report.notes.append(f"{n} extended: a close call under these settings (more of the track heard)")
        if plan.stored:
            self.report.notes.append(
                f"{plural(len(plan.stored), 'file')} decided from stored analyses (not re-analysed)")
        self.stats.stored = len(plan.stored)
        if not plan.todo:
            self._prune(plan)
            return self._finished()
        self.progress.start(len(plan.todo))
        if self._albums:
            from tagger.albums import scope_of

            self._plan = plan
            for f in plan.todo:
                s = scope_of(f.path)
                self._scope_left[s] = self._scope_left.get(s, 0) + 1
            for path in plan.found:
                self._by_scope.setdefault(scope_of(path), []).append(path)
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
            self.apply.flush()
        if not self.stop:
            self._prune(plan)
        if self.stop:
            self.report.interrupted = self.stop.name
        return self._finished()

    def _finished(self) -> Report:
        self.report.finished = time.time()
        self.stats.write = self.apply.write_seconds
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
        from tagger.apply import from_store

        for i, f in enumerate(files):
            if self.stop or self._out_of_time():
                self.report.pending += len(files) - i
                return
            try:
                info = tags.read_tags(f.path)
            except FileError as exc:
                self._fail(f, exc.kind, exc.reason)
                continue
            self._finish_analysed(from_store(f, info, stored[f.path]), f)

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
        tags read here, their scores from the store), into albums and applied
        (:func:`tagger.apply.album_decisions`). An album with a file of this run still unfinished
        (time budget, interruption) is left whole for the next run, which decides it from the
        store; tracks of other runs are written only where their genre is tagger's own (or none)
        and their album's decision changed it."""
        from tagger import albums as al
        from tagger import tags
        from tagger.apply import album_decisions

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
        applied, deferred = 0, 0

        def recheck(members, ad) -> bool:  # an album decision too close to call on samples: hear more
            nonlocal deferred
            extend = self._album_close_call(members, ad, held) if scopes is not None else []
            if not extend:
                return False
            for m in members:  # the album waits, whole, for the next stages of its sampled tracks
                if m.path not in held:
                    continue
                deferred += 1
                if m.path in extend:
                    self._extend_for_album(*held[m.path])
                else:
                    self._held[m.path] = held[m.path]
            return True

        for s, album in album_decisions({p: v[0] for p, v in held.items()}, evidence, others, stored,
                                        meta=self.meta, options=self.options,
                                        open_scopes=set(self._scope_left), stopping=lambda: bool(self.stop),
                                        recheck=recheck if self._adaptive and self._streaming else None):
            if s.path in held:
                applied += 1
                self._finish_analysed(s, held[s.path][1], album=album)
            else:
                self._finish_analysed(s, others[s.path][0], album=album)
        self.report.pending += len(held) - applied - deferred

    def _album_close_call(self, members, ad, held) -> list[str]:
        """This run's sampled tracks of an album whose decision could change if they were heard
        further: all of them where the album's scores (a length-weighted mean of its tracks') could
        move by the length-weighted mean of their sampling bounds (tagger.adaptive.sampling_error; 0
        for a track heard whole or to its end) enough to change what the album writes; else those
        whose dissent from the album's genres (``--album-dissent``, tagger.albums.dissent_close)
        could change within their own bound. Tracks from the store, and from other runs, count as
        they are."""
        if ad.scores is None:
            return []
        from tagger.albums import dissent_close

        errors, weights, extend, dissent = [], [], [], []
        album = ([self.meta.labels.index(r.label) for r in ad.decision.chosen]
                 if ad.genres and ad.decision is not None and not ad.per_track else [])
        for m in members:
            if m.scores is None:
                continue
            e = 0.0
            if m.path in held and held[m.path][0].analysis == "now":
                e = self._sampling_bound(held[m.path][0])
                if e > 0:
                    extend.append(m.path)
                    if album and dissent_close(m.scores, album, dissent=self.options.album_dissent, error=e):
                        dissent.append(m.path)
            errors.append(e)
            weights.append(max(float(m.seconds), 1.0))
        if not extend:
            return []
        error = float(np.dot(errors, weights) / np.sum(weights))
        from tagger.model import close_call

        if not close_call(ad.scores, top_k=self.options.top_k, min_confidence=self._thr, error=error, ranking=False):
            return dissent
        return extend

    def _progress_of(self, s: Scored):
        """(stage, share heard, next stage) of a held track's adaptive analysis; None for a track
        heard whole or to its end (nothing left to hear)."""
        ad = _adaptive()
        parsed = ad.parse_spec(s.store_sampling or "")
        if parsed is None:
            return None
        share, nxt = ad.progress(s.duration, first_seconds=parsed[0], stage=parsed[1],
                                 max_seconds=self.options.max_analysis_seconds, params=self.meta.features)
        return None if nxt is None else (parsed[1], share, nxt)

    def _sampling_bound(self, s: Scored) -> float:
        """The sampling bound on a track's scores after the stages it was heard in (0: heard whole)."""
        at = self._progress_of(s)
        return 0.0 if at is None else _adaptive().sampling_error(at[1], s.chunks)

    def _extend_for_album(self, s: Scored, found: discover.Found) -> None:
        """Queue the next stage of a held track whose album is a close call; it is held again,
        with its album, once heard (its scores so far are the base its next stage combines with)."""
        from tagger.albums import scope_of

        at = self._progress_of(s)
        assert at is not None  # only tracks with more to hear are extended
        stage, _, nxt = at
        self._priors[s.path] = Prior(s.scores, s.chunks, s.heard, s.embedding, None, s.size, s.mtime_ns,
                                     logits=s.logits, stage=stage, base=(s.scores, s.chunks),
                                     extensions=1 if stage else 0)
        self._rest_queue.append((found, nxt.segments))
        self._again.add(s.path)
        scope = scope_of(s.path)
        self._scope_left[scope] = self._scope_left.get(scope, 0) + 1
        self.stats.album_rechecks += 1

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
                predictors = rb.make_actors(plan, self.files, self.meta, shipped=self._shipped)
                predict = _actor_predict(predictors)
            else:
                predictors = [rb.Predictor(self.files, self.meta, batch_size=plan.batch_size, shipped=self._shipped,
                                           mixed_precision=plan.mixed_precision)]
                predict = predictors[0].predict_full
                if predictors[0].approximate:  # bfloat16 on the CPU: close calls are re-done in float32
                    self._exact = predictors[0].predict_exact
                    self._head_norms = predictors[0].head_norms  # a logit-mean head's own bound
            self.stats.startup["model"] = time.perf_counter() - t
            emb = (_predictor_info(predictors[:1]) or [{}])[0].get("embedding") or {}
            self.apply.backbone = str(emb.get("backbone") or "") if emb.get("size") else ""
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
                self._stream(stream, predict, plan.flush_size, handle, slots=max(1, int(res.get("CPU", 1))))
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

    def _open_stream(self, todo, task, limit: int, redecide) -> Stream:
        """The analyse tasks of ``todo``, at most ``limit`` in flight: what :meth:`_submit` and
        :meth:`_stream` share (submitting may start before the model is loaded)."""
        from tagger.ray_backend import TaskStream

        policy = Policy(
            model_id=self.meta.model_id, on_existing=self.options.on_existing,
            analysis_seconds=self.options.analysis_seconds,
            adaptive_first=_adaptive().FIRST_SECONDS if self._adaptive else None, aligned=self._adaptive,
            max_seconds=self.options.max_analysis_seconds, float16=False, nice=self._nice,
        )
        # decision settings changed since this model wrote the file's genre: look again
        return Stream(self.meta.features.to_dict(), policy, dataclasses.replace(policy, redecide=True),
                      {f.path: f for f in todo}, list(reversed(todo)), TaskStream(limit), task, redecide)

    def _submit(self, st: Stream) -> None:
        """Submit analyse tasks up to the stream's limit: re-checks first (they finish started
        tracks; the time budget only stops new files), then new files."""

        def policy_of(path: str) -> Policy:
            # album mode: tracks tagger wrote are analysed too (their scores make their album's)
            return st.again if self._albums or path in st.redecide else st.policy

        while self._rest_queue and not st.tasks.full and not self.stop:
            f, rest = self._rest_queue.pop(0)
            pol = dataclasses.replace(policy_of(f.path), segments=tuple(rest), adaptive_first=None)
            st.tasks.add(st.task.remote(f.path, params=st.params, policy=pol), f.path)
        while st.queue and not st.tasks.full and not self.stop and not self._out_of_time():
            f = st.queue.pop()
            pol = policy_of(f.path)
            if f.path in self._extend:  # a stored sample, close under these settings: its next stage only
                a, rest = self._extend.pop(f.path)
                parsed = _adaptive().parse_spec(a.sampling)
                scores = np.asarray(a.scores, np.float32)
                self._priors[f.path] = Prior(
                    scores, a.chunks, a.seconds,
                    None if a.embedding is None else np.asarray(a.embedding, np.float32), None,
                    a.size, a.mtime_ns, stored=True, stage=parsed[1] if parsed else 0, base=(scores, a.chunks))
                pol = dataclasses.replace(pol, segments=tuple(rest), adaptive_first=None)
            st.tasks.add(st.task.remote(f.path, params=st.params, policy=pol), f.path)

    def _stream(self, st: Stream, predict, flush_size: int, handle, slots: int | None = None) -> None:
        """Collect the stream's analyses, predict them ``flush_size`` chunks at a time, decide
        and write; keep submitting. ``slots``: how many analyse tasks the cluster runs at once
        (the rest of the limit in flight wait in Ray's queue, and their --file-timeout clock has
        not started)."""
        self._streaming = True
        try:
            self._stream_tasks(st, predict, flush_size, handle, slots)
        finally:
            self._streaming = False

    def _stream_tasks(self, st: Stream, predict, flush_size: int, handle, slots: int | None) -> None:
        from tagger.ray_backend import task_failure

        ready: list[Pending] = []  # analysed tracks waiting for a batch (or its end)
        ready_chunks = 0  # their chunks not yet predicted
        timeout = self.options.file_timeout
        self._submit(st)
        while len(st.tasks) or ready or self._rest_queue:
            if self.stop:
                stopped = st.tasks.cancel_all()
                self.report.pending += len(stopped) + len(ready) + len(self._rest_queue)
                self._rest_queue.clear()
                ready = []
                break
            for done in st.tasks.finished(timeout=0.5):
                path = done.key
                a: Analysis = done.value if done.error is None else Analysis.failed(
                    path, "worker", task_failure(done.error, handle))  # worker died twice, node lost, ...
                self.stats.add_worker(a)
                prior = self._priors.pop(path, None)
                if prior is not None and not self._rest_fits(a, prior, st.by_path[path]):
                    continue
                if a.features is not None:
                    ready.append(Pending(a, prior))
                    ready_chunks += a.chunks
                else:
                    self._finish_unanalysed(a, st.by_path[path], handle)
            for path in st.tasks.overdue(timeout, slots=slots):
                self._fail(st.by_path[path], "timeout", f"analysis took longer than {timeout:.0f} s; stopped")
            self._submit(st)
            if ready and (ready_chunks >= flush_size or not len(st.tasks)):
                # whole batches only while more tracks are coming: a track's last chunks wait for
                # the next batch instead of making a small one (they cost up to twice as much)
                ready = self._predict_and_write(ready, predict, st.by_path,
                                                flush=None if not len(st.tasks) else flush_size)
                ready_chunks = sum(p.left for p in ready)
            if not len(st.tasks) and not st.queue and not self._rest_queue:
                break
        if st.queue:
            self.report.pending += len(st.queue)

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    # ------------------------------------------------------------------------------------
    def _predict_and_write(self, ready: list[Pending], predict, by_path,
                           flush: int | None = None) -> list[Pending]:
        """Predict the chunks of ``ready`` not yet predicted (a multiple of ``flush`` of them, or
        all with None), finish every track whose chunks are all predicted, and return the others
        (their probabilities so far kept in their :class:`Pending`)."""
        todo = sum(p.left for p in ready)
        count = todo if flush is None else todo - todo % flush
        if count == 0:
            return ready
        parts: list[np.ndarray] = []
        left = count
        for p in ready:
            if left == 0:
                break
            assert p.analysis.features is not None
            f = p.analysis.features[p.done:][:left]
            parts.append(f)
            left -= f.shape[0]
        t = time.perf_counter()
        x = np.concatenate(parts).astype(np.float32, copy=False)
        try:
            probs = predict(x)
        except Exception as exc:
            import ray

            from tagger.ray_backend import one_line

            if not isinstance(exc, ray.exceptions.RayError):
                raise
            # the predictor actors are lost (their GPU node left the cluster, restarts used up):
            # the tracks of this batch fail with the reason; what is already written stays
            for p in ready[:len(parts)]:
                self._fail(by_path[p.analysis.path], "worker", f"inference lost: {one_line(exc)}")
            return ready[len(parts):]
        self.stats.infer += time.perf_counter() - t
        self.stats.chunks += x.shape[0]
        self.stats.batches += 1
        start, waiting = 0, []
        for p in ready:
            n = p.analysis.chunks
            take = min(n - p.done, count - start)
            if take > 0:
                if p.probs is None:
                    p.probs = np.empty((n, probs.shape[1]), np.float32)
                p.probs[p.done:p.done + take] = probs[start:start + take]
                p.done += take
                start += take
            if p.done < n:
                waiting.append(p)
                continue
            self._scored(p, by_path)
        return waiting

    def _scored(self, p: Pending, by_path) -> None:
        """A track whose chunks are all predicted: its scores (and embedding), a re-check of the
        rest of the track where adaptive analysis wants one, a float32 re-check of a close call
        computed in bfloat16; then stored, decided and written (:meth:`_conclude`)."""
        a, prior = p.analysis, p.prior
        # chunks are computed only for a file that was stat'ed and read
        assert p.probs is not None and a.features is not None and a.size is not None and a.mtime_ns is not None
        if prior is None or (prior.stored and prior.extensions == 0):
            self.stats.analysed += 1
        self.stats.audio_seconds += a.heard or 0.0
        n = a.chunks
        labels = len(self.meta.labels)
        full = p.probs
        out = full[:, :labels]
        s = Scored(a.path, a.size, a.mtime_ns, a.format, a.tags, track_scores(out, self._agg), n,
                   a.heard or 0.0, duration=a.duration, node=a.node, analysis="now",
                   # the backbone's pooled track embedding (mean over chunks), for heads trained later
                   embedding=full[:, labels:].mean(axis=0) if full.shape[1] > labels else None,
                   # a logit-mean model's exact mean logits: an adaptive rest combines with them
                   logits=track_logits(out) if self._agg == "logit-mean" else None)
        features = a.features
        stage = 0 if prior is None else prior.stage + 1
        if prior is not None:
            s, features = self._with_prior(s, prior, features)
        if self._adaptive:
            decided = self._wants_more(a, s, stage, features, prior, by_path)
            if decided is None:
                return  # a close call on what was heard: decided once the next stage is heard
            s = decided
        if self._exact is not None and _close_call(s.scores, top_k=self.options.top_k, min_confidence=self._thr,
                                                   chunks=s.chunks, head_norms=self._head_norms):
            t = time.perf_counter()  # computed in bfloat16 and too close to call: float32 decides
            exact_out = self._exact(np.asarray(features, dtype=np.float32))
            exact = track_scores(exact_out, self._agg)
            exact_logits = track_logits(exact_out) if self._agg == "logit-mean" else None
            base = None if prior is None else prior.base
            if base is not None:  # begun from a stored analysis: this run's chunks, with the stored ones
                exact = _adaptive().combine_scores(base[0], base[1], exact, len(features), aggregation=self._agg,
                                                   rest_logits=exact_logits)
                exact_logits = None
            s = dataclasses.replace(s, scores=exact, logits=exact_logits)
            self.stats.infer += time.perf_counter() - t
            self.stats.rechecked += 1
        self._conclude(s, by_path, plan=a.plan)

    def _wants_more(self, a: Analysis, s: Scored, stage: int, features: np.ndarray, prior: Prior | None,
                    by_path) -> Scored | None:
        """After stage ``stage`` of a track's adaptive analysis (``s``: everything heard so far):
        queue its next stage where the decision is a close call (None), or the track as decided
        on what was heard, labelled for the report and the store."""
        ad = _adaptive()
        first, cap = ad.FIRST_SECONDS, self.options.max_analysis_seconds
        share, nxt = ad.progress(a.duration, first_seconds=first, stage=stage, max_seconds=cap,
                                 params=self.meta.features)
        if nxt and ad.needs_rest(s.scores, share=share, chunks=s.chunks, top_k=self.options.top_k,
                                 min_confidence=self._thr, extra_error=ad.decision_error(s.chunks)):
            self._priors[a.path] = Prior(
                s.scores, s.chunks, s.heard, s.embedding, features, s.size, s.mtime_ns,
                stored=prior is not None and prior.stored, logits=s.logits, stage=stage,
                base=None if prior is None else prior.base,
                extensions=0 if prior is None else prior.extensions + 1)
            self._rest_queue.append((by_path[a.path], nxt.segments))
            return None
        if nxt is None:  # everything heard: stored as complete
            return dataclasses.replace(s, sampling="adaptive+rest" if stage else "whole", rechecked=bool(stage),
                                       store_sampling=ad.spec(first, cap, complete=True))
        return dataclasses.replace(s, sampling="adaptive", rechecked=bool(stage),
                                   store_sampling=ad.spec(first, cap, stage=stage))

    def _with_prior(self, s: Scored, prior: Prior, features: np.ndarray) -> tuple[Scored, np.ndarray]:
        """The track over what was heard before (``prior``) and this stage together: the model's
        aggregation over all their chunks (a ``logit-mean`` model's scores combined in logit space,
        exactly where the earlier logits are known) and the chunk-weighted mean of the embeddings.
        Returns it, and the features of everything heard in this run."""
        ad = _adaptive()
        n = s.chunks
        embedding = None
        if s.embedding is not None and prior.embedding is not None and len(prior.embedding) == len(s.embedding):
            embedding = ad.combine(prior.embedding, prior.chunks, s.embedding, n)
        if prior.extensions == 0:  # the track's first stage after its first pass (or stored sample)
            self.stats.rest += 1
            self.stats.extended += int(prior.stored)
        self.stats.rest_seconds += s.heard
        scores = ad.combine_scores(prior.scores, prior.chunks, s.scores, n, aggregation=self._agg,
                                   first_logits=prior.logits, rest_logits=s.logits)
        both = dataclasses.replace(
            s, scores=scores, logits=_combine_logits(prior.logits, prior.chunks, s.logits, n), embedding=embedding,
            chunks=prior.chunks + n, heard=prior.heard + s.heard)
        return both, (features if prior.features is None else np.concatenate([prior.features, features]))

    def _rest_fits(self, a: Analysis, prior: Prior, found: discover.Found) -> bool:
        """A re-check's result belongs with its first pass (False: the file was dealt with here)."""
        if a.size is not None and (a.size, a.mtime_ns) != (prior.size, prior.mtime_ns):
            self._fail(found, "decode", "file changed while it was analysed; analysed again next run", a)
            return False
        if a.features is None and not prior.stored:
            # the rest could not be heard (a damaged stretch, silence): decide on the sample
            reason = (a.error or ("", a.skip or "no audio"))[1]
            log.warning("%s: more of the track could not be analysed (%s); decided on what was heard", a.path, reason)
            # the file as the first pass saw it, where the re-check could not even stat it (a write
            # then finds it changed or gone, and says so)
            size = a.size if a.size is not None else prior.size
            mtime_ns = a.mtime_ns if a.mtime_ns is not None else prior.mtime_ns
            ad = _adaptive()
            s = Scored(a.path, size, mtime_ns, a.format or discover.format_of(a.path), a.tags, prior.scores,
                       prior.chunks, prior.heard, duration=a.duration, node=a.node, analysis="now",
                       sampling="adaptive", rechecked=prior.stage > 0, embedding=prior.embedding, logits=prior.logits,
                       store_sampling=ad.spec(ad.FIRST_SECONDS, self.options.max_analysis_seconds, stage=prior.stage))
            self._conclude(s, {a.path: found})
            return False
        return True

    def _conclude(self, s: Scored, by_path, plan=None) -> None:
        """Store a track's analysis, then decide and write it. ``plan``: the stretches analysed."""
        if (self.options.analysis_seconds is not None or self.options.whole_track) and not s.sampling:
            sampled = any(d is not None for _, d in (plan or [(0.0, None)]))
            s = dataclasses.replace(s, sampling="sample" if sampled else "whole")
        s = self.apply.store(s)
        if self.stop and not self.options.dry_run:
            # stopping: nothing new is written; the file stays for the next run
            self.report.pending += 1
            return
        self._finish_analysed(s, by_path[s.path])

    def _finish_analysed(self, s: Scored, found: discover.Found, album=None) -> None:
        """Apply a scored track (per track, or with ``album`` = (tagger.albums.TrackOutcome, album
        name) the album's outcome for it). In album mode without ``album`` the track is held
        until its album is decided (:meth:`_decide_albums`)."""
        if self._albums and album is None:
            self._held[s.path] = (s, found)
            if s.path in self._again:  # back from a stage its album wanted: counted once already
                self._again.discard(s.path)
            else:
                self.progress.advance()
            self._done_with(s.path)
            return
        self.apply.apply(s, album=album)
        if album is None:
            self.progress.advance()

    def _finish_unanalysed(self, a: Analysis, found: discover.Found, handle) -> None:
        reason = a.skip or ""
        if a.error:
            kind, reason = a.error
            if kind == "decode" and "not found" in reason and a.node and a.node != handle.node_id:
                reason += f" on worker node {a.node[:12]} (is the library on a path shared by every node?)"
            if kind != "audio":
                self._fail(found, kind, reason, a)
                return
            # digital silence, too short: the file is fine, there is nothing to classify. Skipped
            # (exit 0) and remembered, so a nightly run does not fail on it forever.
            log.info("skipped: %s (%s)", a.path, reason)
        row = self.apply.skipped(a, reason)
        if self._albums and not a.error and a.tags.existing:
            # a person's genre (--on-existing skip): evidence about its album, no scores
            self._evidence[a.path] = (a, row)
        self.progress.advance()
        self._done_with(a.path)

    def _fail(self, found: discover.Found, kind: str, reason: str, a: Analysis | None = None) -> None:
        self.apply.failed(found.path, kind, reason, a)
        if found.path in self._again:  # counted once already (held for its album before)
            self._again.discard(found.path)
        else:
            self.progress.advance()
        self._done_with(found.path)


def _probe_paths(roots: list[str], todo: list[discover.Found]) -> list[str]:
    """What every node of a cluster must see: the library roots and a sample of the files."""
    sample = [f.path for f in todo[:: max(1, len(todo) // 8)]][:8] + [todo[-1].path]
    return list(dict.fromkeys([os.path.abspath(os.path.expanduser(r)) for r in roots] + sample))


def _adaptive():
    from tagger import adaptive

    return adaptive


def _combine_logits(first: np.ndarray | None, first_chunks: int, rest: np.ndarray | None,
                    rest_chunks: int) -> np.ndarray | None:
    """The exact mean logits of a first pass and its rest together (None unless both are known)."""
    if first is None or rest is None:
        return None
    a, b = np.asarray(first, np.float64), np.asarray(rest, np.float64)
    return (a * first_chunks + b * rest_chunks) / (first_chunks + rest_chunks)


def _close_call(scores: np.ndarray, *, top_k: int, min_confidence: float | np.ndarray, chunks: int,
                head_norms: np.ndarray | None = None) -> bool:
    """Whether a bfloat16 track decision must be re-done in float32: the shipped models' bound,
    or a logit-mean head's own (:func:`tagger.model.head_bf16_error`)."""
    from tagger.model import close_call, head_bf16_error

    error = None if head_norms is None else head_bf16_error(scores, head_norms, chunks=chunks)
    return close_call(scores, top_k=top_k, min_confidence=min_confidence, chunks=chunks, error=error)


def _predictor_info(predictors) -> list[dict[str, Any]]:
    """Where each predictor ran and in which precision (local Predictors or Ray actor handles)."""
    from tagger.ray_backend import Predictor

    try:
        if predictors and not isinstance(predictors[0], Predictor):
            import ray

            return ray.get([a.info.remote() for a in predictors], timeout=30)
        return [p.info() for p in predictors]
    except Exception as exc:  # an actor lost at the end must not lose the report
        log.debug("predictor info unavailable: %s", exc)
        return []


def _actor_predict(actors) -> Callable[[np.ndarray], np.ndarray]:
    import ray

    def predict(x: np.ndarray) -> np.ndarray:
        parts = np.array_split(x, len(actors))
        refs = [a.predict_full.remote(p) for a, p in zip(actors, parts, strict=False) if len(p)]
        return np.concatenate(ray.get(refs))

    return predict


def _options_dict(o: TagOptions) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(o)
    d["reports"] = list(o.reports)
    d["exclude"] = list(o.exclude)
    return d
