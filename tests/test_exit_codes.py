"""Every exit code tagger documents, produced through the CLI, and the docs that list them.

0 / 1 / 2 / 64 / 75 here (none of these start Ray or TensorFlow); 130 / 143 (a signal mid-run)
in tests/test_cron.py::test_signal_mid_run_loses_nothing. Usage errors exit 64 (EX_USAGE),
never 2, which means "the run finished, some files failed" and which cron and systemd units
treat as a night's success (issue 15, item 9).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tagger.cli import EXIT_CODES_HELP, main
from tagger.errors import (
    EXIT_FATAL,
    EXIT_FILES_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
)

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = {EXIT_OK, EXIT_FATAL, EXIT_FILES_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_SIGINT, EXIT_SIGTERM}

pytestmark = pytest.mark.train


def invoke(*args) -> tuple[int, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exc_info
    return r.exit_code, r.output


def test_usage_error_is_64():
    assert EXIT_USAGE == 64


@pytest.mark.parametrize("args, words", [
    (["tag", "--top-k", "0", "x"], "'--top-k': 0 is not in the range"),
    (["tag", "--min-confidence", "2", "x"], "'--min-confidence': 2.0 is not in the range"),
    (["tag", "--no-such-option", "x"], "No such option '--no-such-option'"),
    (["tag"], "Missing argument 'PATHS...'"),
    (["tag", "x", "--on-existing", "always"], "'--on-existing'"),
    (["tag", "x", "--report", "plan.txt"], "a report name must end in .json, .csv or .html"),
    (["tag", "x", "--exclude", ""], "--exclude: expected an array of non-empty strings"),
    (["tag", "x", "--model", ""], "--model: expected a non-empty string"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["--no-such-option"], "No such option"),
    (["undo"], "Missing argument 'RUN_ID'"),
    (["runs", "--limit", "many"], "'--limit'"),
    (["config", "--bogus"], "No such option '--bogus'"),
    (["info", "--vocabulary", "spotify"], "'--vocabulary'"),
    (["train", "fit", "--no-such-option"], "No such option"),
    (["train", "prepare"], "Missing argument"),
    (["evaluate"], "Missing argument 'PATHS...'"),
    (["evaluate", "x", "--top-k", "0"], "'--top-k': 0 is not in the range"),
])
def test_usage_errors_exit_64_for_every_command(args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    code, out = invoke(*args)
    assert code == EXIT_USAGE, out
    assert words in out, out
    assert not list(tmp_path.glob("*.db")), "a usage error must not start a run"


def test_usage_error_exits_64_in_a_real_process(tmp_path):
    """What cron sees: the process's own exit status (not only CliRunner's)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["tag", "--top-k", "0", str(tmp_path)], ["tag", str(tmp_path), "--typo"]):
        r = subprocess.run([sys.executable, "-m", "tagger", *args], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == EXIT_USAGE, r.stderr
        assert r.stdout == "" and "Error:" in r.stderr


def test_0_nothing_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    code, out = invoke("tag", tmp_path / "empty", "--state-db", tmp_path / "s.db")
    assert code == EXIT_OK, out


def test_1_fatal_errors(tmp_path):
    code, out = invoke("tag", tmp_path / "no-such-folder", "--state-db", tmp_path / "s.db")
    assert code == EXIT_FATAL and "no such file or folder" in out, out
    bad = tmp_path / "bad.toml"
    bad.write_text("[tag]\ntop-k = 0\n")  # a bad config file is fatal (1), not a usage error
    code, out = invoke("tag", tmp_path, "--config", bad, "--state-db", tmp_path / "s.db")
    assert code == EXIT_FATAL and "[tag] top-k" in out, out


def test_2_finished_but_a_file_failed(tmp_path):
    """A file named on the command line that is not audio fails (discovery; no Ray needed)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not music")
    report = tmp_path / "r.json"
    code, out = invoke("tag", notes, "--state-db", tmp_path / "s.db", "--report", report)
    assert code == EXIT_FILES_FAILED, out
    assert "1 failed" in out and report.exists()


def test_75_locked(tmp_path):
    from tagger.lock import RunLock

    (tmp_path / "empty").mkdir()
    with RunLock(tmp_path / "s.db"):
        code, out = invoke("tag", tmp_path / "empty", "--state-db", tmp_path / "s.db")
    assert code == EXIT_LOCKED and "another tagger run holds the lock" in out, out


# -- the docs list the same codes ----------------------------------------------------------------

def _codes(text: str) -> set[int]:
    return {int(c) for c in re.findall(r"\b(\d{1,3})\b", text)}


def test_readme_table_help_and_design_list_every_code():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| code")]
    in_table = set()
    for ln in rows:
        in_table |= {int(c) for c in re.findall(r"\d+", ln.split("|")[1])}
    assert in_table == DOCUMENTED
    assert re.search(r"\| 64 \| usage error", readme)
    assert _codes(EXIT_CODES_HELP) >= DOCUMENTED
    design = (ROOT / "docs" / "DESIGN.md").read_text().split("## Exit codes", 1)[1]
    assert _codes(design) >= DOCUMENTED and "64" in design


def test_systemd_unit_treats_2_and_75_as_success_and_64_as_failure():
    readme = (ROOT / "README.md").read_text()
    [line] = [ln for ln in readme.splitlines() if ln.startswith("SuccessExitStatus=")]
    codes = {int(c) for c in line.split("=", 1)[1].split()}
    assert codes == {EXIT_FILES_FAILED, EXIT_LOCKED}
    assert EXIT_USAGE not in codes
    cron = readme.split("## Running from cron or systemd", 1)[1].split("### Config file", 1)[0]
    assert "64" in cron  # the cron text says what a typo exits with
