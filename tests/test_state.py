"""tagger.state: records, runs, journal, and every way the database file can be unusable."""

from __future__ import annotations

import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.errors import EXIT_FATAL, StateError
from tagger.state import (
    APPLICATION_ID,
    CURRENT_OUTCOMES,
    OUTCOMES,
    SCHEMA_VERSION,
    FileRecord,
    StateDB,
    default_state_path,
    dumps,
    loads,
    new_run_id,
)
from tests.state_helpers import open_tmpdir, unprivileged

pytestmark = pytest.mark.pure


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "state" / "state.db"


@pytest.fixture
def db(db_path):
    with StateDB(db_path) as d:
        yield d


def _run(db, run_id="20261122-020000-aaaa", *, model_id="m1", dry_run=False):
    db.begin_run(run_id, model_id=model_id, argv=["tagger", "tag", "/srv/music"], dry_run=dry_run,
                 options={"top_k": 1, "exclude": ("*.tmp",)})
    return run_id


def _filled(path: Path, n: int = 3000) -> int:
    """A closed database with ``n`` records (several pages); returns its size in bytes."""
    with StateDB(path) as d:
        rid = _run(d)
        for i in range(n):
            d.record_file(f"/srv/music/{i:06d} some longer file name.flac", size=i, mtime_ns=i, model_id="m1",
                          outcome="tagged", run_id=rid)
    return path.stat().st_size


def _assert_state_error(exc: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg
    for w in words:
        assert w in msg, (w, msg)
    assert exc.value.exit_code == EXIT_FATAL


# -- opening ---------------------------------------------------------------------------------------


def test_new_database_is_created_with_wal_schema_and_ids(db_path):
    assert not db_path.parent.exists()
    StateDB(db_path).close()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert {"files", "runs", "journal"} <= tables


def test_default_state_path_is_in_the_user_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_path() == tmp_path / "xdg" / "tagger" / "state.db"


def test_reopen_keeps_everything(db_path):
    with StateDB(db_path) as d:
        rid = _run(d)
        d.record_file("/a.flac", size=1, mtime_ns=2, model_id="m1", outcome="tagged", run_id=rid)
        d.journal_add(rid, "/a.flac", before={"genre": []}, after={"genre": ["Rock"]}, size_after=1,
                      mtime_ns_after=2)
        d.finish_run(rid, status="finished", counts={"tagged": 1})
    with StateDB(db_path) as d:
        assert d.get("/a.flac") == FileRecord("/a.flac", 1, 2, "m1", "tagged", rid)
        (info,) = d.runs()
        assert info.status == "finished" and info.counts == {"tagged": 1} and info.files_changed == 1
        assert d.journal(rid)[0].after == {"genre": ["Rock"]}


def test_empty_file_is_initialised_with_a_warning(db_path, caplog):
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    with StateDB(db_path) as d:
        assert d.runs() == []
    assert "empty (0 bytes)" in caplog.text


def test_garbage_file_is_refused_and_left_alone(db_path):
    db_path.parent.mkdir(parents=True)
    junk = random.Random(1).randbytes(10_000)
    db_path.write_bytes(junk)
    with pytest.raises(StateError) as exc:
        StateDB(db_path)
    _assert_state_error(exc, db_path, "not a tagger state database", "move it aside", "--state-db")
    assert db_path.read_bytes() == junk  # never reset silently


def test_text_file_is_refused(db_path):
    db_path.parent.mkdir(parents=True)
    db_path.write_text("[tag]\ntop-k = 2\n")
    with pytest.raises(StateError) as exc:
        StateDB(db_path)
    _assert_state_error(exc, db_path, "not an SQLite file")


@pytest.mark.parametrize("keep", [0.5, 4096 * 3 + 100, 60])
def test_truncated_database_is_refused(db_path, keep):
    size = _filled(db_path)
    assert size > 4096 * 8
    cut = int(size * keep) if keep < 1 else keep
    os.truncate(db_path, cut)
    with pytest.raises(StateError) as exc:
        StateDB(db_path)
    _assert_state_error(exc, db_path, "truncated", "backup")
    assert db_path.stat().st_size == cut


def test_damaged_page_is_reported_when_read(db_path):
    size = _filled(db_path, n=20_000)
    # Overwrite the middle of the file (b-tree pages of the files table) with garbage.
    with open(db_path, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\xff" * 8192)
    with pytest.raises(StateError) as exc, StateDB(db_path) as d:
        d.records(f"/srv/music/{i:06d} some longer file name.flac" for i in range(20_000))
    _assert_state_error(exc, db_path, "corrupt", "backup")


def test_directory_in_place_of_the_database(db_path):
    db_path.mkdir(parents=True)
    with pytest.raises(StateError) as exc:
        StateDB(db_path)
    _assert_state_error(exc, db_path, "is a directory")


def test_sqlite_file_of_another_program_is_refused(db_path):
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StateError) as exc:
        StateDB(db_path)
    _assert_state_error(exc, db_path, "not a tagger state database")
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 1  # untouched
    conn.close()


def test_newer_schema_is_refused(db_path):
    _filled(db_path, n=10)
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StateError) as exc:
        StateDB(db_path)
    _assert_state_error(exc, db_path, "newer tagger", f"schema {SCHEMA_VERSION + 1}", "upgrade")


