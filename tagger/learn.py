"""``tagger learn``'s core: labels from the genres a person wrote, a head on the backbone
embeddings, grouped cross-validation, per-genre thresholds, the comparison with the model the
embeddings came from. Pure numpy/scipy (no TensorFlow, no Ray); :mod:`tagger.commands.learn` is
the driver.

**Labels.** Only a person's genres are labels (a file whose genres tagger wrote is not one, see
:attr:`tagger.library.LibraryTrack.tagger_owned`), through the owner's taxonomy
(:func:`tagger.taxonomy.build_taxonomy`): one track may carry several genres (multi-label).

**The head.** One logistic regression per genre (one-vs-rest) on the standardised embedding,
fitted together by L-BFGS on the sum of their losses (the problems are separate; one call fits
them all). Class imbalance: each genre weighs its positive and negative tracks so that each side
counts half (``n / (2 n_pos)`` and ``n / (2 n_neg)``), so a genre on 2% of the library is not
learnt as "never". L2 strength: chosen from :data:`L2_GRID` by a separate
:data:`INNER_FOLDS`-fold cross-validation (grouped like the outer one) on all labelled tracks,
on the mean class-weighted log-loss; :data:`L2_DEFAULT` where there are too few groups for it.
The standardisation is folded into the weights, so the exported head is ``sigmoid(e @ W + b)``
on the raw embedding (:func:`tagger.heads.head_scores`). Deterministic: zero start, no randomness
in the fit; the seed only orders tied groups into folds.

**Honest accuracy.** K-fold cross-validation grouped so that no album, and (``album+artist``, the
default) no artist, is on both sides of a split: union-find over the album and artist keys. When
artist grouping leaves fewer groups than folds, or one group holds more than
:data:`MAX_GROUP_SHARE` of the tracks, album grouping is used instead, and said. Each fold's head
is fitted on the other folds; each fold is decided at thresholds chosen on the out-of-fold scores
of the *other* folds' tracks (cross-fitted), so no decision that is scored had its own label
used to set its threshold. The one number chosen on every track is the L2 strength (one of five);
its effect is small beside the intervals. The final model is fitted on every labelled track; its
thresholds are chosen on all the out-of-fold scores (each from a model that did not see that track).

**Thresholds.** Per genre, the lowest threshold whose precision reaches the target
(:func:`tagger.metrics.threshold_for_precision`): the most tracks at that precision. A genre that
cannot reach it is never written: :data:`NEVER` in the cross-validation, and left out of the
exported model (a stored threshold of 1 could still be met by a score float32 rounds to 1); the
report says so, with the best precision it reached: lower ``--target-precision`` to have it written.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagger.errors import FatalError

log = logging.getLogger(__name__)

#: L2 strengths tried by the inner cross-validation (on standardised embeddings; the loss is a
#: mean over tracks, so a strength means the same for any library size). On 47 GTZAN clips
#: (bench/learn_gtzan.py) the inner loss is lowest at 1 (0.34; 0.36 at 3, 0.43 at 10, 0.46 at
#: 0.1): few tracks want a strong prior; large libraries pick weaker ones.
L2_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: Where no inner split is possible (fewer than two groups on the training side).
L2_DEFAULT = 1.0
#: Inner folds for the L2 and threshold choice.
INNER_FOLDS = 3
#: Artist grouping is dropped for album grouping when one group would hold more than this share.
MAX_GROUP_SHARE = 0.5
#: The threshold of a genre that cannot reach the target precision, in the cross-validation:
#: above any score, so it is never written (the exported model leaves such a genre out).
NEVER = math.inf
GROUPINGS = ("album+artist", "album")


class LearnError(FatalError):
    """A library ``tagger learn`` cannot learn from (exit 1, one line)."""


# -- labels ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labelled:
    """The labelled tracks: embeddings, labels, grouping keys and the backbone model's scores."""

    paths: tuple[str, ...]
    x: np.ndarray  # (n, d) float32 pooled embeddings
    y: np.ndarray  # (n, g) bool
    keys: tuple[str, ...]  # genre keys, column order
    names: tuple[str, ...]  # the owner's spelling of each
    albums: tuple[str, ...]
    artists: tuple[str, ...]
    base_scores: np.ndarray  # (n, labels of the backbone model) its stored scores


