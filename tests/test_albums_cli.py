"""Album decisions end to end (issue 18) through ``tagger tag``.

Most tests give the files analyses in the store of analyses (crafted scores, exactly as a
dry run would have stored them): the run then decides from the store, without Ray or the
model, and the scores are what the test needs. One test analyses with the tiny model on Ray.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tagger.cli import main
from tagger.state import StateDB, StoredAnalysis
from tests.conftest import TINY_LABELS, tone
from tests.test_pipeline import genres_of

LABELS = TINY_LABELS  # blues classical hiphop jazz rock

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def scores(**kw) -> tuple[float, ...]:
    v = np.zeros(len(LABELS))
    for k, x in kw.items():
        v[LABELS.index(k)] = x
    rest = [i for i, x in enumerate(v) if x == 0]
    v[rest] = (1 - v.sum()) / len(rest)
    return tuple(float(x) for x in v)


def track(path: Path, *, album="", artist="", albumartist="", genre=None, seed=0) -> Path:
    """A short FLAC with album tags (as a person's tagger writes them)."""
    import mutagen

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(1.0, sr=8000, freq=200 + 37 * seed, seed=seed), 8000)
    f = mutagen.File(path)
    if f.tags is None:
        f.add_tags()
    for k, v in (("ALBUM", album), ("ARTIST", artist), ("ALBUMARTIST", albumartist), ("GENRE", genre)):
        if v:
            f.tags[k] = [v]
    f.save()
    return path


def model_id(tiny_model) -> str:
    from tagger.modelmeta import load_meta, locate

    return load_meta(locate(str(tiny_model.weights))).model_id


def store(db: Path, tiny_model, analyses: dict[Path, tuple[float, ...]], seconds: float = 30.0) -> None:
    mid = model_id(tiny_model)
    with StateDB(db) as state:
        for p, sc in analyses.items():
            st = os.stat(p)
            state.store_analysis(StoredAnalysis(
                path=str(p), model_id=mid, size=st.st_size, mtime_ns=st.st_mtime_ns, scores=sc, chunks=10,
                seconds=seconds, sampling="whole<=900", duration=seconds, analysed_at="2026-01-01T00:00:00Z",
                run_id="test"))
        state.flush()


def no_analysis(monkeypatch):
    from tagger import pipeline

    def boom(self, *a, **kw):
        raise AssertionError("the run analysed audio; it should have decided from the store")

    monkeypatch.setattr(pipeline.Tagger, "_process", boom)


def tag(lib, tiny_model, tmp_path, *extra) -> tuple[dict[str, dict], str]:
    report = tmp_path / "r.json"
    args = ["tag", str(lib), "--model", str(tiny_model.weights), "--state-db", str(tmp_path / "state.db"),
            "--report", str(report), *extra]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return {row["path"]: row for row in json.loads(report.read_text())["files"]}, r.output


def rock_album(lib: Path, n: int = 4, name="Rock Album", odd: dict[int, tuple] | None = None):
    paths = [track(lib / name / f"{i:02d}.flac", album=name, artist="Band", albumartist="Band", seed=i)
             for i in range(n)]
    sc = {p: scores(rock=0.6) for p in paths}
    for i, v in (odd or {}).items():
        sc[paths[i]] = v
    return paths, sc


