"""What a model's metadata says about its accuracy, as lines for people: the HTML report's model
card and ``tagger info`` print the same figures.
"""

from __future__ import annotations

from typing import Any

#: Keys of a metrics table that :func:`metric_lines` folds into the accuracy line, or leaves out.
_FOLDED = ("accuracy", "accuracy_ci95", "interval", "tracks", "evaluated_on", "level", "macro_f1")


def accuracy_text(d: dict[str, Any]) -> str:
    """``accuracy 88.7% (95% CI 79.3%–94.2%) on 71 tracks, macro F1 0.88 — <how>``."""
    text = f"accuracy {d['accuracy']:.1%}"
    ci = d.get("accuracy_ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        text += f" (95% CI {ci[0]:.1%}–{ci[1]:.1%})"
    if d.get("tracks"):
        text += f" on {d['tracks']} tracks"
    if d.get("macro_f1") is not None:
        text += f", macro F1 {d['macro_f1']:.2f}"
    if d.get("evaluated_on"):
        text += f" — {d['evaluated_on']}"
    return text


def metric_lines(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """Readable evaluation figures, as (label, text): the headline accuracy with its interval,
    then each part (a table with an accuracy, or a plain number or word). Where there is no
    headline accuracy, what the figures were measured on comes last."""
    out: list[tuple[str, str]] = []
    if isinstance(metrics.get("accuracy"), (int, float)):
        out.append(("accuracy", accuracy_text(metrics)))
    for key, val in metrics.items():
        if isinstance(val, dict) and isinstance(val.get("accuracy"), (int, float)):
            out.append((key.replace("_", " "), accuracy_text(val)))
        elif key not in _FOLDED and isinstance(val, (int, float, str)) and not isinstance(val, bool):
            out.append((key.replace("_", " "), f"{val:.4g}" if isinstance(val, float) else str(val)))
    if not isinstance(metrics.get("accuracy"), (int, float)) and metrics.get("evaluated_on"):
        out.append(("evaluated on", str(metrics["evaluated_on"])))
    return out


def per_class(metrics: dict[str, Any]) -> dict[str, Any]:
    """Precision, recall, F1 and support per genre, where the metrics have them."""
    for key in ("cross_validation", "test"):
        part = metrics.get(key)
        if isinstance(part, dict) and isinstance(part.get("per_class"), dict):
            found: dict[str, Any] = part["per_class"]
            return found
    top = metrics.get("per_class")
    return top if isinstance(top, dict) else {}
