"""Report writing (issue 15, item 12): reports get the permissions the umask gives any new
file (not mkstemp's 0600), and every summary line says "1 file", not "1 files"."""

from __future__ import annotations

import os
import stat

import pytest

from tagger.report import Report, Row
from tagger.report import html_report as hr

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
@pytest.mark.parametrize("ext", ["json", "csv", "html"])
def test_report_mode_follows_the_umask(tmp_path, umask, ext):
    report = Report(dry_run=True)
    report.add(Row("/m/a.mp3", "mp3", "tagged"))
    old = os.umask(umask)
    try:
        out = report.write(tmp_path / f"r.{ext}")
        report.write(out)  # replacing an earlier report: the same
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(tmp_path) == [out.name]


def _report(n: int, *, dry_run: bool = False, unchanged: int = 0, pending: int = 0) -> Report:
    report = Report(dry_run=dry_run, unchanged=unchanged, pending=pending)
    for i in range(n):
        report.add(Row(f"/m/{i}.mp3", "mp3", "failed", "not an MP3 file", error_kind="tag-read"))
    report.finished = report.started + 1
    return report


def test_one_file_is_singular_in_every_summary():
    assert _report(1).summary_line().startswith("1 file: 0 tagged, 0 skipped, 0 uncertain, 1 failed")
    assert _report(2).summary_line().startswith("2 files: ")
    assert _report(0, unchanged=1).summary_line().startswith("nothing to do: 1 file unchanged since the last run")
    assert _report(1, dry_run=True).summary_line().startswith("dry run: 1 file: ")
    assert hr.headline(_report(1)) == "1 file: 0 files tagged, 1 failed."
    page = hr.render(_report(1, pending=1))
    assert "1 file left for the next run." in page and "1 files" not in page
    assert "1 file failed" in page
