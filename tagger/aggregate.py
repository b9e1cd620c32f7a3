"""Pure decision logic: chunk outputs -> track scores -> the genres to write.

No file access here; ``tagger tag`` and ``tagger explain`` both call these functions, so what
explain shows is what tag does.

A model's ``aggregation`` (:mod:`tagger.modelmeta`) says how chunk outputs become track scores:
``"mean"``, the mean of chunk probabilities; ``"logit-mean"``, the network outputs logits and a
track's score is the sigmoid of their mean (:func:`track_scores`). Everything that combines
scores of parts (an adaptive first pass and its rest, the tracks of an album) combines them the
same way (:func:`weighted_scores`), so a combination equals the score of the whole.

A label qualifies when its score reaches its threshold (:class:`Thresholds`): the model's own
for that label where the model metadata has one, else ``--min-confidence`` (default 0.4); an
explicit ``--min-confidence`` overrides the model's thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: How model labels are written unless the model metadata or the user's [genres] table says
#: otherwise. GTZAN's labels are lower-case single words; these are the names people use.
DEFAULT_DISPLAY = {
    "blues": "Blues",
    "classical": "Classical",
    "country": "Country",
    "disco": "Disco",
    "hiphop": "Hip-Hop",
    "hip-hop": "Hip-Hop",
    "jazz": "Jazz",
    "metal": "Metal",
    "pop": "Pop",
    "reggae": "Reggae",
    "rock": "Rock",
    "rnb": "R&B",
}

# Actions (report vocabulary)
TAG = "tag"  # becomes "tagged" or "would tag"
SKIP = "skipped"
UNCERTAIN = "uncertain"
FAILED = "failed"


def display_name(label: str, *, model_names: dict[str, str] | None = None,
                 user_map: dict[str, str] | None = None) -> str:
    """The genre written for a model label: user's [genres] map > model metadata > defaults."""
    for table in (user_map or {}, model_names or {}, DEFAULT_DISPLAY):
        if label in table:
            return table[label]
    return label[:1].upper() + label[1:]


def written_names(labels, *, model_names: dict[str, str] | None = None, user_map: dict[str, str] | None = None,
                  style: str = "as-is") -> dict[str, str]:
    """The ``user_map`` that makes :func:`display_name` write every label in ``style``
    (``--genre-style``, :func:`tagger.taxonomy.styled`): ``user_map`` itself for ``as-is``, else
    each label's name (user's [genres] map > model metadata > defaults) in that style. The style
    applies to the names the [genres] table gives too: the user asked for that style."""
    if style == "as-is":
        return dict(user_map or {})
    from tagger.taxonomy import styled

    return {label: styled(display_name(label, model_names=model_names, user_map=user_map), style)
            for label in labels}


def user_names(meta, options) -> dict[str, str]:
    """:func:`written_names` for a model's metadata and a run's TagOptions: the ``user_map``
    every decision of ``tagger tag`` and ``tagger explain`` passes (per track and per album)."""
    return written_names(meta.labels, model_names=meta.display_names, user_map=options.genre_map,
                         style=getattr(options, "genre_style", "as-is"))


#: The threshold of a label without one of its own, unless --min-confidence says otherwise.
DEFAULT_MIN_CONFIDENCE = 0.4

#: How saturated float32 scores read back as logits (:func:`logit`): a score of exactly 1.0 is
#: taken as the least value that rounds to it in float32, 1 - 2**-25 (logit 17.3), and 0.0 as
#: 2**-150 (logit -104); other scores are exact.
_P_ONE = 1.0 - 2.0 ** -25
_P_ZERO = 2.0 ** -150


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, in float64, without overflow for large negative ``x``."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def logit(p: np.ndarray) -> np.ndarray:
    """The inverse of :func:`sigmoid` for scores read back (float64); saturated scores (0.0 and
    1.0, which float32 rounding makes of logits beyond about -104 and 17) are guarded: they read
    as the nearest logit that rounds to them, never as infinity."""
    q = np.clip(np.asarray(p, dtype=np.float64), _P_ZERO, _P_ONE)
    return np.log(q) - np.log1p(-q)


