"""tagger.report.model_card: the model's figures, the same in `tagger info` and the HTML report."""

from __future__ import annotations

import html

import pytest
from click.testing import CliRunner

from tagger.cli import main
from tagger.modelmeta import load_meta, locate
from tagger.report import Report
from tagger.report import html_report as hr
from tagger.report.model_card import accuracy_text, metric_lines, per_class
from tests.report_helpers import MODEL

pytestmark = pytest.mark.pure


def test_accuracy_line_with_interval_tracks_f1_and_source():
    d = {"accuracy": 0.781, "accuracy_ci95": [0.702, 0.844], "tracks": 100, "macro_f1": 0.77,
         "evaluated_on": "a test split"}
    assert accuracy_text(d) == "accuracy 78.1% (95% CI 70.2%–84.4%) on 100 tracks, macro F1 0.77 — a test split"
    assert accuracy_text({"accuracy": 0.5}) == "accuracy 50.0%"


def test_lines_of_a_metrics_table():
    lines = metric_lines(MODEL["metrics"])
    assert lines[0] == ("accuracy", "accuracy 78.1% (95% CI 70.2%–84.4%) on 100 tracks — GTZAN fault-filtered test split")
    assert lines[1][0] == "test" and "macro F1 0.77" in lines[1][1]
    assert [k for k, _ in lines] == ["accuracy", "test"]  # interval, tracks, level: folded in or left out
    # figures without a headline accuracy: each number, then what they were measured on
    assert metric_lines({"roc_auc": 0.88021, "evaluated_on": "MSD test split", "flag": True}) == \
        [("roc auc", "0.8802"), ("evaluated on", "MSD test split")]
    assert per_class(MODEL["metrics"])["rock"]["f1"] == 0.77
    assert per_class({}) == {}


@pytest.mark.parametrize("vocabulary", ["gtzan", "msd"])
def test_info_prints_the_figures_of_the_reports_model_card(vocabulary):
    meta = load_meta(locate(None, vocabulary=vocabulary))
    lines = metric_lines(meta.metrics)
    assert lines
    r = CliRunner().invoke(main, ["info", "--no-ray", "--vocabulary", vocabulary])
    assert r.exit_code == 0, r.output
    shown = [ln.strip() for ln in r.stdout.splitlines()]
    page = hr.render(Report(model={"metrics": meta.metrics, "model_id": meta.model_id}))
    for label, text in lines:
        assert f"{label}: {text}" in shown, (label, r.stdout)
        assert f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>" in page, label
