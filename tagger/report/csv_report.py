"""The CSV report: one line per file, sorted by path; lists joined with ``; ``.

A file name that is not valid UTF-8 shows its odd bytes as ``\\xNN`` (backslashes are plain text
in CSV).
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from tagger.names import visible

if TYPE_CHECKING:
    from tagger.report.model import Report

COLUMNS = ("path", "format", "action", "reason", "existing", "predicted", "written", "duration",
           "chunks", "node", "error_kind", "analysis", "analysed_at", "album", "genre_from",
           "album_genres", "dissent", "sampling", "rechecked")


def render(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in sorted(report.rows, key=lambda r: r.path):
        w.writerow([
            r.path, r.format, r.action, r.reason, "; ".join(r.existing),
            "; ".join(f"{p['genre']}={p['score']:.3f}" for p in r.predicted),
            "; ".join(r.written), "" if r.duration is None else f"{r.duration:.1f}",
            "" if r.chunks is None else r.chunks, r.node, r.error_kind, r.analysis, r.analysed_at,
            r.album, r.genre_from, "; ".join(r.album_genres), "yes" if r.dissent else "",
            r.sampling, "" if r.rechecked is None else str(r.rechecked).lower(),
        ])
    return visible(buf.getvalue())  # undecodable bytes as \xNN
