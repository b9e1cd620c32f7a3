"""Calibrate adaptive analysis: how far a sampled track score is from the whole-track score.

    apt-get install -y drascula-music warzone2100-music singularity-music hyperrogue-music
    python bench/calibrate_adaptive.py --library /usr/share/games --files 60 --json calib.json

For every track: the whole track is analysed (the worker's job, ``tagger.analyse.analyse_file``)
and predicted once with the same predictor ``tagger tag`` uses on this machine; the chunk
probabilities are kept with each chunk's place in the track (``chunk_spans``). A first pass of
S seconds is then replayed from those chunks: ``tagger.adaptive.first_plan`` puts its stretches
on the whole-track chunk grid, so its chunks are the whole-track chunks that start inside them
(up to the reflection padding of each stretch's first frame); bench_adaptive.py measures the
real thing end to end.

Reported per S: the share of the track heard, the largest change of any of the decision's
scores (the best top_k + 1 of either) between sample and whole, scaled by sqrt(1 - share)
(the finite-population correction of a mean of a sample drawn without replacement), its
percentiles, and for candidate bounds the share of tracks a re-check would take and the
decisions that would still differ from whole-track. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import musiclib  # noqa: E402


def pick(root: Path, n: int, min_seconds: float) -> list[Path]:
    """Up to n distinct full-length tracks, spread over the folders (round robin)."""
    seen, by_dir = set(), {}
    for p in musiclib.audio_files(root):
        r = os.path.realpath(p)
        if r in seen:
            continue
        seen.add(r)
        try:
            d = musiclib.duration_of(p)
        except Exception:
            continue
        if d >= min_seconds:
            by_dir.setdefault(p.relative_to(root).parts[0], []).append(p)
    out, lists = [], [sorted(v) for _, v in sorted(by_dir.items())]
    while len(out) < n and any(lists):
        for lst in lists:
            if lst and len(out) < n:
                out.append(lst.pop(0))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--library", type=Path, required=True)
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--min-seconds", type=float, default=60.0)
    ap.add_argument("--vocabulary", default="gtzan")
    ap.add_argument("--seconds", default="20,30,45,60,90")
    ap.add_argument("--top-k", type=int, default=1)
    ap.add_argument("--min-confidence", type=float, default=0.4)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/tagger-calib.npz"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from tagger.adaptive import first_plan
    from tagger.analyse import analyse_file, chunk_spans
    from tagger.modelmeta import load_meta, locate
    from tagger.ray_backend import Predictor

    model_files = locate(None, vocabulary=args.vocabulary)
    meta = load_meta(model_files)
    fp = meta.features
    labels = len(meta.labels)
    files = pick(args.library.resolve(), args.files, args.min_seconds)
    cache = dict(np.load(args.cache, allow_pickle=True)) if args.cache.exists() else {}
    tracks = cache.get("tracks", np.array([], dtype=object)).tolist() if cache else []
    done = {t["path"] for t in tracks}
    todo = [p for p in files if str(p) not in done]
    if todo:
        pred = Predictor(model_files, meta, batch_size=64)
        policy = {"model_id": meta.model_id, "on_existing": "replace", "analyse_all": True,
                  "analysis_seconds": None, "max_seconds": 900.0, "keep_audio": True}
        for i, p in enumerate(todo):
            t = time.perf_counter()
            res = analyse_file(str(p), params=fp.to_dict(), policy=policy)
            if res.features is None:
                print(f"{p}: {res.error or res.skip}", file=sys.stderr)
                continue
            probs = pred.predict_full(res.features.astype(np.float32))[:, :labels]
            spans = chunk_spans([a.shape[0] for a in res.audio], [o for o, _ in res.plan], params=fp)
            tracks.append({"path": str(p), "duration": res.duration, "probs": probs.astype(np.float32),
                           "spans": spans})
            print(f"[{i + 1}/{len(todo)}] {p.name}: {res.duration:.0f} s, {probs.shape[0]} chunks, "
                  f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
            np.savez(args.cache, tracks=np.array(tracks, dtype=object))
    tracks = [t for t in tracks if t["path"] in {str(p) for p in files}]

    k, thr = args.top_k, args.min_confidence

    def decision(s):
        order = np.argsort(-s)[:k]
        return tuple(int(i) for i in order if s[i] >= thr)

    out = {"tracks": len(tracks), "mean_seconds": float(np.mean([t["duration"] for t in tracks])),
           "model": meta.model_id, "top_k": k, "min_confidence": thr, "by_seconds": {}}
    for S in [float(x) for x in args.seconds.split(",")]:
        rows = []
        for t in tracks:
            segs = first_plan(t["duration"], first_seconds=S, max_seconds=900.0, params=fp)
            whole = t["probs"].mean(axis=0)
            if segs[0][1] is None:
                rows.append({"share": 1.0, "delta": 0.0, "same": True, "sampled": whole, "whole": whole,
                             "chunks": len(t["probs"]),
                             "n": len(t["probs"])})
                continue
            start = t["spans"][:, 0]
            sel = np.zeros(len(start), bool)
            for o, d in segs:
                sel |= (start >= o - 1e-6) & (t["spans"][:, 1] <= o + d + 1e-6)
            if not sel.any():
                continue
            s = t["probs"][sel].mean(axis=0)
            share = sel.sum() / len(start)
            idx = np.unique(np.concatenate([np.argsort(-s)[:k + 1], np.argsort(-whole)[:k + 1]]))
            delta = float(np.max(np.abs(s[idx] - whole[idx])))
            rows.append({"share": float(share), "delta": delta, "same": decision(s) == decision(whole),
                         "sampled": s, "whole": whole, "chunks": int(sel.sum()),
                         "n": len(start)})
        scaled = np.array([r["delta"] / math.sqrt(max(1e-9, 1 - r["share"])) for r in rows if r["share"] < 1])
        entry = {"tracks": len(rows), "sampled": int(sum(r["share"] < 1 for r in rows)),
                 "mean_share": float(np.mean([r["share"] for r in rows])),
                 "same_decision_plain": sum(r["same"] for r in rows),
                 "scaled_delta_percentiles": {q: float(np.percentile(scaled, q)) for q in (50, 90, 95, 99, 100)}
                 if len(scaled) else {}, "bounds": {}}
        from tagger.adaptive import decision_error
        from tagger.model import close_call
        for c in (0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3):  # SAMPLING_ERROR candidates
            rechecked, differ, heard = 0, 0, 0
            for r in rows:
                err = c * math.sqrt(max(0.0, 1 - r["share"])) + decision_error(r["chunks"])
                if r["share"] < 1 and close_call(r["sampled"], top_k=k, min_confidence=thr, error=err):
                    rechecked += 1
                    heard += r["n"]
                else:
                    differ += not r["same"]
                    heard += r["chunks"]
            entry["bounds"][str(c)] = {"rechecked": rechecked, "still_differ": differ,
                                       "audio_share": round(heard / sum(r["n"] for r in rows), 3)}
        out["by_seconds"][f"{S:g}"] = entry
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
