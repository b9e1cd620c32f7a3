"""tagger.library.collect: a library's tracks, their genres as written, whose they are, album and
artist keys, and the stored analyses; a dry run of the tag pipeline that writes nothing, reuses
the store of analyses, and analyses only what is new."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tagger.library import album_key, artist_key, collect, collect_options
from tagger.options import TagOptions
from tests.learn_helpers import make_library, model_with_embedding, sound, write_flac

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def test_grouping_keys():
    assert album_key("/m/A/X/01.flac", "Blue Train", "John Coltrane") == "john coltrane — blue train"
    assert album_key("/m/A/X/01.flac", "Blue  Train", "") == "/m/A/X — blue train"
    assert album_key("/m/A/X/CD2/01.flac", "", "") == "/m/A/X"  # a disc folder is its album's folder
    assert artist_key("Miles Davis feat. Bill Evans", "") == "miles davis"
    assert artist_key("Nina Simone", "Various Artists") == "nina simone"
    assert artist_key("", "Various Artists") == ""


def test_collect_options_write_nothing_and_analyse_everything():
    o = collect_options(TagOptions(on_existing="skip", albums=True, reports=("x.json",), max_files=3))
    assert o.dry_run and o.on_existing == "replace" and not o.albums and o.reports == () and o.max_files is None


def _digest(paths) -> dict[str, str]:
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def emb_model(tmp_path_factory):
    return model_with_embedding(tmp_path_factory.mktemp("emb-model"))


@pytest.mark.usefixtures("ray_session")
def test_collect_reads_genres_reuses_the_store_and_analyses_only_new_files(tmp_path, emb_model):
    from tagger.pipeline import Tagger

    lib = make_library(tmp_path / "lib", albums_per_genre=2, tracks_per_album=2, genres=("Classical", "Metal"),
                       untagged_albums=0, tagger_owned=1, seconds=2.0)
    untagged = write_flac(tmp_path / "lib" / "loose" / "single.flac", sound("Metal", 99, 2.0))
    audio = sorted(lib.truth) + [str(untagged)]
    before = _digest(audio + lib.corrupt)
    db = tmp_path / "state.db"
    opts = TagOptions(model=str(emb_model.weights), state_db=str(db), workers=2)

    c = collect([str(lib.root)], opts, progress=False)
    assert _digest(audio + lib.corrupt) == before  # a dry run: no file touched
    by_path = {t.path: t for t in c.tracks}
    assert set(by_path) == set(audio)  # the corrupt file is no track ...
    assert dict(c.failed).keys() == set(lib.corrupt)  # ... but a failure, with the run's reason
    assert all(why and "\n" not in why for _, why in c.failed)
    assert c.analysed == len(audio) and c.stored == 0 and not c.interrupted
    assert c.meta.model_id and len(c.backbone) == 16
    for p, genres in lib.person.items():
        t = by_path[p]
        assert t.genres == tuple(genres) and not t.tagger_owned
        assert t.album == f"{lib.artist_of[p].casefold()} — {lib.album_of[p].casefold()}"
        assert t.artist == lib.artist_of[p].casefold()
    for p in lib.tagger_owned:
        assert by_path[p].genres == ("Jazz",) and by_path[p].tagger_owned  # analysed, but not a person's
    single = by_path[str(untagged)]
    assert single.genres == () and not single.tagger_owned and single.artist == ""
    assert single.album == str(untagged.parent)
    for t in c.tracks:
        a = t.analysis
        assert a is not None and a.backbone == c.backbone and len(a.embedding) == 16
        assert np.all(np.isfinite(a.embedding)) and len(a.scores) == len(c.meta.labels)

    # the second collect takes everything from the store: nothing analysed, same embeddings
    c2 = collect([str(lib.root)], opts, progress=False)
    assert c2.analysed == 0 and c2.stored == len(audio)
    assert {t.path: t.analysis.embedding for t in c2.tracks} == {t.path: t.analysis.embedding for t in c.tracks}

    # the library grows by one file; another file was recorded as current by a real run whose
    # analysis is gone from the store (an older store): both are analysed, nothing else
    new = write_flac(tmp_path / "lib" / "New Artist" / "New Album" / "01.flac", sound("Classical", 77, 2.0),
                     genres=["Classical"], album="New Album", artist="New Artist")
    real = collect_options(opts).replace(dry_run=False)
    Tagger([str(untagged)], real, state=_open(db), run_id="20260101-000000-test").run()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM analyses WHERE path = ?", (str(untagged).encode(),))
    c3 = collect([str(lib.root)], opts, progress=False)
    assert c3.analysed == 2 and c3.stored == len(audio) - 1
    assert {t.path for t in c3.tracks} == set(audio) | {str(new)}
    assert all(t.analysis is not None for t in c3.tracks)


def _open(db):
    from tagger.state import StateDB

    return StateDB(db)


def test_collect_with_a_model_without_embeddings_reuses_the_store(tmp_path, tiny_model):
    """A model that computes no embedding (the tiny test model has no penultimate layer): the
    second collect takes every analysis from the store instead of analysing everything again."""
    lib = make_library(tmp_path / "lib", albums_per_genre=1, tracks_per_album=2, genres=("Classical", "Metal"),
                       untagged_albums=0, tagger_owned=0, seconds=2.0)
    opts = TagOptions(model=str(tiny_model.weights), state_db=str(tmp_path / "state.db"), workers=2)
    c = collect([str(lib.root)], opts, progress=False)
    assert c.analysed == len(lib.truth) and all(t.analysis.embedding is None for t in c.tracks)
    c2 = collect([str(lib.root)], opts, progress=False)
    assert c2.analysed == 0 and c2.stored == len(lib.truth)
