"""tagger learn: groups and folds, the head, thresholds and decisions, the backbone comparison,
--as-default's config edit (pure and fast), then the command end to end on a small generated
library: dry-run taxonomy, the exit-1 cases, learn -> tag/info/explain with the model, learning
again after the library grew."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tagger import learn as L
from tagger.cli import main
from tests.learn_helpers import make_library, model_with_embedding, sound, tag_as_tagger, write_flac

pytestmark = [pytest.mark.tf, pytest.mark.ray]

# -- groups and folds ------------------------------------------------------------------------------------


def test_union_groups_join_albums_through_shared_artists():
    albums = ["a1", "a1", "a2", "a3", "a4", "a5"]
    artists = ["x", "x", "x", "y", "", ""]
    g = L.union_groups(albums, artists)
    assert g.tolist() == [0, 0, 0, 1, 2, 3]  # a1 and a2 share artist x; unknown artists join nothing
    assert L.union_groups(albums).tolist() == [0, 0, 1, 2, 3, 4]


def _grouped_data(n_albums=12, per=4, genres=3, artist_every=1):
    albums = [f"al{i // per}" for i in range(n_albums * per)]
    artists = [f"ar{i // (per * artist_every)}" for i in range(n_albums * per)]
    y = np.zeros((len(albums), genres), bool)
    for i in range(len(albums)):
        y[i, (i // per) % genres] = True
    return albums, artists, y


def test_plan_folds_keeps_albums_and_artists_on_one_side_and_is_seeded():
    albums, artists, y = _grouped_data(artist_every=2)  # an artist per two albums
    plan = L.plan_folds(albums, artists, y, folds=3, seed=0)
    assert plan.grouping == "album+artist" and plan.k == 3 and not plan.notes
    for key in (albums, artists):
        for k in set(key):
            assert len({int(plan.fold[i]) for i, a in enumerate(key) if a == k}) == 1
    sizes = [int((plan.fold == f).sum()) for f in range(3)]
    assert max(sizes) - min(sizes) <= 8
    for j in range(y.shape[1]):  # every genre in every fold
        assert all(y[plan.fold == f, j].any() for f in range(3))
    again = L.plan_folds(albums, artists, y, folds=3, seed=0)
    assert again.fold.tolist() == plan.fold.tolist()


def test_plan_folds_falls_back_to_album_grouping_and_says_so():
    albums, _, y = _grouped_data(n_albums=10)
    one_artist = ["same artist"] * len(albums)
    plan = L.plan_folds(albums, one_artist, y, folds=5)
    assert plan.grouping == "album" and plan.k == 5
    assert any("album only" in n for n in plan.notes)
    few = L.plan_folds(albums[:12], one_artist[:12], y[:12], folds=5)  # 3 albums only
    assert few.k == 3 and any("3 folds instead of 5" in n for n in few.notes)
    with pytest.raises(L.LearnError, match="all one album"):
        L.plan_folds(["a"] * 5, [""] * 5, y[:5], folds=5)
    assert L.plan_folds(albums, one_artist, y, folds=5, group_by="album").notes == ()


# -- the head --------------------------------------------------------------------------------------------


def _blobs(n=300, d=12, g=3, seed=0, rare=None):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (g, d))
    p = None if rare is None else np.array([1 - rare, rare]) if g == 2 else None
    lab = rng.choice(g, size=n, p=p)
    x = centres[lab] + rng.normal(0, 1, (n, d)) + 50.0  # far from 0: the standardisation matters
    y = np.zeros((n, g), bool)
    y[np.arange(n), lab] = True
    return x.astype(np.float32), y, lab


def test_fit_head_is_deterministic_and_folds_standardisation_into_the_weights():
    from tagger.heads import head_scores

    x, y, lab = _blobs()
    h1 = L.fit_head(x, y, l2=0.01)
    h2 = L.fit_head(x, y, l2=0.01)
    assert np.array_equal(h1.weights, h2.weights) and np.array_equal(h1.bias, h2.bias)
    assert h1.weights.shape == (12, 3) and h1.bias.shape == (3,)
    s = head_scores(x, h1.weights, h1.bias)  # the score `tagger tag` computes with the exported head
    np.testing.assert_allclose(s, h1.scores(x), atol=1e-5)
    assert (s.argmax(axis=1) == lab).mean() > 0.95
    # a warm-started path gives the same optimum as a fit from zero
    path = L.fit_path(x, y, (1.0, 0.01))
    np.testing.assert_allclose(path[1].scores(x), h1.scores(x), atol=2e-3)


def test_class_weights_let_a_rare_genre_be_learnt():
    x, y, _ = _blobs(n=400, g=2, rare=0.05, seed=3)
    w = L.class_weights(y)
    assert w[y[:, 1], 1].sum() == pytest.approx(w[~y[:, 1], 1].sum())  # each side weighs half
    h = L.fit_head(x, y, l2=0.01)
    rare = y[:, 1]
    assert (h.scores(x)[rare, 1] > 0.5).mean() > 0.9


def test_choose_l2_picks_from_the_grid_by_grouped_inner_cv():
    x, y, _ = _blobs(n=120)
    albums = [f"a{i // 4}" for i in range(120)]
    c = L.choose_l2(x, y, albums, [""] * 120, grouping="album")
    assert c.l2 in L.L2_GRID and c.folds == L.INNER_FOLDS and set(c.losses) == set(L.L2_GRID)
    assert c.losses[c.l2] == min(c.losses.values())
    assert L.choose_l2(x[:4], y[:4], ["one"] * 4, [""] * 4, grouping="album").l2 == L.L2_DEFAULT


def test_cross_validation_scores_each_fold_with_a_head_that_never_saw_it():
    x, y, _ = _blobs(n=120)
    albums = [f"a{i // 4}" for i in range(120)]
    data = L.Labelled(tuple(map(str, range(120))), x, y, ("a", "b", "c"), ("A", "B", "C"), tuple(albums),
                      ("",) * 120, np.zeros((120, 2), np.float32))
    plan = L.plan_folds(albums, [""] * 120, y, folds=4)
    cv = L.cross_validate(data, plan, l2=0.1, target=0.9, top_k=1)
    f = 2
    test = plan.fold == f
    alone = L.fit_head(x[~test], y[~test], l2=0.1).scores(x[test])
    np.testing.assert_allclose(cv.oof[test], alone, atol=1e-12)
    # each fold's thresholds come from the other folds' out-of-fold scores only
    thr = L.stored_thresholds(L.choose_thresholds(cv.oof[~test], y[~test], 0.9))
    np.testing.assert_array_equal(cv.fold_thresholds[f], thr)
    np.testing.assert_array_equal(cv.predicted[test], L.decisions(cv.oof[test], thr, top_k=1))


def test_decisions_follow_tag_top_k_among_genres_reaching_their_thresholds():
    s = np.array([[0.9, 0.8, 0.1], [0.3, 0.6, 0.5], [0.2, 0.2, 0.2]])
    thr = np.array([0.5, 0.7, 0.4])
    assert L.decisions(s, thr, top_k=1).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert L.decisions(s, thr, top_k=2).tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    never = np.array([L.NEVER, 0.7, 0.4])
    assert L.decisions(s, never, top_k=1).tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_the_backbone_model_is_mapped_by_genre_key_and_decided_as_tag_would():
    from tagger.taxonomy import genre_key

    labels = ("blues", "hiphop", "rock", "disco")
    keys = ("hiphop", "rock", "electronic")
    m = L.map_labels(labels, keys, key_of=genre_key, display_names={"hiphop": "Hip-Hop"})
    assert m == {1: 0, 2: 1}
    m2 = L.map_labels(labels, keys, key_of=genre_key, user_map={"disco": "Electronic"})
    assert m2[3] == 2
    scores = np.array([[0.1, 0.7, 0.2, 0.0], [0.1, 0.2, 0.3, 0.1], [0.9, 0.0, 0.05, 0.05]])
    pred, wrote = L.base_decisions(scores, m, 3, top_k=1, thresholds=0.4)
    assert pred.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert wrote.tolist() == [True, False, True]  # blues: written, but not one of the library's genres
    s = L.summary(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], bool), pred, wrote)
    assert (s["given"], s["right"], s["wrong"]) == (2, 1, 1)


# -- --as-default: the config file -------------------------------------------------------------------------


def test_with_default_model_replaces_adds_or_appends_and_keeps_every_other_byte():
    text = '# my settings\r\n[genres]\r\nhiphop = "Rap"\r\n\r\n[tag]\r\n  model = "/old"  # mine\r\ntop-k = 2\r\n'
    out = L.with_default_model(text, "/m/learnt")
    assert out == text.replace('  model = "/old"  # mine', '  model = "/m/learnt"  # mine')
    text2 = '[tag]\ntop-k = 2\n\n[learn]\nmin-tracks = 5\n'
    assert L.with_default_model(text2, '/m/"q"') == '[tag]\nmodel = "/m/\\"q\\""\ntop-k = 2\n\n[learn]\nmin-tracks = 5\n'
    assert L.with_default_model('[genres]\nrock = "Rock"', "/m") == '[genres]\nrock = "Rock"\n\n[tag]\nmodel = "/m"\n'
    assert L.with_default_model("", "/m") == '[tag]\nmodel = "/m"\n'
    with pytest.raises(ValueError):
        L.with_default_model('tag.top-k = 2\n', "/m")  # a dotted key: refused, not mangled
    with pytest.raises(ValueError, match="not valid TOML"):
        L.with_default_model("[tag\n", "/m")


# -- the command ---------------------------------------------------------------------------------------------


def run(args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


@pytest.fixture(scope="module")
def emb_model(tmp_path_factory):
    return model_with_embedding(tmp_path_factory.mktemp("learn-model"))


@pytest.fixture(scope="module")
def small_lib(tmp_path_factory):
    """3 genres x 4 albums x 3 tracks; the last album of each genre untagged (held out); one
    track tagger-tagged; one corrupt file."""
    return make_library(tmp_path_factory.mktemp("learn-lib") / "lib", albums_per_genre=4, tracks_per_album=3,
                        untagged_albums=1, seconds=2.0)


def test_dry_run_prints_the_taxonomy_and_analyses_nothing(small_lib, tmp_path):
    db = tmp_path / "state.db"
    r = run(["learn", small_lib.root, "--dry-run", "--min-tracks", 8, "--state-db", db])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "Genres to learn: 3" in out
    for line in ("Electronic", "Metal", "Classical"):
        assert any(row.split()[:1] == [line] for row in out.splitlines()), out
    assert "Dance" in out and "Rock" in out and "too few tracks" in out  # split out of "Metal; Rock" etc.
    assert "Jazz" not in out  # tagger's own genre is no label
    assert "1 file(s) carry tagger's own genres" in out
    assert "dry run: 3 genres would be learnt" in out
    assert not db.exists()  # tags only: no store, no analysis


@pytest.mark.parametrize("case, message", [
    ("untagged", "no genres a person wrote"),
    ("one", "only one genre (Metal, 6 tracks): nothing to tell apart"),
    ("tagger", "only tagger's own genres"),
])
def test_a_library_that_cannot_be_learnt_exits_1_with_one_line(tmp_path, case, message):
    lib = tmp_path / "lib"
    for i in range(6):
        p = write_flac(lib / f"album{i // 2}" / f"{i}.flac", sound("Metal", i, 0.5),
                       genres=["Metal"] if case == "one" else None, album=f"A{i // 2}")
        if case == "tagger":
            tag_as_tagger(p, ["Rock"])
    r = run(["learn", lib, "--out", tmp_path / "m", "--min-tracks", 2, "--min-albums", 1,
             "--state-db", tmp_path / "s.db"])
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("tagger: error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert not (tmp_path / "m").exists()


def test_usage_errors_exit_64(small_lib, tmp_path):
    assert run(["learn", small_lib.root]).exit_code == 64  # --out missing
    assert run(["learn", small_lib.root, "--out", tmp_path / "m", "--report", tmp_path / "r.csv"]).exit_code == 64
    assert run(["learn", small_lib.root, "--dry-run", "--target-precision", 0]).exit_code == 64


@pytest.mark.usefixtures("ray_session")
def test_learn_then_tag_info_explain_with_the_model_and_learn_again(small_lib, emb_model, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(small_lib.root, lib)
    moved = {str(p).replace(str(small_lib.root), str(lib)): g for p, g in small_lib.truth.items()}
    held_out = [p.replace(str(small_lib.root), str(lib)) for p in small_lib.untagged]
    db, out, cfg = tmp_path / "state.db", tmp_path / "model", tmp_path / "config.toml"
    cfg.write_text('# mine\n[tag]\ntop-k = 1\n', encoding="utf-8")
    common = ["--model", emb_model.weights, "--state-db", db, "--config", cfg]
    r = run(["learn", lib, "--out", out, "--min-tracks", 8, "--folds", 3, "--report", tmp_path / "learn.html",
             "--as-default", *common])
    assert r.exit_code == 2, r.output  # learnt; the corrupt file failed
    assert "cross-validation: 3 folds grouped by album+artist" in r.stdout
    assert "1 file(s) failed" in r.stdout
    rep = json.loads((out / "learn.json").read_text(encoding="utf-8"))
    assert [g["name"] for g in rep["genres"]] == ["Electronic", "Metal", "Classical"]  # most tracks first
    assert rep["library"]["labelled_tracks"] == 26 and rep["library"]["files"] == 37
    assert [f["path"] for f in rep["library"]["failed"]] == [str(lib / "broken.flac")]
    assert rep["cv"]["grouping"] == "album+artist" and rep["cv"]["folds"] == 3
    assert rep["library"]["analysed"] == 36 and rep["library"]["from_store"] == 0
    # clearly different sounds: every genre reaches 95% precision on the out-of-fold scores, and
    # the cross-validated decisions (thresholds chosen without the fold) are mostly right
    assert all(g["reachable"] and g["threshold_precision"] >= 0.95 for g in rep["genres"]), rep["genres"]
    assert rep["top1"]["accuracy"] >= 0.85 and rep["top1"]["tracks"] == 26
    learnt, base = rep["summary"]["learnt"], rep["summary"]["base"]
    assert learnt["right"] >= 18 and learnt["wrong"] <= 2, learnt
    assert base["right"] < learnt["right"]  # the random backbone model knows none of these genres
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "precision-coverage.png").stat().st_size > 5000
    assert "data:image/png;base64," in (tmp_path / "learn.html").read_text(encoding="utf-8")
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert meta["aggregation"] == "logit-mean" and set(meta["thresholds"]) == set(meta["labels"])
    assert meta["training"]["library"]["paths"] == [str(lib)] and meta["training"]["cv"]["grouping"] == "album+artist"
    assert sorted(meta["display_names"].values()) == ["Classical", "Electronic", "Metal"]
    # --as-default: one line added under [tag], the rest as it was
    assert cfg.read_text(encoding="utf-8") == f'# mine\n[tag]\nmodel = "{out}"\ntop-k = 1\n'

    # tag the held-out (untagged) albums with the learnt model: it is the config's default now
    r = run(["tag", *held_out, "--dry-run", "--no-albums", "--report", tmp_path / "tag.json", "--state-db", db,
             "--config", cfg])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "tag.json").read_text(encoding="utf-8"))["files"]
    assert rows and {row["path"] for row in rows} == set(held_out)
    right = sum(1 for row in rows if row["written"] == [moved[row["path"]]])
    wrong = sum(1 for row in rows if row["written"] and row["written"] != [moved[row["path"]]])
    assert right >= len(held_out) * 2 // 3 and wrong <= 1, rows

    r = run(["info", "--model", out, "--no-ray"])
    assert r.exit_code == 0 and f"learnt from: {lib}" in r.stdout and "thresholds:" in r.stdout
    r = run(["explain", held_out[0], "--model", out, "--json", "--config", cfg])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["decision"]

    # the library grows by an album: learning again analyses those files only
    for k in range(3):
        write_flac(lib / "New Artist" / "New Album" / f"{k}.flac", sound("Metal", 500 + k, 2.0), genres=["Metal"],
                   album="New Album", artist="New Artist", albumartist="New Artist")
    r = run(["learn", lib, "--out", out, "--min-tracks", 8, "--folds", 3, *common])
    assert r.exit_code == 2, r.output
    assert "analysis: 3 file(s) analysed now, 36 from the store of analyses, 1 failed" in r.stdout
    rep = json.loads((out / "learn.json").read_text(encoding="utf-8"))
    assert rep["library"]["labelled_tracks"] == 29


def test_bench_learn_runs_and_reports_every_step(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_learn", L.__file__.replace("tagger/learn.py", "bench/bench_learn.py"))
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "b.json"
    assert bench.main(["--tracks", "240", "--genres", "3", "--folds", "3", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["tracks"] == 240 and res["embedding"] == 200 and res["folds"] == 3
    assert set(res["steps"]) == {"folds", "choose_l2", "cv", "final_fit", "thresholds", "figures"}
    assert res["l2"] in L.L2_GRID
