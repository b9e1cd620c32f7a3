"""File names that are not valid UTF-8 (issue 15, item 4): every report (JSON, CSV, HTML), the
console and the log carry them, in a dry run and in a real run, and nothing crashes.

POSIX file names are bytes; Python hands them over as ``str`` with surrogate escapes
(``os.fsdecode``), which a UTF-8 writer refuses. The JSON report must give the exact bytes back;
CSV, HTML, the console and the log show ``\\xNN`` for each odd byte.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from tagger.names import json_text, visible
from tagger.report import Report, Row
from tests.bad_input_helpers import genres_of, run_cli, tag_args

LATIN1 = b"caf\xe9 \xff.wav"  # "café ÿ.wav" written by a Latin-1 system: not valid UTF-8
BAD_DIR = b"\xfe\xfd disc"  # a folder whose name is not valid UTF-8 either
BROKEN = b"broken \xff.mp3"  # random bytes: a failed file (a warning on the console)

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def _str(raw: bytes, root: Path) -> str:
    return os.path.join(str(root), os.fsdecode(raw))


def _check_json(path: Path, expected: dict[str, str]) -> dict:
    raw = path.read_bytes()
    raw.decode("utf-8")  # valid UTF-8 (strict)
    data = json.loads(raw)
    rows = {r["path"]: r for r in data["files"]}
    for p, action in expected.items():
        assert p in rows, f"{visible(p)!r} missing from {path.name}: {[visible(k) for k in rows]}"
        assert rows[p]["action"] == action, rows[p]
        exact = os.fsencode(p)
        assert os.fsencode(rows[p]["path"]) == exact
        try:
            exact.decode("utf-8")
        except UnicodeDecodeError:  # odd bytes: path_bytes too, base64 of the exact bytes
            assert base64.b64decode(rows[p]["path_bytes"]) == exact
        else:
            assert "path_bytes" not in rows[p]
    return data


def _check_csv(path: Path, expected: dict[str, str]) -> None:
    text = path.read_bytes().decode("utf-8")
    rows = {r["path"]: r for r in csv.DictReader(io.StringIO(text, newline=""))}
    for p, action in expected.items():
        shown = os.fsencode(p).decode("utf-8", "backslashreplace")
        assert shown in rows, f"{shown!r} not in {list(rows)}"
        assert rows[shown]["action"] == action


def _check_html(path: Path, expected: dict[str, str]) -> None:
    page = path.read_bytes().decode("utf-8")
    m = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)
    data = json.loads(m.group(1))
    shown_rows = {data["folders"][r[0]] + data["sep"] + r[1]: data["actions"][r[2]] for r in data["rows"]}
    for p, action in expected.items():
        shown = os.fsencode(p).decode("utf-8", "backslashreplace")
        assert shown_rows.get(shown) == action, (shown, shown_rows)
        if action == "failed":  # listed in the page itself, not only in the table's data
            assert html.escape(shown) in page


# --------------------------------------------------------------------------------------------------
# the writers alone (fast)


def test_visible_and_json_text():
    p = os.fsdecode(b"/m/" + LATIN1)
    assert visible(p) == "/m/caf\\xe9 \\xff.wav"
    assert visible("Ünïcødé 🎵") == "Ünïcødé 🎵"
    text = json_text({"path": p, "name": "Ünï"})
    text.encode("utf-8")  # no surrogate left in the text
    assert "Ünï" in text  # other names stay readable
    assert json.loads(text) == {"path": p, "name": "Ünï"}


@pytest.mark.parametrize("ext", ["json", "csv", "html"])
def test_report_writers_keep_undecodable_names(tmp_path, ext):
    root = Path("/music")
    good, failed = _str(BAD_DIR + b"/" + LATIN1, root), _str(BROKEN, root)
    report = Report(dry_run=True, run_id="r1")
    report.add(Row(good, "wav", "tagged", "no genre before",
                   predicted=[{"genre": "Rock", "label": "rock", "score": 0.9}], written=["Rock"]))
    report.add(Row(failed, "mp3", "failed", f"kept in {failed}.tagger-bak", error_kind="tag-read"))
    report.add(Row("/music/Ünïcødé.flac", "flac", "uncertain", "below the threshold"))
    out = report.write(tmp_path / f"report.{ext}")
    expected = {good: "would tag", failed: "failed", "/music/Ünïcødé.flac": "uncertain"}
    if ext == "json":
        data = _check_json(out, expected)
        assert next(r for r in data["files"] if r["path"] == failed)["reason"] == f"kept in {failed}.tagger-bak"
    elif ext == "csv":
        _check_csv(out, expected)
    else:
        _check_html(out, expected)


def test_log_and_console_lines_with_undecodable_names(tmp_path, monkeypatch):
    """A UTF-8 console (errors strict, as a UTF-8 locale gives) and the --log-file: the line is
    written with \\xNN, not lost to a logging error."""
    from tagger.commands.common import setup_logging

    raw = io.BytesIO()
    console = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    monkeypatch.setattr("sys.stderr", console)
    log_file = tmp_path / "tagger.log"
    root = logging.getLogger()
    level = root.level
    try:
        setup_logging(log_file=str(log_file))
        logging.getLogger("tagger.pipeline").warning("%s: %s", _str(BROKEN, Path("/m")), "not an MP3 file")
    finally:
        for h in list(root.handlers):
            if getattr(h, "_tagger", False):
                root.removeHandler(h)
                h.close()
        root.setLevel(level)
    assert raw.getvalue().decode("utf-8") == "tagger: /m/broken \\xff.mp3: not an MP3 file\n"
    assert log_file.read_text(encoding="utf-8").rstrip().endswith("WARNING /m/broken \\xff.mp3: not an MP3 file")


# --------------------------------------------------------------------------------------------------
# end to end: the real CLI, real Ray, real files


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real"])
def test_cli_reports_undecodable_names(fixture_dir, tmp_path, tiny_model, dry_run):
    lib = tmp_path / "lib"
    lib_b = os.fsencode(str(lib))
    os.makedirs(lib_b + b"/" + BAD_DIR)
    shutil.copyfile(fixture_dir / "wav-bare.wav", lib_b + b"/" + LATIN1)
    shutil.copyfile(fixture_dir / "flac-bare.flac", lib_b + b"/" + BAD_DIR + b"/01 \xe8.flac")
    with open(lib_b + b"/" + BROKEN, "wb") as f:
        f.write(bytes(range(256)) * 40)
    good = [_str(LATIN1, lib), _str(BAD_DIR + b"/01 \xe8.flac", lib)]
    bad = _str(BROKEN, lib)
    reports = [tmp_path / f"report.{e}" for e in ("json", "csv", "html")]
    extra = [a for r in reports for a in ("--report", str(r))] + ["--log-file", str(tmp_path / "run.log")]
    r = run_cli(["-v", *tag_args([lib], tiny_model, tmp_path / "state.db", *extra,
                                 *(["--dry-run"] if dry_run else []))])
    assert r.exit_code == 2, r.output  # the broken file failed; everything else went on
    assert "Logging error" not in r.output and "internal error" not in r.output, r.output
    action = "would tag" if dry_run else "tagged"
    expected = {**{p: action for p in good}, bad: "failed"}
    _check_json(reports[0], expected)
    _check_csv(reports[1], expected)
    _check_html(reports[2], expected)
    # the console: the failure's warning, each file's line (-v), the summary
    shown_bad = os.fsencode(bad).decode("utf-8", "backslashreplace")
    assert f"{shown_bad}: not an MP3 file" in r.output, r.output
    for p in good:
        assert f"{action}: {visible(p)}" in r.output, r.output
    assert "3 files:" in r.output
    log = (tmp_path / "run.log").read_bytes().decode("utf-8")
    assert shown_bad in log and all(visible(p) in log for p in good), log
    rows = {f["path"]: f for f in json.loads(reports[0].read_bytes())["files"]}
    for p in good:  # the files are where they were, under their exact names, tagged in a real run
        assert os.path.exists(os.fsencode(p))
        assert genres_of(Path(p)) == ([] if dry_run else rows[p]["written"])
        assert dry_run or rows[p]["written"]
