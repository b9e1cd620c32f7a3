"""The colours tagger draws with: one source for the HTML report (its charts, tiles and script)
and the explain pictures.

``tagger/assets/report.js`` gets :data:`ACTION_COLOURS` filled in where it says
``__ACTION_COLOURS__`` (tagger.report.html_report); ``tagger/assets/report.css`` draws the
threshold in :data:`THRESHOLD` (tests/test_html_report.py checks that they agree).
"""

from __future__ import annotations

#: A row's action -> its colour (tiles, chart segments, badges; the decision in a picture).
ACTION_COLOURS = {
    "tagged": "#2e7d32",
    "would tag": "#2e7d32",
    "skipped": "#78909c",
    "uncertain": "#e09100",
    "failed": "#c62828",
}
#: The confidence threshold: the dashed line in the report's chart and in a picture's scores.
THRESHOLD = "#b26a00"
#: An action without a colour of its own.
OTHER = "#555"
