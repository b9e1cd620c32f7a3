"""Adaptive analysis (issue 19): a sample first, the rest of the track only where the decision
could still change; the store keeps first passes and extends them instead of starting again."""

from __future__ import annotations

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
from tagger.pipeline import accepted_samplings, needs_extension, sampling_spec
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


@pytest.mark.parametrize("duration", [80.0, 95.0, 168.0, 272.0, 611.0, 899.0])
def test_first_pass_and_rest_make_exactly_the_whole_track_chunks(duration):
    from tagger.analyse import chunk_spans

    fp = musicnn_params()
    sr = fp.sample_rate
    n = int(round(duration * sr))
    heard = adaptive.first_plan(duration, first_seconds=60.0, max_seconds=900.0, params=fp)
    rest, share = adaptive.plan_rest(duration, heard, max_seconds=900.0, params=fp)
    assert heard and rest and all(d is not None for _, d in heard)

    def spans(segs):  # the chunks tagger.features makes of each stretch, as decoded from the track
        lengths = [min(n - int(round(o * sr)), n if d is None else int(round(d * sr))) for o, d in segs]
        return chunk_spans(lengths, [o for o, _ in segs], params=fp)

    whole = chunk_spans([n], [0.0], params=fp)
    both = np.concatenate([spans(heard), spans(rest)])
    got = both[np.argsort(both[:, 0])]
    assert got.shape == whole.shape  # every chunk once: the whole track's chunks
    np.testing.assert_allclose(got, whole, atol=1e-6)
    assert share == pytest.approx(len(spans(heard)) / len(whole))
    assert 50 <= sum(d for _, d in heard) <= 70


def test_over_the_cap_the_rest_is_the_whole_plan_minus_the_sample():
    fp = musicnn_params()
    heard = adaptive.first_plan(2400.0, first_seconds=60.0, max_seconds=900.0, params=fp)
    rest, share = adaptive.plan_rest(2400.0, heard, max_seconds=900.0, params=fp)
    whole = sum(d for _, d in adaptive.whole_plan(2400.0, max_seconds=900.0, params=fp))
    pieces = sorted([(o, o + d) for o, d in heard] + [(o, o + d) for o, d in rest])
    assert all(b <= c + 1e-6 for (_, b), (c, _) in zip(pieces, pieces[1:]))  # nothing heard twice
    assert whole - 2 * len(heard) * fp.chunk_seconds <= sum(b - a for a, b in pieces) <= whole + 61.0
    assert 0 < share < 0.15


def test_short_tracks_are_heard_whole_and_have_no_rest():
    fp = musicnn_params()
    for duration in (55.0, 75.0):  # up to 60 s / 0.8: the sampler would hear some audio twice
        heard = adaptive.first_plan(duration, first_seconds=60.0, max_seconds=900.0, params=fp)
        assert heard == [(0.0, None)]
        assert adaptive.plan_rest(duration, heard, max_seconds=900.0, params=fp) == ([], 1.0)
    assert adaptive.plan_rest(0.0, [(0.0, None)], max_seconds=900.0, params=fp) == ([], 1.0)  # unknown length


def test_the_re_check_rule_follows_the_margins_and_the_share_heard():
    clear = np.array([0.8, 0.1, 0.05, 0.05])
    assert not adaptive.needs_rest(clear, share=0.2, top_k=1, min_confidence=0.4)
    near_threshold = np.array([0.45, 0.2, 0.2, 0.15])
    assert adaptive.needs_rest(near_threshold, share=0.3, top_k=1, min_confidence=0.4)
    # the closer to the whole track the sample is, the smaller the error: no re-check
    assert not adaptive.needs_rest(near_threshold, share=0.99, top_k=1, min_confidence=0.4)
    assert not adaptive.needs_rest(near_threshold, share=1.0, top_k=1, min_confidence=0.4)
    close_pair = np.array([0.46, 0.40, 0.1, 0.04])  # clear of the threshold, not of each other
    assert adaptive.needs_rest(close_pair, share=0.4, top_k=1, min_confidence=0.1)
    # top-k 2: the order of the 2nd and 3rd counts too
    second_third = np.array([0.7, 0.14, 0.12, 0.04])
    assert not adaptive.needs_rest(second_third, share=0.4, top_k=1, min_confidence=0.05)
    assert adaptive.needs_rest(second_third, share=0.4, top_k=2, min_confidence=0.05)
    assert adaptive.sampling_error(0.0) == pytest.approx(adaptive.SAMPLING_ERROR)
    assert adaptive.sampling_error(0.75) == pytest.approx(adaptive.SAMPLING_ERROR / 2)


def test_combining_chunk_means_is_the_mean_over_every_chunk():
    rng = np.random.default_rng(3)
    a, b = rng.random((7, 5)), rng.random((19, 5))
    got = adaptive.combine(a.mean(0), 7, b.mean(0), 19)
    np.testing.assert_allclose(got, np.concatenate([a, b]).mean(0), rtol=1e-6)


def test_sampling_specs_and_what_each_run_accepts_from_the_store():
    assert sampling_spec(TagOptions()) == "adaptive:60/whole<=900"
    assert sampling_spec(TagOptions(whole_track=True)) == "whole<=900"
    assert sampling_spec(TagOptions(analysis_seconds=30)) == "sample:30"
    assert set(accepted_samplings("adaptive:60/whole<=900")) == {
        "adaptive:60/whole<=900", "adaptive:60+rest/whole<=900", "whole<=900"}
    assert accepted_samplings("whole<=900") == ("whole<=900",)  # --whole-track: today's behaviour
    assert accepted_samplings("sample:30") == ("sample:30",)
    assert adaptive.first_seconds_of("adaptive:60/whole<=900") == 60.0
    assert adaptive.first_seconds_of("adaptive:60+rest/whole<=900") is None
    assert adaptive.describe("adaptive:60+rest/whole<=900") == ("adaptive+rest", True)
    assert adaptive.describe("sample:30") == ("sample", None)
    with pytest.raises(ValueError, match="exclude each other"):
        TagOptions(whole_track=True, analysis_seconds=30)


