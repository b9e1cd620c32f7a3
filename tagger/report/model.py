"""The run's report: per-file rows, counts, the summary line and the exit code.

Rows follow the table in docs/DESIGN.md. The files are written by one writer per format
(:mod:`tagger.report.write` picks it by suffix); :meth:`Report.write` is the shortcut.

File names that are not valid UTF-8 (see :mod:`tagger.names`): the JSON report keeps them
exactly (``\\udcNN`` escapes, which Python's json reads back to the ``os.fsdecode`` string, plus
``path_bytes``, base64 of the exact bytes); CSV and HTML show them as ``\\xNN``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tagger.errors import EXIT_FILES_FAILED, EXIT_OK
from tagger.names import exact_bytes_b64
from tagger.report.common import ACTIONS, iso_utc, tool_name


@dataclass
class Row:
    path: str
    format: str
    action: str
    reason: str = ""
    existing: list[str] = field(default_factory=list)
    predicted: list[dict[str, Any]] = field(default_factory=list)  # [{genre, label, score}]
    written: list[str] = field(default_factory=list)
    duration: float | None = None
    chunks: int | None = None
    node: str = ""
    error_kind: str = ""
    explain: str = ""  # path of an explain picture, if one was made
    analysis: str = ""  # "now": analysed in this run; "stored": decided from the store of analyses
    analysed_at: str = ""  # when the analysis decided from was made (ISO-8601 UTC)
    album: str = ""  # the album the track belongs to (tagger.albums), "" for a track decided alone
    genre_from: str = ""  # where the written genre came from: "album" or "track" ("" when none is written)
    album_genres: list[str] = field(default_factory=list)  # the album's decision ([] when decided per track)
    dissent: bool = False  # kept its own genre against its album's (--album-dissent)
    #: how the audio was chosen: "whole", "sample" (--analysis-seconds, or a track over the cap),
    #: "adaptive" (a sample; the decision was clear), "adaptive+rest" (a close call: the rest heard too)
    sampling: str = ""
    rechecked: bool | None = None  # adaptive analysis: more than the first pass was heard (None: not adaptive)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        exact = exact_bytes_b64(self.path)
        if exact is not None:  # not valid UTF-8: the exact bytes, for readers without surrogateescape
            d["path_bytes"] = exact
        return d


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 file"``, ``"2 files"`` (``words``: the plural, when it is not ``word + "s"``)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


@dataclass
class Report:
    dry_run: bool = False
    run_id: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    interrupted: str = ""  # "SIGINT"/"SIGTERM" when stopped early
    pending: int = 0  # files left for a later run (max-files, time budget, interruption)
    unchanged: int = 0  # files the state database says are unchanged since the last run
    notes: list[str] = field(default_factory=list)
    timing: dict[str, Any] = field(default_factory=dict)  # per-stage seconds (pipeline.Stats), for benchmarks

    def add(self, row: Row) -> Row:
        if row.action == "tagged" and self.dry_run:
            row.action = "would tag"
        self.rows.append(row)
        return row

    @property
    def counts(self) -> dict[str, int]:
        c = {a: 0 for a in ACTIONS}
        for r in self.rows:
            c[r.action] = c.get(r.action, 0) + 1
        if self.dry_run:
            c.pop("tagged", None)
        else:
            c.pop("would tag", None)
        return c

    @property
    def exit_code(self) -> int:
        return EXIT_FILES_FAILED if any(r.action == "failed" for r in self.rows) else EXIT_OK

    def summary_line(self) -> str:
        c = self.counts
        parts = [f"{n} {a}" for a, n in c.items()]
        took = (self.finished or time.time()) - self.started
        if not self.rows and self.unchanged and not self.pending and not self.interrupted:
            return f"nothing to do: {plural(self.unchanged, 'file')} unchanged since the last run ({took:.1f} s)"
        line = f"{'dry run: ' if self.dry_run else ''}{plural(len(self.rows), 'file')}: " + ", ".join(parts)
        if self.unchanged:
            line += f"; {self.unchanged} unchanged since the last run"
        if self.pending:
            line += f"; {self.pending} left for the next run"
        if self.interrupted:
            line += f"; interrupted by {self.interrupted}"
        return line + f" ({took:.1f} s)"

    def sorted_rows(self) -> list[Row]:
        order = {"failed": 0, "uncertain": 1, "would tag": 2, "tagged": 2, "skipped": 3}
        return sorted(self.rows, key=lambda r: (order.get(r.action, 9), r.path))

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": tool_name(),
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "started": iso_utc(self.started),
            "finished": iso_utc(self.finished) if self.finished else None,
            "interrupted": self.interrupted or None,
            "pending": self.pending,
            "unchanged": self.unchanged,
            "model": self.model,
            "options": self.options,
            "counts": self.counts,
            "summary": self.summary_line(),
            "notes": self.notes,
            "timing": self.timing,
            "files": [r.to_dict() for r in sorted(self.rows, key=lambda r: r.path)],
        }

    def write(self, path: str | Path) -> Path:
        """Write the report in the format its extension names (.json, .csv, .html or .htm)."""
        from tagger.report.write import write_report

        return write_report(self, path)
