"""tagger.undo: restore what a run wrote, leave alone what changed since, report the missing.

The scenario tests stand a small module in for ``tagger.tags`` (a "tagged file" is a JSON
document of its fields), so they check undo's own logic; ``test_real_*`` go end to end through
``tagger.tags.write_genres`` / ``restore_fields`` on real MP3 and FLAC files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tagger.errors import FatalError
from tagger.state import StateDB, new_run_id
from tagger.undo import UndoResult, undo_run
from tests.state_helpers import fake_tags_module, write_fields

ORIGINAL = {"genre": ["Jazz"], "provenance": None}
TAGGED = {"genre": ["Rock"], "provenance": "model=m1; genres=Rock"}

pytestmark = pytest.mark.pure


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def fake_tags(monkeypatch):
    mod = fake_tags_module()
    monkeypatch.setitem(sys.modules, "tagger.tags", mod)
    return mod


@pytest.fixture
def db(tmp_path):
    with StateDB(tmp_path / "state.db") as d:
        yield d


def tag_run(db: StateDB, files: list[Path], *, run_id: str | None = None, model_id: str = "m1",
            before: dict | None = None, after: dict | None = None, mtime_base: int = 10**15) -> str:
    """What ``tagger tag`` does per file: write, journal (before/after + stat), record."""
    rid = run_id or new_run_id()
    db.begin_run(rid, model_id=model_id, argv=["tagger", "tag"], dry_run=False, options={})
    for i, f in enumerate(files):
        old = _read(f) if before is None else before
        new = after or TAGGED
        st = write_fields(f, new, mtime_ns=mtime_base + i * 1_000_000)
        db.journal_add(rid, str(f), before=old, after=new, size_after=st.st_size,
                       mtime_ns_after=st.st_mtime_ns)
        db.record_file(str(f), size=st.st_size, mtime_ns=st.st_mtime_ns, model_id=model_id, outcome="tagged",
                       run_id=rid)
    db.finish_run(rid, status="finished", counts={"tagged": len(files)})
    return rid


@pytest.fixture
def library(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    files = []
    for name in ("a.mp3", "b.flac", "c.ogg", "d.m4a"):
        p = lib / name
        write_fields(p, ORIGINAL, mtime_ns=10**14)
        files.append(p)
    return files


def test_restored_modified_and_missing(db, fake_tags, library):
    a, b, c, d = library
    rid = tag_run(db, library)
    write_fields(c, {"genre": ["Bebop"], "provenance": None}, mtime_ns=10**16)  # a person edited it
    d.unlink()

    res = undo_run(db, rid[:11], argv=["tagger", "undo", rid[:11]])  # a unique prefix is enough

    assert isinstance(res, UndoResult) and res.ok and res.run_id == rid
    assert res.restored == [str(b), str(a)]  # latest first
    assert res.skipped_modified == [(str(c), f"changed since run {rid} wrote it (size or modification "
                                              "time differ): left alone")]
    assert res.missing == [str(d)]
    assert res.failed == []
    assert _read(a) == ORIGINAL and _read(b) == ORIGINAL
    assert _read(c) == {"genre": ["Bebop"], "provenance": None}  # left alone
    # the next `tagger tag` analyses the restored files again; the others keep their records
    assert db.get(str(a)) is None and db.get(str(b)) is None
    assert db.get(str(c)).outcome == "tagged"
    # the undo is a run of its own, with a journal that can itself be undone
    info = db.run(res.undo_id)
    assert info.status == "undo" and info.undo_of == rid and not info.dry_run
    assert info.counts == {"restored": 2, "already_restored": 0, "modified": 1, "missing": 1, "failed": 0}
    assert info.argv == ["tagger", "undo", rid[:11]]
    assert info.files_changed == 2
    journal = db.journal(res.undo_id)
    assert [(e.path, e.before, e.after) for e in journal] == [
        (str(b), TAGGED, ORIGINAL), (str(a), TAGGED, ORIGINAL)]
    assert journal[0].size_after == b.stat().st_size and journal[0].mtime_ns_after == b.stat().st_mtime_ns


def test_undo_of_the_undo_puts_the_run_back(db, fake_tags, library):
    rid = tag_run(db, library)
    first = undo_run(db, rid)
    assert all(_read(f) == ORIGINAL for f in library)
    redo = undo_run(db, first.undo_id)
    assert sorted(redo.restored) == sorted(map(str, library))
    assert all(_read(f) == TAGGED for f in library)


def test_undoing_twice_says_it_is_already_done(db, fake_tags, library):
    rid = tag_run(db, library[:2])
    first = undo_run(db, rid)
    again = undo_run(db, rid)
    assert again.restored == [] and again.skipped_modified == []  # already restored is not "modified"
    by = f"undo run {first.undo_id}"
    assert sorted(again.already_restored) == sorted((str(f), by) for f in library[:2])
    assert again.counts["already_restored"] == 2 and again.counts["modified"] == 0


def test_a_later_run_must_be_undone_first(db, fake_tags, library):
    a = library[0]
    first = tag_run(db, [a], run_id="20261120-020000-aaaa")
    second = tag_run(db, [a], run_id="20261121-020000-bbbb", after={"genre": ["Metal"], "provenance": "m2"},
                     mtime_base=10**15 + 5 * 10**9)
    res = undo_run(db, first)
    assert res.skipped_modified == [(str(a), f"changed since by run {second}: undo that run first")]
    assert _read(a)["genre"] == ["Metal"]
    undo_run(db, second)
    assert _read(a) == TAGGED
    undo_run(db, first)
    assert _read(a) == ORIGINAL


def test_a_file_written_twice_in_one_run_gets_its_first_before(db, fake_tags, library):
    a = library[0]
    rid = new_run_id()
    db.begin_run(rid, model_id="m1", argv=[], dry_run=False, options={})
    st = write_fields(a, {"genre": ["X"]}, mtime_ns=10**15)
    db.journal_add(rid, str(a), before=ORIGINAL, after={"genre": ["X"]}, size_after=st.st_size,
                   mtime_ns_after=st.st_mtime_ns)
    st = write_fields(a, {"genre": ["Y"]}, mtime_ns=10**15 + 1)
    db.journal_add(rid, str(a), before={"genre": ["X"]}, after={"genre": ["Y"]}, size_after=st.st_size,
                   mtime_ns_after=st.st_mtime_ns)
    db.finish_run(rid, status="finished", counts={})
    res = undo_run(db, rid)
    assert res.restored == [str(a)] and _read(a) == ORIGINAL
    assert len(fake_tags.calls) == 1


def test_dry_run_changes_nothing(db, fake_tags, library):
    rid = tag_run(db, library)
    library[3].unlink()
    res = undo_run(db, rid, dry_run=True)
    assert res.dry_run and res.missing == [str(library[3])]
    assert res.restored == [str(f) for f in reversed(library[:3])]
    assert fake_tags.calls == []
    assert all(_read(f) == TAGGED for f in library[:3])
    assert all(db.get(str(f)).outcome == "tagged" for f in library[:3])
    info = db.run(res.undo_id)
    assert info.dry_run and info.status == "undo" and db.journal(res.undo_id) == []


def test_keep_marks_files_undone_for_the_same_model(db, fake_tags, library):
    a = library[0]
    rid = tag_run(db, [a], model_id="m1")
    res = undo_run(db, rid, retag=False)
    st = a.stat()
    rec = db.get(str(a))
    assert rec.outcome == "undone" and rec.run_id == res.undo_id and (rec.size, rec.mtime_ns) == (st.st_size,
                                                                                                  st.st_mtime_ns)
    assert db.is_current(str(a), st.st_size, st.st_mtime_ns, "m1")  # the same model leaves it alone
    assert not db.is_current(str(a), st.st_size, st.st_mtime_ns, "m2")  # another model looks again


def test_restore_failures_are_reported_and_the_rest_goes_on(db, monkeypatch, library):
    a, b = library[:2]
    mod = fake_tags_module(fail={str(b): "permission denied"})
    monkeypatch.setitem(sys.modules, "tagger.tags", mod)
    rid = tag_run(db, [a, b])
    res = undo_run(db, rid)
    assert res.failed == [(str(b), "permission denied")] and not res.ok
    assert res.restored == [str(a)]
    assert _read(b) == TAGGED and db.get(str(b)).outcome == "tagged"
    assert db.run(res.undo_id).counts["failed"] == 1


def test_unknown_run_and_dry_runs(db, fake_tags):
    with pytest.raises(FatalError, match="no run 'nope'"):
        undo_run(db, "nope")
    rid = new_run_id()
    db.begin_run(rid, model_id="m1", argv=[], dry_run=True, options={})
    db.finish_run(rid, status="finished", counts={})
    res = undo_run(db, rid)
    assert (res.restored, res.skipped_modified, res.missing, res.failed) == ([], [], [], [])


def test_an_interrupted_undo_is_recorded_as_interrupted(db, monkeypatch, library):
    mod = fake_tags_module()

    def boom(path, before, **kw):
        raise KeyboardInterrupt

    mod.restore_fields = boom
    monkeypatch.setitem(sys.modules, "tagger.tags", mod)
    rid = tag_run(db, library[:1])
    with pytest.raises(KeyboardInterrupt):
        undo_run(db, rid)
    (undo,) = [r for r in db.runs() if r.undo_of == rid]
    assert undo.status == "interrupted"


# -- end to end with the real tag layer ------------------------------------------------------------


def _tag_real(db: StateDB, files: list[Path], genres: list[str]) -> str:
    from tagger import tags

    rid = new_run_id()
    db.begin_run(rid, model_id="m-real", argv=["tagger", "tag"], dry_run=False, options={})
    for f in files:
        st = os.stat(f)
        prov = tags.Provenance.now(model_id="m-real", genres=genres, scores=[0.9] * len(genres))
        change = tags.write_genres(f, genres, prov, expect=(st.st_size, st.st_mtime_ns))
        st = os.stat(f)
        db.journal_add(rid, str(f), before=change.before, after=change.after, size_after=st.st_size,
                       mtime_ns_after=st.st_mtime_ns)
        db.record_file(str(f), size=st.st_size, mtime_ns=st.st_mtime_ns, model_id="m-real", outcome="tagged",
                       run_id=rid)
    db.finish_run(rid, status="finished", counts={"tagged": len(files)})
    return rid


@pytest.fixture
def real_files(fixture_dir, tmp_path):
    lib = tmp_path / "real"
    lib.mkdir()
    out = []
    for name in ("mp3-genre.mp3", "mp3-bare.mp3", "flac-genre.flac", "flac-bare.flac"):
        out.append(Path(shutil.copyfile(fixture_dir / name, lib / name)))
    return out


@pytest.mark.slow
def test_real_undo_restores_fields_exactly(tmp_path, real_files):
    from tagger import tags

    originals = {f: tags.snapshot_fields(f) for f in real_files}
    genres_before = {f: tags.read_tags(f).genres for f in real_files}
    assert genres_before[real_files[0]] == ("Jazz",) and genres_before[real_files[1]] == ()

    state = tmp_path / "state.db"
    with StateDB(state) as db:
        rid = _tag_real(db, real_files, ["Rock", "Blues"])
    for f in real_files:
        info = tags.read_tags(f)
        assert info.genres == ("Rock", "Blues") and info.tagger_owned
        assert tags.snapshot_fields(f) != originals[f]

    with StateDB(state) as db:  # a fresh process's view: the journal went through the database
        res = undo_run(db, rid)
        assert res.ok and sorted(res.restored) == sorted(map(str, real_files))
        assert all(db.get(str(f)) is None for f in real_files)
    for f in real_files:
        assert tags.snapshot_fields(f) == originals[f], f.name  # the exact field values, bytes included
        info = tags.read_tags(f)
        assert info.genres == genres_before[f] and info.provenance is None

    with StateDB(state) as db:  # and the undo can be undone
        redo = undo_run(db, res.undo_id)
        assert redo.ok and len(redo.restored) == len(real_files)
    assert all(tags.read_tags(f).genres == ("Rock", "Blues") for f in real_files)


@pytest.mark.slow
def test_real_file_edited_since_is_left_alone(tmp_path, real_files):
    import mutagen.flac

    from tagger import tags

    flac = real_files[2]
    with StateDB(tmp_path / "state.db") as db:
        rid = _tag_real(db, [flac], ["Rock"])
        f = mutagen.flac.FLAC(flac)  # a person changes the genre in their tag editor
        f["GENRE"] = ["Hard Bop"]
        f.save()
        res = undo_run(db, rid)
    assert res.restored == [] and res.skipped_modified[0][0] == str(flac)
    assert tags.read_tags(flac).genres == ("Hard Bop",)
