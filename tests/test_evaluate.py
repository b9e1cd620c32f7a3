"""``tagger evaluate``: the label -> genre mapping and its co-occurrence rule, the agreement
figures on constructed data, the reports, the ``[evaluate]`` config table, and the command end to
end on small generated libraries (crafted stored analyses: no Ray; one run analyses a corrupt
file on Ray with the tiny test model)."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tagger.aggregate import DEFAULT_DISPLAY
from tagger.evaluate import (
    BY_CONFIG,
    BY_COOCCURRENCE,
    BY_NAME,
    EVALUATED,
    FAILED,
    NO_GENRE,
    NO_PERSON,
    UNMAPPED,
    CooccurrenceRule,
    NothingToCompare,
    build_evaluation,
    chosen_indices,
    derive_mapping,
    evaluate,
    summarise_unlabelled,
    tag_decision,
    written_names,
)
from tagger.taxonomy import genre_key

GTZAN = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def _written(labels=GTZAN, user_map=None):
    return written_names(labels, {}, user_map)


def _names(*genres: str) -> dict[str, str]:
    return {genre_key(g): g for g in genres}


def _k(*genres: str) -> tuple[str, ...]:
    return tuple(genre_key(g) for g in genres)


# ---------------------------------------------------------------------------------------------
# mapping
# ---------------------------------------------------------------------------------------------

def test_exact_mapping_by_the_written_name_and_by_the_label():
    names = _names("Hip Hop", "Rock", "Metal", "Electronic")
    # the user's [genres] table writes metal as "Heavy"; the label itself still names the library's Metal
    written = _written(user_map={"metal": "Heavy"})
    m = derive_mapping(GTZAN, written, names, top1=[], truth=[])
    by = {p.label: p for p in m.pairs}
    assert by["hiphop"].genre == "hiphop" and by["hiphop"].how == BY_NAME
    assert "Hip-Hop" in by["hiphop"].detail and "Hip Hop" in by["hiphop"].detail  # one genre, two spellings
    assert by["rock"].genre == "rock" and by["rock"].how == BY_NAME
    assert by["metal"].genre == "metal" and "its label" in by["metal"].detail
    assert by["disco"].genre is None and by["disco"].how == UNMAPPED
    assert m.unreached(list(names)) == ["electronic"]
    assert set(m.unmapped_labels()) == {"blues", "classical", "country", "disco", "jazz", "pop", "reggae"}


def test_learnt_model_labels_are_genre_keys_and_map_directly():
    names = _names("Death Metal", "Romantic Classical", "Chanson")
    labels = tuple(names)  # a model learnt from this library: its labels are the genre keys
    m = derive_mapping(labels, written_names(labels, names, None), names, top1=[], truth=[])
    assert [p.genre for p in m.pairs] == list(labels)
    assert all(p.how == BY_NAME for p in m.pairs)


def _cooc(files: int, carrying: dict[str, int], *, others: dict[str, int] | None = None, rule=None):
    """Label 'disco' is top-1 of ``files`` files, of which ``carrying[g]`` carry genre g (each a
    single-genre file; each of the rest a genre of its own); ``others``: files whose top-1 is
    rock, by genre."""
    truth, top1 = [], []
    assigned = 0
    for g, n in carrying.items():
        truth += [_k(g)] * n
        assigned += n
    singles = [f"Misc {chr(65 + i)}" for i in range(files - assigned)]
    truth += [_k(g) for g in singles]
    top1 += [GTZAN.index("disco")] * files
    for g, n in (others or {}).items():
        truth += [_k(g)] * n
        top1 += [GTZAN.index("rock")] * n
    names = _names("Funk", "Soul", "Rock", *singles, *(others or {}))
    m = derive_mapping(GTZAN, _written(), names, top1, truth, rule=rule)
    return next(p for p in m.pairs if p.label == "disco")


def test_cooccurrence_maps_at_the_rule_s_boundaries():
    big = {"Rock": 90}  # a library where Funk is rare, so a share of 50 % is well above chance
    p = _cooc(10, {"Funk": 5}, others=big)  # exactly 10 files, exactly 50 %: mapped
    assert (p.genre, p.how, p.top1_files, p.carrying) == ("funk", BY_COOCCURRENCE, 10, 5)
    assert "5 of the 10 files" in p.detail and "Funk" in p.detail
    p = _cooc(9, {"Funk": 9}, others=big)  # 9 files, all Funk: too few
    assert p.genre is None and "only 9 files" in p.detail and "needs 10" in p.detail
    p = _cooc(10, {"Funk": 4}, others=big)  # 40 %: under half
    assert p.genre is None and "under 50%" in p.detail
    p = _cooc(10, {"Funk": 4, "Soul": 4}, others=big)  # a tie between the two most common
    assert p.genre is None and "Funk and Soul equally often" in p.detail


def test_cooccurrence_needs_more_than_chance():
    # Rock is 60 % of the library; the label's files are 70 % Rock: that is chance, not a pair
    truth = [_k("Rock")] * 7 + [_k("Funk")] * 3 + [_k("Rock")] * 53 + [_k("Jazz")] * 37
    top1 = [GTZAN.index("disco")] * 10 + [GTZAN.index("jazz")] * 90
    m = derive_mapping(GTZAN, _written(), _names("Rock Music", "Funk", "Jazz"), top1, truth)
    # (the library calls it "Rock Music", so the label rock does not match it by name)
    disco = next(p for p in m.pairs if p.label == "disco")
    assert disco.genre is None and "not 1.5 times" in disco.detail
    # a looser rule takes it
    m = derive_mapping(GTZAN, _written(), _names("Rock Music", "Funk", "Jazz"), top1, truth,
                       rule=CooccurrenceRule(min_lift=1.0))
    assert next(p for p in m.pairs if p.label == "disco").genre == "rock"


def test_multi_genre_files_count_for_each_of_their_genres():
    truth = [_k("Funk", "Soul")] * 6 + [_k("Soul")] * 4 + [_k("Rock")] * 90
    top1 = [GTZAN.index("disco")] * 10 + [GTZAN.index("rock")] * 90
    p = next(p for p in derive_mapping(GTZAN, _written(), _names("Funk", "Soul", "Rock"), top1, truth).pairs
             if p.label == "disco")
    assert (p.genre, p.carrying, p.top1_files) == ("soul", 10, 10)


def test_config_overrides_win_and_odd_entries_are_noted():
    names = _names("Hip Hop", "Rap", "Dance")
    m = derive_mapping(GTZAN, _written(), names, top1=[], truth=[],
                       overrides={"hiphop": "rap", "disco": "Dance", "pop": "Schlager", "techno": "Dance"})
    by = {p.label: p for p in m.pairs}
    assert (by["hiphop"].genre, by["hiphop"].how) == ("rap", BY_CONFIG)  # over the exact Hip Hop
    assert by["disco"].genre == "dance"
    assert by["pop"].genre == "schlager" and "no file of this library carries it" in by["pop"].detail
    assert any("no label 'techno'" in n for n in m.notes)


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------

LABELS3 = ("alpha", "beta", "gamma")


def _three():
    """Labels alpha -> A, beta -> B (config), gamma -> nothing; five files."""
    names = _names("A", "B", "C")
    mapping = derive_mapping(LABELS3, written_names(LABELS3, {}, None), names, top1=[], truth=[],
                             overrides={"alpha": "A", "beta": "B"})
    paths = ["/m/1", "/m/2", "/m/3", "/m/4", "/m/5"]
    truth = [_k("A"), _k("A"), _k("B"), _k("C"), _k("A", "B")]
    scores = np.array([
        [0.9, 0.05, 0.05],   # A, model A (confident, right)
        [0.2, 0.7, 0.1],     # A, model B: disagrees at 0.7
        [0.3, 0.35, 0.35],   # B, model beta/gamma tie -> argmax beta (first), under threshold: uncertain
        [0.1, 0.1, 0.8],     # C, model gamma (unmapped): disagrees at 0.8
        [0.5, 0.45, 0.05],   # A+B, model A and B (top-k 2)
    ])
    return paths, truth, scores, mapping, names


def test_agreement_figures_on_constructed_data():
    paths, truth, scores, mapping, names = _three()
    decisions = [tag_decision(s, LABELS3, top_k=2, min_confidence=0.4) for s in scores]
    chosen = [chosen_indices(d, LABELS3) for d in decisions]
    assert chosen == [(0,), (1,), (), (2,), (0, 1)]
    a = evaluate(paths, truth, scores, chosen, labels=LABELS3, written=written_names(LABELS3, {}, None),
                 genres=list(names), names=names, mapping=mapping)
    assert a.files == 5
    # top-1: file1 A ok, file2 B no, file3 beta->B ok, file4 gamma->none no, file5 A ok
    assert (a.top1.hits, a.top1.n) == (3, 5)
    assert 0 < a.top1.low < 0.6 < a.top1.high < 1
    # on files with a genre some label maps to (not file4, C): 3 of 4
    assert (a.top1_reachable.hits, a.top1_reachable.n) == (3, 4)
    # written genres: A (ok), B (no), gamma (no: not a library genre), A (ok), B (ok)
    assert (a.precision.hits, a.precision.n) == (3, 5)
    assert (a.coverage.hits, a.coverage.n) == (4, 5)
    assert (a.file_precision.hits, a.file_precision.n) == (2, 4)  # first written genre: 1 ok, 2 no, 4 no, 5 ok
    pg = a.per_genre
    assert (pg["A"]["tp"], pg["A"]["predicted"], pg["A"]["support"]) == (2, 2, 3)
    assert pg["A"]["precision"] == 1.0 and pg["A"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert (pg["B"]["tp"], pg["B"]["predicted"], pg["B"]["support"]) == (1, 2, 2)
    assert pg["C"]["predicted"] == 0 and pg["C"]["precision"] is None and pg["C"]["recall"] == 0.0
    # confusion: single-genre files 1-4; rows A, B, C, (no genre)
    assert a.single_genre_files == 4 and a.confusion_names[-1] == NO_GENRE
    cm = a.confusion
    assert cm[0, 0] == 1 and cm[0, 1] == 1 and cm[1, 1] == 1 and cm[2, 3] == 1 and cm.sum() == 4
    # disagreements: file4 (0.8, unmapped) before file2 (0.7)
    assert [d.path for d in a.disagreements] == ["/m/4", "/m/2"]
    d4, d2 = a.disagreements
    assert d4.top_genre is None and d4.top_written == "Gamma" and d4.person == ("C",) and d4.person_score is None
    assert d2.top_genre == "B" and d2.person_score == pytest.approx(0.2) and d2.would_write == ("Beta",)
    assert d2.ranked[0] == ("Beta", pytest.approx(0.7))
    # the limit
    a1 = evaluate(paths, truth, scores, chosen, labels=LABELS3, written=written_names(LABELS3, {}, None),
                  genres=list(names), names=names, mapping=mapping, disagreements=1)
    assert [d.path for d in a1.disagreements] == ["/m/4"]


def test_decision_is_tags_own_with_top_k_and_threshold():
    s = np.array([0.39, 0.41, 0.2])
    d = tag_decision(s, LABELS3, top_k=1, min_confidence=0.4)
    assert chosen_indices(d, LABELS3) == (1,)
    assert chosen_indices(tag_decision(s, LABELS3, top_k=2, min_confidence=0.38), LABELS3) == (1, 0)
    assert chosen_indices(tag_decision(s, LABELS3, top_k=3, min_confidence=0.5), LABELS3) == ()


def test_decision_uses_per_label_thresholds():
    s = np.array([0.5, 0.45, 0.05])
    assert chosen_indices(tag_decision(s, LABELS3, top_k=1, min_confidence=0.4, thresholds={"alpha": 0.6}),
                          LABELS3) == (1,)  # alpha misses its own 0.6; beta reaches the 0.4 of the rest
    assert chosen_indices(tag_decision(s, LABELS3, top_k=1, min_confidence=0.4,
                                       thresholds={"alpha": 0.6, "beta": 0.5}), LABELS3) == ()


def test_unlabelled_summary():
    ds = [tag_decision(np.array(s), LABELS3, top_k=1, min_confidence=0.4)
          for s in ([0.9, 0.1, 0], [0.8, 0.1, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.34, 0.33, 0.33])]
    u = summarise_unlabelled(ds, [True, False, False, False, False])
    assert u.files == 5 and u.tagger_owned == 1 and u.uncertain == 1
    assert u.would_write == (("Alpha", 2), ("Beta", 1), ("Gamma", 1))
    assert "tag would write Alpha 2, Beta 1, Gamma 1; 1 uncertain" in u.text()


# ---------------------------------------------------------------------------------------------
# the whole evaluation from tracks (as tagger.library.collect returns them)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Analysis:
    scores: tuple[float, ...]


@dataclass(frozen=True)
class _Track:
    path: str
    genres: tuple[str, ...]
    tagger_owned: bool
    album: str
    artist: str = ""
    analysis: _Analysis | None = None


@dataclass(frozen=True)
class _Meta:
    labels: tuple[str, ...] = ("blues", "hiphop", "rock")
    display_names: dict = None  # type: ignore[assignment]
    name: str = "test"
    model_id: str = "0123456789abcdef"
    architecture: str = "tiny"
    metrics: dict = None  # type: ignore[assignment]

    def __post_init__(self):
        object.__setattr__(self, "display_names", self.display_names or {})
        object.__setattr__(self, "metrics", self.metrics or {})


def _t(path, genres=(), owned=False, scores=None, album="a"):
    return _Track(path, tuple(genres), owned, album, analysis=_Analysis(tuple(scores)) if scores else None)


def test_build_evaluation_counts_and_rows():
    tracks = [
        _t("/m/1", ["Hip Hop"], scores=[0.1, 0.8, 0.1]),
        _t("/m/2", ["hip-hop"], scores=[0.1, 0.2, 0.7], album="b"),
        _t("/m/3", ["Rock; Blues"], scores=[0.45, 0.05, 0.5]),
        _t("/m/4", [], scores=[0.1, 0.1, 0.8]),
        _t("/m/5", ["Rock"], owned=True, scores=[0.2, 0.2, 0.6]),
        _t("/m/6", ["Rock"]),  # no analysis: failed
    ]
    ev = build_evaluation(tracks, [("/m/6", "not an audio file"), ("/m/7", "cannot read tags")], meta=_Meta(),
                          top_k=1, min_confidence=0.4)
    lib = ev.library
    assert (lib["evaluated"], lib["no_person"], lib["tagger_owned"], lib["failed"], lib["files"]) == (3, 2, 1, 2, 7)
    assert [(g, t) for g, t, _ in ev.taxonomy] == [("Hip Hop", 2), ("Rock", 2), ("Blues", 1)]
    rows = {r["path"]: r for r in ev.rows}
    assert rows["/m/1"]["status"] == EVALUATED and rows["/m/1"]["top1_agrees"] is True
    assert rows["/m/1"]["top_genre"] == "Hip-Hop" and rows["/m/1"]["top_maps_to"] in ("Hip Hop", "hip-hop")
    assert rows["/m/2"]["top1_agrees"] is False and rows["/m/2"]["would_write"] == ["Rock"]
    assert rows["/m/3"]["person_genres"] == ["Rock", "Blues"] and rows["/m/3"]["write_agrees"] is True
    assert rows["/m/4"]["status"] == NO_PERSON and rows["/m/5"]["status"] == NO_PERSON
    assert rows["/m/5"]["reason"] == "its genres are tagger's own"
    assert rows["/m/6"]["status"] == FAILED and rows["/m/6"]["reason"] == "not an audio file"
    assert rows["/m/7"]["status"] == FAILED
    assert ev.unlabelled.files == 2 and ev.unlabelled.would_write == (("Rock", 2),)
    # every genre counts, however few files carry it (Blues: one)
    assert "blues" in ev.agreement.genres
    text = "\n".join(ev.summary_lines())
    assert "3 files with a person's genre" in text and "top-1 agreement 66.7% (2/3" in text
    assert "hiphop -> " in text and "2 files without a person's genre (1 with tagger's own genres)" in text


def test_learn_table_merges_apply_to_genres_and_mapping():
    from tagger.taxonomy import LearnSettings

    tracks = [_t("/m/1", ["Hip Hop"], scores=[0.1, 0.8, 0.1]), _t("/m/2", ["Rap"], scores=[0.1, 0.8, 0.1]),
              _t("/m/3", ["Other"], scores=[0.1, 0.1, 0.8])]
    ev = build_evaluation(tracks, [], meta=_Meta(), top_k=1, min_confidence=0.4,
                          settings=LearnSettings(merge={"Hip Hop": "Rap"}))
    hiphop = next(p for p in ev.agreement.mapping.pairs if p.label == "hiphop")
    assert hiphop.genre == "rap" and ev.agreement.top1.hits == 2  # Hip-Hop is the library's Rap now
    assert ev.library["evaluated"] == 2 and any("[learn] table drops" in n for n in ev.notes)  # Other: dropped


@pytest.mark.parametrize("tracks, words", [
    ([_t("/m/1", scores=[0.2, 0.2, 0.6]), _t("/m/2", scores=[0.2, 0.2, 0.6])], ["2 without a genre", "0 with"]),
    ([_t("/m/1", ["Rock"], owned=True, scores=[0.2, 0.2, 0.6])], ["1 with tagger's own genres"]),
    ([], ["0 files"]),
])
def test_nothing_to_compare(tracks, words):
    with pytest.raises(NothingToCompare) as exc:
        build_evaluation(tracks, [], meta=_Meta(), top_k=1, min_confidence=0.4)
    msg = str(exc.value)
    assert "\n" not in msg and "no file carries a genre a person wrote" in msg
    assert all(w in msg for w in words), msg


def test_reports_of_an_evaluation(tmp_path):
    from tagger.evaluate_report import render, to_csv, to_json, write

    tracks = [_t(f"/m/{i}", [g], scores=s, album=g) for i, (g, s) in enumerate(
        [("Rock", [0.1, 0.1, 0.8]), ("Rock", [0.7, 0.1, 0.2]), ("Hip Hop", [0.1, 0.8, 0.1]), ("Blues", [0.9, 0, 0.1])])]
    tracks.append(_t("/m/4caf\udce9", ["Jazz"], scores=[0.1, 0.1, 0.8]))  # a name that is not UTF-8
    ev = build_evaluation(tracks + [_t("/m/x", scores=[0.1, 0.2, 0.7])], [], meta=_Meta(), top_k=1,
                          min_confidence=0.4)
    data = json.loads(to_json(ev))
    assert data["command"] == "evaluate" and data["files"][0]["path"] == "/m/0"
    assert data["top1_agreement"]["hits"] == 3 and data["top1_agreement"]["n"] == 5
    assert data["per_genre"]["Rock"]["support"] == 2
    assert data["confusion"]["names"][-1] == NO_GENRE and len(data["confusion"]["matrix"]) == 5
    assert data["mapping_rule"]["min_files"] == 10
    assert {m["label"]: m["how"] for m in data["mapping"]} == {"blues": "name", "hiphop": "name", "rock": "name"}
    assert data["no_person_genre"]["would_write"] == [{"genre": "Rock", "files": 1}]
    rows = list(csv.DictReader(io.StringIO(to_csv(ev))))
    assert len(rows) == 6 and rows[1]["top1_agrees"] == "no" and rows[1]["top_genre"] == "Blues"
    assert rows[4]["path"] == "/m/4caf\\xe9"  # an odd byte shows as \xNN, never a crash
    page = render(ev, png=b"\x89PNG fake")
    for part in ('id="mapping-table"', 'id="genre-table"', 'id="confusion-table"', 'id="disagreements-table"',
                 "data:image/png;base64,", 'id="unlabelled"'):
        assert part in page, part
    assert "http://" not in page and "https://" not in page  # self-contained
    out = write(ev, tmp_path / "e.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# ---------------------------------------------------------------------------------------------
# the [evaluate] config table
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ("evaluate = 3\n", ["'evaluate' must be a table"]),
    ("[evaluate]\nmaps = {disco = 'Dance'}\n", ["[evaluate] unknown key 'maps'", "map = {"]),
    ("[evaluate]\nmap = 'disco'\n", ["[evaluate] map: expected a table", "a string"]),
    ("[evaluate]\nmap = {disco = 3}\n", ["[evaluate] map: disco: expected the library genre", "an integer"]),
    ("[evaluate]\nmap = {disco = ''}\n", ["[evaluate] map: disco", "non-empty"]),
    ("[evaluate]\nmap = {disco = \"Dan\\nce\"}\n", ["[evaluate] map: disco", "newline"]),
    ("[evaluate]\nmap = {\"dis\\tco\" = 'Dance'}\n", ["[evaluate] map: the label", "tab"]),
])
def test_evaluate_table_errors_are_one_line(tmp_path, text, words):
    from tagger.config import load_config
    from tagger.errors import FatalError

    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(FatalError) as exc:
        load_config(p, explicit=True)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(p)), msg
    assert all(w in msg for w in words), msg


def test_evaluate_table_is_read_and_left_out_of_tags_options(tmp_path):
    from tagger.config import evaluate_map, load_config, resolve

    p = tmp_path / "c.toml"
    p.write_text("[tag]\ntop-k = 2\n[evaluate]\nmap = {disco = ' Dance ', \"r&b\" = 'Soul'}\n", encoding="utf-8")
    values, _ = load_config(p, explicit=True)
    assert evaluate_map(values) == {"disco": "Dance", "r&b": "Soul"}
    options, _ = resolve({}, set(), values, p)
    assert options.top_k == 2
    assert evaluate_map({}) == {}


def test_default_display_names_match_the_library_spellings():
    # the exact rule rests on these: GTZAN's hiphop is written Hip-Hop, one genre with "Hip Hop"
    assert genre_key(DEFAULT_DISPLAY["hiphop"]) == genre_key("Hip Hop") == genre_key("hiphop")
    assert genre_key(DEFAULT_DISPLAY["rnb"]) == genre_key("R&B")


# ---------------------------------------------------------------------------------------------
# end to end (CliRunner)
# ---------------------------------------------------------------------------------------------

TINY = ("blues", "classical", "hiphop", "jazz", "rock")  # tests.conftest.TINY_LABELS


def _scores(**kw) -> tuple[float, ...]:
    v = np.zeros(len(TINY))
    for k, x in kw.items():
        v[TINY.index(k)] = x
    rest = [i for i, x in enumerate(v) if x == 0]
    v[rest] = (1 - v.sum()) / len(rest)
    return tuple(float(x) for x in v)


def _flac(path: Path, *, genre=None, album="", artist="", seed=0) -> Path:
    import mutagen
    import soundfile as sf

    from tests.conftest import tone

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(1.0, sr=8000, freq=200 + 37 * seed, seed=seed), 8000)
    f = mutagen.File(path)
    if f.tags is None:
        f.add_tags()
    for k, v in (("ALBUM", album), ("ARTIST", artist), ("ALBUMARTIST", artist)):
        if v:
            f.tags[k] = [v]
    if genre:
        f.tags["GENRE"] = genre if isinstance(genre, list) else [genre]
    f.save()
    return path


def _store(db: Path, model, analyses: dict[Path, tuple[float, ...]]) -> None:
    """Analyses as a dry run stores them (with an embedding, as the musicnn models keep one)."""
    from tagger.modelmeta import load_meta, locate
    from tagger.state import StateDB, StoredAnalysis

    mid = load_meta(locate(str(model.weights))).model_id
    with StateDB(db) as state:
        for p, sc in analyses.items():
            st = os.stat(p)
            state.store_analysis(StoredAnalysis(
                path=str(p), model_id=mid, size=st.st_size, mtime_ns=st.st_mtime_ns, scores=sc, chunks=10,
                seconds=30.0, sampling="adaptive:60+rest/whole<=900", duration=30.0, backbone="test-backbone",
                embedding=(0.0, 1.0, 0.5), analysed_at="2026-01-01T00:00:00Z", run_id="test"))
        state.flush()


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def _config(tmp_path: Path, text: str = "") -> str:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return str(p)


def _cli(args):
    from tagger.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def small_library(tmp_path, tiny_model):
    """Albums with a person's genres in messy spellings, untagged files, and crafted analyses."""
    lib = tmp_path / "lib"
    files: dict[Path, tuple[float, ...]] = {}
    for i in range(4):
        files[_flac(lib / "Rock Album" / f"{i}.flac", genre="Rock", album="R", artist="Band", seed=i)] = \
            _scores(rock=0.8 if i < 3 else 0.3, jazz=0.1 if i < 3 else 0.6)
    for i, g in enumerate(["Hip Hop", "hip-hop", "HipHop"]):
        files[_flac(lib / "Rap" / f"{i}.flac", genre=g, album="H", artist="MC", seed=10 + i)] = _scores(hiphop=0.9)
    files[_flac(lib / "Mixed" / "0.flac", genre="Rock; Blues", album="M", artist="Duo", seed=20)] = \
        _scores(blues=0.5, rock=0.3)
    files[_flac(lib / "Mixed" / "1.flac", genre="Electronic", album="M", artist="Duo", seed=21)] = \
        _scores(jazz=0.95)  # a genre no label reaches; the most confident disagreement
    for i in range(2):
        files[_flac(lib / "Untagged" / f"{i}.flac", seed=30 + i)] = _scores(classical=0.7 if i else 0.3)
    db = tmp_path / "state.db"
    _store(db, tiny_model, files)
    return lib, db


