"""A state database written by the previous release (schema 1, ``tests/data/state-v1.db``, made
with that release's tagger.state) opens in place: migrated, nothing lost, undo still works."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tagger.state import SCHEMA_VERSION, StateDB

DATA = Path(__file__).resolve().parent / "data"
RUN = "20261201-020000-aaaa"

pytestmark = pytest.mark.pure


def test_schema_1_database_is_migrated_in_place(tmp_path):
    p = tmp_path / "state.db"
    shutil.copyfile(DATA / "state-v1.db", p)
    assert sqlite3.connect(p).execute("PRAGMA user_version").fetchone()[0] == 1
    with StateDB(p) as db:
        recs = db.records(["/srv/music/a.flac", os.fsdecode(b"/srv/music/\xff.mp3")])
        assert recs["/srv/music/a.flac"].outcome == "tagged"
        assert recs[os.fsdecode(b"/srv/music/\xff.mp3")].outcome == "uncertain"
        (e,) = db.journal(RUN)
        assert e.status == "done" and e.after == {"_format": "flac", "GENRE": ["Rock"]}
        assert (e.size_after, e.mtime_ns_after) == (100, 5)
        assert db.pending_journal() == []
        info = db.run(RUN)
        assert info.status == "finished" and info.files_changed == 1
        # the new journal works on the migrated database
        db.begin_run("20261201-030000-bbbb", model_id="m", argv=[], dry_run=False, options={})
        i = db.journal_intent("20261201-030000-bbbb", "/srv/music/b.flac", before={}, after={"g": 1},
                              size_before=1, mtime_ns_before=2)
        assert [x.id for x in db.pending_journal()] == [i]
    assert sqlite3.connect(p).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
