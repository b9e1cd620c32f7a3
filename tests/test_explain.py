"""``tagger explain``: the same numbers and decision as ``tagger tag``, a legible picture, clear errors,
and the ``--explain-uncertain`` pictures of the HTML report."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tagger.analyse import chunk_spans
from tagger.cli import main
from tagger.features import FeatureParams, extract_segments
from tests.conftest import TINY_FEATURES, tone

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = [pytest.mark.tf, pytest.mark.ray, pytest.mark.train]


def cli(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def explain_json(path, tiny_model, config, *extra) -> dict:
    r = cli(["explain", path, "--json", "--model", tiny_model.weights, "--config", config, *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _empty(tmp_path: Path) -> Path:
    """An empty config file: a user's own config.toml never changes a test's options."""
    p = tmp_path / "empty-config.toml"
    if not p.exists():
        p.write_text("")
    return p


# ---------------------------------------------------------------------------------------------
# chunk times: the shared helper in tagger.analyse follows extract_segments exactly
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    FeatureParams(),  # musicnn: 16 kHz, 187-frame chunks
    FeatureParams(**TINY_FEATURES),
    FeatureParams(chunk_hop_frames=93),  # overlapping chunks
    FeatureParams(kind="waveform", chunk_frames=16000, chunk_hop_frames=8000),
])
def test_chunk_spans_count_and_place_every_chunk(params):
    rng = np.random.default_rng(0)
    sr = params.sample_rate
    for _ in range(12):
        lengths = [int(n) for n in rng.integers(params.min_samples - 40, 7 * sr, size=int(rng.integers(1, 4)))]
        offsets = [float(o) for o in np.cumsum(rng.uniform(5, 60, size=len(lengths)))]
        audio = [0.1 * rng.standard_normal(n).astype(np.float32) for n in lengths]
        if max(lengths) < params.min_samples:
            continue
        feats = extract_segments(audio, params=params)
        spans = chunk_spans(lengths, offsets, params=params)
        assert spans.shape == (feats.shape[0], 2)
        assert np.all(spans[:, 1] > spans[:, 0])
        assert np.all(np.diff(spans[:, 0]) > 0)
        for s, e in spans:  # each chunk inside the segment it came from
            assert any(o - 1e-9 <= s and e <= o + n / sr + 1e-9 for o, n in zip(offsets, lengths))


# ---------------------------------------------------------------------------------------------
# same numbers, same decision as tagger tag
# ---------------------------------------------------------------------------------------------

def _threshold_between(tmp_path, fixture_dir, tiny_model, config) -> float:
    """A threshold that leaves some fixtures above it and some below (the tiny model is random)."""
    report = tmp_path / "scores.json"
    r = cli(["tag", fixture_dir, "--dry-run", "--model", tiny_model.weights, "--state-db", tmp_path / "s0.db",
             "--config", config, "--report", report, "--min-confidence", "0", "--on-existing", "replace"])
    assert r.exit_code == 2, r.output
    best = sorted({x["predicted"][0]["score"] for x in json.loads(report.read_text())["files"] if x["predicted"]})
    assert len(best) >= 3
    mid = len(best) // 2
    return round((best[mid - 1] + best[mid]) / 2, 6)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("policy", [("--on-existing", "skip"), ("--on-existing", "merge", "--top-k", "2")])
def test_explain_agrees_with_tag_dry_run(tmp_path, fixture_dir, tiny_model, policy):
    config = _empty(tmp_path)
    extra = (*policy, "--min-confidence", str(_threshold_between(tmp_path, fixture_dir, tiny_model, config)))
    report = tmp_path / "r.json"
    r = cli(["tag", fixture_dir, "--dry-run", "--model", tiny_model.weights, "--state-db", tmp_path / "s.db",
             "--config", config, "--report", report, *extra])
    assert r.exit_code == 2, r.output  # the garbage fixtures fail
    rows = json.loads(report.read_text())["files"]
    analysed = failed = 0
    for row in rows:
        # the same state database: explain decides the track's album from its stored analyses
        res = cli(["explain", row["path"], "--json", "--model", tiny_model.weights, "--config", config,
                   "--state-db", tmp_path / "s.db", *extra])
        if row["action"] == "failed":
            failed += 1
            assert res.exit_code == 1
            assert res.output.strip() == f"tagger: error: {row['path']}: {row['reason']}"
            continue
        assert res.exit_code == 0, res.output
        ex = json.loads(res.stdout)
        assert ex["path"] == row["path"] and ex["format"] == row["format"]
        assert ex["existing"] == row["existing"]
        assert ex["decision"]["action"] == row["action"]
        assert ex["decision"]["reason"] == row["reason"]
        assert ex["decision"]["genres"] == row["written"]
        if row["predicted"]:  # the tag run analysed it: same chunks, same scores
            analysed += 1
            assert len(ex["chunks"]) == row["chunks"]
            scores = {s["label"]: s["score"] for s in ex["track_scores"]}
            for p in row["predicted"]:
                assert scores[p["label"]] == pytest.approx(p["score"], abs=2e-4)
            assert [s["label"] for s in ex["track_scores"][:len(row["predicted"])]] == \
                   [p["label"] for p in row["predicted"]]
            probs = np.array([c["probs"] for c in ex["chunks"]])
            assert np.allclose(probs.mean(axis=0), [scores[lab] for lab in ex["labels"]], atol=1e-5)
            assert ex["analysed_seconds"] == pytest.approx(row["duration"], abs=0.02)
    assert analysed >= 9 and failed == 9
    actions = {x["action"] for x in rows}
    assert {"would tag", "uncertain"} <= actions  # both sides of the threshold were compared


@pytest.mark.slow
def test_json_numbers_are_consistent(tmp_path, tiny_model):
    p = tmp_path / "song.flac"
    sf.write(p, tone(4.0, sr=22050, freq=330.0, seed=3), 22050)
    ex = explain_json(p, tiny_model, _empty(tmp_path), "--min-confidence", "0.99")
    fp = FeatureParams(**TINY_FEATURES)
    starts = [c["start"] for c in ex["chunks"]]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert all(c["end"] - c["start"] == pytest.approx(fp.chunk_seconds, abs=1e-3) for c in ex["chunks"])
    assert ex["chunks"][-1]["end"] <= ex["duration"] + 1e-3
    assert all(len(c["probs"]) == len(ex["labels"]) for c in ex["chunks"])
    assert all(sum(c["probs"]) == pytest.approx(1.0, abs=1e-4) for c in ex["chunks"])  # softmax
    d = ex["decision"]
    assert d["action"] == "uncertain" and d["threshold"] == 0.99 and not d["genres"]
    assert ex["model"]["model_id"] == json.loads(tiny_model.meta.read_text())["model_id"]


# ---------------------------------------------------------------------------------------------
# the picture
# ---------------------------------------------------------------------------------------------

def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.slow
def test_picture_is_written_and_sensible(tmp_path, tiny_model):
    src = tmp_path / "song.wav"
    sf.write(src, tone(6.0, sr=22050, freq=440.0, seed=1), 22050)
    before = src.read_bytes(), src.stat().st_mtime_ns
    out = tmp_path / "pic.png"
    r = cli(["explain", src, "--model", tiny_model.weights, "--config", _empty(tmp_path), "--out", out])
    assert r.exit_code == 0, r.output
    assert "picture:" in r.output and str(out) in r.output
    w, h = _png_size(out)
    assert 1000 <= w <= 1600 and 700 <= h <= 1300
    assert 30_000 < out.stat().st_size < 3_000_000
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before  # explain never writes


@pytest.mark.slow
def test_ten_minute_track_stays_legible(tmp_path, tiny_model):
    from tagger import explain
    from tagger import explain_picture as picture
    from tagger.options import TagOptions

    src = tmp_path / "long.wav"
    sr = 8000
    t = np.arange(600 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * (200 + 150 * np.floor(t / 60)) * t)).astype(np.float32)
    sf.write(src, y, sr, subtype="PCM_16")
    expl = explain.explain_file(src, options=TagOptions(model=str(tiny_model.weights)))
    n = expl.probs.shape[0]
    assert n > 1000  # 0.5 s chunks over ten minutes
    rows = picture._taggram_rows(expl)
    edges, grid = picture._taggram_columns(expl, rows)
    assert grid.shape[1] <= picture.MAX_TAGGRAM_COLUMNS and edges.size == grid.shape[1] + 1
    assert edges[0] == 0.0 and edges[-1] == pytest.approx(expl.spans[-1, 1], abs=1e-6)
    assert np.all(np.diff(edges) > 0)
    out = picture.render_png(expl, tmp_path / "long.png")
    w, h = _png_size(out)
    assert w >= 1000 and 30_000 < out.stat().st_size < 3_000_000


def test_taggram_columns_leave_gaps_between_sampled_stretches():
    from types import SimpleNamespace

    from tagger import explain_picture as picture

    spans = np.array([[10.0, 13.0], [13.0, 16.0], [100.0, 103.0], [103.0, 106.0]])
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]], dtype=np.float32)
    expl = SimpleNamespace(spans=spans, probs=probs)
    edges, grid = picture._taggram_columns(expl, [0, 1])
    assert list(edges) == [10.0, 13.0, 16.0, 100.0, 103.0, 106.0]
    assert np.isnan(grid[:, 2]).all()  # the gap
    assert np.allclose(grid[:, [0, 1, 3, 4]], probs.T)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------

def test_missing_file_is_one_line(tmp_path, tiny_model):
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "nope.mp3"), "--model", str(tiny_model.weights)])
    assert r.exit_code == 1
    assert r.output.strip() == f"tagger: error: {tmp_path / 'nope.mp3'}: no such file or folder"


def test_folder_is_refused(tmp_path, tiny_model):
    r = CliRunner().invoke(main, ["explain", str(tmp_path), "--model", str(tiny_model.weights)])
    assert r.exit_code == 1 and "explain takes one file" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_too_short_and_silent_files_fail_with_the_reason(tmp_path, tiny_model):
    short = tmp_path / "short.wav"
    sf.write(short, tone(0.1, sr=8000), 8000)
    silent = tmp_path / "silent.flac"
    sf.write(silent, np.zeros(8000 * 3, np.float32), 8000)
    for p, words in ((short, "too short"), (silent, "digital silence")):
        r = CliRunner().invoke(main, ["explain", str(p), "--model", str(tiny_model.weights), "--out",
                                      str(tmp_path / "x.png")])
        assert r.exit_code == 1, r.output
        line = r.output.strip()
        assert line.startswith(f"tagger: error: {p}: ") and words in line and "\n" not in line
    assert not (tmp_path / "x.png").exists()


def test_bad_model_is_one_line(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, tone(2.0), 22050)
    r = CliRunner().invoke(main, ["explain", str(p), "--model", str(tmp_path / "none.keras")])
    assert r.exit_code == 1 and "model file not found" in r.output and "Traceback" not in r.output


# ---------------------------------------------------------------------------------------------
# tagger tag --explain-uncertain --report plan.html
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_explain_uncertain_links_pictures_from_the_html_report(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    (lib / "a").mkdir(parents=True)
    for i in range(3):
        sf.write(lib / "a" / f"t{i}.wav", tone(2.5, sr=22050, freq=200.0 * (i + 1), seed=i), 22050)
    (lib / "a" / "broken.mp3").write_bytes(b"not audio" * 50)
    out = tmp_path / "out"
    out.mkdir()
    html, js = out / "plan.html", out / "plan.json"
    r = cli(["tag", lib, "--dry-run", "--explain-uncertain", "--min-confidence", "1", "--model", tiny_model.weights,
             "--state-db", tmp_path / "s.db", "--config", _empty(tmp_path), "--report", html, "--report", js])
    assert r.exit_code == 2, r.output
    rows = json.loads(js.read_text())["files"]
    uncertain = [x for x in rows if x["action"] == "uncertain"]
    assert len(uncertain) == 3
    page = html.read_text()
    for x in uncertain:
        pic = out / x["explain"]
        assert x["explain"].startswith("plan.explain/") and pic.is_file()
        assert _png_size(pic)[0] >= 800
        assert f'src="{x["explain"]}"' in page
    assert sorted(p.name for p in (out / "plan.explain").iterdir()) == \
           sorted(Path(x["explain"]).name for x in uncertain)
    assert not any(x["explain"] for x in rows if x["action"] != "uncertain")


def test_explain_is_listed_and_help_is_fast():
    r = CliRunner().invoke(main, ["--help"])
    assert "explain" in r.output
    r = CliRunner().invoke(main, ["explain", "--help"])
    assert r.exit_code == 0 and "--json" in r.output and "--min-confidence" in r.output


def test_explain_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, tagger.explain, tagger.explain_picture, tagger.commands.explain, tagger.report.html_report\n"
            "heavy = [m for m in ('tensorflow', 'ray', 'keras', 'librosa', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_every_format_is_explained_and_left_unchanged(tmp_path, fixture_dir, tiny_model):
    """Explain reads every format (and never writes to it)."""
    src = tmp_path / "f"
    shutil.copytree(fixture_dir, src)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    for p in sorted(src.glob("*-bare.*")):
        ex = explain_json(p, tiny_model, _empty(tmp_path))
        assert ex["chunks"] and ex["format"] and ex["decision"]["action"] in ("would tag", "uncertain")
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
