"""Pure decision logic: chunk probabilities -> track scores -> the genres to write.

No file access here; ``tagger tag`` and ``tagger explain`` both call these functions, so what
explain shows is what tag does.
"""

from __future__ import annotations

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


def display_name(label: str, *, model_names: dict[str, str] | None = None, user_map: dict[str, str] | None = None) -> str:
    """The genre written for a model label: user's [genres] map > model metadata > defaults."""
    for table in (user_map or {}, model_names or {}, DEFAULT_DISPLAY):
        if label in table:
            return table[label]
    return label[:1].upper() + label[1:]


def track_scores(chunk_probs: np.ndarray) -> np.ndarray:
    """Mean of chunk probabilities.

    Parameters
    ----------
    chunk_probs : np.ndarray, shape (n_chunks, n_labels)

    Returns
    -------
    np.ndarray, shape (n_labels,), float32
    """
    p = np.asarray(chunk_probs, dtype=np.float32)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"chunk_probs must be (n_chunks, n_labels) with n_chunks > 0; got {p.shape}")
    return p.mean(axis=0)


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
    return tuple(v.strip().casefold() for v in values if v.strip())


def decide(
    scores: np.ndarray,
    labels: tuple[str, ...] | list[str],
    *,
    top_k: int = 1,
    min_confidence: float = 0.4,
    existing: tuple[str, ...] = (),
    tagger_owned: bool = False,
    owner_model_id: str | None = None,
    model_id: str = "",
    on_existing: str = "skip",
    names: dict[str, str] | None = None,
    user_map: dict[str, str] | None = None,
) -> Decision:
    """Choose what to write for one track.

    Up to ``top_k`` genres scoring at least ``min_confidence``; none qualifying -> UNCERTAIN (file
    left unchanged). Existing genres: a person's genre is left alone unless ``on_existing`` is
    ``replace`` (write ours) or ``merge`` (theirs first, then ours, no duplicates). A genre tagger
    wrote earlier (``tagger_owned``) is replaced when a different model runs, and left alone when
    the same model already wrote it.
    """
    ranked = rank(scores, labels, names=names, user_map=user_map)
    chosen = tuple(r for r in ranked[:top_k] if r.score >= min_confidence)
    if not chosen:
        best = ranked[0]
        shown = np.floor(best.score * 100) / 100  # never print 0.40 for 0.3996 under a 0.40 threshold
        return Decision(
            UNCERTAIN,
            f"no genre reaches the threshold {min_confidence:.2f} (best {best.genre} {shown:.2f})",
            ranked=ranked,
        )
    new = tuple(r.genre for r in chosen)
    existing = tuple(g for g in existing if g.strip())

    if existing and tagger_owned:
        if owner_model_id == model_id and _norm(existing) == _norm(new):
            return Decision(SKIP, "already tagged by this model", chosen=chosen, ranked=ranked)
        if _norm(existing) == _norm(new):
            return Decision(SKIP, "genre already as predicted", chosen=chosen, ranked=ranked)
        return Decision(TAG, f"updating tagger's earlier genre ({'; '.join(existing)})", new, chosen, ranked)

    if existing:
        if on_existing == "skip":
            return Decision(
                SKIP, f"has a genre already ({'; '.join(existing)}); --on-existing skip", chosen=chosen, ranked=ranked
            )
        if on_existing == "merge":
            have = set(_norm(existing))
            merged = existing + tuple(g for g in new if g.casefold() not in have)
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
    return decide(
        scores, meta.labels, top_k=options.top_k, min_confidence=options.min_confidence,
        existing=tuple(tags.existing), tagger_owned=tags.tagger_owned, owner_model_id=tags.owner_model,
        model_id=meta.model_id, on_existing=options.on_existing, names=meta.display_names,
        user_map=options.genre_map,
    )
