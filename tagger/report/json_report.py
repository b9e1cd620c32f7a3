"""The JSON report: :meth:`Report.to_dict <tagger.report.model.Report.to_dict>` as JSON.

A file name that is not valid UTF-8 stays exact: ``\\udcNN`` escapes (Python's json reads back
the ``os.fsdecode`` string) plus the row's ``path_bytes`` (see :mod:`tagger.names`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tagger.names import json_text

if TYPE_CHECKING:
    from tagger.report.model import Report


def render(report: Report) -> str:
    return json_text(report.to_dict(), indent=1) + "\n"
