"""End to end through the CLI (CliRunner) with real Ray, real files and a tiny test model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tagger.cli import main
from tests.conftest import tone

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.tf, pytest.mark.ray]


def make_lib(root: Path, n: int = 4) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        ext = ".flac" if i % 2 else ".wav"
        p = root / f"album{i % 2}" / f"track {i:02d}{ext}"
        p.parent.mkdir(exist_ok=True)
        sf.write(p, tone(2.5, sr=22050, freq=220 * (i + 1), seed=i), 22050)
        paths.append(p)
    return paths


def audio_of(p: Path) -> np.ndarray:
    return sf.read(p, dtype="int16")[0]


def run_cli(args, **kw):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


def tag_args(lib, tiny_model, tmp_path, *extra):
    return ["tag", str(lib), "--model", str(tiny_model.weights), "--state-db", str(tmp_path / "state.db"),
            "--min-confidence", "0", *extra]


def genres_of(p: Path) -> list[str]:
    import mutagen

    f = mutagen.File(p)
    if p.suffix == ".flac":
        return list(f.get("genre", []))
    return [str(v) for v in f.tags.getall("TCON")[0].text] if f.tags and f.tags.getall("TCON") else []


def test_dry_run_writes_nothing_and_reports(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    paths = make_lib(lib)
    before = {p: p.read_bytes() for p in paths}

    import mutagen

    def refuse(*a, **k):
        raise AssertionError("save called during --dry-run")

    for cls in _mutagen_classes():
        monkeypatch.setattr(cls, "save", refuse)
    monkeypatch.setattr(mutagen.FileType, "save", refuse)

    report = tmp_path / "plan.json"
    r = run_cli(tag_args(lib, tiny_model, tmp_path, "--dry-run", "--report", str(report),
                         "--report", str(tmp_path / "plan.csv")))
    assert r.exit_code == 0, r.output
    assert "dry run: 4 files: 4 would tag" in r.output
    data = json.loads(report.read_text())
    assert data["counts"]["would tag"] == 4 and data["dry_run"] is True
    row = data["files"][0]
    assert set(row) >= {"path", "format", "existing", "predicted", "action", "reason", "written"}
    assert row["predicted"] and 0 <= row["predicted"][0]["score"] <= 1
    assert all(p.read_bytes() == b for p, b in before.items())
    assert (tmp_path / "plan.csv").read_text().startswith("path,format,action")


def test_real_run_then_noop_rerun(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    paths = make_lib(lib)
    audio = {p: audio_of(p) for p in paths}
    r = run_cli(tag_args(lib, tiny_model, tmp_path, "--report", str(tmp_path / "r1.json")))
    assert r.exit_code == 0, r.output
    assert "4 tagged" in r.output
    rows = {Path(x["path"]): x for x in json.loads((tmp_path / "r1.json").read_text())["files"]}
    for p in paths:
        assert genres_of(p) == rows[p]["written"] and rows[p]["written"]
        assert np.array_equal(audio_of(p), audio[p])  # audio bit-identical
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    r = run_cli(tag_args(lib, tiny_model, tmp_path))
    assert r.exit_code == 0
    assert "nothing to do: 4 files unchanged since the last run" in r.output
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps
    # --force redoes them; same model and genre -> skipped as already tagged
    r = run_cli(tag_args(lib, tiny_model, tmp_path, "--force"))
    assert "4 skipped" in r.output, r.output


def test_bad_file_does_not_stop_the_run(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    make_lib(lib, n=2)
    (lib / "broken.flac").write_bytes(b"this is not audio at all" * 10)
    (lib / "empty.mp3").write_bytes(b"")
    report = tmp_path / "r.json"
    r = run_cli(tag_args(lib, tiny_model, tmp_path, "--report", str(report)))
    assert r.exit_code == 2, r.output
    data = json.loads(report.read_text())
    failed = {Path(x["path"]).name: x for x in data["files"] if x["action"] == "failed"}
    assert set(failed) == {"broken.flac", "empty.mp3"}
    assert all(x["reason"] and "\n" not in x["reason"] for x in failed.values())
    assert data["counts"]["tagged"] == 2


def test_existing_genre_left_alone_by_default(tmp_path, tiny_model):
    import mutagen

    lib = tmp_path / "lib"
    p = make_lib(lib, n=2)[1]  # a FLAC
    f = mutagen.File(p)
    f["genre"] = ["Shoegaze"]
    f.save()
    r = run_cli(tag_args(lib, tiny_model, tmp_path, "--report", str(tmp_path / "r.json")))
    assert r.exit_code == 0
    assert genres_of(p) == ["Shoegaze"]
    row = next(x for x in json.loads((tmp_path / "r.json").read_text())["files"] if x["path"] == str(p))
    assert row["action"] == "skipped" and "Shoegaze" in row["reason"]
    r = run_cli(tag_args(lib, tiny_model, tmp_path, "--on-existing", "merge", "--force"))
    assert genres_of(p)[0] == "Shoegaze" and len(genres_of(p)) == 2


def test_missing_model_is_one_clear_line(tmp_path):
    lib = tmp_path / "lib"
    make_lib(lib, n=1)
    r = CliRunner().invoke(main, ["tag", str(lib), "--model", str(tmp_path / "none.keras"),
                                  "--state-db", str(tmp_path / "s.db")])
    assert r.exit_code == 1
    assert "model file not found" in r.output and "Traceback" not in r.output


def test_noop_rerun_imports_neither_tensorflow_nor_ray(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    make_lib(lib, n=2)
    r = run_cli(tag_args(lib, tiny_model, tmp_path))
    assert r.exit_code == 0
    code = (
        "import sys\n"
        "from tagger.cli import main\n"
        "try:\n"
        f"    main({tag_args(lib, tiny_model, tmp_path)!r})\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('tensorflow', 'ray', 'keras', 'librosa') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('OK')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout and "2 files unchanged" in out.stdout


def _mutagen_classes():
    from mutagen.aiff import AIFF
    from mutagen.asf import ASF
    from mutagen.flac import FLAC
    from mutagen.id3 import ID3
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    return [AIFF, ASF, FLAC, ID3, MP3, MP4, OggOpus, OggVorbis, WAVE]


def test_whole_batches_carry_a_tracks_last_chunks_over(tiny_model, tmp_path):
    """While files keep coming, the pipeline predicts whole batches only; every track still gets
    the mean of exactly its own chunks' scores."""
    from tagger.contracts import Analysis
    from tagger.options import TagOptions
    from tagger.pipeline import Pending, Tagger

    t = Tagger([str(tmp_path)], TagOptions(model=str(tiny_model.weights)))
    finished, sizes = {}, []
    t._finish_analysed = lambda s, found: finished.__setitem__(s.path, s.scores)

    def predict(x):  # a chunk's "scores" are its first value and 1 - it
        sizes.append(len(x))
        return np.stack([x[:, 0, 0], 1 - x[:, 0, 0]], axis=1)

    rng = np.random.default_rng(0)
    tracks = [Pending(Analysis(f"t{i}", size=1, mtime_ns=1, features=rng.random((n, 3, 2)).astype(np.float32)))
              for i, n in enumerate([5, 3, 9, 1, 6])]
    by_path = {r.analysis.path: None for r in tracks}
    waiting = t._predict_and_write(tracks[:2], predict, by_path, flush=4)  # 8 chunks: 2 batches
    assert sizes == [8] and sorted(finished) == ["t0", "t1"] and waiting == []
    waiting = t._predict_and_write(tracks[2:4], predict, by_path, flush=4)  # 10 chunks: 8 now
    assert sizes[-1] == 8 and sorted(finished) == ["t0", "t1"] and [r.analysis.path for r in waiting] == ["t2", "t3"]
    waiting = t._predict_and_write(waiting + tracks[4:], predict, by_path, flush=None)  # the end: the rest
    assert sizes[-1] == 8 and waiting == [] and sorted(finished) == ["t0", "t1", "t2", "t3", "t4"]
    for r in tracks:
        f = r.analysis.features[:, 0, 0]
        np.testing.assert_allclose(finished[r.analysis.path], [f.mean(), 1 - f.mean()], rtol=1e-6)
    assert t.stats.analysed == 5 and t.stats.chunks == 24
