"""How long ``tagger learn``'s training takes on a library of N tracks: a synthetic set of N
200-value embeddings (the shipped backbone's size) in G genres, albums of 10 tracks, an artist
per 3 albums, some tracks with two genres; the same steps as ``tagger learn`` after the analysis
(L2 choice by inner grouped CV, outer grouped CV, final fit, thresholds, figures).

    python bench/bench_learn.py --tracks 10000 --genres 20 [--json out.json]

Prints the wall and CPU time of each step and the cross-validated figures (which mean little
here: the data are synthetic; ``bench/learn_gtzan.py`` measures accuracy on real clips).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic(n: int, g: int, d: int = 200, *, signal: float = 0.25, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (g, d))
    weights = 1.0 / np.arange(1, g + 1)  # a long tail: the first genres are common, the last rare
    albums = n // 10
    album_genre = rng.choice(g, size=albums, p=weights / weights.sum())
    lab = np.repeat(album_genre, 10)[:n]
    if lab.size < n:
        lab = np.r_[lab, rng.integers(0, g, n - lab.size)]
    x = centres[lab] * signal + rng.normal(0, 1, (n, d))
    y = np.zeros((n, g), bool)
    y[np.arange(n), lab] = True
    second = rng.random(n) < 0.15  # 15% of tracks carry a second genre
    other = (lab + 1 + rng.integers(0, g - 1, n)) % g
    y[np.nonzero(second)[0], other[second]] = True
    x[second] += centres[other[second]] * signal * 0.5
    album_of = [f"album {i // 10}" for i in range(n)]
    artist_of = [f"artist {i // 30}" for i in range(n)]
    return x.astype(np.float32), y, album_of, artist_of


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=10000)
    ap.add_argument("--genres", type=int, default=20)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    from tagger import learn as L

    x, y, albums, artists = synthetic(a.tracks, a.genres)
    data = L.Labelled(tuple(str(i) for i in range(a.tracks)), x, y, tuple(f"g{j}" for j in range(a.genres)),
                      tuple(f"Genre {j}" for j in range(a.genres)), tuple(albums), tuple(artists),
                      np.zeros((a.tracks, 10), np.float32))
    steps: dict[str, dict[str, float]] = {}

    def step(name, fn):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        steps[name] = {"wall_s": round(time.perf_counter() - t, 2), "cpu_s": round(time.process_time() - c, 2)}
        print(f"{name:<12} {steps[name]['wall_s']:8.2f} s wall  {steps[name]['cpu_s']:8.2f} s CPU", flush=True)
        return out

    plan = step("folds", lambda: L.plan_folds(albums, artists, y, folds=a.folds))
    choice = step("choose_l2", lambda: L.choose_l2(x, y, albums, artists, grouping=plan.grouping))
    cv = step("cv", lambda: L.cross_validate(data, plan, l2=choice.l2, target=0.95, top_k=1))
    step("final_fit", lambda: L.fit_head(x, y, l2=choice.l2))
    thr = step("thresholds", lambda: L.choose_thresholds(cv.oof, y, 0.95))
    ev = step("figures", lambda: L.evaluation(data, cv, thr, base_labels=["x"] * 10, mapping={},
                                              base_predicted=np.zeros_like(y), base_wrote=np.zeros(a.tracks, bool)))
    total = {k: round(sum(s[k] for s in steps.values()), 2) for k in ("wall_s", "cpu_s")}
    s = ev["summary"]["learnt"]
    print(f"total        {total['wall_s']:8.2f} s wall  {total['cpu_s']:8.2f} s CPU; L2 {choice.l2:g}, "
          f"{plan.k} folds by {plan.grouping}; right {s['right_share']:.1%}, wrong {s['wrong_share']:.1%} (synthetic)")
    if a.json:
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
        except OSError:
            pass
        Path(a.json).write_text(json.dumps({
            "tracks": a.tracks, "genres": a.genres, "embedding": int(x.shape[1]), "folds": plan.k, "l2": choice.l2,
            "steps": steps, "total": total, "cpu": cpu, "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