def _chunks(chunk_outputs: np.ndarray) -> np.ndarray:
    p = np.asarray(chunk_outputs, dtype=np.float32)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"chunk outputs must be (n_chunks, n_labels) with n_chunks > 0; got {p.shape}")
    return p


def _check_aggregation(aggregation: str) -> None:
    from tagger.modelmeta import AGGREGATIONS

    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r} ({', '.join(AGGREGATIONS)})")


def track_logits(chunk_logits: np.ndarray) -> np.ndarray:
    """Mean of the chunk logits of a ``logit-mean`` model, float64, shape (n_labels,)."""
    return _chunks(chunk_logits).astype(np.float64).mean(axis=0)


def track_scores(chunk_outputs: np.ndarray, aggregation: str = "mean") -> np.ndarray:
    """A track's scores from the network's outputs for its chunks.

    ``aggregation`` ``"mean"``: the outputs are probabilities and the score is their mean;
    ``"logit-mean"``: the outputs are logits and the score is ``sigmoid(mean of the logits)``
    (for a linear head on an embedding: ``sigmoid(W . mean_embedding + b)``,
    :func:`tagger.heads.head_scores`).

    Parameters
    ----------
    chunk_outputs : np.ndarray, shape (n_chunks, n_labels)

    Returns
    -------
    np.ndarray, shape (n_labels,), float32
    """
    _check_aggregation(aggregation)
    if aggregation == "logit-mean":
        return sigmoid(track_logits(chunk_outputs)).astype(np.float32)
    return _chunks(chunk_outputs).mean(axis=0)


def chunk_probabilities(chunk_outputs: np.ndarray, aggregation: str = "mean") -> np.ndarray:
    """Each chunk's probabilities (the taggram): the outputs themselves, or for ``logit-mean``
    the sigmoid of each chunk's logits. float32, the shape of ``chunk_outputs``."""
    _check_aggregation(aggregation)
    p = _chunks(chunk_outputs)
    return sigmoid(p).astype(np.float32) if aggregation == "logit-mean" else p


def weighted_scores(scores: Sequence[np.ndarray], weights: Sequence[float], aggregation: str = "mean",
                    *, logits: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """The score of a whole from the scores of its parts, each weighing ``weights`` (chunks or
    seconds): a weighted mean of the scores (``"mean"``) or, for ``"logit-mean"``, the sigmoid of
    the weighted mean of their logits (``logits``: a part's exact mean logits where known,
    else read back from its score by :func:`logit`). With chunk counts as weights this is the
    score of all the parts' chunks together. float64, shape (n_labels,)."""
    _check_aggregation(aggregation)
    w = np.asarray([float(x) for x in weights], dtype=np.float64)
    if len(scores) == 0 or len(scores) != len(w) or not np.all(w > 0):
        raise ValueError("need one positive weight per part, and at least one part")
    if aggregation == "logit-mean":
        given = list(logits) if logits is not None else [None] * len(scores)
        parts = [logit(s) if g is None else np.asarray(g, dtype=np.float64) for s, g in zip(scores, given, strict=True)]
        return sigmoid((np.stack(parts) * w[:, None]).sum(axis=0) / w.sum())
    s = np.stack([np.asarray(x, dtype=np.float64) for x in scores])
    return (s * w[:, None]).sum(axis=0) / w.sum()


@dataclass(frozen=True)
class Thresholds:
    """The score each label must reach to be written: ``per_label`` (the model's own thresholds,
    where in effect) or else ``default`` (``--min-confidence``, 0.4 unless given)."""

    default: float = DEFAULT_MIN_CONFIDENCE
    per_label: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, model_thresholds: Mapping[str, float] | None, min_confidence: float | None) -> Thresholds:
        """The thresholds in effect: an explicit ``min_confidence`` (not None) for every label;
        otherwise the model's thresholds, and 0.4 for labels without one."""
        if min_confidence is not None:
            return cls(float(min_confidence))
        return cls(DEFAULT_MIN_CONFIDENCE, {k: float(v) for k, v in (model_thresholds or {}).items()})

    @property
    def uniform(self) -> bool:
        """One threshold for every label (no per-label thresholds in effect)."""
        return not self.per_label

    def of_label(self, label: str) -> float:
        return float(self.per_label.get(label, self.default))

    def array(self, labels: Sequence[str]) -> np.ndarray:
        """Per label, in ``labels`` order (float64)."""
        return np.asarray([self.of_label(lab) for lab in labels], dtype=np.float64)

    def for_close_call(self, labels: Sequence[str]) -> float | np.ndarray:
        """What :func:`tagger.model.close_call` takes as ``min_confidence``: one number when uniform."""
        return self.default if self.uniform else self.array(labels)

    def key(self) -> dict[str, object]:
        """For the decision key: the uniform threshold, and the per-label ones where in effect."""
        d: dict[str, object] = {"min_confidence": round(float(self.default), 6)}
        if self.per_label:
            d["thresholds"] = sorted((k, round(float(v), 6)) for k, v in self.per_label.items())
        return d