def test_locked_database(db_path):
    _filled(db_path, n=10)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StateError) as exc:
            StateDB(db_path, timeout=0.05)
        _assert_state_error(exc, db_path, "locked by another process")
    finally:
        other.execute("ROLLBACK")
        other.close()
    StateDB(db_path).close()  # fine once the other process is done


def test_read_only_database_file():
    with open_tmpdir() as d:
        path = d / "state.db"
        _filled(path, n=10)
        d.chmod(0o777)
        path.chmod(0o444)
        with unprivileged(), pytest.raises(StateError) as exc:
            StateDB(path)
        _assert_state_error(exc, path, "read-only", "state.db is not writable")


def test_read_only_folder():
    with open_tmpdir() as d:
        path = d / "state.db"
        _filled(path, n=10)
        path.chmod(0o666)  # the file could be written, but SQLite needs its -wal/-shm beside it
        with unprivileged(), pytest.raises(StateError) as exc:
            StateDB(path)
        _assert_state_error(exc, path, "is not writable")


def test_unwritable_parent_for_a_new_database():
    with open_tmpdir() as d:
        path = d / "sub" / "state.db"
        with unprivileged(), pytest.raises(StateError) as exc:
            StateDB(path)
        _assert_state_error(exc, path, "cannot create the folder")


