"""tagger.report.pictures: explain pictures for an HTML report, from the report's own rows."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from tagger.options import TagOptions
from tagger.report import Report, Row
from tagger.report.pictures import attach_pictures, explain_folder, scores_differ, uncertain_rows
from tests.conftest import tone

pytestmark = pytest.mark.tf


def _row(path, action="uncertain", scores=((("rock", 0.3), ("jazz", 0.2)))):
    return Row(str(path), "wav", action, "no genre reaches the threshold",
               predicted=[{"genre": g.title(), "label": g, "score": s} for g, s in scores])


def test_uncertain_rows_are_the_analysed_uncertain_files_by_path():
    report = Report()
    for name, action in (("c", "uncertain"), ("a", "uncertain"), ("b", "would tag"), ("d", "failed")):
        report.add(_row(f"/m/{name}.wav", action))
    report.add(Row("/m/e.wav", "wav", "uncertain", "no predictions"))  # nothing to draw
    assert [r.path for r in uncertain_rows(report)] == ["/m/a.wav", "/m/c.wav"]


def test_scores_differ_compares_the_rows_top_genres_by_label():
    row = _row("/m/a.wav", scores=(("rock", 0.3), ("jazz", 0.2)))
    labels = ("jazz", "pop", "rock")
    assert not scores_differ(row, labels, np.array([0.2004, 0.5, 0.2996]))
    assert scores_differ(row, labels, np.array([0.2, 0.5, 0.31]))
    assert scores_differ(row, ("jazz", "pop"), np.array([0.2, 0.8]))  # a label the model lacks


def test_nothing_uncertain_draws_nothing_and_loads_no_model(tmp_path):
    report = Report()
    report.add(_row(tmp_path / "a.wav", "would tag"))

    def load_model():
        raise AssertionError("no picture to draw: the model is not needed")

    assert attach_pictures(report, tmp_path / "plan.html", options=TagOptions(), load_model=load_model) == 0
    assert not explain_folder(tmp_path / "plan.html").exists()


def test_pictures_beside_the_report_linked_from_their_rows(tmp_path, tiny_model, caplog):
    from tagger.explain import explain_file
    from tagger.model import GenreModel

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(2):
        sf.write(lib / f"t{i}.wav", tone(2.5, sr=22050, freq=200.0 * (i + 1), seed=i), 22050)
    options = TagOptions(model=str(tiny_model.weights))
    model = GenreModel.load(tiny_model)
    report = Report(dry_run=True)
    for i in range(2):
        e = explain_file(lib / f"t{i}.wav", options=options, model=model)
        report.add(Row(e.path, "wav", "uncertain", e.decision.reason,
                       predicted=[{"genre": r.genre, "label": r.label, "score": round(r.score, 4)}
                                  for r in e.decision.ranked[:5]]))
    report.rows[1].predicted[0]["score"] += 0.2  # as if the file had changed since the run
    report.add(_row(lib / "gone.wav"))  # moved away since the run
    out = tmp_path / "out"
    out.mkdir()
    folder = explain_folder(out / "plan.htm")
    folder.mkdir()
    (folder / "0009-old.png").write_bytes(b"an earlier run's picture")
    calls = []

    def load_model():
        calls.append(1)
        return model

    with caplog.at_level(logging.WARNING, logger="tagger.report.pictures"):
        made = attach_pictures(report, out / "plan.htm", options=options, load_model=load_model)
    assert made == 2 and calls == [1]
    by_path = {r.path: r for r in report.rows}
    assert by_path[str(lib / "gone.wav")].explain == ""
    assert sorted(p.name for p in folder.iterdir()) == ["0002-t0.png", "0003-t1.png"]
    for i, pos in ((0, 2), (1, 3)):
        row = by_path[str(lib / f"t{i}.wav")]
        assert row.explain == f"plan.explain/000{pos}-t{i}.png" and (out / row.explain).stat().st_size > 10_000
    text = caplog.text
    assert "gone.wav" in text and f"{lib / 't1.wav'}: scores differ from the run's" in text
    assert f"{lib / 't0.wav'}: scores differ" not in text


def test_the_picture_limit_is_noted_in_the_report(tmp_path, monkeypatch, tiny_model):
    from tagger.model import GenreModel
    from tagger.report import pictures

    monkeypatch.setattr(pictures, "EXPLAIN_LIMIT", 1)
    report = Report()
    for name in ("a", "b", "c"):
        report.add(_row(tmp_path / f"{name}.wav"))  # none exists: each is logged and skipped
    options = TagOptions(model=str(tiny_model.weights))
    made = attach_pictures(report, tmp_path / "plan.html", options=options, load_model=lambda: GenreModel.load(tiny_model))
    assert made == 0
    assert report.notes == ["explain pictures for the first 1 uncertain files only; "
                            "run `tagger explain FILE` for the other 2"]
