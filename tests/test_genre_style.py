"""--genre-style end to end: the written names in reports, explain and files; a changed style
re-decides files tagger already tagged, the same style leaves them alone (decision_key)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from tagger.cli import main
from tests.conftest import TINY_LABELS, tone
from tests.test_albums_cli import no_analysis, scores, store, track
from tests.test_pipeline import genres_of

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_decision_key_has_the_style_and_the_default_keeps_old_keys():
    from tagger.options import GENRE_STYLES, TagOptions
    from tagger.pipeline import decision_key

    o = TagOptions()
    keys = {decision_key(o.replace(genre_style=s)) for s in GENRE_STYLES}
    assert len(keys) == len(GENRE_STYLES)
    # the default style adds nothing: files handled before --genre-style existed are not re-decided
    old = {"top_k": 1, "min_confidence": 0.4, "on_existing": "skip", "genres": [], "albums": True,
           "album_dissent": 0.8}
    assert decision_key(o) == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:12]


def test_a_changed_style_rewrites_tagger_genres_and_the_same_style_changes_nothing(tmp_path, tiny_model,
                                                                                     monkeypatch):
    """Decided from stored analyses (no Ray, no model): hiphop wins on every track."""
    lib, db = tmp_path / "lib", tmp_path / "state.db"
    paths = [track(lib / "LP" / f"{i:02d}.flac", album="LP", albumartist="X", seed=i) for i in range(2)]
    person = track(lib / "Mine" / "01.flac", album="Mine", albumartist="Y", genre="Hip-Hop", seed=5)
    store(db, tiny_model, {p: scores(hiphop=0.7) for p in [*paths, person]})
    no_analysis(monkeypatch)
    base = ["tag", lib, "--model", tiny_model.weights, "--state-db", db, "--report", tmp_path / "r.json"]

    def rows():
        return {Path(x["path"]): x for x in json.loads((tmp_path / "r.json").read_text())["files"]}

    r = run(base)
    assert r.exit_code == 0, r.output
    assert [genres_of(p) for p in paths] == [["Hip-Hop"]] * 2
    r = run([*base, "--genre-style", "lower"])
    assert r.exit_code == 0 and "2 tagged" in r.output, r.output
    assert [genres_of(p) for p in paths] == [["hip-hop"]] * 2
    got = rows()
    assert {got[p]["action"] for p in paths} == {"tagged"} and got[paths[0]]["predicted"][0]["genre"] == "hip-hop"
    assert genres_of(person) == ["Hip-Hop"]  # a person's genre is theirs, whatever the style
    stamps = [p.stat().st_mtime_ns for p in paths]
    r = run([*base, "--genre-style", "lower"])
    assert r.exit_code == 0 and "nothing to do" in r.output, r.output
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    # the style applies to the names [genres] gives too
    config = tmp_path / "c.toml"
    config.write_text('[tag]\ngenre-style = "beets"\n[genres]\nhiphop = "hip-hop"\n')
    r = run([*base, "--config", config])
    assert r.exit_code == 0, r.output
    assert [genres_of(p) for p in paths] == [["Hip Hop"]] * 2
    # the command line's style wins over the config file's
    r = run([*base, "--config", config, "--genre-style", "id3v1", "--dry-run"])
    assert {got["written"][0] for p, got in rows().items() if p in paths} == {"Hip-Hop"}


def test_bad_style_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(main, ["tag", str(tmp_path), "--genre-style", "camel"])
    assert r.exit_code == 64 and "camel" in r.output
    config = tmp_path / "c.toml"
    config.write_text('[tag]\ngenre-style = "camel"\n')
    r = CliRunner().invoke(main, ["config", "--config", str(config)])
    assert r.exit_code == 1 and "[tag] genre-style" in r.output and "'lower'" in r.output


@pytest.mark.usefixtures("ray_session")
def test_dry_run_lower_through_the_real_pipeline_and_explain_agrees(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    lib.mkdir()
    song = lib / "song.flac"
    sf.write(song, tone(2.5, sr=22050, freq=330, seed=3), 22050)
    before = song.read_bytes()
    report = tmp_path / "plan.json"
    common = ["--model", tiny_model.weights, "--state-db", tmp_path / "s.db", "--min-confidence", "0",
              "--genre-style", "lower"]
    r = run(["tag", lib, "--dry-run", "--report", report, *common])
    assert r.exit_code == 0, r.output
    row = json.loads(report.read_text())["files"][0]
    names = {p["label"]: p["genre"] for p in row["predicted"]}
    assert names == {"blues": "blues", "classical": "classical", "hiphop": "hip-hop", "jazz": "jazz", "rock": "rock"}
    assert set(TINY_LABELS) == set(names)
    assert row["action"] == "would tag" and row["written"] == [row["predicted"][0]["genre"]]
    assert song.read_bytes() == before
    ex = run(["explain", song, "--json", *common])
    assert ex.exit_code == 0, ex.output
    data = json.loads(ex.stdout)
    assert data["decision"]["genres"] == row["written"]
    assert {s["label"]: s["genre"] for s in data["track_scores"]} == names


# -- a person's genre in another spelling is the same genre (pure) ----------------------------------

LABELS = ("blues", "classical", "hiphop", "jazz", "rock")
HIPHOP = [0.05, 0.05, 0.8, 0.05, 0.05]


def _beets():
    from tagger.aggregate import written_names

    return written_names(LABELS, style="beets")


def test_written_names_apply_the_style_to_every_label_and_to_the_users_map():
    from tagger.aggregate import written_names

    assert _beets() == {"blues": "Blues", "classical": "Classical", "hiphop": "Hip Hop", "jazz": "Jazz",
                        "rock": "Rock"}
    assert written_names(LABELS, user_map={"rock": "ROCK 'N' ROLL"}, style="beets")["rock"] == "Rock and Roll"
    assert written_names(LABELS, user_map={"rock": "Rock"}, style="as-is") == {"rock": "Rock"}  # unchanged
    assert written_names(LABELS, model_names={"hiphop": "Rap"}, style="lower")["hiphop"] == "rap"


@pytest.mark.parametrize("policy, reason", [("merge", "predicted genres already present"),
                                            ("replace", "genre already as predicted")])
def test_a_persons_genre_is_not_added_again_or_respelled(policy, reason):
    from tagger.aggregate import SKIP, decide

    d = decide(HIPHOP, LABELS, existing=("Hip-Hop",), on_existing=policy, user_map=_beets())
    assert (d.action, d.reason, d.chosen[0].genre) == (SKIP, reason, "Hip Hop")
    d = decide(HIPHOP, LABELS, existing=("Jazz",), on_existing="merge", user_map=_beets())
    assert d.genres == ("Jazz", "Hip Hop")


def test_tagger_respells_its_own_genre_in_a_new_style():
    from tagger.aggregate import SKIP, TAG, decide

    d = decide(HIPHOP, LABELS, existing=("Hip-Hop",), tagger_owned=True, owner_model_id="m", model_id="m",
               user_map=_beets())
    assert d.action == TAG and d.genres == ("Hip Hop",)
    d = decide(HIPHOP, LABELS, existing=("Hip Hop",), tagger_owned=True, owner_model_id="m", model_id="m",
               user_map=_beets())
    assert (d.action, d.reason) == (SKIP, "already tagged by this model")


def test_album_agrees_with_a_persons_genre_in_another_spelling():
    import numpy as np

    from tagger import albums as al

    members = [al.Member(f"/a/{i}.flac", np.asarray(HIPHOP, np.float32), 30.0) for i in range(3)]
    members.append(al.Member("/a/3.flac", None, 0.0, existing=("hip-hop",)))
    ad = al.decide_album(members, LABELS, name="LP", user_map=_beets())
    assert ad.genres == ("Hip Hop",) and not ad.per_track
    assert {o.genre_from for o in ad.outcomes.values()} == {al.GENRE_FROM_ALBUM}