def test_a_killed_process_loses_nothing_it_committed(db_path):
    # cron's run is killed (SIGKILL, OOM): no close, no checkpoint; the WAL holds the commits.
    code = (
        "import os, sys\n"
        "from tagger.state import StateDB\n"
        "d = StateDB(sys.argv[1])\n"
        "d.begin_run('20261122-020000-dead', model_id='m1', argv=[], dry_run=False, options={})\n"
        "for i in range(500):\n"
        "    d.record_file(f'/f{i}', size=i, mtime_ns=i, model_id='m1', outcome='tagged',\n"
        "                  run_id='20261122-020000-dead')\n"
        "d.flush()\n"
        "d.journal_add('20261122-020000-dead', '/f0', before={}, after={'g': 1}, size_after=0,\n"
        "              mtime_ns_after=0)\n"
        "d.record_file('/unflushed', size=1, mtime_ns=1, model_id='m1', outcome='tagged',\n"
        "              run_id='20261122-020000-dead')\n"
        "os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(db_path)], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert Path(str(db_path) + "-wal").stat().st_size > 0
    with StateDB(db_path) as d:
        assert len(d.records(f"/f{i}" for i in range(500))) == 500
        assert d.get("/unflushed") is None  # only the last unflushed batch is lost
        assert len(d.journal("20261122-020000-dead")) == 1
        assert d.run("20261122-020000-dead").status == "running"
        _run(d, "20261122-030000-next")
        assert d.run("20261122-020000-dead").status == "interrupted"


def test_use_after_close_is_an_error(db_path):
    d = StateDB(db_path)
    d.close()
    d.close()  # twice is fine
    with pytest.raises(StateError, match="closed"):
        d.runs()


# -- file records ----------------------------------------------------------------------------------


def test_buffered_records_are_visible_and_flushed(db_path):
    d = StateDB(db_path)
    rid = _run(d)
    d.record_file("/m/a.mp3", size=10, mtime_ns=20, model_id="m1", outcome="tagged", run_id=rid)
    assert d.get("/m/a.mp3") == FileRecord("/m/a.mp3", 10, 20, "m1", "tagged", rid)  # from the buffer
    with StateDB(db_path) as other:
        assert other.get("/m/a.mp3") is None  # not committed yet
        d.flush()
        assert other.get("/m/a.mp3").outcome == "tagged"
    d.record_file("/m/a.mp3", size=11, mtime_ns=21, model_id="m1", outcome="failed", run_id=rid)
    assert d.get("/m/a.mp3").size == 11  # the buffer wins over the table
    d.close()  # close flushes
    with StateDB(db_path) as other:
        assert other.get("/m/a.mp3").outcome == "failed"


def test_auto_flush_every_n_records(db_path):
    with StateDB(db_path, flush_every=5) as d, StateDB(db_path) as other:
        rid = _run(d)
        for i in range(4):
            d.record_file(f"/f{i}", size=i, mtime_ns=i, model_id="m1", outcome="skipped", run_id=rid)
        assert other.records(f"/f{i}" for i in range(5)) == {}
        d.record_file("/f4", size=4, mtime_ns=4, model_id="m1", outcome="skipped", run_id=rid)
        assert len(other.records(f"/f{i}" for i in range(5))) == 5


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_is_current_by_outcome(db, outcome):
    rid = _run(db)
    db.record_file("/x.flac", size=100, mtime_ns=5, model_id="m1", outcome=outcome, run_id=rid)
    expected = outcome in ("tagged", "skipped", "uncertain", "undone")
    assert (outcome in CURRENT_OUTCOMES) == expected
    assert db.is_current("/x.flac", 100, 5, "m1") is expected
    db.flush()
    assert db.is_current("/x.flac", 100, 5, "m1") is expected


def test_is_current_needs_same_size_mtime_and_model(db):
    rid = _run(db)
    db.record_file("/x.flac", size=100, mtime_ns=5, model_id="m1", outcome="tagged", run_id=rid)
    assert db.is_current("/x.flac", 100, 5, "m1")
    assert not db.is_current("/x.flac", 101, 5, "m1")
    assert not db.is_current("/x.flac", 100, 6, "m1")
    assert not db.is_current("/x.flac", 100, 5, "m2")
    assert not db.is_current("/other.flac", 100, 5, "m1")
    rec = db.get("/x.flac")
    assert rec.is_current(size=100, mtime_ns=5, model_id="m1")
    assert not rec.is_current(size=100, mtime_ns=5, model_id="m2")


def test_bad_outcome_is_a_programming_error(db):
    rid = _run(db)
    with pytest.raises(ValueError, match="outcome"):
        db.record_file("/x", size=1, mtime_ns=1, model_id="m1", outcome="would tag", run_id=rid)


def test_bulk_lookup_of_100k_paths(db_path):
    n = 100_000
    paths = [f"/srv/music/Artist {i // 100:04d}/Album {i // 10:05d}/{i:06d} Track.flac" for i in range(n)]
    with StateDB(db_path) as d:
        rid = _run(d)
        for i, p in enumerate(paths):
            if i % 3:  # two thirds have a record
                d.record_file(p, size=i, mtime_ns=i * 1000, model_id="m1",
                              outcome=OUTCOMES[i % len(OUTCOMES)], run_id=rid)
        d.flush()
        assert d.count_files() == n - len(range(0, n, 3))
        query = paths + ["/srv/music/not there.flac"]
        random.Random(7).shuffle(query)
        recs = d.records(iter(query))  # any iterable, e.g. a generator
    assert len(recs) == n - len(range(0, n, 3))
    for i in (1, 2, 4, 99_998, 99_999, 50_000):
        p = paths[i]
        if i % 3:
            assert recs[p] == FileRecord(p, i, i * 1000, "m1", OUTCOMES[i % len(OUTCOMES)], rid)
        else:
            assert p not in recs
    assert "/srv/music/not there.flac" not in recs
    assert all(r.path == p for p, r in recs.items())


def test_bulk_lookup_sees_buffered_records_and_forget(db):
    rid = _run(db)
    db.record_file("/a", size=1, mtime_ns=1, model_id="m1", outcome="tagged", run_id=rid)
    db.record_file("/b", size=2, mtime_ns=2, model_id="m1", outcome="tagged", run_id=rid)
    db.flush()
    db.record_file("/c", size=3, mtime_ns=3, model_id="m1", outcome="tagged", run_id=rid)
    db.forget("/a")
    assert set(db.records(["/a", "/b", "/c", "/d"])) == {"/b", "/c"}
    db.flush()
    assert set(db.records(["/a", "/b", "/c", "/d"])) == {"/b", "/c"}
    assert db.records([]) == {}


def test_paths_that_are_not_utf8(db_path):
    name = os.fsdecode(b"/srv/music/Caf\xe9 del Mar.mp3")  # a Latin-1 file name on a UTF-8 system
    assert "\udce9" in name
    with StateDB(db_path) as d:
        rid = _run(d)
        d.record_file(name, size=5, mtime_ns=6, model_id="m1", outcome="tagged", run_id=rid)
        d.journal_add(rid, name, before={}, after={"genre": ["Chill"]}, size_after=5, mtime_ns_after=6)
    with StateDB(db_path) as d:
        assert d.get(name).size == 5
        assert d.get("/srv/music/Café del Mar.mp3") is None  # a different file
        assert d.journal(rid)[0].path == name


# -- runs ------------------------------------------------------------------------------------------


def test_new_run_id_is_sortable_and_readable():
    ids = [new_run_id() for _ in range(50)]
    for rid in ids:
        assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", rid)
    assert sorted(ids, key=lambda r: r[:15]) == ids  # time part never goes backwards


def test_runs_listing_and_lookup(db):
    a = _run(db, "20261120-020000-aaaa")
    db.finish_run(a, status="finished", counts={"tagged": 3, "skipped": 5})
    b = _run(db, "20261121-020000-bbbb", dry_run=True)
    db.finish_run(b, status="finished", counts={"would tag": 2})
    c = _run(db, "20261122-020000-cccc")
    runs = db.runs()
    assert [r.run_id for r in runs] == [c, b, a]
    assert [r.run_id for r in db.runs(limit=1)] == [c]
    assert runs[0].status == "running" and runs[0].finished is None
    assert runs[1].dry_run and not runs[2].dry_run
    assert runs[2].counts == {"tagged": 3, "skipped": 5}
    assert runs[2].argv == ["tagger", "tag", "/srv/music"]
    assert runs[2].options == {"top_k": 1, "exclude": ["*.tmp"]}
    assert runs[2].started.endswith("Z") and runs[2].finished.endswith("Z")
    assert db.run(a).run_id == a
    assert db.run("20261121").run_id == b  # unique prefix
    assert db.run("20261123") is None
    assert db.run("") is None
    with pytest.raises(StateError, match="ambiguous"):
        db.run("202611")


def test_a_killed_run_is_marked_interrupted_by_the_next(db):
    a = _run(db, "20261120-020000-aaaa")  # never finished: the process was killed
    b = _run(db, "20261121-020000-bbbb")
    assert db.run(a).status == "interrupted" and db.run(a).finished
    assert db.run(b).status == "running"


def test_run_errors(db):
    a = _run(db)
    with pytest.raises(ValueError, match="already exists"):
        _run(db, a)
    with pytest.raises(ValueError, match="status"):
        db.finish_run(a, status="running", counts={})
    with pytest.raises(ValueError, match="no run"):
        db.finish_run("nope", status="finished", counts={})


def test_dry_runs_record_the_run_but_no_files(db):
    rid = _run(db, dry_run=True)
    db.record_file("/a", size=1, mtime_ns=1, model_id="m1", outcome="tagged", run_id=rid)
    db.flush()
    assert db.get("/a") is None
    with pytest.raises(ValueError, match="dry run"):
        db.journal_add(rid, "/a", before={}, after={}, size_after=1, mtime_ns_after=1)
    db.finish_run(rid, status="finished", counts={"would tag": 1})
    assert db.run(rid).dry_run and db.run(rid).status == "finished"


# -- journal ---------------------------------------------------------------------------------------


def test_journal_entries_are_committed_at_once(db_path):
    with StateDB(db_path) as d, StateDB(db_path) as reader:
        rid = _run(d)
        before = {"genre": [], "raw": b"\x00\xffID3", "nested": {"k": ("a", "b")}}
        d.journal_add(rid, "/a.mp3", before=before, after={"genre": ["Jazz"]}, size_after=7, mtime_ns_after=8)
        (e,) = reader.journal(rid)  # another connection sees it before any flush/close
        assert e.before == {"genre": [], "raw": b"\x00\xffID3", "nested": {"k": ["a", "b"]}}
        assert e.after == {"genre": ["Jazz"]}
        assert (e.path, e.size_after, e.mtime_ns_after, e.run_id) == ("/a.mp3", 7, 8, rid)
        assert e.written_at.endswith("Z")
        d.journal_add(rid, "/b.mp3", before={}, after={}, size_after=1, mtime_ns_after=1)
        assert [x.path for x in reader.journal(rid)] == ["/a.mp3", "/b.mp3"]
        assert reader.run(rid).files_changed == 2
        assert reader.journal("other") == []


def test_journal_after_finds_later_writes_of_the_same_file(db):
    a = _run(db, "20261120-020000-aaaa")
    db.journal_add(a, "/x", before={"g": 0}, after={"g": 1}, size_after=1, mtime_ns_after=1)
    db.journal_add(a, "/y", before={}, after={}, size_after=1, mtime_ns_after=1)
    b = _run(db, "20261121-020000-bbbb")
    db.journal_add(b, "/x", before={"g": 1}, after={"g": 2}, size_after=2, mtime_ns_after=2)
    assert [e.run_id for e in db.journal_after("/x", a)] == [b]
    assert db.journal_after("/y", a) == []
    assert db.journal_after("/x", b) == []


def test_json_round_trip_keeps_bytes():
    value = {"a": b"\x01\x02", "b": [b"", "text"], "c": None, "d": 1.5}
    assert loads(dumps(value)) == value


# -- import weight ---------------------------------------------------------------------------------


def test_importing_library_modules_stays_light():
    code = (
        "import sys, tagger.state, tagger.lock, tagger.config, tagger.undo\n"
        "heavy = ('numpy', 'tensorflow', 'ray', 'librosa', 'mutagen', 'keras')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_copy_of_a_database_opens(db_path, tmp_path):
    # A backup taken with the file copy (after a clean close) is a usable database.
    _filled(db_path, n=50)
    copy = tmp_path / "backup.db"
    shutil.copyfile(db_path, copy)
    with StateDB(copy) as d:
        assert d.count_files() == 50


def test_entries_written_ahead_are_fully_durable_and_settling_restores_it(tmp_path):
    """journal_intent commits with synchronous=FULL; the settle (recoverable from the file)
    may use NORMAL, and FULL is back afterwards for the next entry written ahead."""
    with StateDB(tmp_path / "s.db") as d:
        rid = "20261201-020000-cccc"
        d.begin_run(rid, model_id="m", argv=[], dry_run=False, options={})
        conn = d._connection()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        i = d.journal_intent(rid, "/a", before={}, after={"g": 1}, size_before=1, mtime_ns_before=1)
        d.journal_done(i, size_after=2, mtime_ns_after=2)
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        j = d.journal_intent(rid, "/b", before={}, after={"g": 1}, size_before=1, mtime_ns_before=1)
        d.journal_void(j)
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert [e.path for e in d.journal(rid)] == ["/a"] and d.pending_journal() == []
