"""The run's report: per-file rows, counts, the summary line, the exit code, and file writers.

Only this module and cli.py talk to the terminal. Writers: JSON and CSV here; HTML in
:mod:`tagger.html_report`. Rows follow the table in docs/DESIGN.md.

File names that are not valid UTF-8 (see :mod:`tagger.names`): the JSON report keeps them
exactly (``\\udcNN`` escapes, which Python's json reads back to the ``os.fsdecode`` string, plus
``path_bytes``, base64 of the exact bytes); CSV and HTML show them as ``\\xNN``.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tagger.errors import EXIT_FILES_FAILED, EXIT_OK
from tagger.names import exact_bytes_b64, json_text, visible

ACTIONS = ("tagged", "would tag", "skipped", "uncertain", "failed")


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
    rechecked: bool | None = None  # adaptive analysis: the rest of the track was heard (None: not adaptive)

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
            "tool": _tool(),
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "started": _iso(self.started),
            "finished": _iso(self.finished) if self.finished else None,
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

    # -- writers -------------------------------------------------------------------------
    def write(self, path: str | Path) -> Path:
        """Write the report in the format its extension names (.json, .csv, .html)."""
        path = Path(path)
        ext = path.suffix.lower()
        if ext == ".json":
            text = json_text(self.to_dict(), indent=1) + "\n"
        elif ext == ".csv":
            text = visible(self.to_csv())  # undecodable bytes as \xNN (backslashes are plain text in CSV)
        elif ext in (".html", ".htm"):
            from tagger.html_report import render

            text = visible(render(self))  # render shows names visibly already; this is the safety net
        else:
            raise ValueError(f"{path}: report format must be .json, .csv or .html")
        _atomic_write_text(path, text)
        return path

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "format", "action", "reason", "existing", "predicted", "written", "duration",
                    "chunks", "node", "error_kind", "analysis", "analysed_at", "album", "genre_from",
                    "album_genres", "dissent", "sampling", "rechecked"])
        for r in sorted(self.rows, key=lambda r: r.path):
            w.writerow([
                r.path, r.format, r.action, r.reason, "; ".join(r.existing),
                "; ".join(f"{p['genre']}={p['score']:.3f}" for p in r.predicted),
                "; ".join(r.written), "" if r.duration is None else f"{r.duration:.1f}",
                "" if r.chunks is None else r.chunks, r.node, r.error_kind, r.analysis, r.analysed_at,
                r.album, r.genre_from, "; ".join(r.album_genres), "yes" if r.dissent else "",
                r.sampling, "" if r.rechecked is None else str(r.rechecked).lower(),
            ])
        return buf.getvalue()


def check_report_path(path: str | Path) -> None:
    """Fail early (before any work) on a report path that cannot be written."""
    p = Path(path)
    if p.suffix.lower() not in (".json", ".csv", ".html", ".htm"):
        raise ValueError(f"{p}: report format must be .json, .csv or .html")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{p}: folder {parent} is not writable")


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a new file beside ``path``, then rename it over ``path``.

    The file gets mode 0666 less the umask, as ``open()`` gives any new file (``mkstemp``'s 0600
    made a report only its writer could read); the temporary name is never longer than the
    folder allows, however long ``path``'s name is.
    """
    from tagger.tags._safe import TMP_SUFFIX, open_temp_beside

    fd, tmp = open_temp_beside(str(path), TMP_SUFFIX, mode=0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _tool() -> str:
    from tagger import __version__

    return f"tagger {__version__}"
