"""Adaptive analysis (issue 19): a sample first, the rest of the track only where the decision
could still change; the store keeps first passes and extends them instead of starting again."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tagger import adaptive
from tagger.cli import main
from tagger.features import FeatureParams
from tagger.modelmeta import load_meta, locate
from tagger.options import TagOptions
from tagger.pipeline import accepts, needs_extension, sampling_spec
from tagger.state import StoredAnalysis
from tests.conftest import tone

MUSICNN = None

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def musicnn_params() -> FeatureParams:
    global MUSICNN
    if MUSICNN is None:
        MUSICNN = load_meta(locate(None, vocabulary="gtzan")).features
    return MUSICNN


# -- pure rules ------------------------------------------------------------------------------------

def test_rest_is_the_whole_plan_minus_what_was_heard():
    heard = [(10.0, 5.0), (50.0, 5.0)]
    assert adaptive.rest_segments(heard, [(0.0, None)], 100.0, min_seconds=1.0) == \
        [(0.0, 10.0), (15.0, 35.0), (55.0, 45.0)]
    # pieces shorter than a chunk are left out (they would be padded with repeated audio)
    assert adaptive.rest_segments([(0.5, 10.0)], [(0.0, None)], 12.0, min_seconds=3.0) == []
    # a capped whole plan (a DJ mix): only its stretches, minus the heard ones
    assert adaptive.rest_segments([(12.0, 4.0)], [(10.0, 10.0), (40.0, 10.0)], 1000.0, min_seconds=1.0) == \
        [(10.0, 2.0), (16.0, 4.0), (40.0, 10.0)]


def stages(duration: float, fp, *, first: float = 30.0, cap: float = 900.0):
    """Every stage's stretches of a track, first pass first, with the share heard before each next stage."""
    out = [(adaptive.first_plan(duration, first_seconds=first, max_seconds=cap, params=fp), None)]
    stage = 0
    while True:
        share, nxt = adaptive.progress(duration, first_seconds=first, stage=stage, max_seconds=cap, params=fp)
        if nxt is None:
            return out
        out[-1] = (out[-1][0], share)
        out.append((nxt.segments, None))
        stage += 1
        assert stage < 10


def spans_of(segs, n: int, fp):
    """The chunks tagger.features makes of each stretch, as decoded from a track of n samples."""
    from tagger.analyse import chunk_spans

    sr = fp.sample_rate
    lengths = [min(n - int(round(o * sr)), n if d is None else int(round(d * sr))) for o, d in segs]
    return chunk_spans(lengths, [o for o, _ in segs], params=fp)


@pytest.mark.parametrize("duration", [40.0, 80.0, 95.0, 168.0, 272.0, 611.0, 899.0])
def test_the_stages_together_make_exactly_the_whole_track_chunks(duration):
    from tagger.analyse import chunk_spans

    fp = musicnn_params()
    n = int(round(duration * fp.sample_rate))
    whole = chunk_spans([n], [0.0], params=fp)
    plan = stages(duration, fp)
    assert len(plan) >= 2 and all(d is not None for _, d in plan[0][0])
    heard = np.zeros((0, 2))
    for k, (segs, share) in enumerate(plan):
        got = spans_of(segs, n, fp)
        assert len(got) > 0
        heard = np.concatenate([heard, got])
        if share is not None:  # the share the bound is given is the share of the whole track's chunks heard
            assert share == pytest.approx(len(heard) / len(whole))
        if k < len(plan) - 1:
            assert all(d is not None for _, d in segs)  # only the final stage reads to the end
    got = heard[np.argsort(heard[:, 0])]
    assert got.shape == whole.shape  # every chunk once: the whole track's chunks
    np.testing.assert_allclose(got, whole, atol=1e-6)
    # the first pass: 10 single chunks spread over the whole track, intro and outro included
    first = spans_of(plan[0][0], n, fp)
    if duration >= 80:
        assert len(first) == 10 and first[0, 0] < 0.1 * duration and first[-1, 1] > 0.85 * duration
        assert len(plan[0][0]) >= 8  # one stretch each, but where two chosen chunks are neighbours
    else:  # 13 chunks: the last two are the final stage's, so some of the ten coincide
        assert 5 <= len(first) <= 10


