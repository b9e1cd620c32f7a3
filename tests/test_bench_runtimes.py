"""The runtime benchmark's harness (bench/bench_runtimes.py) works: its TensorFlow part on a few
generated chunks with the tiny test model, optional runtimes it cannot import reported as "not
installed" (never a crash), and its decision figures. No speed is asserted here: figures live in
the benchmark's output and docs/benchmarks.md."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_runtimes as br  # noqa: E402

pytestmark = pytest.mark.tf

OPTIONAL = ("openvino", "onnx", "tf2onnx", "onnxruntime", "ai_edge_litert", "ai_edge_litert.interpreter")


def test_compare_counts_decisions_and_rechecks():
    # 2 clips of 2 chunks, 3 labels (scores only, no embedding); threshold 0.4 everywhere
    ref = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.45, 0.3, 0.25], [0.43, 0.32, 0.25]], np.float32)
    cand = ref.copy()
    cand[2:, 0] -= 0.05  # clip b's mean drops from 0.44 to 0.39: below the threshold, a close call
    clips = [("a", 0, 2), ("b", 2, 4)]
    c = br.compare(ref, cand, clips, n_labels=3, aggregation="mean", thresholds=np.full(3, 0.4))
    assert c["tracks"] == 2 and c["track_top1_same"] == 2
    assert c["decisions_same"] == 1 and c["decisions_differing"] == ["b"]
    assert c["close_calls"] >= 1 and c["decisions_differing_after_recheck"] == 0
    assert c["max_chunk_score_difference"] == pytest.approx(0.05, abs=1e-6)
    assert c["max_embedding_difference"] is None
    assert c["chunk_top1_agreement"] == 1.0
    same = br.compare(ref, ref, clips, n_labels=3, aggregation="mean", thresholds=np.full(3, 0.4))
    assert same["decisions_same"] == 2 and same["max_track_score_difference"] == 0.0


def test_decision_is_best_label_at_its_threshold():
    assert br.decision(np.array([0.2, 0.5, 0.3]), np.full(3, 0.4)) == 1
    assert br.decision(np.array([0.2, 0.35, 0.3]), np.full(3, 0.4)) == -1
    assert br.decision(np.array([0.2, 0.35, 0.3]), np.array([0.4, 0.3, 0.4])) == 1


def test_tensorflow_part_and_missing_runtimes(tiny_model, monkeypatch):
    from tagger.model import GenreModel

    for name in OPTIONAL:  # whatever is installed here: importing these now fails
        monkeypatch.setitem(sys.modules, name, None)
    model = GenreModel.load(tiny_model, batch_size=4)
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (6, *model.meta.input_shape)).astype(np.float32)
    clips = [("one", 0, 3), ("two", 3, 6)]
    out = br.measure(model, x, clips, names=br.RUNTIMES, threads=1, repeats=2, batches=1, accuracy=True)
    rts = out["runtimes"]
    assert set(rts) == set(br.RUNTIMES)
    assert rts["ov-f32"]["status"].startswith("not installed: openvino")
    assert rts["ov-default"]["status"].startswith("not installed: openvino")
    assert rts["ort-f32"]["status"].startswith("not installed: onnx")
    assert rts["litert-f32"]["status"].startswith("not installed: ai_edge_litert")
    for name in ("ov-f32", "ov-default", "ort-f32", "litert-f32"):
        assert "chunks_per_s" not in rts[name] and "vs tf-f32" not in rts[name], name
    for name in ("tf-f32", "tf-bf16"):
        assert rts[name]["status"] == "ok", rts[name]
        assert len(rts[name]["chunks_per_s_runs"]) == 2 and rts[name]["chunks_per_s"] > 0
        assert rts[name]["vs tf-f32"]["tracks"] == 2
    # float32 against itself: the same numbers, the same decisions
    self_cmp = rts["tf-f32"]["vs tf-f32"]
    assert self_cmp["max_chunk_score_difference"] == 0.0 and self_cmp["decisions_same"] == 2
    assert out["timed_chunks"] == 4 and out["batch_size"] == 4


def test_unknown_runtime_is_refused(tiny_model):
    from tagger.model import GenreModel

    model = GenreModel.load(tiny_model, batch_size=4)
    with pytest.raises(ValueError, match="unknown runtime"):
        br.build_runtimes(model, ["tf-f32", "tensorrt"], threads=1)
