"""Report files: which formats there are (by suffix), the early check of a report path, and
writing a report in the format its name says, atomically.

The writers themselves are one module per format: :mod:`tagger.report.json_report`,
:mod:`~tagger.report.csv_report` and :mod:`~tagger.report.html_report` (imported only when
that format is written).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tagger.report.model import Report

#: Report formats by suffix (compared ignoring case): the one table the command line, the config
#: file and the writers use.
FORMATS = {".json": "json", ".csv": "csv", ".html": "html", ".htm": "html"}
REPORT_SUFFIXES = tuple(FORMATS)
#: How messages name the formats (.htm is accepted as .html).
SUFFIXES_TEXT = ".json, .csv or .html"
_WRITERS = {"json": "tagger.report.json_report", "csv": "tagger.report.csv_report",
            "html": "tagger.report.html_report"}


def report_format(path: str | os.PathLike[str]) -> str | None:
    """``json``, ``csv`` or ``html`` for a report name, None for a name tagger cannot write."""
    return FORMATS.get(Path(path).suffix.lower())


def check_report_path(path: str | Path) -> None:
    """Fail early (before any work) on a report path that cannot be written."""
    p = Path(path)
    if report_format(p) is None:
        raise ValueError(f"{p}: report format must be {SUFFIXES_TEXT}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{p}: folder {parent} is not writable")


def render(report: Report, fmt: str) -> str:
    """The text of ``report`` in format ``fmt`` (``json``, ``csv`` or ``html``)."""
    module = importlib.import_module(_WRITERS[fmt])
    text: str = module.render(report)
    return text


def write_report(report: Report, path: str | Path) -> Path:
    """Write ``report`` in the format its extension names (.json, .csv, .html or .htm)."""
    path = Path(path)
    fmt = report_format(path)
    if fmt is None:
        raise ValueError(f"{path}: report format must be {SUFFIXES_TEXT}")
    atomic_write_text(path, render(report, fmt))
    return path


def atomic_write_text(path: Path, text: str) -> None:
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
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
