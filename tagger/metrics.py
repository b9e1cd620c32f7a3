"""Accuracy statistics and pictures shared by ``tagger train``, ``tagger learn`` and ``tagger
evaluate``: Wilson score intervals, per-class and per-genre precision/recall/F1, confusion
matrices, thresholds chosen for a target precision, precision–coverage curves.

Everything but the plots is pure numpy (the plots use matplotlib with the Agg backend, imported
only when drawing). Conventions:

- an interval is a 95% Wilson score interval on the counts behind the proportion (never a normal
  approximation: it stays inside [0, 1] and is honest for small counts and for 0/n and n/n);
- a track gets a genre when its score is **at least** the threshold (as ``tagger tag`` decides);
- a proportion with nothing to count (precision of a genre never predicted) is None, not 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import ParameterError

Z95 = 1.959963984540054
#: The most points a precision–coverage curve keeps (evenly spread over its thresholds).
CURVE_POINTS = 200


# -- intervals -----------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (default 95%).

    Returns (low, high) in [0, 1]; (0, 1) when ``n`` is 0.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ParameterError(f"wilson_interval: need 0 <= successes <= n (got {successes}, {n})")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_interval(values: Sequence[float], *, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` with a Student-t confidence interval: (mean, low, high).

    With fewer than two values the interval is the single value itself."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ParameterError("t_interval: no values")
    mean = float(v.mean())
    if v.size < 2:
        return (mean, mean, mean)
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, df=v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return (mean, mean - half, mean + half)


def _ci(successes: int, n: int) -> list[float]:
    return [round(v, 4) for v in wilson_interval(successes, n)]


# -- single-label: confusion matrix and per-class scores ----------------------------------------


def confusion_matrix(true_idx: np.ndarray, pred_idx: np.ndarray, n: int | None = None, *,
                     n_classes: int | None = None) -> np.ndarray:
    """Counts, shape (n, n): row = true class, column = predicted class. (``n_classes`` is the
    same as ``n``, the name ``tagger train`` uses.)"""
    k = n if n is not None else n_classes
    if k is None:
        raise ParameterError("confusion_matrix: give the number of classes")
    t = np.asarray(true_idx, np.int64)
    p = np.asarray(pred_idx, np.int64)
    if t.shape != p.shape:
        raise ParameterError(f"confusion_matrix: {t.shape} true and {p.shape} predicted classes")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k):
        raise ParameterError(f"confusion_matrix: a class index is outside 0..{k - 1}")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def per_class(cm: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    out = {}
    for i, lab in enumerate(labels):
        tp = float(cm[i, i])
        predicted = float(cm[:, i].sum())
        support = int(cm[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[lab] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                    "support": support}
    return out


# -- multi-label: per-genre scores ---------------------------------------------------------------


def per_genre(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per genre (a column of the bool (n, g) arrays): precision and recall with their Wilson
    intervals, F1, ``support`` (tracks that have it), ``predicted`` (tracks given it) and ``tp``.
    Precision is None for a genre never predicted, recall None for one no track has."""
    t = np.asarray(y_true, bool)
    p = np.asarray(y_pred, bool)
    if t.shape != p.shape or t.ndim != 2 or t.shape[1] != len(names):
        raise ParameterError(f"per_genre: need two (n, {len(names)}) arrays, got {t.shape} and {p.shape}")
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        tp = int(np.sum(t[:, j] & p[:, j]))
        support = int(t[:, j].sum())
        predicted = int(p[:, j].sum())
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall else
              0.0 if precision is not None or recall is not None else None)
        out[name] = {
            "precision": None if precision is None else round(precision, 4),
            "precision_ci95": _ci(tp, predicted),
            "recall": None if recall is None else round(recall, 4),
            "recall_ci95": _ci(tp, support),
            "f1": None if f1 is None else round(f1, 4),
            "support": support, "predicted": predicted, "tp": tp,
        }
    return out