def test_album_tracks_get_the_album_genre_and_rows_say_so(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    paths, sc = rock_album(lib, odd={1: scores(jazz=0.55)})
    store(tmp_path / "state.db", tiny_model, sc)
    no_analysis(monkeypatch)
    rows, _ = tag(lib, tiny_model, tmp_path, "--dry-run", "--report", str(tmp_path / "r.csv"))
    for p in paths:
        r = rows[str(p)]
        assert r["action"] == "would tag" and r["written"] == ["Rock"], r
        assert r["album"] == "Band — Rock Album" and r["genre_from"] == "album" and r["album_genres"] == ["Rock"]
    assert "on its own Jazz 0.55" in rows[str(paths[1])]["reason"]
    table = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert {(t["album"], t["genre_from"], t["album_genres"]) for t in table} == {("Band — Rock Album", "album", "Rock")}
    # per track, the odd track is Jazz
    rows, _ = tag(lib, tiny_model, tmp_path, "--dry-run", "--no-albums")
    assert rows[str(paths[1])]["written"] == ["Jazz"] and rows[str(paths[1])]["genre_from"] == ""
    assert rows[str(paths[1])]["album"] == ""


def test_a_confident_dissenter_keeps_its_genre_and_the_option_moves_it(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    paths, sc = rock_album(lib, n=5, odd={2: scores(classical=0.95)})
    store(tmp_path / "state.db", tiny_model, sc)
    no_analysis(monkeypatch)
    rows, _ = tag(lib, tiny_model, tmp_path, "--dry-run")
    r = rows[str(paths[2])]
    assert r["written"] == ["Classical"] and r["dissent"] is True and r["genre_from"] == "track"
    assert "keeps its own genre" in r["reason"] and r["album_genres"] == ["Rock"]
    rows, _ = tag(lib, tiny_model, tmp_path, "--dry-run", "--album-dissent", "0.99")
    assert rows[str(paths[2])]["written"] == ["Rock"] and rows[str(paths[2])]["dissent"] is False


def test_loose_singles_and_untagged_folders_are_decided_per_track(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    singles = [track(lib / "Singles" / f"{i}.flac", artist=f"Artist {i}", seed=i) for i in range(3)]
    bare = [track(lib / "bare" / f"{i}.flac", seed=10 + i) for i in range(2)]
    sc = {singles[0]: scores(rock=0.6), singles[1]: scores(jazz=0.6), singles[2]: scores(rock=0.6),
          bare[0]: scores(blues=0.6), bare[1]: scores(hiphop=0.6)}
    store(tmp_path / "state.db", tiny_model, sc)
    no_analysis(monkeypatch)
    rows, _ = tag(lib, tiny_model, tmp_path, "--dry-run")
    assert [rows[str(p)]["written"] for p in singles + bare] == [["Rock"], ["Jazz"], ["Rock"], ["Blues"], ["Hip-Hop"]]
    assert {rows[str(p)]["album"] for p in singles + bare} == {""}
    assert {rows[str(p)]["genre_from"] for p in singles + bare} == {"track"}


def test_person_genre_under_skip_that_disagrees_leaves_the_album_per_track(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    paths, sc = rock_album(lib, n=3, odd={1: scores(jazz=0.55)})
    person = track(lib / "Rock Album" / "09.flac", album="Rock Album", albumartist="Band", genre="Blues", seed=9)
    sc[person] = scores(blues=0.5)  # a dry run analyses it too (it is skipped either way)
    store(tmp_path / "state.db", tiny_model, sc)
    no_analysis(monkeypatch)
    rows, _ = tag(lib, tiny_model, tmp_path, "--dry-run")
    assert rows[str(person)]["action"] == "skipped" and rows[str(person)]["album"] == "Band — Rock Album"
    r = rows[str(paths[1])]
    assert r["written"] == ["Jazz"] and r["genre_from"] == "track"
    assert "disagrees with the genre a person gave 1 of its tracks (Blues)" in r["reason"]
    # a person's genre that agrees lets the album genre through
    import mutagen

    f = mutagen.File(person)
    f.tags["GENRE"] = ["rock"]
    f.save()
    store(tmp_path / "state.db", tiny_model, {person: scores(blues=0.5)})
    rows, _ = tag(lib, tiny_model, tmp_path, "--dry-run")
    assert rows[str(paths[1])]["written"] == ["Rock"] and rows[str(paths[1])]["genre_from"] == "album"
    assert genres_of(person) == ["rock"]


def test_cron_new_track_gets_the_album_genre_and_nothing_else_moves(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    db = tmp_path / "state.db"
    paths, sc = rock_album(lib, n=3)
    store(db, tiny_model, sc)
    no_analysis(monkeypatch)
    rows, _ = tag(lib, tiny_model, tmp_path)
    assert all(genres_of(p) == ["Rock"] for p in paths)
    before = {p: p.read_bytes() for p in paths}
    # a new track that alone would be Jazz
    new = track(lib / "Rock Album" / "03.flac", album="Rock Album", artist="Band", albumartist="Band", seed=3)
    store(db, tiny_model, {new: scores(jazz=0.5)})
    rows, _ = tag(lib, tiny_model, tmp_path)
    assert set(rows) == {str(new)} and rows[str(new)]["written"] == ["Rock"]
    assert rows[str(new)]["genre_from"] == "album"
    assert {p: p.read_bytes() for p in paths} == before
    # tracks that turn the album to Jazz: tagger's own genres move, the person's genre stays
    person = track(lib / "Rock Album" / "08.flac", album="Rock Album", albumartist="Band", genre="Rock", seed=8)
    more = [track(lib / "Rock Album" / f"1{i}.flac", album="Rock Album", artist="Band", albumartist="Band",
                  seed=20 + i) for i in range(4)]
    store(db, tiny_model, {p: scores(jazz=0.8) for p in more + [person]})
    rows, out = tag(lib, tiny_model, tmp_path, "--on-existing", "replace")
    assert all(genres_of(p) == ["Jazz"] for p in paths + [new] + more), out
    assert genres_of(person) == ["Jazz"]  # --on-existing replace, and it is this run's file
    for p in paths:
        assert rows[str(p)]["action"] == "tagged" and rows[str(p)]["analysis"] == "stored"
    # and once more: nothing to do
    r = CliRunner().invoke(main, ["tag", str(lib), "--model", str(tiny_model.weights), "--state-db", str(db),
                                  "--on-existing", "replace"])
    assert "nothing to do" in r.output, r.output


def test_a_person_genre_of_an_earlier_run_holds_the_album_per_track(tmp_path, tiny_model, monkeypatch):
    """--on-existing skip in both runs: new tracks that would turn the album to Jazz meet the
    person's Rock on an old track; the album is decided per track, nothing old moves."""
    lib = tmp_path / "lib"
    db = tmp_path / "state.db"
    paths, sc = rock_album(lib, n=2)
    person = track(lib / "Rock Album" / "05.flac", album="Rock Album", albumartist="Band", genre="Rock", seed=5)
    sc[person] = scores(rock=0.6)
    store(db, tiny_model, sc)
    no_analysis(monkeypatch)
    tag(lib, tiny_model, tmp_path)
    assert [genres_of(p) for p in paths] == [["Rock"], ["Rock"]]
    before = {p: p.read_bytes() for p in paths + [person]}
    more = [track(lib / "Rock Album" / f"1{i}.flac", album="Rock Album", albumartist="Band", seed=20 + i)
            for i in range(4)]
    store(db, tiny_model, {p: scores(jazz=0.8) for p in more})
    rows, _ = tag(lib, tiny_model, tmp_path)
    assert set(rows) == {str(p) for p in more}
    assert all(genres_of(p) == ["Jazz"] for p in more)
    assert all(rows[str(p)]["genre_from"] == "track" and "a person gave" in rows[str(p)]["reason"] for p in more)
    assert {p: p.read_bytes() for p in paths + [person]} == before


def test_max_files_cuts_at_album_boundaries(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    a, sa = rock_album(lib, n=3, name="A")
    b, sb = rock_album(lib, n=3, name="B")
    store(tmp_path / "state.db", tiny_model, {**sa, **sb})
    no_analysis(monkeypatch)
    rows, out = tag(lib, tiny_model, tmp_path, "--max-files", "4")
    assert set(rows) == {str(p) for p in a} and "3 left for the next run" in out
    rows, out = tag(lib, tiny_model, tmp_path, "--max-files", "2")  # an album bigger than N: taken whole
    assert set(rows) == {str(p) for p in b}
    # per track, the cut is exact
    c, sc = rock_album(lib, n=3, name="C")
    store(tmp_path / "state.db", tiny_model, sc)
    rows, _ = tag(lib, tiny_model, tmp_path, "--max-files", "2", "--no-albums", "--dry-run")
    assert len(rows) == 2


def test_album_settings_are_part_of_the_decision_key(tmp_path, tiny_model, monkeypatch):
    from tagger.options import TagOptions
    from tagger.pipeline import decision_key

    o = TagOptions()
    assert decision_key(o) != decision_key(o.replace(albums=False))
    assert decision_key(o) != decision_key(o.replace(album_dissent=0.7))


@pytest.mark.usefixtures("ray_session")
def test_analysed_album_is_decided_together(tmp_path, tiny_model):
    """Real analysis (tiny model on Ray): every track of a tagged album gets one genre, decided
    after the whole album is analysed; loose singles are decided alone."""
    lib = tmp_path / "lib"
    album = [track(lib / "LP" / f"{i:02d}.flac", album="LP", albumartist="X", seed=i) for i in range(4)]
    rows, _ = tag(lib, tiny_model, tmp_path, "--dry-run", "--min-confidence", "0")
    written = {tuple(rows[str(p)]["written"]) for p in album}
    assert (len(written) == 1 and {rows[str(p)]["genre_from"] for p in album} - {"track"} == {"album"}) or \
        any(rows[str(p)]["dissent"] for p in album)
    assert {rows[str(p)]["analysis"] for p in album} == {"now"}
    # the second run decides from the store, per track this time
    rows2, _ = tag(lib, tiny_model, tmp_path, "--dry-run", "--min-confidence", "0", "--no-albums")
    assert {rows2[str(p)]["analysis"] for p in album} == {"stored"}


def test_explain_says_when_the_album_overruled_the_track(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    me = track(lib / "LP" / "00.flac", album="LP", albumartist="X", seed=0)
    mates = [track(lib / "LP" / f"0{i}.flac", album="LP", albumartist="X", seed=i) for i in range(1, 5)]
    base = ["explain", str(me), "--model", str(tiny_model.weights), "--json", "--min-confidence", "0",
            "--state-db", str(tmp_path / "state.db")]
    r = CliRunner().invoke(main, base + ["--no-albums"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    alone = json.loads(r.stdout)
    assert alone["album"] is None
    own = alone["decision"]["chosen"][0]["label"]
    other = next(lab for lab in LABELS if lab != own)
    store(tmp_path / "state.db", tiny_model, {p: scores(**{other: 0.7}) for p in mates})
    r = CliRunner().invoke(main, base, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["album"]["album"] == "X — LP" and got["album"]["overruled"] is True
    assert got["album"]["tracks"] == 5 and got["album"]["analysed"] == 5
    assert got["decision"]["chosen"][0]["label"] == other and got["album"]["genre_from"] == "album"
    # the text form says it in words
    r = CliRunner().invoke(main, [a for a in base if a != "--json"] + ["--out", str(tmp_path / "x.png")],
                           catch_exceptions=False)
    assert "the album overruled the track" in r.output, r.output
