"""The store of analyses (issue 16): a reviewed dry run applied without re-analysis, decisions
re-made from the store when the settings change, and its lifecycle and bad rows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tagger.cli import main
from tagger.state import StateDB
from tests.conftest import build_tiny_model, tone
from tests.test_cron import env
from tests.test_pipeline import genres_of, make_lib, tag_args

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.tf, pytest.mark.ray]


def run(args) -> tuple[int, str]:
    r = CliRunner().invoke(main, args)
    return r.exit_code, r.output


def report_rows(path: Path) -> dict[str, dict]:
    return {row["path"]: row for row in json.loads(path.read_text())["files"]}


def no_analysis(monkeypatch):
    """Any attempt to start Ray / analyse audio in this process fails the test."""
    from tagger import pipeline

    def boom(self, *a, **kw):
        raise AssertionError("the run analysed audio; it should have decided from the store")

    monkeypatch.setattr(pipeline.Tagger, "_process", boom)


def test_apply_after_dry_run_writes_what_the_dry_run_showed(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    paths = make_lib(lib, n=4)
    plan = tmp_path / "plan.json"
    code, out = run(tag_args(lib, tiny_model, tmp_path, "--dry-run", "--report", str(plan)))
    assert code == 0, out
    planned = report_rows(plan)
    assert {r["action"] for r in planned.values()} == {"would tag"}
    assert {r["analysis"] for r in planned.values()} == {"now"}
    assert all(genres_of(p) == [] for p in paths)  # a dry run writes nothing

    no_analysis(monkeypatch)
    done = tmp_path / "done.json"
    code, out = run(tag_args(lib, tiny_model, tmp_path, "--report", str(done)))
    assert code == 0, out
    assert "4 files decided from stored analyses" in out or "4 tagged" in out
    rows = report_rows(done)
    for p in paths:
        row, want = rows[str(p)], planned[str(p)]
        assert row["action"] == "tagged" and row["analysis"] == "stored"
        assert row["analysed_at"] == want["analysed_at"] != ""
        assert row["written"] == want["written"] and genres_of(p) == want["written"]
        assert row["predicted"] == want["predicted"]
    # and now nothing is left to do
    code, out = run(tag_args(lib, tiny_model, tmp_path))
    assert code == 0 and "nothing to do" in out, out


def test_apply_imports_neither_tensorflow_nor_ray(tmp_path, tiny_model):
    lib = tmp_path / "lib"
    make_lib(lib, n=2)
    code, out = run(tag_args(lib, tiny_model, tmp_path, "--dry-run"))
    assert code == 0, out
    probe = ("import sys\nfrom tagger.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
             "print('MODULES', 'tensorflow' in sys.modules, 'ray' in sys.modules, code)\n")
    r = subprocess.run([sys.executable, "-c", probe, *tag_args(lib, tiny_model, tmp_path)], env=env(),
                       capture_output=True, text=True, timeout=300)
    assert "2 tagged" in r.stdout, r.stdout + r.stderr
    assert "MODULES False False 0" in r.stdout, r.stdout + r.stderr


def test_settings_change_redecides_from_the_store_and_undo_goes_back(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    paths = make_lib(lib, n=3)
    code, out = run(tag_args(lib, tiny_model, tmp_path))
    assert code == 0 and "3 tagged" in out, out
    first = {p: genres_of(p) for p in paths}
    assert all(len(g) == 1 for g in first.values())
    code, out = run(tag_args(lib, tiny_model, tmp_path))
    assert "nothing to do" in out, out

    no_analysis(monkeypatch)
    report = tmp_path / "k2.json"
    code, out = run(tag_args(lib, tiny_model, tmp_path, "--top-k", "2", "--report", str(report)))
    assert code == 0 and "3 tagged" in out, out
    rows = report_rows(report)
    for p in paths:
        assert rows[str(p)]["analysis"] == "stored"
        assert len(genres_of(p)) == 2 and genres_of(p)[0] == first[p][0]
    code, out = run(tag_args(lib, tiny_model, tmp_path, "--top-k", "2"))
    assert "nothing to do" in out, out  # nothing would change now
    # undo of the settings change puts the previous run's genres back
    with StateDB(tmp_path / "state.db") as db:
        (last,) = [r.run_id for r in db.runs() if r.options.get("top_k") == 2 and r.files_changed == 3]
    code, out = run(["undo", last, "--state-db", str(tmp_path / "state.db")])
    assert code == 0 and "3 restored" in out, out
    assert {p: genres_of(p) for p in paths} == first


def _corrupt(db_path: Path, sql: str, *args) -> None:
    c = sqlite3.connect(db_path)
    with c:
        c.execute(sql, args)
    c.close()


@pytest.mark.parametrize("damage", ["short-scores", "nan", "foreign-model"])
def test_a_damaged_store_row_is_never_written_from(tmp_path, tiny_model, caplog, damage):
    lib = tmp_path / "lib"
    (p,) = make_lib(lib, n=1)
    db = tmp_path / "state.db"
    code, out = run(tag_args(lib, tiny_model, tmp_path, "--dry-run"))
    assert code == 0, out
    if damage == "short-scores":
        _corrupt(db, "UPDATE analyses SET scores = substr(scores, 1, 8)")
    elif damage == "nan":
        _corrupt(db, "UPDATE analyses SET scores = ?", np.full(5, np.nan, "<f4").tobytes())
    else:  # filed under this model, but the scores of another model (7 labels, not 5)
        _corrupt(db, "UPDATE analyses SET scores = ?", np.full(7, 0.1, "<f4").tobytes())
    report = tmp_path / "r.json"
    code, out = run(["-v", *tag_args(lib, tiny_model, tmp_path, "--report", str(report))])
    assert code == 0, out
    (row,) = report_rows(report).values()
    assert row["analysis"] == "now" and row["action"] == "tagged"
    assert "stored analysis ignored" in out


def test_lifecycle_changed_forced_pruned_and_other_models(tmp_path, tiny_model, monkeypatch):
    lib = tmp_path / "lib"
    a, b, c = make_lib(lib, n=3)
    db = tmp_path / "state.db"
    assert run(tag_args(lib, tiny_model, tmp_path, "--dry-run"))[0] == 0
    with StateDB(db) as d:
        assert d.count_analyses() == 3
    # a changed file is analysed again; a vanished one loses its entry after a complete walk
    sf.write(a, tone(3.0, sr=22050, freq=990, seed=7), 22050)
    c.unlink()
    report = tmp_path / "r.json"
    assert run(tag_args(lib, tiny_model, tmp_path, "--dry-run", "--report", str(report)))[0] == 0
    rows = report_rows(report)
    assert rows[str(a)]["analysis"] == "now" and rows[str(b)]["analysis"] == "stored"
    with StateDB(db) as d:
        assert d.count_analyses() == 2
    # --force analyses again
    assert run(tag_args(lib, tiny_model, tmp_path, "--dry-run", "--force", "--report", str(report)))[0] == 0
    assert {r["analysis"] for r in report_rows(report).values()} == {"now"}
    # another model is another entry; going back to the first needs no analysis
    other = build_tiny_model(tmp_path / "other", seed=1)
    args = ["tag", str(lib), "--model", str(other.weights), "--state-db", str(db), "--min-confidence", "0",
            "--dry-run", "--report", str(report)]
    assert run(args)[0] == 0
    assert {r["analysis"] for r in report_rows(report).values()} == {"now"}
    with StateDB(db) as d:
        assert d.count_analyses() == 4
    no_analysis(monkeypatch)
    assert run(tag_args(lib, tiny_model, tmp_path, "--dry-run", "--report", str(report)))[0] == 0
    assert {r["analysis"] for r in report_rows(report).values()} == {"stored"}