def test_each_stage_hears_twice_as_many_until_half_the_track_then_the_rest():
    fp = musicnn_params()
    duration = 899.0  # 300 chunks
    total = len(spans_of([(0.0, None)], int(duration * fp.sample_rate), fp))
    sizes = [len(spans_of(segs, int(duration * fp.sample_rate), fp)) for segs, _ in stages(duration, fp)]
    assert sizes[:4] == [10, 10, 20, 40] or sum(sizes[:4]) == len(np.unique(np.concatenate(
        [adaptive.layout(total, 10 * 2 ** k) for k in range(4)])))
    assert sum(sizes) == total and sizes[-1] > total / 2 - 1  # the last stage: the rest, at once
    assert len(sizes) == 5  # 10, 20, 40, 80 chunks heard, then 160 >= half: the rest
    # a layout is stratified: one chunk in each equal part, never the last two chunks
    idx = adaptive.layout(100, 10)
    assert list(idx) == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    assert adaptive.layout(10, 10).max() <= 7


def test_over_the_cap_the_rest_is_the_whole_plan_minus_the_sample():
    fp = musicnn_params()
    heard = adaptive.first_plan(2400.0, first_seconds=30.0, max_seconds=900.0, params=fp)
    share, nxt = adaptive.progress(2400.0, first_seconds=30.0, stage=0, max_seconds=900.0, params=fp)
    assert nxt is not None and nxt.complete
    rest = nxt.segments
    whole = sum(d for _, d in adaptive.whole_plan(2400.0, max_seconds=900.0, params=fp))
    pieces = sorted([(o, o + d) for o, d in heard] + [(o, o + d) for o, d in rest])
    assert all(b <= c + 1e-6 for (_, b), (c, _) in itertools.pairwise(pieces))  # nothing heard twice
    assert whole - 2 * len(heard) * fp.chunk_seconds <= sum(b - a for a, b in pieces) <= whole + 31.0
    assert 0 < share < 0.1
    assert adaptive.progress(2400.0, first_seconds=30.0, stage=1, max_seconds=900.0, params=fp) == (1.0, None)


def test_short_tracks_are_heard_whole_and_have_no_rest():
    fp = musicnn_params()
    for duration in (20.0, 37.0):  # up to 30 s / 0.8: a sample of most of a track saves little
        assert adaptive.first_plan(duration, first_seconds=30.0, max_seconds=900.0, params=fp) == [(0.0, None)]
        assert adaptive.progress(duration, first_seconds=30.0, stage=0, max_seconds=900.0, params=fp) == (1.0, None)
    assert adaptive.progress(0.0, first_seconds=30.0, stage=0, max_seconds=900.0, params=fp) == (1.0, None)


def test_the_re_check_rule_follows_the_margins_and_what_was_heard():
    clear = np.array([0.8, 0.1, 0.05, 0.05])
    assert not adaptive.needs_rest(clear, share=0.1, chunks=10, top_k=1, min_confidence=0.4)
    near_threshold = np.array([0.45, 0.2, 0.2, 0.15])
    assert adaptive.needs_rest(near_threshold, share=0.1, chunks=10, top_k=1, min_confidence=0.4)
    # the more chunks heard, and the larger their share of the track, the smaller the error
    assert adaptive.needs_rest(near_threshold, share=0.3, chunks=40, top_k=1, min_confidence=0.4)
    assert not adaptive.needs_rest(near_threshold, share=0.7, chunks=160, top_k=1, min_confidence=0.4)
    assert not adaptive.needs_rest(near_threshold, share=0.99, chunks=20, top_k=1, min_confidence=0.4)
    assert not adaptive.needs_rest(near_threshold, share=1.0, chunks=20, top_k=1, min_confidence=0.4)
    close_pair = np.array([0.46, 0.40, 0.1, 0.04])  # clear of the threshold, not of each other
    assert adaptive.needs_rest(close_pair, share=0.2, chunks=20, top_k=1, min_confidence=0.1)
    # top-k 2: the order of the 2nd and 3rd counts too
    second_third = np.array([0.8, 0.14, 0.12, 0.04])
    assert not adaptive.needs_rest(second_third, share=0.2, chunks=20, top_k=1, min_confidence=0.05)
    assert adaptive.needs_rest(second_third, share=0.2, chunks=20, top_k=2, min_confidence=0.05)
    assert adaptive.sampling_error(0.0, 1) == pytest.approx(adaptive.SAMPLING_ERROR)
    assert adaptive.sampling_error(0.75, 4) == pytest.approx(adaptive.SAMPLING_ERROR / 4)