def person_tracks(tracks: Sequence[Any]) -> list[Any]:
    """The tracks carrying genres a person wrote (not tagger's own)."""
    return [t for t in tracks if t.genres and not t.tagger_owned]


def check_labels(tracks: Sequence[Any], taxonomy) -> None:
    """Refuse, with one line, a library that cannot be learnt from: no genre a person wrote,
    only tagger's own genres, one genre, no genre with enough tracks and albums."""
    person = person_tracks(tracks)
    if not person:
        if any(t.genres and t.tagger_owned for t in tracks):
            raise LearnError("only tagger's own genres: no file carries a genre a person wrote "
                             f"({sum(1 for t in tracks if t.tagger_owned)} tagged by tagger, which are not labels)")
        raise LearnError(f"no genres a person wrote: none of the {len(tracks)} files carries a genre")
    if not taxonomy.genres:
        if taxonomy.left_out:
            g, why = taxonomy.left_out[0]
            raise LearnError(f"no genre to learn: every genre was left out (the largest, {g.name}: {why}); "
                             "see --min-tracks and --min-albums")
        raise LearnError("no genres a person wrote: the genre values name no genre")
    if len(taxonomy.genres) == 1:
        g = taxonomy.genres[0]
        extra = f"; left out: {len(taxonomy.left_out)} (see --min-tracks, --min-albums)" if taxonomy.left_out else ""
        raise LearnError(f"only one genre ({g.name}, {g.tracks} tracks): nothing to tell apart{extra}")


def labelled(tracks: Sequence[Any], taxonomy) -> Labelled:
    """The person-tagged tracks with at least one kept genre and an embedding, as arrays."""
    keys = taxonomy.keys()
    names = taxonomy.names()
    rows, paths, albums, artists, emb, base = [], [], [], [], [], []
    size = None
    for t in person_tracks(tracks):
        a = t.analysis
        if a is None or a.embedding is None:
            continue
        labels = taxonomy.labels_of(t.genres)
        if not labels:
            continue
        if size is None:
            size = len(a.embedding)
        if len(a.embedding) != size:
            log.warning("%s: its stored embedding has %d values, not %d; left out", t.path, len(a.embedding), size)
            continue
        rows.append([k in labels for k in keys])
        paths.append(t.path)
        albums.append(t.album)
        artists.append(t.artist)
        emb.append(a.embedding)
        base.append(a.scores)
    if not rows:
        raise LearnError("no labelled track has a stored embedding: the model computes none (learning needs a "
                         "model with a backbone embedding, such as the shipped ones)")
    return Labelled(tuple(paths), np.asarray(emb, np.float32), np.asarray(rows, bool), keys,
                    tuple(names[k] for k in keys), tuple(albums), tuple(artists), np.asarray(base, np.float32))


# -- groups and folds --------------------------------------------------------------------------------


def union_groups(albums: Sequence[str], artists: Sequence[str] | None = None) -> np.ndarray:
    """A group id per track: tracks sharing an album key, or (with ``artists``) a non-empty
    artist key, directly or through others, are one group (union-find). Ids in first-seen order."""
    n = len(albums)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    for keys in (albums, artists or ()):
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            if not k:
                continue
            if k in first:
                union(first[k], i)
            else:
                first[k] = i
    ids: dict[int, int] = {}
    return np.array([ids.setdefault(find(i), len(ids)) for i in range(n)], np.int64)