def micro(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Precision and recall over every (track, genre) pair together, with Wilson intervals."""
    t = np.asarray(y_true, bool)
    p = np.asarray(y_pred, bool)
    tp, predicted, support = int(np.sum(t & p)), int(p.sum()), int(t.sum())
    return {"precision": round(tp / predicted, 4) if predicted else None, "precision_ci95": _ci(tp, predicted),
            "recall": round(tp / support, 4) if support else None, "recall_ci95": _ci(tp, support),
            "tp": tp, "predicted": predicted, "support": support}


# -- thresholds and curves ------------------------------------------------------------------------


def _ranked(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds, highest first, with the tracks predicted and the true ones among them
    at each (score >= threshold)."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(truth, bool).ravel()
    if s.shape != y.shape:
        raise ParameterError(f"need as many scores as truths ({s.size} and {y.size})")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.zeros(0, np.int64)
    return s[last], last + 1, tp[last]


def threshold_for_precision(scores: np.ndarray, truth: np.ndarray, target: float) -> tuple[float | None, float, float]:
    """The lowest threshold whose precision (true tracks among those scoring at least it)
    reaches ``target``: the most tracks at that precision. Returns (threshold, precision,
    recall there); (None, best precision, its recall) where no threshold reaches it."""
    if not 0.0 < target <= 1.0:
        raise ParameterError(f"target precision must be in (0, 1], got {target}")
    thr, predicted, tp = _ranked(scores, truth)
    positives = int(np.asarray(truth, bool).sum())
    if thr.size == 0 or positives == 0:
        return (None, 0.0, 0.0)
    precision = tp / predicted
    ok = np.nonzero(precision >= target - 1e-12)[0]
    if ok.size:
        i = int(ok[-1])  # thresholds go down: the last one that reaches the target is the lowest
        return (float(thr[i]), float(precision[i]), float(tp[i] / positives))
    i = int(np.argmax(precision))  # the best it can do (the highest threshold among ties)
    return (None, float(precision[i]), float(tp[i] / positives))


def precision_coverage(scores: np.ndarray, truth: np.ndarray) -> list[tuple[float, float, float]]:
    """(threshold, coverage, precision) from the highest threshold down; at most
    :data:`CURVE_POINTS` points.

    One genre (1-D ``scores`` and bool ``truth``): coverage is the share of all tracks given the
    genre (score at least the threshold), precision the share of those that have it. Several
    genres ((n, g) scores, bool (n, g) truth): each track's best genre, coverage the share of
    tracks whose best score reaches the threshold, precision the share of those whose best genre
    is one of theirs."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(truth, bool)
    if s.shape != y.shape:
        raise ParameterError(f"precision_coverage: scores {s.shape} and truth {y.shape} differ")
    if s.ndim == 2:
        best = s.argmax(axis=1)
        hit = y[np.arange(s.shape[0]), best]
        s, y = s.max(axis=1), hit
    n = s.size
    thr, predicted, tp = _ranked(s, y)
    if n == 0:
        return []
    idx = np.unique(np.linspace(0, thr.size - 1, min(thr.size, CURVE_POINTS)).round().astype(int))
    return [(round(float(thr[i]), 6), round(float(predicted[i] / n), 6), round(float(tp[i] / predicted[i]), 6))
            for i in idx]


# -- pictures (matplotlib, Agg) ------------------------------------------------------------------


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (PNG by the suffix) and close a matplotlib figure; returns the path."""
    plt = pyplot()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_confusion(cm: np.ndarray, names: Sequence[str], path: str | Path, *, title: str) -> Path:
    """Confusion matrix as a PNG: counts in every cell, true label down, predicted across."""
    plt = pyplot()
    cm = np.asarray(cm)
    n = len(names)
    size = max(4.5, 0.6 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=120)
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, int(cm.max()) if cm.size else 1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="tracks")
    ax.set_xticks(range(n), labels=list(names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(names))
    ax.set_xlabel("predicted genre")
    ax.set_ylabel("true genre")
    ax.set_title(title, fontsize=10)
    threshold = cm.max() / 2 if cm.size and cm.max() else 0.5
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=9,
                    color="white" if cm[i, j] > threshold else "black")
    return save_figure(fig, path)


def plot_precision_coverage(curves: Mapping[str, Sequence[tuple[float, float, float]]], path: str | Path, *,
                            title: str, target: float | None = None) -> Path:
    """Precision (up) against coverage (across) for each named curve
    (:func:`precision_coverage`), with the target precision as a dashed line when given."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.8), dpi=120)
    for name, pts in curves.items():
        if not pts:
            continue
        cov = [c for _, c, _ in pts]
        prec = [p for _, _, p in pts]
        ax.plot(cov, prec, lw=2.2 if name.startswith("all") else 1.2, label=name)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target precision {target:.0%}")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("coverage (share of tracks given the genre)")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", ncol=2 if len(curves) > 8 else 1)
    return save_figure(fig, path)