def test_the_command_line_choice_of_audio_overrides_the_config_files_other_one():
    from tagger.config import resolve

    o, _ = resolve({"whole_track": True}, {"whole_track"}, {"analysis_seconds": 30.0}, Path("c.toml"))
    assert o.whole_track and o.analysis_seconds is None
    o, _ = resolve({"analysis_seconds": 45.0}, {"analysis_seconds"}, {"whole_track": True}, Path("c.toml"))
    assert o.analysis_seconds == 45.0 and not o.whole_track


def _stored(scores, *, sampling="adaptive:60/whole<=900", duration=240.0, chunks=20, seconds=60.0):
    return StoredAnalysis(path="/x.ogg", model_id="m", size=1, mtime_ns=1, scores=tuple(scores), chunks=chunks,
                          seconds=seconds, sampling=sampling, duration=duration)


def test_a_stored_first_pass_is_extended_only_where_these_settings_make_it_close():
    meta = load_meta(locate(None, vocabulary="gtzan"))
    clear = [0.82] + [0.02] * 9
    close = [0.43, 0.3] + [0.03] * 8
    o = TagOptions()
    assert needs_extension(_stored(clear), o, meta) == []
    rest = needs_extension(_stored(close), o, meta)
    assert rest and rest[-1][1] is None  # the rest runs to the end of the track
    assert sum(d for _, d in rest[:-1]) + 240.0 - rest[-1][0] > 240.0 - 62.0
    # a setting that moves the threshold next to a clear score makes it close
    assert needs_extension(_stored(clear), o.replace(min_confidence=0.8), meta)
    # complete analyses and short tracks have nothing left to hear
    assert needs_extension(_stored(close, sampling="adaptive:60+rest/whole<=900"), o, meta) == []
    assert needs_extension(_stored(close, sampling="whole<=900"), o, meta) == []
    assert needs_extension(_stored(close, duration=50.0), o, meta) == []


# -- end to end, with Ray and the tiny model ----------------------------------------------------------

def long_track(path: Path, seconds: float = 150.0, sr: int = 22050) -> Path:
    """A track whose parts differ (changing tones), so that a sample and the whole differ."""
    parts = [tone(seconds / 6, sr=sr, freq=f, seed=i) for i, f in enumerate([110, 330, 660, 1320, 220, 2640])]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate(parts), sr)
    return path


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
    assert 55 <= clear["row"]["duration"] <= 65  # the 60 s sample only
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
    # the sample alone differs from the whole track more than sample + rest does
    sampled = {p["label"]: p["score"] for p in clear["row"]["predicted"]}
    full = {p["label"]: p["score"] for p in whole["row"]["predicted"]}
    combined = {p["label"]: p["score"] for p in row["predicted"]}
    assert max(abs(combined[k] - full[k]) for k in full) < max(abs(sampled[k] - full[k]) for k in full)
    (spec, seconds, chunks), = stored_rows(tmp_path / "r" / "state.db")
    assert spec == "adaptive:60+rest/whole<=900" and chunks == row["chunks"]


@pytest.mark.usefixtures("ray_session")
def test_a_stored_first_pass_is_extended_not_started_again(tmp_path, tiny_model, monkeypatch):
    track = long_track(tmp_path / "lib" / "long.wav")
    force_close(monkeypatch, False)
    first = tag(track, tiny_model, tmp_path, tmp_path / "1.json", "--dry-run")
    assert first["row"]["rechecked"] is False
    [(spec, seconds, chunks)] = stored_rows(tmp_path / "state.db")
    assert spec == "adaptive:60/whole<=900" and 55 <= seconds <= 65

    # other settings, under which the stored sample is a close call: only the rest is analysed
    force_close(monkeypatch, True)
    second = tag(track, tiny_model, tmp_path, tmp_path / "2.json", "--dry-run", "--top-k", "2")
    row, timing = second["row"], second["timing"]
    assert row["rechecked"] is True and row["analysis"] == "now"
    assert timing["extended"] == 1 and timing["rest"] == 1
    duration = sf.info(str(track)).duration
    # the rest only, not the sample again (each stretch decodes a few frames of slack)
    assert timing["audio_seconds"] <= duration - seconds + 0.15 * 60
    assert timing["audio_seconds"] >= duration - seconds - 10.0
    assert row["chunks"] > chunks and row["duration"] >= duration - 10.0
    [(spec, seconds2, chunks2)] = stored_rows(tmp_path / "state.db")
    assert spec == "adaptive:60+rest/whole<=900" and chunks2 == row["chunks"]

    # the extended analysis is complete: later settings decide from it without any analysis
    from tagger import pipeline

    monkeypatch.setattr(pipeline.Tagger, "_process", lambda *a, **k: (_ for _ in ()).throw(AssertionError("analysed")))
    third = tag(track, tiny_model, tmp_path, tmp_path / "3.json", "--dry-run", "--top-k", "3")
    assert third["row"]["analysis"] == "stored" and third["row"]["sampling"] == "adaptive+rest"
    assert third["row"]["chunks"] == row["chunks"]


def test_both_ways_of_choosing_audio_on_one_command_line_is_a_usage_error():
    from tagger.config import resolve
    from tagger.errors import CommandLineError

    with pytest.raises(CommandLineError, match="exclude each other"):
        resolve({"whole_track": True, "analysis_seconds": 30.0}, {"whole_track", "analysis_seconds"}, {}, None)
