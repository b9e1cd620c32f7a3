"""Calibrate adaptive analysis: how far a sampled track score is from the whole-track score.

    apt-get install -y drascula-music warzone2100-music singularity-music hyperrogue-music \
        nexuiz-music ufoai-music wesnoth-1.16-music
    python bench/calibrate_adaptive.py --library ~/realmusic --files 300 --json calib.json

(~/realmusic as docs/benchmarks.md "Adaptive analysis" builds it.) For every track: the whole
track is analysed (the worker's job, ``tagger.analyse.analyse_file``) and predicted once with the
same predictor ``tagger tag`` uses on this machine; the chunk probabilities are kept with each
chunk's place in the track (``chunk_spans``), in ``--cache`` (so later runs, and more libraries
added to the same cache, analyse only what is new). Adaptive analysis is then replayed from those
chunks, stage by stage, with the real plans (``tagger.adaptive.first_plan``/``progress``: stage
stretches lie on the whole-track chunk grid, so a stage's chunks are whole-track chunks;
bench_adaptive.py measures the real thing end to end).

Reported: for every stage of every track, the scaled change of the decision's scores (the best
top_k + 1 of either) between what was heard and the whole track, |change| * sqrt(n / (1 - f))
for n chunks heard, a share f of the track (the constant of ``tagger.adaptive.sampling_error``):
percentiles and the largest; and for candidate constants, the staged replay: tracks that went
past the first pass, decisions (what is written) and top-1 labels that still differ from
whole-track, and the audio heard as a share of whole-track's, under tagger's rule ("written":
only what is written must not change) and 0.3.0's ("ranking": the ranking of the best top_k + 1
labels too). ``--cache`` also takes a held-out library's cache: the constant is then checked on
music it was not chosen on. Nothing is downloaded.
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
    ap.add_argument("--library", type=Path, required=True, action="append",
                    help="a folder of music (again for more folders; the cache keeps every track analysed)")
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--min-seconds", type=float, default=60.0)
    ap.add_argument("--vocabulary", default="gtzan")
    ap.add_argument("--first-seconds", type=float, default=30.0, help="the first pass (tagger.adaptive.FIRST_SECONDS)")
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
    files = [p for lib in args.library for p in pick(lib.resolve(), args.files, args.min_seconds)]
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
    first_s = args.first_seconds
    from tagger.adaptive import decision_error, progress
    from tagger.model import close_call

    def decision(s):
        order = np.argsort(-s)[:k]
        return tuple(int(i) for i in order if s[i] >= thr)

    def chosen(t, segs):
        """The whole-track chunks a stage's stretches make (the chunks that start inside them)."""
        start = t["spans"][:, 0]
        sel = np.zeros(len(start), bool)
        for o, d in segs:
            end = t["duration"] + 1 if d is None else o + d - fp.chunk_seconds + 1e-3
            sel |= (start >= o - 1e-6) & (start <= end)
        return sel

    def stages_of(t):
        """(chunks selected so far, share) after each stage, first pass first, to the last."""
        segs = first_plan(t["duration"], first_seconds=first_s, max_seconds=900.0, params=fp)
        sel = chosen(t, segs)
        out, stage = [], 0
        while True:
            share, nxt = progress(t["duration"], first_seconds=first_s, stage=stage, max_seconds=900.0, params=fp)
            out.append((sel.copy(), share))
            if nxt is None:
                return out
            sel |= chosen(t, nxt.segments)
            stage += 1

    plans = [(t, stages_of(t)) for t in tracks]
    scaled = []
    for t, st in plans:
        whole = t["probs"].mean(axis=0)
        for sel, share in st:
            if share >= 1 or not sel.any():
                continue
            s = t["probs"][sel].mean(axis=0)
            idx = np.unique(np.concatenate([np.argsort(-s)[:k + 1], np.argsort(-whole)[:k + 1]]))
            scaled.append(float(np.max(np.abs(s[idx] - whole[idx]))) * math.sqrt(sel.sum() / max(1e-9, 1 - share)))
    scaled_a = np.asarray(scaled)
    out = {"tracks": len(tracks), "mean_seconds": float(np.mean([t["duration"] for t in tracks])),
           "model": meta.model_id, "top_k": k, "min_confidence": thr, "first_seconds": first_s,
           "sampled_stages": len(scaled),
           "scaled_change": {str(q): round(float(np.percentile(scaled_a, q)), 3) for q in (50, 90, 95, 99, 100)}
           if len(scaled) else {},
           "first_pass_alone_same": 0, "constants": {}}
    same_first = 0
    for t, st in plans:
        s = t["probs"][st[0][0]].mean(axis=0)
        same_first += decision(s) == decision(t["probs"].mean(axis=0))
    out["first_pass_alone_same"] = same_first
    total = sum(len(t["probs"]) for t in tracks)
    # SAMPLING_ERROR candidates, with tagger's rule (what is written must not change: ranking False,
    # tagger.adaptive.needs_rest) and, for comparison, 0.3.0's (the ranking of the best top_k + 1 too)
    for rule, ranking in (("written", False), ("ranking", True)):
        for c in (0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2):
            past_first, differ, top1_differ, heard, stage_counts = 0, 0, 0, 0, {}
            for t, st in plans:
                whole = t["probs"].mean(axis=0)
                for j, (sel, share) in enumerate(st):
                    last = j
                    n = int(sel.sum())
                    s = t["probs"][sel].mean(axis=0)
                    err = c * math.sqrt(max(0.0, 1 - share) / max(1, n)) + decision_error(n)
                    if share >= 1 or not close_call(s, top_k=k, min_confidence=thr, error=err, ranking=ranking):
                        break
                past_first += last > 0
                stage_counts[last] = stage_counts.get(last, 0) + 1
                differ += decision(s) != decision(whole)
                top1_differ += int(np.argmax(s)) != int(np.argmax(whole))
                heard += n
            out["constants"].setdefault(rule, {})[str(c)] = {
                "past_first_pass": past_first, "still_differ": differ, "top1_differs": top1_differ,
                "audio_share": round(heard / total, 3), "decided_at_stage": dict(sorted(stage_counts.items()))}
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