def assign_folds(groups: np.ndarray, y: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """A fold per track, whole groups at a time, genres spread evenly: groups go largest first
    (ties in a seeded order) to the fold where their genres are least represented so far,
    relative to each genre's total (then the fold with fewest tracks)."""
    groups = np.asarray(groups)
    ids = np.unique(groups)
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(ids.size)
    counts = np.stack([y[groups == g].sum(axis=0) for g in ids]).astype(np.float64)  # (groups, genres)
    sizes = np.array([(groups == g).sum() for g in ids])
    totals = np.maximum(counts.sum(axis=0), 1.0)
    order = sorted(range(ids.size), key=lambda i: (-sizes[i], tiebreak[i]))
    fill = np.zeros((k, y.shape[1]))
    tracks = np.zeros(k)
    fold_of = np.zeros(ids.size, np.int64)
    for i in order:
        cost = ((fill + counts[i]) / totals).max(axis=1) if counts[i].any() else np.zeros(k)
        f = min(range(k), key=lambda j: (round(float(cost[j]), 9), tracks[j], j))
        fold_of[i] = f
        fill[f] += counts[i]
        tracks[f] += sizes[i]
    index = {g: i for i, g in enumerate(ids)}
    return np.array([fold_of[index[g]] for g in groups], np.int64)


@dataclass(frozen=True)
class FoldPlan:
    fold: np.ndarray  # fold per track
    k: int
    grouping: str  # "album+artist" or "album"
    groups: int  # groups of that grouping
    notes: tuple[str, ...] = ()  # what could not be done as asked, in words

    def to_dict(self) -> dict[str, Any]:
        sizes = [int((self.fold == f).sum()) for f in range(self.k)]
        return {"folds": self.k, "grouping": self.grouping, "groups": self.groups, "fold_tracks": sizes,
                "notes": list(self.notes)}


def plan_folds(albums: Sequence[str], artists: Sequence[str], y: np.ndarray, *, folds: int = 5,
               group_by: str = "album+artist", seed: int = 0) -> FoldPlan:
    """The outer folds: grouped by album and artist where that leaves at least ``folds`` groups and
    no group holds more than :data:`MAX_GROUP_SHARE` of the tracks, else by album (said in the
    notes); fewer folds where there are fewer albums than folds (said too); two albums at least."""
    if group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPINGS)}")
    n = len(albums)
    notes: list[str] = []
    grouping = group_by
    g = union_groups(albums, artists if group_by == "album+artist" else None)
    if group_by == "album+artist":
        n_groups = int(g.max()) + 1 if n else 0
        biggest = int(np.bincount(g).max()) if n else 0
        if n_groups < folds or biggest > MAX_GROUP_SHARE * n:
            why = (f"only {n_groups} group(s) of albums sharing an artist for {folds} folds" if n_groups < folds
                   else f"one group of albums sharing artists holds {biggest} of the {n} tracks")
            notes.append(f"grouped by album only: {why}; an artist may be on both sides of a split, "
                         "which flatters the figures")
            grouping = "album"
            g = union_groups(albums, None)
    n_groups = int(g.max()) + 1 if n else 0
    if n_groups < 2:
        raise LearnError(f"the {n} labelled tracks are all one album: cross-validation needs two albums at least")
    k = folds
    if n_groups < folds:
        k = n_groups
        notes.append(f"{k} folds instead of {folds}: only {n_groups} albums")
    return FoldPlan(assign_folds(g, y, k, seed=seed), k, grouping, n_groups, tuple(notes))


# -- the head --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """A linear head on the raw embedding: scores = sigmoid(x @ weights + bias)."""

    weights: np.ndarray  # (d, g) float32
    bias: np.ndarray  # (g,) float32
    l2: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(np.asarray(x, np.float64) @ self.weights.astype(np.float64) + self.bias.astype(np.float64))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def class_weights(y: np.ndarray) -> np.ndarray:
    """(n, g) sample weights: a genre's positives and negatives each weigh half of the total."""
    n = y.shape[0]
    pos = y.sum(axis=0).astype(np.float64)
    neg = n - pos
    wp = np.where(pos > 0, n / (2.0 * np.maximum(pos, 1)), 0.0)
    wn = np.where(neg > 0, n / (2.0 * np.maximum(neg, 1)), 0.0)
    return np.where(y, wp, wn)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    return mu, np.where(sd > 1e-6, sd, 1.0)


def fit_head(x: np.ndarray, y: np.ndarray, *, l2: float, max_iter: int = 500) -> Head:
    """Weighted one-vs-rest logistic regression of every genre at once (module docstring), on
    standardised ``x``; the standardisation folded into the returned weights."""
    return fit_path(x, y, (l2,), max_iter=max_iter)[0]