def test_a_track_nothing_of_which_can_be_written_is_clear_however_close_its_best_two_are():
    # what is written must not change (tagger.model.close_call ranking=False), not the ranking below it
    unwritten = np.array([0.22, 0.21, 0.05, 0.02])
    # 30 chunks, 30% of the track: every score may move 0.8 * sqrt(0.7 / 30) = 0.12 (and bfloat16's bound)
    assert not adaptive.needs_rest(unwritten, share=0.3, chunks=30, top_k=1, min_confidence=0.4)
    from tagger.model import close_call

    assert close_call(unwritten, top_k=1, min_confidence=0.4, error=0.05)  # bfloat16's rule reads the ranking
    assert not close_call(unwritten, top_k=1, min_confidence=0.4, error=0.05, ranking=False)
    # one that could reach the threshold, and one that could overtake a written genre, still count
    assert adaptive.needs_rest(np.array([0.3, 0.29, 0.05]), share=0.3, chunks=30, top_k=1, min_confidence=0.4)
    assert adaptive.needs_rest(np.array([0.62, 0.58, 0.05]), share=0.3, chunks=30, top_k=1, min_confidence=0.4)


@pytest.mark.parametrize("per_label", [False, True])
def test_a_clear_call_writes_the_same_wherever_the_scores_move_within_the_error(per_label):
    """The property needs_rest relies on: where close_call(ranking=False) says clear, every move
    of every score by less than the error writes the same genres in the same order."""
    from tagger.aggregate import decide
    from tagger.model import close_call

    labels = ("blues", "classical", "country", "disco", "hiphop")
    rng = np.random.default_rng(7)
    clear = 0
    for _ in range(600):
        s = rng.random(5) * rng.choice([0.5, 1.0])
        k, err = int(rng.integers(1, 4)), float(rng.choice([0.02, 0.05, 0.1]))
        thr = rng.uniform(0.2, 0.6, 5) if per_label else float(rng.uniform(0.2, 0.6))
        if close_call(s, top_k=k, min_confidence=thr, error=err, ranking=False):
            continue
        clear += 1
        kw = ({"thresholds": dict(zip(labels, map(float, thr))), "min_confidence": 1.0} if per_label
              else {"min_confidence": thr})
        base = decide(s, labels, top_k=k, **kw).genres
        for _ in range(30):
            moved = np.clip(s + rng.uniform(-err, err, 5) * 0.999, 0.0, 1.0)
            assert decide(moved, labels, top_k=k, **kw).genres == base, (s, moved, thr, k)
    assert clear > 100


def test_combining_chunk_means_is_the_mean_over_every_chunk():
    rng = np.random.default_rng(3)
    a, b = rng.random((7, 5)), rng.random((19, 5))
    got = adaptive.combine(a.mean(0), 7, b.mean(0), 19)
    np.testing.assert_allclose(got, np.concatenate([a, b]).mean(0), rtol=1e-6)


def test_sampling_specs_and_what_each_run_accepts_from_the_store():
    assert sampling_spec(TagOptions()) == "adaptive:30/whole<=900"
    assert sampling_spec(TagOptions(whole_track=True)) == "whole<=900"
    assert sampling_spec(TagOptions(analysis_seconds=30)) == "sample:30"
    run = "adaptive:30/whole<=900"
    for stored in (run, "adaptive:30~1/whole<=900", "adaptive:30~3/whole<=900", "adaptive:30+rest/whole<=900",
                   "adaptive:60+rest/whole<=900", "whole<=900"):  # an earlier version's complete analyses too
        assert accepts(run, stored), stored
    for stored in ("adaptive:60/whole<=900", "adaptive:30/whole<=600", "adaptive:30+rest/whole<=600", "sample:30",
                   "whole<=600"):  # another first pass (its chunks are not this run's), another cap
        assert not accepts(run, stored), stored
    assert accepts("whole<=900", "whole<=900") and not accepts("whole<=900", "adaptive:30+rest/whole<=900")
    assert accepts("sample:30", "sample:30") and not accepts("sample:30", "sample:60")
    assert adaptive.first_seconds_of("adaptive:30/whole<=900") == 30.0
    assert adaptive.parse_spec("adaptive:30~2/whole<=900") == (30.0, 2)
    assert adaptive.first_seconds_of("adaptive:30+rest/whole<=900") is None
    assert adaptive.spec(30, 900, stage=2) == "adaptive:30~2/whole<=900"
    assert adaptive.spec(30, 900, stage=2, complete=True) == "adaptive:30+rest/whole<=900"
    assert adaptive.describe("adaptive:30+rest/whole<=900") == ("adaptive+rest", True)
    assert adaptive.describe("adaptive:30~1/whole<=900") == ("adaptive", True)
    assert adaptive.describe("adaptive:30/whole<=900") == ("adaptive", False)
    assert adaptive.describe("sample:30") == ("sample", None)
    with pytest.raises(ValueError, match="exclude each other"):
        TagOptions(whole_track=True, analysis_seconds=30)


