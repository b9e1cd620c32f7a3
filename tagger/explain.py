"""Why a track gets the genre it gets: one file analysed and decided as ``tagger tag`` would,
keeping every intermediate (:class:`Explanation`), for ``tagger explain FILE`` and the pictures
of ``tagger tag --explain-uncertain``.

Everything comes from the code ``tagger tag`` runs, never a copy of it:
:func:`tagger.analyse.analyse_file` (``tags.read_tags`` -> ``plan_segments`` -> ``decode.decode``
-> ``features.extract_segments``, asked by its :class:`~tagger.contracts.Policy` to keep the decoded
audio; its :class:`~tagger.contracts.Analysis` read by attribute), :class:`tagger.model.GenreModel`,
and :func:`tagger.aggregate.track_scores` (the model's aggregation) / :func:`~tagger.aggregate.decide`
(the thresholds in effect: the model's per-genre ones unless --min-confidence is given) with the options of
``tagger tag`` (command line > config file > defaults); :func:`album_context` decides the
track with its album as ``tagger tag --albums`` would. Nothing here writes tags, and Ray is not
used: one file is analysed in this process.

The analysis only: the picture is :mod:`tagger.explain_picture`, the command
:mod:`tagger.commands.explain`, the pictures beside an HTML report :mod:`tagger.report.pictures`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from tagger.errors import AudioError, DecodeError, FileError, TagReadError

log = logging.getLogger(__name__)

_ACTION = {"tag": "would tag", "skipped": "skipped", "uncertain": "uncertain"}
_ERRORS = {"decode": DecodeError, "audio": AudioError, "tag-read": TagReadError}


@dataclass
class Explanation:
    """One file, analysed and decided exactly as ``tagger tag`` would."""

    path: str
    format: str
    existing: tuple[str, ...]
    tagger_owned: bool
    provenance: str | None
    meta: Any  # tagger.modelmeta.ModelMeta
    options: Any  # tagger.options.TagOptions
    duration: float  # the whole file, seconds
    segments: list[tuple[float, float]]  # analysed stretches (start, end), seconds
    audio: list[np.ndarray]  # the decoded stretches, mono at meta.features.sample_rate
    features: np.ndarray  # (n_chunks, *input_shape), what the model saw
    spans: np.ndarray  # (n_chunks, 2) start, end of each chunk in seconds
    probs: np.ndarray  # (n_chunks, n_labels) probabilities per chunk (the taggram)
    scores: np.ndarray  # (n_labels,) track scores
    decision: Any  # tagger.aggregate.Decision
    #: ``tagger tag`` leaves this file alone without even decoding it (its policy on existing
    #: genres); explain analyses it anyway to show what the model hears.
    before_analysis: bool = False
    #: the album decision behind ``decision`` (``album_context``), None when not decided as part
    #: of an album (per-track mode, a loose single, no state database)
    album: dict[str, Any] | None = None
    #: (n_chunks, n_labels) the network's per-chunk logits, for a ``logit-mean`` model (None otherwise)
    logits: np.ndarray | None = None

    @property
    def thresholds(self):
        """The thresholds in effect (:class:`tagger.aggregate.Thresholds`)."""
        from tagger.aggregate import thresholds_for

        return thresholds_for(self.meta, self.options)

    def threshold_of(self, index: int) -> float:
        return self.thresholds.of_label(self.meta.labels[index])

    @property
    def action(self) -> str:
        """``would tag``, ``uncertain`` or ``skipped`` (explain never writes)."""
        return _ACTION[self.decision.action]

    @property
    def analysed(self) -> float:
        return float(sum(e - s for s, e in self.segments))

    @property
    def genres(self) -> list[str]:
        """Display names of the model's labels, in label order."""
        by_label = {r.label: r.genre for r in self.decision.ranked}
        return [by_label[lab] for lab in self.meta.labels]

    def existing_owner(self) -> str | None:
        if not self.existing:
            return None
        return "tagger" if self.tagger_owned else "a person"

    def to_json(self) -> dict[str, Any]:
        """The numbers behind the picture (plain JSON types)."""
        from tagger import __version__

        meta, o, d = self.meta, self.options, self.decision
        fp = meta.features
        t = self.thresholds
        chunks = []
        for j, ((s, e), row) in enumerate(zip(self.spans, self.probs, strict=True)):
            c: dict[str, Any] = {"start": round(float(s), 3), "end": round(float(e), 3),
                                 "probs": [round(float(p), 6) for p in row]}
            if self.logits is not None:
                c["logits"] = [round(float(v), 6) for v in self.logits[j]]
            chunks.append(c)
        return {
            "tool": f"tagger {__version__}",
            "path": self.path,
            "format": self.format,
            "existing": list(self.existing),
            "existing_written_by": self.existing_owner(),
            "provenance": self.provenance,
            "model": {
                "model_id": meta.model_id, "name": meta.name, "architecture": meta.architecture,
                "output_activation": meta.output_activation, "aggregation": meta.aggregation,
            },
            "features": {"kind": fp.kind, "sample_rate": fp.sample_rate,
                         "chunk_seconds": round(fp.chunk_seconds, 4),
                         "chunk_hop_seconds": round(fp.chunk_hop_seconds, 4)},
            "duration": round(self.duration, 3),
            "analysed_seconds": round(self.analysed, 3),
            "segments": [{"start": round(s, 3), "end": round(e, 3)} for s, e in self.segments],
            "labels": list(meta.labels),
            "genres": self.genres,
            "chunks": chunks,
            "track_scores": [{"label": r.label, "genre": r.genre, "score": round(r.score, 6)} for r in d.ranked],
            "decision": {
                "action": self.action,
                "genres": list(d.genres),
                "chosen": [{"label": r.label, "genre": r.genre, "score": round(r.score, 6)} for r in d.chosen],
                "reason": d.reason,
                "before_analysis": self.before_analysis,
                "threshold": t.default,
                "thresholds": None if t.uniform else {lab: t.of_label(lab) for lab in meta.labels},
                "top_k": o.top_k,
                "on_existing": o.on_existing,
            },
            "album": self.album,
        }