def fit_path(x: np.ndarray, y: np.ndarray, l2s: Sequence[float], *, max_iter: int = 500) -> list[Head]:
    """:func:`fit_head` for each L2 strength of ``l2s`` (returned in that order), fitted from the
    strongest down, each fit starting where the previous one ended (same optimum, fewer steps)."""
    from scipy.optimize import minimize

    x = np.asarray(x, np.float64)
    yf = np.asarray(y, np.float64)
    n, d = x.shape
    g = yf.shape[1]
    mu, sd = _standardise(x)
    xs = (x - mu) / sd
    w8 = class_weights(np.asarray(y, bool)) / n
    theta = np.zeros(d * g + g)
    out: dict[float, Head] = {}
    for l2 in sorted(set(float(v) for v in l2s), reverse=True):

        def loss(t: np.ndarray, l2: float = l2) -> tuple[float, np.ndarray]:
            w = t[: d * g].reshape(d, g)
            z = xs @ w + t[d * g:]
            # log(1 + e^z) - y z: the logistic loss, stable for any z
            value = float(np.sum(w8 * (np.logaddexp(0.0, z) - yf * z))) + 0.5 * l2 * float(np.sum(w * w))
            r = w8 * (sigmoid(z) - yf)
            return value, np.concatenate([(xs.T @ r + l2 * w).ravel(), r.sum(axis=0)])

        res = minimize(loss, theta, jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "gtol": 1e-5, "ftol": 1e-9})
        theta = res.x
        w = theta[: d * g].reshape(d, g)
        b = theta[d * g:]
        out[l2] = Head((w / sd[:, None]).astype(np.float32), (b - (mu / sd) @ w).astype(np.float32), l2)
    return [out[float(v)] for v in l2s]


def weighted_log_loss(scores: np.ndarray, y: np.ndarray) -> float:
    """Mean over genres of each genre's class-weighted log-loss (what the L2 choice minimises)."""
    p = np.clip(np.asarray(scores, np.float64), 1e-7, 1 - 1e-7)
    yb = np.asarray(y, bool)
    w = class_weights(yb)
    per = -(w * np.where(yb, np.log(p), np.log(1 - p))).sum(axis=0) / max(1, yb.shape[0])
    return float(per.mean())


@dataclass(frozen=True)
class Choice:
    l2: float
    losses: dict[float, float] = field(default_factory=dict)  # inner cross-validated loss of each L2 tried
    folds: int = 0  # inner folds (0: none possible, the default L2)


def choose_l2(x: np.ndarray, y: np.ndarray, albums: Sequence[str], artists: Sequence[str], *, grouping: str,
              seed: int = 0, grid: Sequence[float] = L2_GRID, tick: Callable[[], None] | None = None) -> Choice:
    """The L2 strength of ``grid`` with the lowest loss (:func:`weighted_log_loss`) in a
    separate :data:`INNER_FOLDS`-fold cross-validation, grouped as ``grouping``."""
    g = union_groups(albums, artists if grouping == "album+artist" else None)
    n_groups = int(g.max()) + 1 if len(g) else 0
    if n_groups < 2:
        return Choice(L2_DEFAULT)
    k = min(INNER_FOLDS, n_groups)
    fold = assign_folds(g, y, k, seed=seed + 1)
    oof = {l2: np.zeros(y.shape, np.float64) for l2 in grid}
    for f in range(k):
        train, test = fold != f, fold == f
        for l2, head in zip(grid, fit_path(x[train], y[train], grid), strict=True):
            oof[l2][test] = head.scores(x[test])
        if tick is not None:
            tick()
    losses = {float(l2): weighted_log_loss(oof[l2], y) for l2 in grid}
    best = min(grid, key=lambda v: (losses[float(v)], -v))  # ties: the stronger (simpler) one
    return Choice(float(best), losses, k)


# -- thresholds and decisions ---------------------------------------------------------------------------