def thresholds_for(meta, options) -> Thresholds:
    """The thresholds a run with TagOptions ``options`` applies to a model of metadata ``meta``."""
    return Thresholds.of(getattr(meta, "thresholds", None), options.min_confidence)


def show_score(score: float) -> str:
    """A score as a reason shows it: two decimals rounded down (0.3996 is never "0.40")."""
    return f"{math.floor(score * 100) / 100:.2f}"


def show_threshold(thr: float) -> str:
    """A threshold as a reason shows it: two decimals rounded up, so that a score under it never
    looks as if it reached it."""
    return f"{math.ceil(thr * 100 - 1e-9) / 100:.2f}"


@dataclass(frozen=True)
class Ranked:
    label: str
    genre: str
    score: float


@dataclass(frozen=True)
class Decision:
    action: str  # TAG | SKIP | UNCERTAIN
    reason: str
    genres: tuple[str, ...] = ()  # what would be written (the full new field value)
    chosen: tuple[Ranked, ...] = ()  # the model's qualifying genres, best first
    ranked: tuple[Ranked, ...] = field(default=(), repr=False)  # every label, best first


def rank(scores: np.ndarray, labels: tuple[str, ...] | list[str], *, names: dict[str, str] | None = None,
         user_map: dict[str, str] | None = None) -> tuple[Ranked, ...]:
    order = np.argsort(-np.asarray(scores), kind="stable")
    return tuple(
        Ranked(labels[i], display_name(labels[i], model_names=names, user_map=user_map), float(scores[i]))
        for i in order
    )


def _norm(values) -> tuple[str, ...]:
    """Genres as compared with a person's: by :func:`tagger.taxonomy.genre_key` (case, spacing and
    punctuation aside: "Hip-Hop" is "Hip Hop"), so no style or [genres] spelling adds a genre a
    person already has or respells theirs."""
    from tagger.taxonomy import genre_key

    return tuple(genre_key(v) or v.strip().casefold() for v in values if v.strip())


