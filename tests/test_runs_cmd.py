"""``tagger runs`` (folders, dry or real, the run an undo undid; ``--json``), completion of run
ids for ``tagger undo``, and a second undo of the same run ("already restored").

Most tests fill a state database directly (fast); ``history`` tags a tiny library through the
CLI with Ray and the tiny test model, once for the module.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.shell_completion import BashComplete
from click.testing import CliRunner

from tagger.cli import main
from tagger.state import StateDB

WIDTH = 120

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def add_run(db: StateDB, run_id: str, *, paths: list[str] | None = None, argv: list[str] | None = None,
            dry_run: bool = False, undo_of: str | None = None, counts: dict | None = None) -> str:
    options: dict = {"undo_of": undo_of, "retag": True} if undo_of else {"min_confidence": 0.4}
    if paths is not None:
        options["paths"] = paths
    db.begin_run(run_id, model_id="m1", argv=argv or ["tag"], dry_run=dry_run, options=options)
    db.finish_run(run_id, status="undo" if undo_of else "finished", counts=counts or {"tagged": 2})
    return run_id


@pytest.fixture
def state(tmp_path) -> Path:
    """A state database of four runs: a dry run, a real run of two folders, an old run known
    only by its argv, and an undo of the real run."""
    p = tmp_path / "state.db"
    with StateDB(p) as db:
        add_run(db, "20261120-020000-aaaa", paths=["/music/Jazz"], dry_run=True, counts={"tagged": 3})
        add_run(db, "20261121-020000-bbbb", paths=["/music/Jazz", "/music/Rock"],
                counts={"tagged": 12, "skipped": 3, "failed": 0})
        add_run(db, "20261121-030000-cccc",
                argv=["-v", "tag", "/old/Blues", "--model", "m.keras", "/old/Soul"])
        add_run(db, "20261122-020000-dddd", undo_of="20261121-020000-bbbb", counts={"restored": 12})
    return p


def line_of(output: str, run_id: str) -> str:
    (line,) = [ln for ln in output.splitlines() if ln.startswith(run_id)]
    return line


# -- tagger runs ---------------------------------------------------------------------------------


def test_runs_shows_folders_mode_and_the_undone_run(state):
    r = cli("runs", "--state-db", str(state))
    assert r.exit_code == 0, r.output
    dry = line_of(r.output, "20261120-020000-aaaa")
    real = line_of(r.output, "20261121-020000-bbbb")
    old = line_of(r.output, "20261121-030000-cccc")
    undo = line_of(r.output, "20261122-020000-dddd")
    assert "dry run" in dry and "/music/Jazz" in dry and " real " not in dry
    assert " real " in real and "dry run" not in real and "/music/Jazz, /music/Rock" in real
    assert "12 tagged, 3 skipped" in real and "0 failed" not in real
    assert "/old/Blues, /old/Soul" in old and "m.keras" not in old  # from argv: PATHS only
    assert "undid 20261121-020000-bbbb" in undo and "12 restored" in undo
    # newest first
    ids = [ln.split()[0] for ln in r.output.splitlines()[1:]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 4


def test_runs_truncates_long_folder_lists_and_prints_undecodable_names(tmp_path):
    state = tmp_path / "state.db"
    bad = os.fsdecode(b"/music/Caf\xe9")  # Latin-1 name: not valid UTF-8
    folders = [bad] + [f"/srv/media/library/collection-{i:02d}/albums" for i in range(12)]
    with StateDB(state) as db:
        add_run(db, "20261120-020000-aaaa", paths=folders)
        add_run(db, "20261120-030000-bbbb", paths=["/x" * 200])
        add_run(db, "20261120-040000-cccc", argv=["python", "-m", "pytest"])  # argv of no tag run
        add_run(db, "20261120-050000-dddd",
                paths=[f"/home/anna/Music/Library/{g}" for g in ("Jazz", "Rock", "Blues")])
    r = cli("runs", "--state-db", str(state))
    assert r.exit_code == 0, r.output
    many = line_of(r.output, "20261120-020000-aaaa")
    assert "/music/Caf\\xe9" in many
    assert re.search(r"… \+\d+ more$", many)
    shown = 1 + many.count(", ")
    assert many.endswith(f"+{len(folders) - shown} more")
    assert "/x" * 10 in line_of(r.output, "20261120-030000-bbbb")
    assert line_of(r.output, "20261120-040000-cccc").endswith(" ?")
    # siblings too long side by side share their parent, shell brace style
    siblings = line_of(r.output, "20261120-050000-dddd")
    assert siblings.endswith("  /home/anna/Music/Library/{Jazz, Rock, Blues}")
    for line in r.output.splitlines():
        assert len(line) <= WIDTH, line


def test_runs_json_lists_every_field_and_the_folders(state):
    r = cli("runs", "--state-db", str(state), "--json")
    assert r.exit_code == 0, r.output
    runs = json.loads(r.stdout)
    assert [x["run_id"] for x in runs] == ["20261122-020000-dddd", "20261121-030000-cccc",
                                          "20261121-020000-bbbb", "20261120-020000-aaaa"]
    real = runs[2]
    assert list(real) == ["run_id", "started", "finished", "model_id", "dry_run", "status", "counts", "argv",
                          "files_changed", "options", "undo_of", "folders"]
    assert real["folders"] == ["/music/Jazz", "/music/Rock"] and real["dry_run"] is False
    assert real["counts"] == {"failed": 0, "skipped": 3, "tagged": 12}
    assert runs[3]["dry_run"] is True
    assert runs[1]["folders"] == ["/old/Blues", "/old/Soul"]
    assert runs[0]["undo_of"] == "20261121-020000-bbbb" and runs[0]["folders"] is None
    limited = json.loads(cli("runs", "--state-db", str(state), "--json", "--limit", "2").output)
    assert [x["run_id"] for x in limited] == ["20261122-020000-dddd", "20261121-030000-cccc"]
    assert len(json.loads(cli("runs", "--state-db", str(state), "--json", "--limit", "0").output)) == 4


def test_runs_json_escapes_undecodable_names_and_empty_is_a_list(tmp_path):
    state = tmp_path / "state.db"
    assert json.loads(cli("runs", "--state-db", str(state), "--json").output) == []
    assert not state.exists()
    bad = os.fsdecode(b"/music/Caf\xe9")
    with StateDB(state) as db:
        add_run(db, "20261120-020000-aaaa", paths=[bad])
    r = cli("runs", "--state-db", str(state), "--json")
    assert "\\udce9" in r.output and r.output.isascii()
    (run,) = json.loads(r.stdout)
    assert os.fsencode(run["folders"][0]) == b"/music/Caf\xe9"


# -- completion ----------------------------------------------------------------------------------


def completions(args: list[str], incomplete: str):
    comp = BashComplete(main, {}, "tagger", "_TAGGER_COMPLETE")
    return comp.get_completions(args, incomplete)


def test_undo_completes_run_ids_newest_first_with_a_short_help(state):
    items = completions(["undo", "--state-db", str(state)], "")
    assert [i.value for i in items] == ["20261122-020000-dddd", "20261121-030000-cccc",
                                        "20261121-020000-bbbb", "20261120-020000-aaaa"]
    helps = {i.value: i.help for i in items}
    assert "dry run" in helps["20261120-020000-aaaa"] and "/music/Jazz" in helps["20261120-020000-aaaa"]
    assert "real" in helps["20261121-020000-bbbb"] and "/music/Rock" in helps["20261121-020000-bbbb"]
    assert "undid 20261121-020000-bbbb" in helps["20261122-020000-dddd"]
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d ", h) and len(h) <= 80 for h in helps.values())
    assert [i.value for i in completions(["undo", "--state-db", str(state)], "20261121")] == [
        "20261121-030000-cccc", "20261121-020000-bbbb"]


def test_undo_completion_uses_the_default_state_db(state, monkeypatch):
    import tagger.state

    monkeypatch.setattr(tagger.state, "default_state_path", lambda: state)
    assert len(completions(["undo"], "2026")) == 4


def test_undo_completion_never_fails_nor_creates_a_database(tmp_path, state):
    assert len(completions(["undo", "--state-db", str(state)], "")) == 4  # a good one completes
    missing = tmp_path / "none" / "state.db"
    assert completions(["undo", "--state-db", str(missing)], "") == []
    assert not missing.parent.exists()
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database at all" * 10)
    assert completions(["undo", "--state-db", str(broken)], "") == []
    assert broken.read_bytes() == b"not a database at all" * 10
    (tmp_path / "dir.db").mkdir()
    assert completions(["undo", "--state-db", str(tmp_path / "dir.db")], "") == []
    other = tmp_path / "other.db"  # an SQLite file of another program
    import sqlite3

    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE runs (run_id TEXT)")
        conn.execute("INSERT INTO runs VALUES ('20261120-020000-aaaa')")
    conn.close()
    assert completions(["undo", "--state-db", str(other)], "") == []


def test_bash_completion_through_the_environment_variable(state):
    # what the shell function from `eval "$(_TAGGER_COMPLETE=bash_source tagger)"` runs on <TAB>
    env = {"_TAGGER_COMPLETE": "bash_complete", "COMP_WORDS": f"tagger undo --state-db {state} 20261122",
           "COMP_CWORD": "4"}
    r = CliRunner().invoke(main, [], prog_name="tagger", env=env)
    assert r.exit_code == 0 and r.output.splitlines() == ["plain,20261122-020000-dddd"]
    source = CliRunner().invoke(main, [], prog_name="tagger", env={"_TAGGER_COMPLETE": "bash_source"})
    assert "_TAGGER_COMPLETE=bash_complete" in source.output


def test_runs_started_in_one_second_come_newest_recorded_first(tmp_path):
    # an undo right after its run starts in the same second; ids then sort by their random end
    state = tmp_path / "state.db"
    with StateDB(state) as db:
        add_run(db, "20261120-020000-ffff", paths=["/music"])
        add_run(db, "20261120-020000-0000", undo_of="20261120-020000-ffff")
        assert [r.run_id for r in db.runs()] == ["20261120-020000-0000", "20261120-020000-ffff"]
    r = cli("runs", "--state-db", str(state))
    newest_first = ["20261120-020000-0000", "20261120-020000-ffff"]
    assert [ln.split()[0] for ln in r.output.splitlines()[1:]] == newest_first
    assert [i.value for i in completions(["undo", "--state-db", str(state)], "")] == [
        "20261120-020000-0000", "20261120-020000-ffff"]


def test_undo_again_after_a_later_run_was_undone_too_is_already_restored(tmp_path, monkeypatch):
    """R tagged a, undo R, T tagged a again, undo T: a is as before R, so undoing R once more
    has nothing to do (not "changed since by run <undo of T>")."""
    import sys

    from tagger.undo import undo_run
    from tests.state_helpers import fake_tags_module, write_fields

    monkeypatch.setitem(sys.modules, "tagger.tags", fake_tags_module())
    a = tmp_path / "a.mp3"
    original = {"genre": ["Jazz"], "provenance": None}
    write_fields(a, original, mtime_ns=10**14)
    with StateDB(tmp_path / "state.db") as db:
        def tag(run_id: str, genre: str, mtime_ns: int) -> str:
            db.begin_run(run_id, model_id="m1", argv=["tag"], dry_run=False,
                         options={"paths": [str(tmp_path)]})
            before = json.loads(a.read_text())
            after = {"genre": [genre], "provenance": f"model=m1; genres={genre}"}
            st = write_fields(a, after, mtime_ns=mtime_ns)
            db.journal_add(run_id, str(a), before=before, after=after, size_after=st.st_size,
                           mtime_ns_after=st.st_mtime_ns)
            db.finish_run(run_id, status="finished", counts={"tagged": 1})
            return run_id

        r = tag("20261120-020000-aaaa", "Rock", 10**15)
        undo_run(db, r)
        t = tag("20261121-020000-bbbb", "Metal", 10**15 + 10**12)
        ut = undo_run(db, t)
        assert json.loads(a.read_text()) == original
        again = undo_run(db, r)
    assert again.skipped_modified == [] and again.restored == []
    assert again.already_restored == [(str(a), f"undo run {ut.undo_id}")]
    assert json.loads(a.read_text()) == original


# -- through the CLI, with Ray: a second undo says "already restored" -------------------------------


@pytest.fixture(scope="module")
def history(tmp_path_factory, tiny_model, ray_session):
    from tests.test_pipeline import make_lib

    tmp = tmp_path_factory.mktemp("runs-history")
    lib = tmp / "lib"
    make_lib(lib, n=4)
    db = ["--state-db", str(tmp / "state.db")]
    base = ["--model", str(tiny_model.weights), "--min-confidence", "0", *db]
    out = {"lib": lib, "db": db}
    out["dry"] = cli("tag", str(lib / "album0"), "--dry-run", *base)
    cwd = os.getcwd()
    os.chdir(lib)  # relative PATHS are recorded as absolute folders
    try:
        out["tag"] = cli("tag", "album0", "album1", *base)
    finally:
        os.chdir(cwd)
    with StateDB(tmp / "state.db") as s:
        out["run_id"] = s.runs()[0].run_id
    out["undo1"] = cli("undo", out["run_id"], *db)
    out["undo2"] = cli("undo", out["run_id"], *db)
    out["undo3"] = cli("undo", out["run_id"], "--dry-run", *db)
    return out


def test_a_second_undo_says_already_restored(history):
    rid = history["run_id"]
    first, again = history["undo1"], history["undo2"]
    assert first.exit_code == 0 and f"undo {rid}: 4 restored" in first.output, first.output
    with StateDB(Path(history["db"][1])) as s:
        undos = [r for r in s.runs() if r.undo_of == rid]
    assert len(undos) == 3
    (u1,) = [r.run_id for r in undos if r.counts.get("restored")]
    (u2,) = [r for r in undos if not r.counts.get("restored") and not r.dry_run]
    assert again.exit_code == 0, again.output
    assert "modified since that run" not in again.output
    assert f"4 already restored (by undo run {u1})" in again.output
    assert "0 restored" in again.output and "0 modified since" in again.output
    assert again.output.count("already restored: ") == 4
    assert u2.counts["already_restored"] == 4 and u2.counts["modified"] == 0
    assert f"4 already restored (by undo run {u1})" in history["undo3"].output


def test_runs_after_a_real_cli_history(history):
    r = cli("runs", *history["db"])
    assert r.exit_code == 0, r.output
    lib = history["lib"]
    lines = r.output.splitlines()[1:]
    assert len(lines) == 5  # dry run, real run, three undos
    assert "dry run" in lines[-1] and lines[-1].endswith("/lib/album0")  # long tmp paths: the end shows
    tag = line_of(r.output, history["run_id"])
    assert " real " in tag and "album0" in tag and ("album1" in tag or tag.endswith(" +1 more"))
    assert sum(f"undid {history['run_id']}" in ln for ln in lines) == 3
    assert all(len(ln) <= WIDTH for ln in lines)
    runs = json.loads(cli("runs", *history["db"], "--json").output)
    (tag_run,) = [x for x in runs if x["run_id"] == history["run_id"]]
    assert tag_run["folders"] == [str(lib / "album0"), str(lib / "album1")]  # given relative, kept absolute
    assert runs[-1]["folders"] == [str(lib / "album0")] and runs[-1]["dry_run"] is True