def choose_thresholds(scores: np.ndarray, y: np.ndarray, target: float) -> list[tuple[float | None, float, float]]:
    """Per genre: (threshold or None when the target is out of reach, precision, recall there)."""
    from tagger.metrics import threshold_for_precision

    return [threshold_for_precision(scores[:, j], y[:, j], target) for j in range(y.shape[1])]


def stored_thresholds(chosen: Sequence[tuple[float | None, float, float]]) -> np.ndarray:
    return np.array([NEVER if t is None else t for t, _, _ in chosen], np.float64)


def decisions(scores: np.ndarray, thresholds: np.ndarray, *, top_k: int) -> np.ndarray:
    """What ``tagger tag`` writes with these per-genre thresholds: up to ``top_k`` genres, best
    score first, among those scoring at least their threshold (a :data:`NEVER` genre: none)."""
    s = np.asarray(scores, np.float64)
    thr = np.asarray(thresholds, np.float64)
    ok = s >= thr
    ranked = np.where(ok, s, -np.inf)
    out = np.zeros(s.shape, bool)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :top_k]
    rows = np.arange(s.shape[0])[:, None]
    out[rows, order] = np.isfinite(ranked[rows, order])
    return out


@dataclass(frozen=True)
class CrossValidation:
    oof: np.ndarray  # (n, g) out-of-fold scores
    predicted: np.ndarray  # (n, g) bool: decisions at thresholds chosen without the test fold
    fold_thresholds: np.ndarray  # (k, g)
    l2: float
    plan: FoldPlan


def cross_validate(data: Labelled, plan: FoldPlan, *, l2: float, target: float, top_k: int,
                   tick: Callable[[], None] | None = None) -> CrossValidation:
    """Outer grouped K-fold at ``l2``: each fold's head is fitted on the other folds and scores
    its tracks (out-of-fold scores). Each fold is then decided at thresholds chosen, for
    ``target`` precision, on the out-of-fold scores of the *other* folds' tracks only (so the
    decisions scored never saw their own labels), up to ``top_k`` genres as ``tag`` writes."""
    x, y = data.x, data.y
    oof = np.zeros(y.shape, np.float64)
    for f in range(plan.k):
        train, test = plan.fold != f, plan.fold == f
        oof[test] = fit_head(x[train], y[train], l2=l2).scores(x[test])
        if tick is not None:
            tick()
    predicted = np.zeros(y.shape, bool)
    thresholds = np.zeros((plan.k, y.shape[1]))
    for f in range(plan.k):
        test = plan.fold == f
        thresholds[f] = stored_thresholds(choose_thresholds(oof[~test], y[~test], target))
        predicted[test] = decisions(oof[test], thresholds[f], top_k=top_k)
    return CrossValidation(oof, predicted, thresholds, float(l2), plan)


def fits_needed(plan: FoldPlan) -> int:
    """Steps of :func:`choose_l2` + :func:`cross_validate` + the final fit (for a progress bar)."""
    return INNER_FOLDS + plan.k + 1


# -- the backbone model's decisions on the same tracks ----------------------------------------------------


def map_labels(labels: Sequence[str], keys: Sequence[str], *, key_of: Callable[[str], str],
               display_names: Mapping[str, str] | None = None, user_map: Mapping[str, str] | None = None) -> dict[int, int]:
    """Model label index -> genre column, where the genre the model writes for the label (its
    [genres]/metadata/default name) or the label itself has the genre's key ("hiphop" and
    "Hip-Hop" -> "hiphop")."""
    from tagger.aggregate import display_name

    col = {k: j for j, k in enumerate(keys)}
    out: dict[int, int] = {}
    for i, label in enumerate(labels):
        written = display_name(label, model_names=dict(display_names or {}), user_map=dict(user_map or {}))
        for name in (written, label):
            k = key_of(name)
            if k in col:
                out[i] = col[k]
                break
    return out


