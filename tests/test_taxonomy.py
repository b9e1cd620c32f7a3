"""tagger.taxonomy: genre keys, splitting, ID3v1 numbers, styles and the library taxonomy (pure)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagger.taxonomy import (
    DEFAULT_DROP,
    STYLES,
    LearnSettings,
    build_taxonomy,
    genre_key,
    id3v1_genres,
    id3v1_name,
    learn_settings,
    single_keys,
    split_values,
    styled,
)

pytestmark = pytest.mark.pure

# -- genre_key -------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", [
    ["Hip Hop", "hip-hop", "HipHop", "Hip-Hop", "HIP HOP", "hip_hop", "Hip‐Hop", "Hip–Hop", "hip.hop", " Hip  Hop "],
    ["Drum & Bass", "Drum and Bass", "Drum'n'Bass", "drum n bass", "Drum 'n' Bass", "drum ’n’ bass", "Drum&Bass",
     "Drum + Bass", "drum-and-bass", "Drum n' Bass", "DnB", "D&B", "d'n'b", "Ｄｒｕｍ＆Ｂａｓｓ"],
    ["R&B", "RnB", "R 'n' B", "r and b", "R&amp;B".replace("&amp;", "&"), "R & B", "r'n'b"],
    ["Rock & Roll", "Rock and Roll", "Rock 'n' Roll", "Rock'n'Roll", "rock n roll", "Rock ’n’ Roll", "ROCK&ROLL"],
    ["Música", "Musica", "MÚSICA", "Mu\u0301sica"],  # precomposed, plain, upper case, combining accent
    ["Électro", "Electro", "electro"],
    ["Singer/Songwriter", "Singer-Songwriter", "singer songwriter"],
    ["Alt. Rock", "Alt Rock", "alt-rock"],
    ["Jazz+Funk", "Jazz & Funk", "jazz and funk"],
    ["Motörhead Tribute", "Motorhead Tribute"],
    ["Straße", "STRASSE", "strasse"],
    ["Black Metal", "black metal", "Black-Metal", "Black\tMetal"],
])
def test_variants_share_a_key(group):
    keys = {genre_key(name) for name in group}
    assert len(keys) == 1 and "" not in keys, {n: genre_key(n) for n in group}


@pytest.mark.parametrize("a, b", [
    ("R&B", "Rhythm and Blues"),  # contemporary R&B and the older genre: merge in [learn] if you mean one
    ("Rock & Roll", "Rock Roll"),  # "and" is a symbol, not punctuation
    ("Folk, World, & Country", "Folk World Country"),
    ("& Country", "Country"),  # an & that joins nothing is not dropped
    ("Band", "B&"),
    ("Rock", "Pop"),
    ("Hip Hop", "Trip Hop"),
    ("ガ", "カ"),  # a mark that changes a Japanese letter is not an accent
    ("Pop", "Pop 2"),
    ("K-Pop", "Pop"),
])
def test_different_genres_keep_different_keys(a, b):
    assert genre_key(a) != genre_key(b)


@pytest.mark.parametrize("name", ["", " ", "\t\n", "-", " / ", "...", "''", "—"])
def test_nothing_left_is_no_genre(name):
    assert genre_key(name) == ""


def test_and_only_where_it_joins_words():
    assert genre_key("Guns N' Roses Tribute") == genre_key("Guns & Roses Tribute")
    assert genre_key("Don't Stop") == "dontstop"  # the n of "don't" joins nothing
    assert genre_key("Andean") == "andean" and genre_key("Band and Orchestra") == "band&orchestra"
    assert genre_key("And Also") == "andalso"  # a leading "and" joins nothing


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_key_is_idempotent_stable_and_ignores_case_and_edges(name):
    k = genre_key(name)
    assert genre_key(name.upper()) == genre_key(name.lower()) or not name.isascii()
    assert genre_key(f"  {name}\t") == k
    assert genre_key(k) == k  # a key is its own key: keys can be stored and compared again
    assert " " not in k and "-" not in k


# -- ID3v1 -----------------------------------------------------------------------------------------


def test_id3v1_list_is_mutagens():
    assert id3v1_genres()[17] == "Rock" and id3v1_genres()[7] == "Hip-Hop" and len(id3v1_genres()) >= 148


@pytest.mark.parametrize("value, name", [
    ("(17)", "Rock"), ("17", "Rock"), ("(17)Rock", "Rock"), ("(17)rock", "Rock"), (" (9) ", "Metal"),
    ("(RX)", "Remix"), ("(CR)", "Cover"), ("0", "Blues"),
    ("Rock", None), ("(255)", None), ("255", None), ("(17)(9)", None), ("(21)Eurodisco", None), ("", None),
    ("17 Rock", None), ("-1", None), ("(x)", None), ("١٧", None),  # Arabic-Indic digits: not ID3
])
def test_id3v1_name(value, name):
    assert id3v1_name(value) == name


@pytest.mark.parametrize("values, out", [
    (["(17)"], ["Rock"]),
    (["(17)(9)"], ["Rock", "Metal"]),
    (["(17)Rock"], ["Rock"]),
    (["(21)Eurodisco"], ["Ska", "Eurodisco"]),
    (["(RX)(CR)"], ["Remix", "Cover"]),
    (["(255)"], []),
    (["(255)", "Jazz"], ["Jazz"]),
    (["((Foo)"], ["(Foo)"]),
    (["17", "(17)", "Rock"], ["Rock"]),
    (["(17); (9)"], ["Rock", "Metal"]),
    (["(17)Rock/Pop"], ["Rock", "Pop"]),  # mutagen: Rock, Rock/Pop; the refinement splits like any value
    (["(17)/Pop"], ["Rock", "Pop"]),
])
def test_split_names_id3v1_numbers_first(values, out):
    assert split_values(values) == out


# -- split_values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values, out", [
    (["Rock; Pop"], ["Rock", "Pop"]),
    (["Rock;Pop;"], ["Rock", "Pop"]),
    (["Rock\x00Pop"], ["Rock", "Pop"]),
    (["Rock | Pop"], ["Rock", "Pop"]),
    (["Rock\\Pop"], ["Rock", "Pop"]),
    (["Rock\nPop\r\nJazz"], ["Rock", "Pop", "Jazz"]),
    (["  Rock  ", "", "   "], ["Rock"]),
    (["Hip  Hop"], ["Hip Hop"]),
    (["Rock", "rock", "ROCK"], ["Rock"]),
    (["Hip Hop", "hip-hop; Jazz"], ["Hip Hop", "Jazz"]),
    (["Drum & Bass"], ["Drum & Bass"]),
    (["R&B"], ["R&B"]),
    (["Rock & Roll"], ["Rock & Roll"]),
    (["Singer/Songwriter"], ["Singer/Songwriter"]),
    (["Folk, World, & Country"], ["Folk, World, & Country"]),
    (["AC/DC Tribute"], ["AC/DC Tribute"]),
    (["Pop/Funk"], ["Pop/Funk"]),  # an ID3v1 name of its own
    (["Rock/Pop"], ["Rock", "Pop"]),  # both ID3v1 names
    (["Rock, Pop"], ["Rock", "Pop"]),
    (["Rock/Pop, Jazz"], ["Rock", "Pop", "Jazz"]),
    (["Rock/"], ["Rock"]),
    (["Rock/Chanson Française"], ["Rock/Chanson Française"]),  # not a genre here: stays whole
    ([], []),
])
def test_split_values(values, out):
    assert split_values(values) == out


def test_soft_separators_split_by_the_librarys_own_genres():
    assert split_values(["Chanson Française/Rock"], {genre_key("Chanson Française")}) == ["Chanson Française", "Rock"]
    assert split_values(["Romantic Classical, Opera"], {"romanticclassical"}) == ["Romantic Classical", "Opera"]
    # a name that is itself a known genre stays whole even where its parts are genres too
    assert split_values(["Rock/Pop"], {"rockpop"}) == ["Rock/Pop"]
    # "&" never splits, whatever is known
    assert split_values(["Rock & Pop"], {"rock", "pop"}) == ["Rock & Pop"]
    assert split_values("Rock; Pop") == ["Rock", "Pop"]  # one string is one value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=5))
def test_split_output_is_clean(values):
    out = split_values(values)
    keys = [genre_key(g) for g in out]
    assert all(keys) and len(set(keys)) == len(keys)
    assert all(g == g.strip() and g and not any(c in g for c in ";\x00|\\\n\r") for g in out)
    assert split_values(out) == out  # splitting again changes nothing


def test_single_keys_are_the_librarys_single_values():
    keys = single_keys([["Rock/Pop", "Jazz; Chanson"], ["(17)"], ["Folk, World, & Country"]])
    assert keys == {"jazz", "chanson", "rock"}


# -- styled ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, style, out", [
    ("Hip-Hop", "as-is", "Hip-Hop"),
    ("hip hop", "beets", "Hip Hop"), ("Hip-Hop", "beets", "Hip Hop"), ("hiphop", "beets", "Hip Hop"),
    ("drum n bass", "beets", "Drum and Bass"), ("rnb", "beets", "R&B"), ("Rock & Roll", "beets", "Rock and Roll"),
    ("post-punk", "beets", "Post-Punk"), ("DEATH METAL", "beets", "Death Metal"), ("edm", "beets", "EDM"),
    ("Romantic Classical", "beets", "Romantic Classical"), ("music of the andes", "beets", "Music of the Andes"),
    ("Classical", "beets", "Classical"), ("blues", "beets", "Blues"), ("alternative rock", "beets", "Alternative Rock"),
    ("Hip Hop", "id3v1", "Hip-Hop"), ("rnb", "id3v1", "R&B"), ("rock and roll", "id3v1", "Rock & Roll"),
    ("drum n bass", "id3v1", "Drum & Bass"), ("jpop", "id3v1", "JPop"), ("Chanson Française", "id3v1", "Chanson Française"),
    ("Hip-Hop", "lower", "hip-hop"), ("R&B", "lower", "r&b"), ("Rock", "lower", "rock"), ("Straße", "lower", "straße"),
])
def test_styled(name, style, out):
    assert styled(name, style) == out


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="unknown genre style 'camel'"):
        styled("Rock", "camel")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=25), st.sampled_from(STYLES))
def test_styles_never_change_the_genre(name, style):
    """A style respells a genre; it never turns it into another one (or none)."""
    out = styled(name, style)
    assert genre_key(out) == genre_key(name)
    assert styled(out, style) == out  # a style applied twice changes nothing more


def test_tag_options_styles_are_the_taxonomys():
    from tagger.options import GENRE_STYLES

    assert GENRE_STYLES == STYLES


# -- the taxonomy ----------------------------------------------------------------------------------


def _tracks(spec):
    """[(values, album, copies)] -> build_taxonomy items."""
    return [(values, album) for values, album, copies in spec for _ in range(copies)]


def test_counts_names_variants_and_left_out():
    items = _tracks([
        (["Hip Hop"], "a1", 5), (["hip-hop"], "a2", 3), (["HipHop"], "a3", 1),
        (["Rock; Pop"], "a4", 4), (["Rock", "rock"], "a5", 2), (["Rock/Pop"], "a6", 1),
        (["Polka"], "a7", 9),  # enough tracks, one album
        (["Other"], "a8", 6), (["(255)"], "a8", 1), (["Unknown"], "a8", 1),  # mutagen names (255) so in MP3s
        ([], "a9", 2),
    ])
    t = build_taxonomy(items, LearnSettings(min_tracks=3, min_albums=2))
    got = {g.key: g for g in t.genres}
    assert list(got) == ["hiphop", "rock", "pop"]  # most tracks first
    hh = got["hiphop"]
    assert (hh.name, hh.tracks, hh.albums) == ("Hip Hop", 9, 3)
    assert hh.variants == (("Hip Hop", 5), ("hip-hop", 3), ("HipHop", 1))
    assert (got["rock"].tracks, got["rock"].albums) == (7, 3)  # "Rock", "rock" on one track count once
    assert (got["pop"].tracks, got["pop"].albums) == (5, 2)
    left = {g.name: why for g, why in t.left_out}
    assert left["Polka"] == "too few albums (1 < 2)"
    assert left["Other"].startswith("dropped by [learn] drop") and left["Unknown"] == left["Other"]
    # (255) names nothing: that track has no genre, like the two without one
    assert (t.tracks_labelled, t.tracks_unlabelled, t.tracks_without_genre) == (9 + 7, 9 + 6 + 1 + 1 + 2, 3)
    assert t.labels_of(["hip hop; ROCK", "Hip-Hop", "Polka"]) == ("hiphop", "rock")
    assert t.names() == {"hiphop": "Hip Hop", "rock": "Rock", "pop": "Pop"}


def test_describe_is_the_table_learn_prints():
    items = _tracks([(["Hip Hop"], "a1", 2), (["hip-hop"], "a2", 1), (["Jazz"], "a3", 1), ([], "a4", 1)])
    lines = build_taxonomy(items, LearnSettings(min_tracks=2, min_albums=1)).describe()
    assert lines[0] == "Genres to learn: 1"
    assert lines[1].split() == ["genre", "tracks", "albums", "variants", "folded", "in"]
    assert lines[2].split() == ["Hip", "Hop", "3", "2", "hip-hop", "(1)"]
    assert lines[3] == "Left out: 1" and lines[4].split() == ["Jazz", "too", "few", "tracks", "(1", "<", "2)"]
    assert lines[5] == "Tracks: 3 labelled, 2 unlabelled (1 without a genre, 1 with only genres left out)"


def test_name_ties_do_not_depend_on_walk_order():
    a = [(["rock"], "x"), (["Rock"], "y")]
    s = LearnSettings(min_tracks=1, min_albums=1)
    assert build_taxonomy(a, s).genres[0].name == build_taxonomy(a[::-1], s).genres[0].name == "Rock"


def test_merge_rename_drop():
    items = _tracks([(["Alt Rock"], "a1", 5), (["Alternative"], "a2", 2), (["alt. rock"], "a3", 1),
                     (["hiphop"], "a4", 3), (["Christmas"], "a5", 3), (["Other"], "a6", 3), (["Indie"], "a7", 3)])
    s = LearnSettings(merge={"Alt Rock": "Alternative", "indie": "alt rock"}, rename={"Hip Hop": "Hip-Hop"},
                      drop=frozenset({"christmas"}), min_tracks=1, min_albums=1)
    t = build_taxonomy(items, s)
    got = {g.key: g for g in t.genres}
    alt = got["alternative"]
    # merged by key, chain followed (indie -> alt rock -> alternative); the target's own spelling names it
    assert (alt.name, alt.tracks, alt.albums) == ("Alternative", 11, 4)
    assert dict(alt.variants) == {"Alt Rock": 5, "Alternative": 2, "alt. rock": 1, "Indie": 3}
    assert got["hiphop"].name == "Hip-Hop"
    assert got["other"].name == "Other"  # drop given: the default is replaced
    assert [g.name for g, _ in t.left_out] == ["Christmas"] and t.left_out[0][1] == "dropped by [learn] drop"
    assert t.labels_of(["INDIE"]) == ("alternative",)


def test_merge_target_absent_from_the_library_is_named_as_the_config_writes_it():
    t = build_taxonomy([(["alt rock"], "a")], LearnSettings(merge={"Alt Rock": "Alternative Rock"},
                                                           min_tracks=1, min_albums=1))
    assert t.names() == {"alternativerock": "Alternative Rock"}


def test_min_tracks_and_min_albums_defaults_and_both_reasons():
    s = LearnSettings()
    assert (s.min_tracks, s.min_albums, s.drop) == (20, 3, DEFAULT_DROP)
    t = build_taxonomy([(["Jazz"], "a")] * 2, s)
    assert t.genres == () and t.left_out[0][1] == "too few tracks (2 < 20); too few albums (1 < 3)"
    assert t.tracks_labelled == 0 and t.tracks_unlabelled == 2


def test_soft_split_uses_the_librarys_genres():
    items = [(["Chanson"], "a"), (["Chanson/Rock"], "b"), (["Singer/Songwriter"], "c")]
    t = build_taxonomy(items, LearnSettings(min_tracks=1, min_albums=1))
    assert {g.name: g.tracks for g in t.genres} == {"Chanson": 2, "Rock": 1, "Singer/Songwriter": 1}


@pytest.mark.parametrize("kw, words", [
    (dict(merge={"A": "B", "B": "A"}), ["go round in a circle"]),
    (dict(merge={"A": "a"}), ["into itself"]),
    (dict(merge={"Alt Rock": "Alternative"}, drop=frozenset({"alt-rock"})), ["also dropped"]),
    (dict(merge={"Alt Rock": "Alternative"}, rename={"alt rock": "X"}), ["rename 'alt rock'", "merged into"]),
    (dict(merge={"Alt Rock": "Alternative", "alt-rock": "Indie"}), ["same genre"]),
    (dict(merge={"--": "Rock"}), ["not a genre name"]),
    (dict(min_tracks=0), ["min-tracks", "at least 1"]),
    (dict(min_albums=True), ["min-albums"]),
])
def test_contradictory_settings_are_refused(kw, words):
    with pytest.raises(ValueError) as e:
        LearnSettings(**kw)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_learn_settings_from_a_parsed_config():
    assert learn_settings({}) == LearnSettings()
    s = learn_settings({"learn": {"merge": {"a": "b"}, "drop": ("x",), "min_tracks": 5}})
    assert s == LearnSettings(merge={"a": "b"}, drop=frozenset({"x"}), min_tracks=5)
    assert dataclasses.replace(s, min_albums=7).min_albums == 7  # command-line options override


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(
    ["Rock", "rock", "Hip Hop", "hip-hop", "Jazz; Rock", "(17)", "Pop/Rock", "", "Other", "R&B", "RnB"]),
    max_size=3), st.sampled_from(["a", "b", "c", "d"])), max_size=30))
def test_taxonomy_invariants(items):
    t = build_taxonomy(items, LearnSettings(min_tracks=2, min_albums=2))
    every = list(t.genres) + [g for g, _ in t.left_out]
    assert len({g.key for g in every}) == len(every)
    assert [g.tracks for g in t.genres] == sorted((g.tracks for g in t.genres), reverse=True)
    assert t.tracks_labelled + t.tracks_unlabelled == len(items)
    for g in every:
        assert sum(n for _, n in g.variants) >= g.tracks >= g.albums >= 1
        assert g.name in dict(g.variants)
    for values, _ in items:
        assert set(t.labels_of(values)) <= {g.key for g in t.genres}
    # the walk order changes nothing
    assert build_taxonomy(items[::-1], LearnSettings(min_tracks=2, min_albums=2)).genres == t.genres
