"""Explain pictures for a run's HTML report (``tagger tag --explain-uncertain --report x.html``).

From the report's own rows: each uncertain file (path and the scores the run saw) is explained
again (:func:`tagger.explain.explain_file`, the code the run used), drawn
(:mod:`tagger.explain_picture`) into a folder beside the HTML report, and its row links the
picture (``Row.explain``), which is how the page shows it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagger.errors import FileError

if TYPE_CHECKING:
    from tagger.report.model import Report, Row

log = logging.getLogger(__name__)

#: At most this many pictures per report (each costs a decode, a prediction and a drawing,
#: about a second or two on one CPU core); the report notes how many more there were.
EXPLAIN_LIMIT = 200
#: A picture's scores may differ from the run's by this much (float round-off) before the
#: file is taken to have changed since.
SCORE_TOLERANCE = 1e-3


def explain_folder(report_path: str | os.PathLike[str]) -> Path:
    """Where the pictures of ``plan.html`` go: ``plan.explain/`` beside it."""
    p = Path(report_path)
    return p.with_name(p.stem + ".explain")


def uncertain_rows(report: Report) -> list[Row]:
    """The rows to draw, by path: the files the run analysed and left uncertain."""
    return sorted((r for r in report.rows if r.action == "uncertain" and r.predicted), key=lambda r: r.path)


def scores_differ(row: Row, labels: tuple[str, ...] | list[str], scores: Any) -> bool:
    """Whether the scores of an explanation differ from those the run reported for the row
    (its top genres, by label), as when the file changed since."""
    index = {lab: i for i, lab in enumerate(labels)}
    for p in row.predicted:
        i = index.get(p.get("label", ""))
        if i is None or abs(float(scores[i]) - float(p["score"])) > SCORE_TOLERANCE:
            return True
    return False


def attach_pictures(report: Report, html_path: str | os.PathLike[str], *, options: Any,
                    load_model: Callable[[], Any]) -> int:
    """Draw the uncertain files of a finished run beside the HTML report ``html_path`` and link
    them from their rows; returns how many pictures were drawn.

    Pictures go to ``<report stem>.explain/NNNN-<name>.png`` (replacing an earlier run's) and
    each row's ``explain`` field gets the path relative to the HTML report's folder. ``options``
    are the run's TagOptions; ``load_model`` gives the run's model (called once, only when there
    is a picture to draw). A file that cannot be explained now (moved, changed) is logged and
    skipped; at most :data:`EXPLAIN_LIMIT` pictures, the report notes the rest.
    """
    todo = uncertain_rows(report)
    if not todo:
        return 0
    from tagger.explain import explain_file
    from tagger.explain_picture import render_png, safe_name

    base = Path(html_path).parent
    folder = explain_folder(html_path)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("[0-9][0-9][0-9][0-9]-*.png"):  # pictures of an earlier run of this report
        old.unlink()
    model = load_model()
    made = 0
    for i, row in enumerate(todo[:EXPLAIN_LIMIT]):
        try:
            expl = explain_file(row.path, options=options, model=model)
        except FileError as exc:
            log.warning("explain: %s", exc)
            continue
        if scores_differ(row, expl.meta.labels, expl.scores):
            log.warning("explain: %s: scores differ from the run's (file changed since?)", row.path)
        out = folder / f"{i + 1:04d}-{safe_name(Path(row.path).stem)}.png"
        render_png(expl, out, dpi=80)
        made += 1
        row.explain = os.path.relpath(out, base)
    rest = len(todo) - min(len(todo), EXPLAIN_LIMIT)
    if rest:
        report.notes.append(
            f"explain pictures for the first {EXPLAIN_LIMIT} uncertain files only; "
            f"run `tagger explain FILE` for the other {rest}")
    log.info("explain: %d pictures in %s", made, folder)
    return made