def base_decisions(scores: np.ndarray, mapping: Mapping[int, int], genres: int, *, top_k: int,
                   thresholds: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the backbone model writes (as ``tagger tag`` decides: up to ``top_k`` labels, best
    first, among those reaching their threshold), as library genres: (n, genres) bool, and per
    track whether it wrote anything at all (a label outside the library's genres counts as
    written, to no genre)."""
    s = np.asarray(scores, np.float64)
    thr = np.broadcast_to(np.asarray(thresholds, np.float64), s.shape[1:])
    chosen = decisions(s, thr, top_k=top_k)
    out = np.zeros((s.shape[0], genres), bool)
    for lab, col in mapping.items():
        out[:, col] |= chosen[:, lab]
    return out, np.asarray(chosen.any(axis=1), bool)


# -- figures ------------------------------------------------------------------------------------------------


def summary(y: np.ndarray, predicted: np.ndarray, wrote: np.ndarray | None = None) -> dict[str, Any]:
    """Track-level figures of a set of decisions: tracks given at least one genre, given one of
    theirs (right), given only genres not theirs (wrong), with Wilson intervals."""
    from tagger.metrics import wilson_interval

    n = int(y.shape[0])
    given = predicted.any(axis=1) if wrote is None else wrote
    right = (predicted & y).any(axis=1)
    wrong = given & ~right
    out: dict[str, Any] = {"tracks": n}
    for name, mask in (("given", given), ("right", right), ("wrong", wrong)):
        c = int(mask.sum())
        out[name] = c
        out[f"{name}_share"] = round(c / n, 4) if n else None
        out[f"{name}_ci95"] = [round(v, 4) for v in wilson_interval(c, n)]
    return out


def top1_confusion(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Confusion matrix of the tracks with exactly one genre: true genre vs the best-scoring one.
    Returns (matrix, tracks counted, right)."""
    from tagger.metrics import confusion_matrix

    single = y.sum(axis=1) == 1
    t = y[single].argmax(axis=1)
    p = np.asarray(scores)[single].argmax(axis=1)
    return confusion_matrix(t, p, y.shape[1]), int(single.sum()), int((t == p).sum())


def round_or_none(v: float | None, nd: int = 4) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), nd)


# -- the figures of one learning, as the report and the model metadata carry them ---------------------------


def evaluation(data: Labelled, cv: CrossValidation, final_thresholds: Sequence[tuple[float | None, float, float]],
               *, base_labels: Sequence[str], mapping: Mapping[int, int], base_predicted: np.ndarray,
               base_wrote: np.ndarray) -> dict[str, Any]:
    """Per genre: the learnt model's cross-validated precision/recall at its (cross-fitted)
    thresholds, the final threshold, the backbone model's figures on the same tracks (genres its
    labels map to); the track-level summary of both; the top-1 confusion of single-genre tracks;
    precision-coverage curves. Plain JSON types."""
    from tagger.metrics import per_genre, precision_coverage, wilson_interval

    y = data.y
    learnt = per_genre(y, cv.predicted, data.keys)
    mapped = {j: i for i, j in mapping.items()}
    base = per_genre(y, base_predicted, data.keys)
    genres = []
    for j, key in enumerate(data.keys):
        thr, prec, rec = final_thresholds[j]
        genres.append({
            "key": key, "name": data.names[j], "tracks": int(y[:, j].sum()),
            "threshold": None if thr is None else round(float(thr), 6), "reachable": thr is not None,
            # on the pooled out-of-fold scores, at the final threshold (what chose it: optimistic)
            "threshold_precision": round_or_none(prec) if thr is not None else None,
            "threshold_recall": round_or_none(rec) if thr is not None else None,
            "best_precision": None if thr is not None else round_or_none(prec),
            "learnt": learnt[key],
            "base": base[key] if j in mapped else None,
            "base_label": base_labels[mapped[j]] if j in mapped else None,
        })
    cm, single, right = top1_confusion(y, cv.oof)
    curves: dict[str, list[tuple[float, float, float]]] = {"all genres (top-1)": precision_coverage(cv.oof, y)}
    for j, name in enumerate(data.names):
        curves[name] = precision_coverage(cv.oof[:, j], y[:, j])
    return {
        "genres": genres,
        "summary": {"learnt": summary(y, cv.predicted), "base": summary(y, base_predicted, base_wrote)},
        "top1": {"tracks": single, "right": right, "accuracy": round(right / single, 4) if single else None,
                 "ci95": [round(v, 4) for v in wilson_interval(right, single)], "names": list(data.names),
                 "confusion": cm.tolist()},
        "curves": curves,
    }


