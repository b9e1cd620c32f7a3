"""tagger.report.write: one table of report formats for the command line, the config file and the writers."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tagger.cli import main
from tagger.config import check_value
from tagger.report import REPORT_SUFFIXES, Report, Row, check_report_path, report_format
from tagger.report.write import SUFFIXES_TEXT

pytestmark = [pytest.mark.tf, pytest.mark.ray]


@pytest.mark.parametrize("name, fmt", [
    ("r.json", "json"), ("r.csv", "csv"), ("r.html", "html"), ("r.htm", "html"), ("R.HTM", "html"),
    ("a.b/r.Json", "json"), ("r.txt", None), ("r", None), ("r.html.bak", None),
])
def test_report_format_by_suffix(name, fmt):
    assert report_format(name) == fmt


def test_htm_is_accepted_everywhere(tmp_path):
    assert ".htm" in REPORT_SUFFIXES
    check_report_path(tmp_path / "plan.htm")  # no error
    assert check_value("reports", ["plan.htm", "x.HTML"]) == ("plan.htm", "x.HTML")
    # the command line's own check passes it: the run then stops at the missing folder (1, not 64)
    r = CliRunner().invoke(main, ["tag", str(tmp_path / "nope"), "--report", str(tmp_path / "plan.htm"),
                                  "--state-db", str(tmp_path / "s.db")])
    assert r.exit_code == 1 and "no such file or folder" in r.output, r.output


def test_htm_is_written_as_html(tmp_path):
    report = Report(dry_run=True, started=1767225600.0)
    report.add(Row("/m/a.mp3", "mp3", "tagged", "no genre before", written=["Rock"]))
    htm, html = report.write(tmp_path / "r.htm"), report.write(tmp_path / "r.html")
    assert htm.read_bytes() == html.read_bytes() and htm.read_text().startswith("<!DOCTYPE html>")


def test_a_name_no_writer_takes_is_refused_alike_everywhere(tmp_path):
    with pytest.raises(ValueError, match=f"report format must be {SUFFIXES_TEXT}"):
        check_report_path(tmp_path / "plan.txt")
    with pytest.raises(ValueError, match="report format must be"):
        Report().write(tmp_path / "plan.txt")
    with pytest.raises(ValueError, match=r"expected paths ending in \.json, \.csv, \.html, \.htm"):
        check_value("reports", ["plan.txt"])
    r = CliRunner().invoke(main, ["tag", str(tmp_path), "--report", "plan.txt"])
    assert r.exit_code == 64 and f"a report name must end in {SUFFIXES_TEXT}" in r.output
    assert not (tmp_path / "plan.txt").exists()
