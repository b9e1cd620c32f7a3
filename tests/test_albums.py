"""Album decisions (issue 18), the pure part: grouping, compilations, album scores, the dissent
rule and a person's genres (tagger.albums), and reading the album tags of every format."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tagger import albums as al
from tagger.aggregate import SKIP, TAG, UNCERTAIN

LABELS = ("blues", "classical", "hiphop", "jazz", "rock")

pytestmark = pytest.mark.pure


def s(**kw) -> np.ndarray:
    """Scores over LABELS; the rest shared equally."""
    v = np.zeros(len(LABELS), np.float32)
    for k, x in kw.items():
        v[LABELS.index(k)] = x
    rest = [i for i, x in enumerate(v) if x == 0]
    if rest:
        v[rest] = (1 - v.sum()) / len(rest)
    return v


def t(path, album="", artist="", albumartist="", compilation=False):
    return al.TrackTags(path, album, artist, albumartist, compilation)


# -- grouping ------------------------------------------------------------------------------------


def test_album_and_album_artist_group_across_disc_folders_and_spelling():
    tracks = [t("/m/X/CD1/01.flac", "Blue Train", "John Coltrane", "John Coltrane"),
              t("/m/X/CD2/01.flac", "blue  train", "John Coltrane Quartet", "JOHN COLTRANE"),
              t("/m/X/CD2/02.flac", "Other", "John Coltrane", "John Coltrane")]
    albums, alone = al.group(tracks)
    assert alone == []
    by_len = sorted(albums, key=lambda a: -len(a.paths))
    assert sorted(by_len[0].paths) == ["/m/X/CD1/01.flac", "/m/X/CD2/01.flac"]
    assert by_len[0].name == "John Coltrane — Blue Train" and not by_len[0].compilation
    assert len(by_len[1].paths) == 1


def test_without_album_artist_the_album_is_per_folder_scope():
    tracks = [t("/m/a/1.mp3", "Greatest Hits", "A"), t("/m/a/2.mp3", "Greatest Hits", "A"),
              t("/m/b/1.mp3", "Greatest Hits", "B")]
    albums, _ = al.group(tracks)
    assert sorted(len(a.paths) for a in albums) == [1, 2]


def test_folder_fallback_needs_one_shared_artist_loose_singles_are_alone():
    tracks = [t("/m/rip/1.wav", artist="Nina Simone"), t("/m/rip/2.wav", artist="Nina Simone feat. X"),
              t("/m/singles/1.mp3", artist="A"), t("/m/singles/2.mp3", artist="B"),
              t("/m/bare/1.wav"), t("/m/bare/2.wav"), t("/m/one/1.wav", artist="C")]
    albums, alone = al.group(tracks)
    assert [sorted(a.paths) for a in albums] == [["/m/rip/1.wav", "/m/rip/2.wav"]]
    assert alone == sorted(["/m/singles/1.mp3", "/m/singles/2.mp3", "/m/bare/1.wav", "/m/bare/2.wav",
                            "/m/one/1.wav"])


@pytest.mark.parametrize("tracks, why", [
    ([t("/c/1", "Hits", "A", compilation=True), t("/c/2", "Hits", "A")], "compilation flag"),
    ([t("/c/1", "Hits", "A", "Various Artists"), t("/c/2", "Hits", "B", "Various Artists")], "Various Artists"),
    ([t("/c/1", "Hits", "VA"), t("/c/2", "Hits", "va")], "Various Artists"),
    ([t(f"/c/{i}", "Hits", f"Artist {i}") for i in range(4)], "4 different artists"),
])
def test_compilations(tracks, why):
    albums, _ = al.group(tracks)
    assert len(albums) == 1 and why in albums[0].compilation


def test_one_artist_with_guests_is_not_a_compilation():
    tracks = [t(f"/c/{i}", "LP", "Main feat. Guest %d" % i if i % 2 else "Main") for i in range(8)]
    albums, _ = al.group(tracks)
    assert albums[0].compilation == ""
    # an album artist makes distinct track artists irrelevant
    tracks = [t(f"/c/{i}", "LP", f"Player {i}", "Band") for i in range(8)]
    assert al.group(tracks)[0][0].compilation == ""


def test_scope_of_disc_folders():
    assert al.scope_of("/m/A/Disc 2/x.flac") == "/m/A"
    assert al.scope_of("/m/A/CD1/x.flac") == "/m/A"
    assert al.scope_of("/m/CDs of mine/x.flac") == "/m/CDs of mine"
    assert al.scope_of("/m/A/x.flac") == "/m/A"


# -- album scores and decisions ------------------------------------------------------------------


def test_album_scores_are_weighted_by_audio_analysed():
    a = al.album_scores([s(rock=0.9), s(jazz=0.9)], [270.0, 30.0])
    assert a[LABELS.index("rock")] == pytest.approx(0.9 * 0.9 + 0.025 * 0.1)
    # a weight of 0 counts as 1 s
    b = al.album_scores([s(rock=1.0), s(jazz=1.0)], [0.0, 0.0])
    assert b[LABELS.index("rock")] == pytest.approx(0.5)


def members(*scores, seconds=30.0, **kw):
    return [al.Member(f"/a/{i:02d}", sc, seconds, **kw) for i, sc in enumerate(scores)]


def test_every_track_gets_the_album_genre():
    ms = members(s(rock=0.6), s(rock=0.55), s(blues=0.5, rock=0.3), s(rock=0.7), s(jazz=0.45, rock=0.35))
    ad = al.decide_album(ms, LABELS, name="X", min_confidence=0.4)
    assert ad.genres == ("Rock",)
    assert {o.decision.genres for o in ad.outcomes.values()} == {("Rock",)}
    assert {o.genre_from for o in ad.outcomes.values()} == {"album"}
    assert ad.dissenters == []
    assert al.overruled(ad.outcomes["/a/02"]) and not al.overruled(ad.outcomes["/a/00"])
    assert "on its own Blues 0.50" in ad.outcomes["/a/02"].note


def test_an_uncertain_track_gets_the_album_genre():
    ms = members(s(rock=0.8), s(rock=0.7), s(rock=0.3, blues=0.3))
    ad = al.decide_album(ms, LABELS, min_confidence=0.4)
    o = ad.outcomes["/a/02"]
    assert o.decision.action == TAG and o.decision.genres == ("Rock",) and "uncertain on its own" in o.note


def test_strong_confident_dissenter_keeps_its_own_genre():
    ms = members(s(rock=0.8), s(rock=0.7), s(rock=0.75), s(classical=0.95))
    ad = al.decide_album(ms, LABELS, dissent=0.9)
    o = ad.outcomes["/a/03"]
    assert o.dissent and o.genre_from == "track" and o.decision.genres == ("Classical",)
    assert "disagrees strongly" in o.note and ad.dissenters == ["/a/03"]
    # below the dissent score, the album wins
    ad = al.decide_album(ms, LABELS, dissent=0.96)
    assert ad.outcomes["/a/03"].decision.genres == ("Rock",) and ad.dissenters == []
    # dissent 1: never
    assert al.decide_album(ms, LABELS, dissent=1.0).dissenters == []


def test_a_track_agreeing_on_a_second_album_genre_is_no_dissenter():
    ms = members(s(rock=0.5, blues=0.4), s(rock=0.5, blues=0.4), s(blues=0.95))
    ad = al.decide_album(ms, LABELS, top_k=2, min_confidence=0.3, dissent=0.9)
    assert set(ad.genres) == {"Rock", "Blues"} and ad.dissenters == []


def test_an_album_below_the_threshold_is_decided_per_track():
    ms = members(s(rock=0.8), s(jazz=0.8), s(blues=0.8))
    ad = al.decide_album(ms, LABELS, min_confidence=0.4)
    assert ad.decision.action == UNCERTAIN and "reaches no threshold" in ad.per_track
    assert [o.decision.genres for o in ad.outcomes.values()] == [("Rock",), ("Jazz",), ("Blues",)]
    assert {o.genre_from for o in ad.outcomes.values()} == {"track"}


def test_compilation_is_decided_per_track():
    ms = members(s(rock=0.8), s(jazz=0.8))
    ad = al.decide_album(ms, LABELS, compilation="a compilation (compilation flag)")
    assert ad.decision is None and [o.decision.genres for o in ad.outcomes.values()] == [("Rock",), ("Jazz",)]


def test_album_of_one_track_is_the_tracks_decision():
    ad = al.decide_album(members(s(jazz=0.6)), LABELS)
    o = ad.outcomes["/a/00"]
    assert o.genre_from == "track" and o.decision.genres == ("Jazz",) and o.note == ""


def test_tracks_without_scores_get_no_outcome_but_count():
    ms = members(s(rock=0.8), s(rock=0.7)) + [al.Member("/a/x", None, existing=("Rock",))]
    ad = al.decide_album(ms, LABELS)
    assert ad.tracks == 3 and ad.analysed == 2 and set(ad.outcomes) == {"/a/00", "/a/01"}


# -- a person's genres (item 3) ------------------------------------------------------------------


def person_album(existing):
    return members(s(rock=0.8), s(rock=0.7)) + [al.Member("/a/p", None, existing=existing)]


def test_skip_person_genre_that_agrees_lets_the_album_genre_through():
    ad = al.decide_album(person_album(("rock",)), LABELS, on_existing="skip")
    assert ad.per_track == "" and {o.genre_from for o in ad.outcomes.values()} == {"album"}


def test_skip_person_genre_that_disagrees_decides_the_rest_per_track():
    ms = members(s(rock=0.8), s(jazz=0.6, rock=0.3), s(rock=0.8)) + [al.Member("/a/p", None, existing=("Blues",))]
    ad = al.decide_album(ms, LABELS, on_existing="skip")
    assert "disagrees with the genre a person gave 1 of its tracks (Blues)" in ad.per_track
    assert ad.outcomes["/a/01"].decision.genres == ("Jazz",)  # its own, not the album's
    assert {o.genre_from for o in ad.outcomes.values()} == {"track"}


@pytest.mark.parametrize("policy, action, genres", [("replace", TAG, ("Rock",)), ("merge", TAG, ("Blues", "Rock"))])
def test_replace_and_merge_apply_the_album_genre_through_the_policy(policy, action, genres):
    ms = members(s(rock=0.8), s(rock=0.7)) + [al.Member("/a/p", s(blues=0.6), 30.0, existing=("Blues",))]
    ad = al.decide_album(ms, LABELS, on_existing=policy, dissent=0.9)
    o = ad.outcomes["/a/p"]
    assert o.decision.action == action and o.decision.genres == genres and o.genre_from == "album"


def test_tagger_own_genre_is_no_person_evidence_and_moves_with_the_album():
    ms = members(s(rock=0.8), s(rock=0.7)) + [al.Member("/a/t", s(rock=0.5), 30.0, existing=("Jazz",),
                                                        tagger_owned=True, owner_model="m")]
    ad = al.decide_album(ms, LABELS, on_existing="skip", model_id="m")
    o = ad.outcomes["/a/t"]
    assert ad.per_track == "" and o.decision.action == TAG and o.decision.genres == ("Rock",)
    # and one already carrying the album genre is left alone
    ms[-1] = al.Member("/a/t", s(rock=0.5), 30.0, existing=("Rock",), tagger_owned=True, owner_model="m")
    assert al.decide_album(ms, LABELS, model_id="m").outcomes["/a/t"].decision.action == SKIP


# -- the album tags of every format --------------------------------------------------------------


def _write_album_tags(kind: str, path, album, artist, albumartist, compilation):
    import mutagen

    from tests.make_fixtures import FORMAT

    f = mutagen.File(str(path))
    fmt = FORMAT[kind]
    if fmt in ("mp3", "wav", "aiff"):
        from mutagen.id3 import TALB, TCMP, TPE1, TPE2

        if f.tags is None:
            f.add_tags()
        f.tags.add(TALB(encoding=3, text=[album]))
        f.tags.add(TPE1(encoding=3, text=[artist]))
        f.tags.add(TPE2(encoding=3, text=[albumartist]))
        f.tags.add(TCMP(encoding=3, text=["1" if compilation else "0"]))
        f.save(v2_version=3 if fmt == "mp3" else 4)
        return
    if f.tags is None:
        f.add_tags()
    if fmt in ("flac", "ogg", "opus"):
        f.tags["ALBUM"], f.tags["ARTIST"], f.tags["ALBUMARTIST"] = [album], [artist], [albumartist]
        f.tags["COMPILATION"] = ["1" if compilation else "0"]
    elif fmt == "m4a":
        f.tags["\xa9alb"], f.tags["\xa9ART"], f.tags["aART"] = [album], [artist], [albumartist]
        f.tags["cpil"] = compilation
    else:
        f.tags["WM/AlbumTitle"], f.tags["Author"], f.tags["WM/AlbumArtist"] = [album], [artist], [albumartist]
        f.tags["WM/IsCompilation"] = ["1" if compilation else "0"]
    f.save()


@pytest.mark.parametrize("kind", ["mp3", "flac", "ogg", "opus", "m4a_aac", "wav", "aiff", "wma"])
def test_album_tags_are_read_in_every_format_and_never_written(kind, fixture_dir, tmp_path):
    from tagger import tags
    from tests.make_fixtures import EXT

    p = tmp_path / f"x{EXT[kind]}"
    shutil.copy(fixture_dir / f"{kind}-bare{EXT[kind]}", p)
    assert tags.read_tags(p).album_tags() == {"album": "", "artist": "", "albumartist": "", "compilation": False}
    _write_album_tags(kind, p, " Kind  of Blue", "Miles Davis", "Miles Davis Sextet", True)
    info = tags.read_tags(p)
    assert info.album_tags() == {"album": "Kind of Blue", "artist": "Miles Davis",
                                 "albumartist": "Miles Davis Sextet", "compilation": True}
    before = tags.snapshot_fields(p)
    tags.write_genres(p, ["Jazz"], tags.Provenance.now(model_id="m", genres=["Jazz"], scores=[0.9]))
    again = tags.read_tags(p)
    assert again.genres == ("Jazz",) and again.album_tags() == info.album_tags()
    assert before != tags.snapshot_fields(p)


# -- the HTML report's album view ----------------------------------------------------------------


def test_html_album_view_groups_by_album_and_shows_decision_and_dissenters():
    from tagger.report import Report, Row
    from tagger.report import html_report as hr

    report = Report(dry_run=True)
    for i, (own, kept) in enumerate([("Rock", False), ("Jazz", False), ("Classical", True)]):
        disc = "CD1" if i < 2 else "CD2"
        report.add(Row(f"/m/Band/LP/{disc}/{i}.flac", "flac", "tagged", "x",
                       predicted=[{"genre": own, "label": own.lower(), "score": 0.95 if kept else 0.6}],
                       written=[own if kept else "Rock"], album="Band — LP", genre_from="track" if kept else "album",
                       album_genres=["Rock"], dissent=kept))
    report.add(Row("/m/Singles/a.flac", "flac", "tagged", "x", predicted=[{"genre": "Pop", "label": "pop", "score": 0.7}],
                   written=["Pop"], genre_from="track"))
    got = {a.name or a.folder: a for a in hr.albums(report.rows)}
    lp = got["Band — LP"]
    assert lp.folder == "/m/Band/LP" and lp.tracks == 3 and lp.decided == ("Rock",) and lp.dissenters == ("2.flac",)
    assert got["/m/Singles"].decided == () and got["/m/Singles"].name == ""
    data = hr.build_data(report)
    row = next(a for a in data["albums"] if a[7] == "Band — LP")
    assert [data["genres"][g] for g in row[8]] == ["Rock"] and row[9] == ["2.flac"]
    page = hr.render(report)
    assert "kept their own genre" in page and "album decision" in page