def test_the_command_line_choice_of_audio_overrides_the_config_files_other_one():
    from tagger.config import resolve

    o, _ = resolve({"whole_track": True}, {"whole_track"}, {"analysis_seconds": 30.0}, Path("c.toml"))
    assert o.whole_track and o.analysis_seconds is None
    o, _ = resolve({"analysis_seconds": 45.0}, {"analysis_seconds"}, {"whole_track": True}, Path("c.toml"))
    assert o.analysis_seconds == 45.0 and not o.whole_track


def _stored(scores, *, sampling="adaptive:30/whole<=900", duration=240.0, chunks=10, seconds=30.0):
    return StoredAnalysis(path="/x.ogg", model_id="m", size=1, mtime_ns=1, scores=tuple(scores), chunks=chunks,
                          seconds=seconds, sampling=sampling, duration=duration)


def test_a_stored_first_pass_is_extended_only_where_these_settings_make_it_close():
    meta = load_meta(locate(None, vocabulary="gtzan"))
    clear = [0.82] + [0.02] * 9
    close = [0.43, 0.3] + [0.03] * 8
    o = TagOptions()
    assert needs_extension(_stored(clear), o, meta) == []
    nxt = needs_extension(_stored(close), o, meta)
    # the next stage: the 20 single chunks of twice as many equal parts (the first pass's ten are not among them)
    assert len(nxt) == 20 and all(d is not None for _, d in nxt)
    # after that stage, the next would hear 40 of the 80 chunks (half): it hears all the rest instead
    rest = needs_extension(_stored(close, sampling="adaptive:30~1/whole<=900", chunks=20), o, meta)
    assert rest and rest[-1][1] is None  # the rest runs to the end of the track
    assert sum(d for _, d in rest[:-1]) + 240.0 - rest[-1][0] > 240.0 - 95.0  # 30 chunks heard: the other 50
    # a setting that moves the threshold next to a clear score makes it close
    assert needs_extension(_stored(clear), o.replace(min_confidence=0.8), meta)
    # complete analyses and short tracks have nothing left to hear
    assert needs_extension(_stored(close, sampling="adaptive:30+rest/whole<=900"), o, meta) == []
    assert needs_extension(_stored(close, sampling="whole<=900"), o, meta) == []
    assert needs_extension(_stored(close, duration=35.0), o, meta) == []


# -- end to end, with Ray and the tiny model ----------------------------------------------------------

def long_track(path: Path, seconds: float = 150.0, sr: int = 22050) -> Path:
    """A track whose parts differ (changing tones), so that a sample and the whole differ."""
    # parts of unequal length, so that a sample spread evenly over the track still differs from it
    weights = [3, 1, 1, 5, 1, 1]
    parts = [tone(seconds * w / sum(weights), sr=sr, freq=f, seed=i)
             for i, (w, f) in enumerate(zip(weights, [110, 330, 660, 1320, 220, 2640], strict=True))]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate(parts), sr)
    return path


