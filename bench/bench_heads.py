"""How exact a head model's scores are where tagger computes them approximately.

A head (``tagger.heads``) is the shipped musicnn backbone plus a linear layer; its track score is
``sigmoid(mean chunk logit)`` (aggregation ``logit-mean``). This script fits a head on a
folder-per-genre library (logistic regression per genre on the shipped model's track
embeddings, class-balanced: a stand-in for ``tagger learn``), exports it with
``tagger.heads.build_head_bundle``, and measures on the same files:

* **bfloat16** (tagger's CPU inference where the CPU has AMX): the largest chunk and track score
  differences to float32, against ``tagger.model.close_call``'s bound, and how many decisions
  (top-1 at the threshold) differ with and without tagger's float32 re-check of close calls;
* **float16 stored embeddings** (the store of analyses keeps embeddings as float16): the largest
  difference between ``head_scores`` on the float16 track embedding and the score ``tag``
  computes, and how many decisions differ.

    python bench/bench_heads.py --library ../shared/data/gtzan_mini/genres --json heads.json

Numbers in the docs come from runs of this script; say which CPU (``lscpu``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _files(library: Path) -> list[tuple[Path, str]]:
    exts = {".wav", ".au", ".mp3", ".flac", ".ogg", ".opus", ".m4a"}
    return sorted((p, p.parent.name) for p in library.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def _decisions(scores: np.ndarray, thr: float) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(-scores, kind="stable")[:1] if scores[i] >= thr)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from tagger.aggregate import chunk_probabilities, track_scores
    from tagger.decode import decode
    from tagger.features import extract
    from tagger.heads import build_head_bundle, head_scores
    from tagger.model import BF16_ERROR, BF16_ERROR_CHUNK, GenreModel, close_call, head_bf16_error
    from tagger.modelmeta import locate

    t0 = time.perf_counter()
    backbone = locate(None, vocabulary="gtzan")
    base = GenreModel.load(backbone, batch_size=32)
    n_base = len(base.meta.labels)
    files = _files(args.library)[: args.files]
    feats, embs, genres = [], [], []
    for p, g in files:
        x = extract(decode(p, sample_rate=base.meta.features.sample_rate), params=base.meta.features)
        feats.append(x)
        embs.append(base.predict_full(x)[:, n_base:].mean(axis=0))
        genres.append(g)
    labels = sorted(set(genres))
    e = np.stack(embs).astype(np.float64)
    y = np.array([[g == lab for lab in labels] for g in genres], dtype=int)
    w = np.zeros((e.shape[1], len(labels)))
    b = np.zeros(len(labels))
    for j in range(len(labels)):
        clf = LogisticRegression(C=args.C, class_weight="balanced", max_iter=2000).fit(e, y[:, j])
        w[:, j], b[j] = clf.coef_[0], clf.intercept_[0]
    fitted = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        files_out = build_head_bundle(backbone, weights=w, bias=b, labels=labels, display_names={},
                                      thresholds={}, out_dir=Path(tmp), model_name="bench-head",
                                      training={"description": "bench_heads.py: in-sample logistic regression"},
                                      metrics={})
        fp32 = GenreModel.load(files_out, batch_size=32)
        bf16 = fp32.with_precision("mixed_bfloat16")
        chunk_err = track_err = f16_err = worst = 0.0
        flips = flips_after = close = f16_flips = 0
        logit_abs = emb_err = logit_err = 0.0
        w_norm = float(np.linalg.norm(w, axis=0).max())
        # unit directions a head's columns may take: its own, random ones, the embeddings' main axes
        rng = np.random.default_rng(0)
        centred = e - e.mean(axis=0)
        axes = np.linalg.svd(centred, full_matrices=False)[2][:20]
        dirs = np.concatenate([(w / np.linalg.norm(w, axis=0)).T, axes,
                               rng.normal(size=(200, e.shape[1]))])
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        unit_chunk = unit_track = 0.0
        norms = fp32.head_norms
        assert norms is not None  # build_head_bundle's head is a Dense layer
        head_worst, head_close, head_flips_after = 0.0, 0, 0
        for x in feats:
            fa, fb = fp32.predict_full(x), bf16.predict_full(x)
            oa, ob = fa[:, :len(labels)], fb[:, :len(labels)]
            de = (fa[:, len(labels):] - fb[:, len(labels):]).astype(np.float64)
            emb_err = max(emb_err, float(np.linalg.norm(de, axis=1).max()))
            logit_err = max(logit_err, float(np.abs(oa - ob).max()))
            unit_chunk = max(unit_chunk, float(np.abs(de @ dirs.T).max()))
            unit_track = max(unit_track, float(np.abs(de.mean(axis=0) @ dirs.T).max()))
            logit_abs = max(logit_abs, float(np.abs(oa).max()))
            pa, pb = chunk_probabilities(oa, "logit-mean"), chunk_probabilities(ob, "logit-mean")
            chunk_err = max(chunk_err, float(np.abs(pa - pb).max()))
            sa, sb = track_scores(oa, "logit-mean"), track_scores(ob, "logit-mean")
            diff = float(np.abs(sa - sb).max())
            track_err = max(track_err, diff)
            worst = max(worst, diff / (BF16_ERROR + BF16_ERROR_CHUNK / x.shape[0]),
                        float(np.abs(pa - pb).max()) / (BF16_ERROR + BF16_ERROR_CHUNK))
            flip = _decisions(sa, args.threshold) != _decisions(sb, args.threshold)
            is_close = close_call(sb, top_k=1, min_confidence=args.threshold, chunks=x.shape[0])
            flips += int(flip)
            close += int(is_close)
            flips_after += int(flip and not is_close)
            # the head's own bound, as tagger applies it to the bfloat16 scores
            herr = head_bf16_error(sb, norms, chunks=x.shape[0])
            head_worst = max(head_worst, float(np.max(np.abs(sa - sb) / herr)))
            for j in range(oa.shape[0]):  # any chunk as a track of one
                one = head_bf16_error(pb[j], norms, chunks=1)
                head_worst = max(head_worst, float(np.max(np.abs(pa[j] - pb[j]) / one)))
            h_close = close_call(sb, top_k=1, min_confidence=args.threshold, error=herr)
            head_close += int(h_close)
            head_flips_after += int(flip and not h_close)
            # the store's float16 track embedding, through the head
            emb = fp32.predict_full(x)[:, len(labels):].mean(axis=0)
            s16 = head_scores(emb.astype(np.float16)[None, :], w, b)[0]
            f16_err = max(f16_err, float(np.abs(s16 - sa).max()))
            f16_flips += int(_decisions(s16, args.threshold) != _decisions(sa, args.threshold))
    return {
        "files": len(feats), "labels": labels, "threshold": args.threshold, "fit_seconds": round(fitted, 1),
        "max_abs_chunk_logit": round(logit_abs, 2),
        "max_head_column_norm": round(w_norm, 3),
        "bfloat16": {"max_chunk_score_difference": round(chunk_err, 5), "max_track_score_difference": round(track_err, 5),
                     "max_chunk_embedding_difference_l2": round(emb_err, 5),
                     "max_chunk_logit_difference": round(logit_err, 5),
                     "max_unit_direction_difference": {"chunk": round(unit_chunk, 5), "track": round(unit_track, 5),
                                                       "directions": int(dirs.shape[0])},
                     "error_bound": f"{BF16_ERROR} + {BF16_ERROR_CHUNK} / chunks",
                     "worst_difference_to_bound": round(worst, 3), "decisions_differing": flips,
                     "close_calls_rechecked": close, "decisions_differing_after_recheck": flips_after,
                     "head_bound": {"worst_difference_to_bound": round(head_worst, 3),
                                    "close_calls_rechecked": head_close,
                                    "decisions_differing_after_recheck": head_flips_after}},
        "float16_embedding": {"max_track_score_difference": round(f16_err, 6), "decisions_differing": f16_flips},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", type=Path, required=True, help="a folder with a folder of audio files per genre")
    ap.add_argument("--files", type=int, default=10_000, help="at most this many files")
    ap.add_argument("--C", type=float, default=1.0, help="inverse regularisation of the logistic regressions")
    ap.add_argument("--threshold", type=float, default=0.5, help="the decision threshold for the counts")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    out = run(args)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
