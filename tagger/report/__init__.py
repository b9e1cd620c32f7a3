"""The run's report: the model (:mod:`~tagger.report.model`: rows, counts, summary line, exit
code) and its files, one writer per format (:mod:`~tagger.report.json_report`,
:mod:`~tagger.report.csv_report`, :mod:`~tagger.report.html_report`), chosen by suffix in
:mod:`~tagger.report.write`.

Importing this package loads the model and the suffix table only; a writer is imported when
its format is written.
"""

from tagger.report.common import ACTIONS, iso_utc, tool_name
from tagger.report.model import Report, Row, plural
from tagger.report.write import (
    REPORT_SUFFIXES,
    atomic_write_text,
    check_report_path,
    report_format,
    write_report,
)

# the private names of the single-module tagger/report.py, for code written against it
_iso = iso_utc
_tool = tool_name
_atomic_write_text = atomic_write_text

__all__ = ["ACTIONS", "REPORT_SUFFIXES", "Report", "Row", "atomic_write_text", "check_report_path", "iso_utc",
           "plural", "report_format", "tool_name", "write_report"]