def decide(
    scores: np.ndarray,
    labels: tuple[str, ...] | list[str],
    *,
    top_k: int = 1,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    thresholds: Mapping[str, float] | None = None,
    existing: tuple[str, ...] = (),
    tagger_owned: bool = False,
    owner_model_id: str | None = None,
    model_id: str = "",
    on_existing: str = "skip",
    names: dict[str, str] | None = None,
    user_map: dict[str, str] | None = None,
) -> Decision:
    """Choose what to write for one track.

    A label qualifies when its score reaches its threshold: ``thresholds[label]`` where given
    (a model's per-label thresholds, :class:`Thresholds`), else ``min_confidence``. Up to
    ``top_k`` qualifying genres, best score first; none qualifying -> UNCERTAIN (file left
    unchanged). With one threshold for every label this is "the best ``top_k`` genres scoring at
    least ``min_confidence``". Existing genres: a person's genre is left alone unless
    ``on_existing`` is ``replace`` (write ours) or ``merge`` (theirs first, then ours, no
    duplicates). A genre tagger wrote earlier (``tagger_owned``) is replaced when a different
    model runs, and left alone when the same model already wrote it. tagger's own genre is
    compared exactly (case included), so a changed name or ``--genre-style`` rewrites it; a
    person's genre is compared by genre key (tagger.taxonomy.genre_key: "Hip Hop" is "hip-hop").
    """
    ranked = rank(scores, labels, names=names, user_map=user_map)
    per_label = dict(thresholds or {})

    def thr(label: str) -> float:
        return float(per_label.get(label, min_confidence))

    chosen = tuple(r for r in ranked if r.score >= thr(r.label))[:top_k]
    if not chosen:
        best = ranked[0]
        if not per_label:
            reason = f"no genre reaches the threshold {min_confidence:.2f} (best {best.genre} {show_score(best.score)})"
        else:
            reason = (f"no genre reaches its threshold (best {best.genre} {show_score(best.score)} < "
                      f"{show_threshold(thr(best.label))})")
        return Decision(UNCERTAIN, reason, ranked=ranked)
    new = tuple(r.genre for r in chosen)
    existing = tuple(g for g in existing if g.strip())

    if existing and tagger_owned:
        same = tuple(g.strip() for g in existing) == new  # exact: tagger may respell its own genre
        if owner_model_id == model_id and same:
            return Decision(SKIP, "already tagged by this model", chosen=chosen, ranked=ranked)
        if same:
            return Decision(SKIP, "genre already as predicted", chosen=chosen, ranked=ranked)
        return Decision(TAG, f"updating tagger's earlier genre ({'; '.join(existing)})", new, chosen, ranked)

    if existing:
        if on_existing == "skip":
            return Decision(
                SKIP, f"has a genre already ({'; '.join(existing)}); --on-existing skip", chosen=chosen, ranked=ranked
            )
        if on_existing == "merge":
            have = set(_norm(existing))
            merged = existing + tuple(g for g in new if _norm((g,))[0] not in have)
            if len(merged) == len(existing):
                return Decision(SKIP, "predicted genres already present", chosen=chosen, ranked=ranked)
            return Decision(TAG, "merged with existing genres", merged, chosen, ranked)
        if _norm(existing) == _norm(new):
            return Decision(SKIP, "genre already as predicted", chosen=chosen, ranked=ranked)
        return Decision(TAG, f"replacing existing genre ({'; '.join(existing)})", new, chosen, ranked)

    return Decision(TAG, "no genre before", new, chosen, ranked)


def needs_analysis(*, existing: tuple[str, ...], tagger_owned: bool, owner_model_id: str | None,
                   model_id: str, on_existing: str, always: bool = False, redecide: bool = False) -> str | None:
    """Before decoding: a reason to skip the file without running the model, or None.

    Saves decoding files whose genre a person wrote when the policy is ``skip``, and files this
    very model already tagged (unless ``redecide``: the decision settings changed since).
    ``always`` (explain, reports that want scores) disables it.
    """
    if always:
        return None
    existing = tuple(g for g in existing if g.strip())
    if not existing:
        return None
    if tagger_owned:
        if owner_model_id == model_id and not redecide:
            return "already tagged by this model"
        return None
    if on_existing == "skip":
        return f"has a genre already ({'; '.join(existing)}); --on-existing skip"
    return None


def decide_for(scores: np.ndarray, *, res, meta, options) -> Decision:
    """:func:`decide` for a track (``res``: a :class:`tagger.contracts.Analysis` or
    :class:`~tagger.contracts.Scored`, whose ``tags`` say what the file holds), the model
    metadata and the run's TagOptions: the one call ``tagger tag`` and ``tagger explain`` both make."""
    tags = res.tags
    t = thresholds_for(meta, options)
    return decide(
        scores, meta.labels, top_k=options.top_k, min_confidence=t.default, thresholds=t.per_label,
        existing=tuple(tags.existing), tagger_owned=tags.tagger_owned, owner_model_id=tags.owner_model,
        model_id=meta.model_id, on_existing=options.on_existing, names=meta.display_names,
        user_map=user_names(meta, options),
    )