def two_track_album(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A library of one album (two long tracks, album and album artist tagged): (library, tracks)."""
    import mutagen

    lib = tmp_path / "lib"
    paths = []
    for i in range(2):
        p = long_track(lib / "LP" / f"{i:02d}.flac", seconds=80.0 + 30 * i)
        f = mutagen.File(p)
        if f.tags is None:
            f.add_tags()
        f.tags["ALBUM"], f.tags["ALBUMARTIST"] = ["LP"], ["X"]
        f.save()
        paths.append(p)
    return lib, paths


def album_run(tmp_path: Path, lib: Path, tiny_model, name: str, *extra: str):
    """A dry run of the tiny model over ``lib`` with its own state database: (report rows by path, timing)."""
    report = tmp_path / f"{name}.json"
    r = CliRunner().invoke(main, ["tag", str(lib), "--model", str(tiny_model.weights), "--state-db",
                                  str(tmp_path / f"{name}.db"), "--min-confidence", "0", "--report", str(report),
                                  "--dry-run", *extra], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(report.read_text())
    return {row["path"]: row for row in data["files"]}, data["timing"]


def cli(*args) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


def tag(track: Path, tiny_model, tmp_path: Path, report: Path, *extra) -> dict:
    code, out = cli("tag", str(track.parent), "--model", str(tiny_model.weights), "--state-db",
                    str(tmp_path / "state.db"), "--min-confidence", "0", "--report", str(report), *extra)
    assert code == 0, out
    data = json.loads(report.read_text())
    (row,) = data["files"]
    return {"row": row, "timing": data["timing"]}


def stored_rows(db: Path) -> list[tuple[str, float, int]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT sampling, seconds, chunks FROM analyses").fetchall()


def stored_scores(db: Path) -> np.ndarray:
    from tagger.state import _unpack

    with sqlite3.connect(db) as con:
        (raw,), = con.execute("SELECT scores FROM analyses").fetchall()
    return np.asarray(_unpack(raw), np.float64)


def force_close(monkeypatch, close: bool) -> None:
    """Every sampled decision a close call (or none: no sampling error, no inference error)."""
    monkeypatch.setattr(adaptive, "SAMPLING_ERROR", 10.0 if close else 0.0)
    if not close:
        monkeypatch.setattr(adaptive, "decision_error", lambda chunks: 0.0)


@pytest.mark.usefixtures("ray_session")
def test_a_close_call_hears_the_rest_and_a_clear_one_does_not(tmp_path, tiny_model, monkeypatch):
    track = long_track(tmp_path / "lib" / "long.wav")
    whole = tag(track, tiny_model, tmp_path / "w", tmp_path / "whole.json", "--dry-run", "--whole-track")
    assert whole["row"]["sampling"] == "whole" and whole["row"]["rechecked"] is None

    force_close(monkeypatch, False)
    clear = tag(track, tiny_model, tmp_path / "c", tmp_path / "clear.json", "--dry-run")
    assert clear["row"]["sampling"] == "adaptive" and clear["row"]["rechecked"] is False
    assert 27 <= clear["row"]["duration"] <= 33  # the 30 s first pass only
    assert clear["timing"]["rest"] == 0

    force_close(monkeypatch, True)
    close = tag(track, tiny_model, tmp_path / "r", tmp_path / "close.json", "--dry-run")
    row = close["row"]
    assert row["sampling"] == "adaptive+rest" and row["rechecked"] is True
    assert close["timing"]["rest"] == 1
    # everything heard, once: the whole track's chunks (on its chunk grid), so its scores
    assert row["chunks"] == whole["row"]["chunks"]
    assert row["duration"] >= whole["row"]["duration"] - 0.1
    for p, q in zip(row["predicted"], whole["row"]["predicted"]):
        assert p["label"] == q["label"] and abs(p["score"] - q["score"]) < 2e-3
    # the sample alone differs from the whole track more than all the stages together do (the
    # stored float32 scores: a stratified sample of this track is within the report's rounding)
    sampled, full, combined = (stored_scores(tmp_path / d / "state.db") for d in ("c", "w", "r"))
    assert np.max(np.abs(combined - full)) < np.max(np.abs(sampled - full))
    (spec, _seconds, chunks), = stored_rows(tmp_path / "r" / "state.db")
    assert spec == "adaptive:30+rest/whole<=900" and chunks == row["chunks"]


@pytest.mark.usefixtures("ray_session")
def test_a_stored_first_pass_is_extended_not_started_again(tmp_path, tiny_model, monkeypatch):
    track = long_track(tmp_path / "lib" / "long.wav")
    force_close(monkeypatch, False)
    first = tag(track, tiny_model, tmp_path, tmp_path / "1.json", "--dry-run")
    assert first["row"]["rechecked"] is False
    [(spec, seconds, chunks)] = stored_rows(tmp_path / "state.db")
    assert spec == "adaptive:30/whole<=900" and 27 <= seconds <= 33

    # other settings, under which the stored sample is a close call: only the rest is analysed
    force_close(monkeypatch, True)
    second = tag(track, tiny_model, tmp_path, tmp_path / "2.json", "--dry-run", "--top-k", "2")
    row, timing = second["row"], second["timing"]
    assert row["rechecked"] is True and row["analysis"] == "now"
    assert timing["extended"] == 1 and timing["rest"] == 1
    duration = sf.info(str(track)).duration
    # the rest only, not the sample again (each stretch decodes a few frames of slack)
    assert timing["audio_seconds"] <= duration - seconds + 0.15 * 30
    assert timing["audio_seconds"] >= duration - seconds - 10.0
    assert row["chunks"] > chunks and row["duration"] >= duration - 10.0
    [(spec, _seconds2, chunks2)] = stored_rows(tmp_path / "state.db")
    assert spec == "adaptive:30+rest/whole<=900" and chunks2 == row["chunks"]

    # the extended analysis is complete: later settings decide from it without any analysis
    from tagger import pipeline

    monkeypatch.setattr(pipeline.Tagger, "_process", lambda *a, **k: (_ for _ in ()).throw(AssertionError("analysed")))
    third = tag(track, tiny_model, tmp_path, tmp_path / "3.json", "--dry-run", "--top-k", "3")
    assert third["row"]["analysis"] == "stored" and third["row"]["sampling"] == "adaptive+rest"
    assert third["row"]["chunks"] == row["chunks"]


@pytest.mark.usefixtures("ray_session")
def test_stages_stop_once_the_decision_is_clear_and_a_stored_stage_is_extended(tmp_path, tiny_model, monkeypatch):
    track = long_track(tmp_path / "lib" / "long.wav")
    whole = tag(track, tiny_model, tmp_path / "w", tmp_path / "whole.json", "--dry-run", "--whole-track")
    force_close(monkeypatch, False)
    n0 = tag(track, tiny_model, tmp_path / "c", tmp_path / "clear.json", "--dry-run")["row"]["chunks"]
    # a close call on the first pass, clear once the next stage (twice as many parts) was heard too
    monkeypatch.setattr(adaptive, "needs_rest", lambda scores, *, share, chunks, **kw: chunks < 2 * n0)
    first = tag(track, tiny_model, tmp_path, tmp_path / "1.json", "--dry-run")
    row = first["row"]
    assert row["sampling"] == "adaptive" and row["rechecked"] is True and 2.9 * n0 <= row["chunks"] <= 3 * n0
    assert first["timing"]["rest"] == 1 and first["timing"]["extended"] == 0
    [(spec, seconds, chunks)] = stored_rows(tmp_path / "state.db")
    assert spec == "adaptive:30~1/whole<=900" and chunks == row["chunks"] and 85 <= seconds <= 95

    # settings under which that is close too: the stage after it only (here: all the rest)
    monkeypatch.setattr(adaptive, "needs_rest", lambda scores, *, share, chunks, **kw: True)
    second = tag(track, tiny_model, tmp_path, tmp_path / "2.json", "--dry-run", "--top-k", "2")
    row, timing = second["row"], second["timing"]
    assert timing["extended"] == 1 and timing["rest"] == 1 and row["sampling"] == "adaptive+rest"
    assert timing["audio_seconds"] <= whole["row"]["duration"] - seconds + 2.0
    assert row["chunks"] == whole["row"]["chunks"]
    [(spec, _s, chunks)] = stored_rows(tmp_path / "state.db")
    assert spec == "adaptive:30+rest/whole<=900" and chunks == whole["row"]["chunks"]
    # the whole track's scores, to float rounding: every stretch was decoded as the whole track has it
    np.testing.assert_allclose(stored_scores(tmp_path / "state.db"), stored_scores(tmp_path / "w" / "state.db"),
                               atol=2e-5)


@pytest.mark.usefixtures("ray_session")
def test_an_albums_close_call_hears_its_tracks_further_until_it_is_clear(tmp_path, tiny_model, monkeypatch):
    """Each track's own decision is clear on its first pass, but the album's (the tracks' scores
    weighted by their lengths) is close under the tracks' sampling bounds: its tracks are heard
    stage by stage, the album held, until it is clear (here: until they are heard to the end),
    and it is then decided as a whole-track run decides it."""
    lib, paths = two_track_album(tmp_path)

    def run(name, *extra):
        return album_run(tmp_path, lib, tiny_model, name, *extra)

    whole, _ = run("whole", "--whole-track")
    monkeypatch.setattr(adaptive, "needs_rest", lambda *a, **k: False)  # every track's own decision: clear
    alone, timing = run("alone", "--no-albums")
    assert timing["album_rechecks"] == 0 and {r["sampling"] for r in alone.values()} == {"adaptive"}
    monkeypatch.setattr(adaptive, "SAMPLING_ERROR", 50.0)  # and every album decision on samples: close
    rows, timing = run("album")
    assert timing["album_rechecks"] >= 2 and timing["rest"] == 2
    for p in paths:
        row, w = rows[str(p)], whole[str(p)]
        assert row["sampling"] == "adaptive+rest" and row["chunks"] == w["chunks"], row
        assert row["written"] == w["written"] and row["genre_from"] == w["genre_from"] == "album"
    assert len(rows) == 2  # each file once, whatever it took


def test_a_sampled_tracks_dissent_from_its_album_is_guarded_by_its_bound():
    from tagger.albums import dissent_close

    album = [0]  # the album's genre: label 0
    # best 0.9 on label 1, not the album's: dissents, and stays so within 0.05
    assert not dissent_close(np.array([0.05, 0.9, 0.05]), album, dissent=0.8, error=0.05)
    # best 0.83, 0.03 over --album-dissent: within 0.05 it may not dissent
    assert dissent_close(np.array([0.05, 0.83, 0.05]), album, dissent=0.8, error=0.05)
    assert not dissent_close(np.array([0.05, 0.83, 0.05]), album, dissent=0.8, error=0.02)
    # the album's genre close behind the best: the best may become the album's
    assert dissent_close(np.array([0.82, 0.9, 0.05]), album, dissent=0.8, error=0.05)
    # the best is the album's, and nothing else is near: no dissent either way
    assert not dissent_close(np.array([0.9, 0.5, 0.05]), album, dissent=0.8, error=0.05)
    # two non-album labels close, both sure: dissent either way
    assert not dissent_close(np.array([0.1, 0.95, 0.93]), album, dissent=0.8, error=0.05)
    assert not dissent_close(np.array([0.1, 0.83, 0.05]), album, dissent=0.8, error=0.0)  # heard whole


@pytest.mark.usefixtures("ray_session")
def test_a_tracks_close_dissent_hears_it_further_though_its_album_is_clear(tmp_path, tiny_model, monkeypatch):
    """The album's decision is clear, but whether a track keeps its own genre (--album-dissent)
    could change within its sampling bound: that track is heard further (here to its end), and
    only where the dissent is close."""
    from tagger import albums as al
    from tagger import model as tm

    lib, _ = two_track_album(tmp_path)

    def run(name):
        return album_run(tmp_path, lib, tiny_model, name)

    monkeypatch.setattr(adaptive, "needs_rest", lambda *a, **k: False)  # every track's own decision: clear
    monkeypatch.setattr(adaptive, "SAMPLING_ERROR", 50.0)  # bounds that cover everything
    monkeypatch.setattr(tm, "close_call", lambda *a, **k: False)  # and the album's decision: clear
    rows, timing = run("dissent")
    assert timing["album_rechecks"] >= 2 and {r["sampling"] for r in rows.values()} == {"adaptive+rest"}
    monkeypatch.setattr(al, "dissent_close", lambda *a, **k: False)  # no dissent in doubt: nothing more heard
    rows, timing = run("clear")
    assert timing["album_rechecks"] == 0 and {r["sampling"] for r in rows.values()} == {"adaptive"}


def test_both_ways_of_choosing_audio_on_one_command_line_is_a_usage_error():
    from tagger.config import resolve
    from tagger.errors import CommandLineError

    with pytest.raises(CommandLineError, match="exclude each other"):
        resolve({"whole_track": True, "analysis_seconds": 30.0}, {"whole_track", "analysis_seconds"}, {}, None)