def model_metrics(ev: Mapping[str, Any], *, target: float, plan: FoldPlan, tracks: int) -> dict[str, Any]:
    """What the exported model's metadata carries as ``metrics`` (``tagger info`` shows them)."""
    s = ev["summary"]["learnt"]
    t = ev["top1"]
    return {
        "evaluated_on": f"{plan.k}-fold cross-validation grouped by {plan.grouping} on {tracks} tracks a person "
                        "tagged (out-of-fold decisions at cross-fitted thresholds)",
        "level": "track",
        "target_precision": target,
        "tracks_right": s["right_share"], "tracks_wrong": s["wrong_share"], "tracks_given": s["given_share"],
        "top1_single_genre": {"accuracy": t["accuracy"], "ci95": t["ci95"], "tracks": t["tracks"]},
        "per_genre": {g["key"]: {"name": g["name"], "threshold": g["threshold"], "reachable": g["reachable"],
                                 **{k: g["learnt"][k] for k in ("precision", "precision_ci95", "recall",
                                                                "recall_ci95", "f1", "support")}}
                      for g in ev["genres"]},
    }


# -- --as-default: the config file's [tag] model line -------------------------------------------------------

_TABLE = re.compile(r"^[ \t]*\[[ \t]*([^\[\]]*?)[ \t]*\][ \t]*(#.*)?$")
_MODEL_LINE = re.compile(r"""^([ \t]*)(?:model|"model"|'model')[ \t]*=.*$""")
#: A one-line string value and what follows it (a comment, kept)
_STRING_VALUE = re.compile(r"""=[ \t]*(?:"(?:[^"\\\n]|\\.)*"|'[^'\n]*')([ \t]*(?:#.*)?)$""")


def with_default_model(text: str, model: str) -> str:
    """The config file's text with ``model = "MODEL"`` in its ``[tag]`` table: an existing model
    line there replaced (its indentation kept), else the line added under ``[tag]``, else a
    ``[tag]`` table appended. Every other byte stays as it was. Raises ValueError where the
    result would not be the same config plus that one setting (checked by parsing both)."""
    import json
    import tomllib

    value = json.dumps(model, ensure_ascii=False)  # a JSON string is a TOML basic string
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"it is not valid TOML ({exc})") from None
    lines = text.splitlines(keepends=True)
    table, start = None, None
    out = None
    for i, line in enumerate(lines):
        m = _TABLE.match(line.rstrip("\r\n"))
        if m and not line.lstrip().startswith("[["):
            if table == "tag":
                break
            table = m.group(1).strip().strip("\"'")
            if table == "tag":
                start = i
            continue
        if table == "tag":
            mm = _MODEL_LINE.match(line.rstrip("\r\n"))
            if mm:
                body = line.rstrip("\r\n")
                end = line[len(body):]
                kept = _STRING_VALUE.search(body)
                comment = kept.group(1) if kept else ""
                out = lines[:i] + [f"{mm.group(1)}model = {value}{comment}{end}"] + lines[i + 1:]
                break
    if out is None:
        nl = "\r\n" if "\r\n" in text else "\n"
        if start is not None:
            out = lines[: start + 1] + [f"model = {value}{nl}"] + lines[start + 1:]
            if not lines[start].endswith(("\n", "\r")):
                out[start] = lines[start] + nl
        else:
            sep = "" if not text or text.endswith(("\n", "\r")) else nl
            out = [text, f"{sep}{nl if text.strip() else ''}[tag]{nl}model = {value}{nl}"]
    result = "".join(out)
    try:
        after = tomllib.loads(result)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"the edited file would not be valid TOML ({exc})") from None
    expected = dict(before)
    expected["tag"] = {**dict(before.get("tag") or {}), "model": model}
    if after != expected:
        raise ValueError("its [tag] table is written in a way this edit cannot keep exactly (dotted keys, "
                         "a multi-line value)")
    return result