def test_evaluate_end_to_end_reports_and_nothing_written(tmp_path, small_library, tiny_model):
    lib, db = small_library
    before = _snapshot(lib)
    out = tmp_path / "out"
    out.mkdir()
    cfg = _config(tmp_path, "[evaluate]\nmap = {classical = 'Electronic'}\n")
    r = _cli(["evaluate", lib, "--model", tiny_model.weights, "--state-db", db, "--config", cfg,
              "--report", out / "e.json", "--report", out / "e.csv", "--report", out / "e.html"])
    assert r.exit_code == 0, r.output
    assert _snapshot(lib) == before  # bytes and mtimes: nothing was written to any file
    text = r.stdout
    assert "evaluate: 9 files with a person's genre" in text and "2 without one, 0 failed" in text
    assert "hiphop -> Hip Hop  [name:" in text and "classical -> Electronic  [config:" in text
    assert "unmapped labels: jazz" in text
    # top-1: rock 3/4, hiphop 3/3, mixed blues ok, electronic (jazz, unmapped) no -> 7/9
    assert "top-1 agreement 77.8% (7/9" in text
    data = json.loads((out / "e.json").read_text(encoding="utf-8"))
    assert data["library"]["evaluated"] == 9 and data["no_person_genre"]["files"] == 2
    assert data["disagreements"][0]["path"].endswith("Mixed/1.flac")
    assert data["disagreements"][0]["person"] == ["Electronic"] and data["disagreements"][0]["top_score"] > 0.9
    assert data["per_genre"]["Hip Hop"]["support"] == 3  # three spellings, one genre
    assert data["no_person_genre"]["would_write"] == [{"genre": "Classical", "files": 1}]
    rows = list(csv.DictReader(io.StringIO((out / "e.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 11 and {r["status"] for r in rows} == {EVALUATED, NO_PERSON}
    page = (out / "e.html").read_text(encoding="utf-8")
    assert 'id="confusion-table"' in page and "data:image/png;base64," in page
    assert (out / "e-confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "report: " in text


def test_evaluate_quiet_and_max_files(tmp_path, small_library, tiny_model):
    lib, db = small_library
    r = _cli(["evaluate", lib, "--model", tiny_model.weights, "--state-db", db, "--config", _config(tmp_path),
              "-q", "--max-files", "4"])
    assert r.exit_code == 0, r.output
    assert "evaluate: 4 files with a person's genre" in r.stdout  # Mixed/0, Mixed/1, Rap/0, Rap/1 (walk order)
    assert " -> " not in r.stdout  # -q: the figures only, not the mapping


def _with_thresholds(model, dest: Path, thresholds: dict[str, float]):
    """A copy of ``model`` whose metadata carries per-label thresholds (as a learnt head's does)."""
    import shutil

    from tagger.modelmeta import ModelFiles, model_id_for

    dest.mkdir()
    weights, meta = dest / "model.keras", dest / "model.json"
    shutil.copyfile(model.weights, weights)
    data = json.loads(Path(model.meta).read_text(encoding="utf-8"))
    data["thresholds"] = thresholds
    data["model_id"] = model_id_for(weights, data)
    meta.write_text(json.dumps(data), encoding="utf-8")
    return ModelFiles(weights, meta)


def test_evaluate_uses_the_models_own_thresholds_unless_min_confidence_is_given(tmp_path, tiny_model):
    model = _with_thresholds(tiny_model, tmp_path / "thr", {"rock": 0.9})
    lib = tmp_path / "lib"
    files = {_flac(lib / f"{i}.flac", genre="Rock", album="A", artist="X", seed=i): _scores(rock=0.8) for i in range(3)}
    db = tmp_path / "state.db"
    _store(db, model, files)
    base = ["evaluate", lib, "--model", model.weights, "--state-db", db, "--config", _config(tmp_path), "-q"]
    r = _cli(base)
    assert r.exit_code == 0, r.output
    assert "the model's own thresholds for 1 label, 0.4 for the rest" in r.stdout
    assert "coverage 0.0% (0/3" in r.stdout and "top-1 agreement 100.0% (3/3" in r.stdout
    r = _cli([*base, "--min-confidence", "0.4"])
    assert r.exit_code == 0, r.output
    assert "(min-confidence 0.4, top-k 1)" in r.stdout and "coverage 100.0% (3/3" in r.stdout


def test_evaluate_exit_1_without_a_persons_genres(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    files = {_flac(lib / f"{i}.flac", seed=i): _scores(rock=0.9) for i in range(3)}
    (lib / "broken.mp3").write_bytes(b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b"\x00" * 64)  # its tags cannot be read
    db = tmp_path / "state.db"
    _store(db, tiny_model, files)
    cfg = _config(tmp_path)
    with monkeypatch.context() as m:  # said before anything is analysed
        import tagger.library

        m.setattr(tagger.library, "collect", lambda *a, **k: pytest.fail("collect ran"))
        r = _cli(["evaluate", lib, "--model", tiny_model.weights, "--state-db", db, "--config", cfg])
    assert r.exit_code == 1
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("tagger: error:")]
    assert len(err) == 1, r.stderr
    assert "no file carries a genre a person wrote (4 files: 3 without a genre, 0 with tagger's own genres, " \
           "1 unreadable)" in err[0]
    (lib / "broken.mp3").unlink()
    # tagger tags them (from the store: no Ray): now they hold tagger's own genres, still nothing to compare
    r = _cli(["tag", lib, "--model", tiny_model.weights, "--state-db", db, "--config", cfg])
    assert r.exit_code == 0, r.output
    r = _cli(["evaluate", lib, "--model", tiny_model.weights, "--state-db", db, "--config", cfg])
    assert r.exit_code == 1 and "3 with tagger's own genres" in r.stderr


def test_evaluate_exit_75_when_another_run_holds_the_lock(tmp_path, small_library, tiny_model):
    from tagger.lock import RunLock

    lib, db = small_library
    with RunLock(db):
        r = _cli(["evaluate", lib, "--model", tiny_model.weights, "--state-db", db, "--config", _config(tmp_path)])
    assert r.exit_code == 75 and "another tagger run holds the lock" in r.stderr


def test_evaluate_usage_errors_exit_64(tmp_path, tiny_model):
    for args in (["evaluate"], ["evaluate", tmp_path, "--top-k", "0"], ["evaluate", tmp_path, "--report", "x.txt"],
                 ["evaluate", tmp_path, "--bogus"]):
        assert _cli(args).exit_code == 64, args


def test_evaluate_a_corrupt_file_exits_2(tmp_path, tiny_model, ray_session):
    """One file is not audio: it is analysed on Ray (the tiny model), fails with its reason, and
    the run still evaluates the others (exit 2, as tag)."""
    lib = tmp_path / "lib"
    files = {_flac(lib / "a" / f"{i}.flac", genre="Rock", album="A", artist="X", seed=i): _scores(rock=0.9)
             for i in range(2)}
    bad = lib / "a" / "broken.flac"
    bad.write_bytes(b"fLaC" + bytes(range(256)) * 4)
    db = tmp_path / "state.db"
    _store(db, tiny_model, files)
    before = _snapshot(lib)
    out = tmp_path / "e.json"
    r = _cli(["evaluate", lib, "--model", tiny_model.weights, "--state-db", db, "--config", _config(tmp_path),
              "--report", out, "--workers", "1"])
    assert r.exit_code == 2, r.output
    assert _snapshot(lib) == before
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["library"]["evaluated"] == 2 and data["library"]["failed"] == 1
    assert data["failed"][0]["path"] == str(bad) and data["failed"][0]["reason"]
    assert "1 failed" in r.stdout
