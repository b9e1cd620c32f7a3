"""The values that pass between the stages of ``tagger tag`` (docs/DESIGN.md, "Stages and contracts").

::

    worker   analyse.analyse_file(path, params, Policy)  ->  Analysis      (frozen; pickled back by Ray)
    driver   predictor scores an Analysis's chunks        ->  Scored        (frozen; or from the store)
    apply    aggregate.decide / albums.decide_album       ->  Decision      (frozen, tagger.aggregate)
             write tags, journal ahead, record state       ->  report Row

Each stage reads the previous stage's value and makes its own; no stage changes a value it was
given (what the driver learns about a track, it keeps in a new value: ``dataclasses.replace``).
Pure data: no Ray, no TensorFlow, no file access here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

#: A stretch of a track to analyse: (offset, duration) in seconds; duration None: to the end.
Segment = tuple[float, float | None]


class Failure(NamedTuple):
    """Why a file could not be analysed: a :class:`tagger.errors.FileError` kind (``decode``,
    ``audio``, ``tag-read``, ``worker``, ...) and a one-line reason. Compares equal to the
    ``(kind, reason)`` tuple."""

    kind: str
    reason: str


@dataclass(frozen=True)
class FileTags:
    """What a file's tags said when they were read (by a worker, or in the driver for a
    decision from the store of analyses): what deciding needs to know about the file as it is.

    ``existing``: its genres; ``tagger_owned``: they are tagger's own (provenance present and
    naming them); ``owner_model``: the model id of that provenance; ``provenance``: its text;
    ``album_tags``: album, artist, albumartist, compilation (``TagInfo.album_tags()``).
    """

    existing: tuple[str, ...] = ()
    tagger_owned: bool = False
    owner_model: str | None = None
    provenance: str | None = None
    album_tags: dict[str, Any] | None = None

    @classmethod
    def of(cls, info: Any) -> FileTags:
        """From a :class:`tagger.tags.TagInfo`."""
        prov = info.provenance
        return cls(tuple(info.genres), bool(info.tagger_owned), None if prov is None else prov.model_id,
                   None if prov is None else prov.to_string(), dict(info.album_tags()))


@dataclass(frozen=True)
class WorkerTiming:
    """Seconds a worker spent on one file: all of it (``total``), and within it reading tags,
    decoding, computing features (the throughput benchmark's stages)."""

    total: float = 0.0
    tags: float = 0.0
    decode: float = 0.0
    features: float = 0.0


@dataclass(frozen=True)
class Policy:
    """What a worker is asked to do with a file (:func:`tagger.analyse.analyse_file`).

    ``model_id``/``on_existing``/``redecide``/``analyse_all``: whether the file needs the model at
    all (``tagger.aggregate.needs_analysis``; ``analyse_all``: always, for explain). Which audio:
    ``segments`` (these stretches: the rest of a track adaptive analysis re-checks), else
    ``adaptive_first`` (adaptive analysis's first pass of that many seconds), else
    ``analysis_seconds`` (a fixed sample; None: the whole track) capped at ``max_seconds``.
    ``aligned``: decode each stretch as the whole track has it (adaptive stages: their chunks are
    a whole-track run's chunks, to float rounding; :func:`tagger.decode.decode_aligned`).
    ``float16``: return float16 chunks; ``keep_audio``: return the decoded stretches too (explain);
    ``nice``: the niceness the worker process adds to itself.
    """

    model_id: str
    on_existing: str = "skip"
    analyse_all: bool = False
    redecide: bool = False
    analysis_seconds: float | None = None
    max_seconds: float = 900.0
    adaptive_first: float | None = None
    segments: tuple[Segment, ...] | None = None
    aligned: bool = False
    float16: bool = False
    keep_audio: bool = False
    nice: int = 0

    @classmethod
    def of(cls, policy: Policy | Mapping[str, Any]) -> Policy:
        """A Policy, or one from a mapping of its field names (None values mean the default)."""
        if isinstance(policy, Policy):
            return policy
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(policy) - names)
        if unknown:
            raise TypeError(f"unknown policy field(s): {', '.join(unknown)}")
        values = {k: v for k, v in policy.items() if v is not None}
        if values.get("segments") is not None:
            values["segments"] = tuple((float(o), None if d is None else float(d)) for o, d in values["segments"])
        return cls(**values)


@dataclass(frozen=True, eq=False)
class Analysis:
    """What a worker returns for one file (:func:`tagger.analyse.analyse_file`): never raised,
    always this. Small enough to pickle cheaply: plain values and one float array.

    Identity: ``path``, ``size``/``mtime_ns`` (None: the file could not be stat'ed), ``format``
    (found by content; None before the tags were read). ``tags``: what they said. Then one of:

    * ``skip``: the reason the policy leaves the file alone (read before decoding; no audio);
    * ``error``: why it cannot be analysed (:class:`Failure`);
    * ``features``: the model inputs, shape (n_chunks, *input_shape), of the stretches ``plan``
      (``heard`` seconds of audio; ``duration``: the whole track's length, None: unknown);
      ``audio``: the decoded stretches, only where the policy asked to keep them.

    ``node``: the Ray node that did the work (""); ``timing``: where the worker's time went.
    """

    path: str
    size: int | None = None
    mtime_ns: int | None = None
    format: str | None = None
    tags: FileTags = field(default_factory=FileTags)
    skip: str | None = None
    error: Failure | None = None
    features: np.ndarray | None = None
    plan: tuple[Segment, ...] | None = None
    heard: float | None = None
    duration: float | None = None
    audio: tuple[np.ndarray, ...] | None = None
    node: str = ""
    timing: WorkerTiming = field(default_factory=WorkerTiming)

    @property
    def chunks(self) -> int:
        """Chunks the model is to see (0 without features)."""
        return 0 if self.features is None else int(self.features.shape[0])

    @classmethod
    def failed(cls, path: str, kind: str, reason: str, *, node: str = "") -> Analysis:
        """The result of a file whose worker never answered (killed twice, node lost)."""
        return cls(path, error=Failure(kind, reason), node=node)


@dataclass(frozen=True, eq=False)
class Scored:
    """A track the model has scored, as the apply stage decides it: made by the driver from an
    :class:`Analysis` and the predictor's output, or from the store of analyses. ``size`` and
    ``mtime_ns``: the file as it was analysed (a write checks it is still so).

    ``scores``: (n_labels,) float32 track scores; ``chunks``/``heard``: how much the model heard
    (seconds); ``analysis``: ``now`` (this run) or ``stored``; ``analysed_at``: when (set once
    stored); ``sampling``/``rechecked``: the report's words for how the audio was chosen
    (``whole``, ``sample``, ``adaptive``, ``adaptive+rest``; "" unknown); ``embedding``: the
    backbone's mean chunk embedding (None: the model has none); ``store_sampling``: the store's
    sampling spec where it is not the run's (a complete adaptive analysis); ``logits``: a
    ``logit-mean`` model's exact mean chunk logits (float64; None for a ``mean`` model, or where
    only the scores are known, as from the store), so that combining a first pass with its rest
    stays exact in logit space (:func:`tagger.adaptive.combine_scores`).
    """

    path: str
    size: int
    mtime_ns: int
    format: str | None
    tags: FileTags
    scores: np.ndarray
    chunks: int
    heard: float
    duration: float | None = None
    node: str = ""
    analysis: str = "now"
    analysed_at: str = ""
    sampling: str = ""
    rechecked: bool | None = None
    embedding: np.ndarray | None = None
    store_sampling: str | None = None
    logits: np.ndarray | None = None