# ---------------------------------------------------------------------------------------------
# analysis: the pipeline's own functions
# ---------------------------------------------------------------------------------------------

def explain_file(path: str | os.PathLike, *, options, model=None) -> Explanation:
    """Analyse one file and decide as ``tagger tag`` would, keeping every intermediate.

    ``options`` is a :class:`tagger.options.TagOptions`; ``model`` a loaded
    :class:`tagger.model.GenreModel` (loaded from the options when None).
    Raises a :class:`~tagger.errors.FileError` (one-line reason) for a file that cannot be
    analysed and :class:`~tagger.errors.ModelError` for an unusable model.
    """
    from tagger.aggregate import SKIP, Decision, chunk_probabilities, decide_for, needs_analysis, track_scores
    from tagger.analyse import analyse_file, chunk_spans
    from tagger.contracts import Policy

    if model is None:
        from tagger.model import GenreModel

        model = GenreModel.load(options.model, vocabulary=options.vocabulary)
    meta = model.meta
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    policy = Policy(model_id=meta.model_id, on_existing=options.on_existing, analyse_all=True,
                    analysis_seconds=options.analysis_seconds, max_seconds=options.max_analysis_seconds,
                    float16=False, keep_audio=True)
    a = analyse_file(path, params=meta.features.to_dict(), policy=policy)
    if a.error:
        raise _file_error(path, a.error.kind, a.error.reason)
    fp = meta.features
    # analyse_all: a file that was read and not refused has its features and its audio
    assert a.features is not None and a.audio is not None
    audio = list(a.audio)
    features = a.features
    segments = [(float(o), float(o) + x.shape[0] / fp.sample_rate)
                for (o, _), x in zip(a.plan or (), audio, strict=False)]
    spans = chunk_spans([x.shape[0] for x in audio], [s for s, _ in segments], params=fp)
    if spans.shape[0] != features.shape[0]:  # never expected: chunk_spans mirrors extract_segments
        log.warning("%s: chunk times unknown (%d spans for %d chunks); drawing chunks end to end",
                    path, spans.shape[0], features.shape[0])
        starts = np.arange(features.shape[0]) * fp.chunk_hop_seconds
        spans = np.stack([starts, starts + fp.chunk_seconds], axis=1)
    outputs = model.predict(features)  # probabilities, or a logit-mean model's logits
    probs = chunk_probabilities(outputs, meta.aggregation)
    scores = track_scores(outputs, meta.aggregation)
    tags = a.tags
    d = decide_for(scores, res=a, meta=meta, options=options)
    # tagger tag never decodes a file this policy leaves alone: its decision is that skip
    early = needs_analysis(existing=tuple(tags.existing), tagger_owned=tags.tagger_owned,
                           owner_model_id=tags.owner_model, model_id=meta.model_id,
                           on_existing=options.on_existing)
    if early:
        d = Decision(SKIP, early, chosen=d.chosen, ranked=d.ranked)
    return Explanation(
        path=path, format=a.format or "", existing=tuple(tags.existing), tagger_owned=tags.tagger_owned,
        provenance=tags.provenance, meta=meta, options=options, duration=float(a.duration or 0.0),
        segments=segments, audio=audio, features=features, spans=spans, probs=probs, scores=scores, decision=d,
        before_analysis=bool(early), logits=outputs if meta.aggregation == "logit-mean" else None,
    )


