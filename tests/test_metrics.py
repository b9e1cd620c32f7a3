"""tagger.metrics: intervals, per-genre scores, thresholds for a target precision, curves, plots.
Pure and fast (no Ray, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from tagger.errors import ParameterError
from tagger.metrics import (
    confusion_matrix,
    micro,
    per_genre,
    plot_confusion,
    plot_precision_coverage,
    precision_coverage,
    threshold_for_precision,
    wilson_interval,
)

PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.train


def test_wilson_interval_matches_published_values_and_is_the_one_training_uses():
    import training.evaluate as te

    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert te.wilson_interval is wilson_interval  # one source
    with pytest.raises(ParameterError):
        wilson_interval(3, 2)


def test_confusion_matrix_positional_and_training_keyword_forms():
    cm = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert confusion_matrix([0, 1], [1, 1], n_classes=2).tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ParameterError):
        confusion_matrix([0, 3], [0, 0], 3)


def test_per_genre_counts_intervals_and_undefined_values():
    names = ["Rock", "Jazz", "Folk"]
    t = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0]], bool)
    p = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]], bool)
    m = per_genre(t, p, names)
    assert m["Rock"]["tp"] == 2 and m["Rock"]["predicted"] == 3 and m["Rock"]["support"] == 3
    assert m["Rock"]["precision"] == pytest.approx(2 / 3, abs=1e-4) and m["Rock"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["Rock"]["precision_ci95"] == [round(v, 4) for v in wilson_interval(2, 3)]
    assert m["Jazz"]["precision"] == 1.0 and m["Jazz"]["recall"] == 1.0 and m["Jazz"]["f1"] == 1.0
    assert m["Folk"]["precision"] is None and m["Folk"]["recall"] is None and m["Folk"]["f1"] is None
    assert m["Folk"]["precision_ci95"] == [0.0, 1.0]
    all_ = micro(t, p)
    assert (all_["tp"], all_["predicted"], all_["support"]) == (4, 5, 5)
    with pytest.raises(ParameterError):
        per_genre(t, p, names[:2])


def test_threshold_for_precision_is_the_lowest_reaching_the_target():
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    truth = np.array([1, 1, 1, 0, 1, 0, 0, 1], bool)
    thr, prec, rec = threshold_for_precision(scores, truth, 1.0)
    assert thr == 0.8 and prec == 1.0 and rec == pytest.approx(3 / 5)
    thr, prec, rec = threshold_for_precision(scores, truth, 0.8)  # 4/5 at 0.6
    assert thr == 0.6 and prec == pytest.approx(0.8) and rec == pytest.approx(4 / 5)
    # what it reports is what the rule "score >= threshold" gives on these scores
    chosen = scores >= thr
    assert truth[chosen].mean() == pytest.approx(prec)


def test_threshold_unreachable_and_ties():
    thr, prec, rec = threshold_for_precision(np.array([0.9, 0.8, 0.7]), np.array([0, 1, 0], bool), 0.95)
    assert thr is None and prec == pytest.approx(0.5) and rec == 1.0
    # tied scores are one threshold: both tracks or neither
    thr, prec, _ = threshold_for_precision(np.array([0.9, 0.9, 0.2]), np.array([1, 0, 1], bool), 0.6)
    assert thr is not None and thr == 0.2 and prec == pytest.approx(2 / 3)
    assert threshold_for_precision(np.array([0.5]), np.array([False]), 0.9) == (None, 0.0, 0.0)
    with pytest.raises(ParameterError):
        threshold_for_precision(np.array([0.5]), np.array([True]), 0.0)


def test_precision_coverage_one_genre_and_top1_over_genres():
    curve = precision_coverage(np.array([0.9, 0.8, 0.1, 0.05]), np.array([1, 0, 1, 0], bool))
    assert curve[0] == (0.9, 0.25, 1.0)
    assert curve[-1] == (0.05, 1.0, 0.5)
    assert [c for _, c, _ in curve] == sorted(c for _, c, _ in curve)
    scores = np.array([[0.9, 0.1], [0.2, 0.7], [0.6, 0.5]])
    truth = np.array([[1, 0], [1, 0], [1, 1]], bool)
    top = precision_coverage(scores, truth)  # best genres: 0 (right), 1 (wrong), 0 (right)
    assert top == [(0.9, pytest.approx(1 / 3, abs=1e-6), 1.0), (0.7, pytest.approx(2 / 3, abs=1e-6), 0.5),
                   (0.6, 1.0, pytest.approx(2 / 3, abs=1e-6))]
    many = precision_coverage(np.linspace(0, 1, 5000), np.ones(5000, bool))
    assert len(many) <= 200 and many[-1][1] == 1.0


def test_plots_are_pngs(tmp_path):
    cm = np.array([[5, 1], [2, 4]])
    p = plot_confusion(cm, ["Rock", "Jazz"], tmp_path / "cm.png", title="t")
    assert p.read_bytes()[:8] == PNG
    curves = {"all genres (top-1)": precision_coverage(np.array([[0.9, 0.1], [0.3, 0.6]]), np.array([[1, 0], [0, 1]], bool)),
              "Rock": precision_coverage(np.array([0.9, 0.3]), np.array([1, 0], bool))}
    q = plot_precision_coverage(curves, tmp_path / "sub" / "pc.png", title="t", target=0.95)
    assert q.read_bytes()[:8] == PNG and q.stat().st_size > 5000