def album_context(expl: Explanation, *, state_db: str | os.PathLike | None) -> None:
    """Decide the explained track's album as ``tagger tag --albums`` would: the other tracks of
    its album folder (tagger.albums.scope_of) read from their tags, their scores from the store
    of analyses in ``state_db`` (tracks without a usable stored analysis do not count), this
    track's scores as just computed. Sets ``expl.album`` and, where the album decides this
    track, ``expl.decision``. Reads only (a missing database is not created)."""
    from tagger import albums as al
    from tagger import discover, tags
    from tagger.aggregate import user_names
    from tagger.pipeline import sampling_spec, usable_analyses

    o, meta = expl.options, expl.meta
    if not o.albums:
        return
    scope = al.scope_of(expl.path)
    found = [f for f in discover.walk([scope], exclude=o.exclude) if al.scope_of(f.path) == scope]
    info: dict[str, Any] = {}
    for f in found:
        if f.path == expl.path:
            continue
        try:
            info[f.path] = tags.read_tags(f.path)
        except FileError:
            continue
    stored: dict[str, Any] = {}
    if state_db is not None and os.path.exists(state_db) and info:
        from tagger.errors import StateError
        from tagger.state import StateDB

        try:
            with StateDB(state_db) as state:
                stored = usable_analyses(state, [f for f in found if f.path in info], meta, sampling_spec(o))
        except StateError as exc:  # the album is a hint here: explain the track without its album's scores
            log.warning("album of %s: stored analyses unavailable (%s)", expl.path, exc)
    me = tags.read_tags(expl.path)
    tracks = [al.TrackTags.of(expl.path, me.album_tags())]
    tracks += [al.TrackTags.of(p, i.album_tags()) for p, i in info.items()]
    albums, _alone = al.group(tracks)
    album = next((a for a in albums if expl.path in a.paths), None)
    if album is None:
        expl.album = {"album": "", "note": "not part of an album (a loose single): decided per track"}
        return
    members = []
    for p in album.paths:
        if p == expl.path:
            members.append(al.Member(p, np.asarray(expl.scores), expl.analysed, tuple(expl.existing), expl.tagger_owned,
                                     me.provenance.model_id if me.provenance is not None else None))
            continue
        a, i = stored.get(p), info[p]
        members.append(al.Member(p, None if a is None else np.asarray(a.scores), 0.0 if a is None else a.seconds,
                                 tuple(i.genres), i.tagger_owned, i.provenance.model_id if i.provenance else None))
    t = expl.thresholds
    ad = al.decide_album(members, meta.labels, name=album.name, compilation=album.compilation, top_k=o.top_k,
                         min_confidence=t.default, thresholds=t.per_label, on_existing=o.on_existing,
                         model_id=meta.model_id, names=meta.display_names, user_map=user_names(meta, o),
                         dissent=o.album_dissent, aggregation=meta.aggregation)
    outcome = ad.outcomes.get(expl.path)
    expl.album = {
        "album": album.name, "tracks": ad.tracks, "analysed": ad.analysed, "album_genres": list(ad.genres),
        "genre_from": outcome.genre_from if outcome else "", "dissent": bool(outcome and outcome.dissent),
        "overruled": bool(outcome and al.overruled(outcome)), "note": outcome.note if outcome else ad.per_track,
    }
    if outcome is not None and not expl.before_analysis:
        import dataclasses

        d = outcome.decision  # what `tagger tag` writes and reports, reason included
        expl.decision = dataclasses.replace(d, reason=d.reason + (f"; {outcome.note}" if outcome.note else ""))


def _file_error(path: str, kind: str, reason: str) -> FileError:
    cls = _ERRORS.get(kind)
    if cls is not None:
        return cls(path, reason)
    err = FileError(path, reason)
    err.kind = kind
    return err
