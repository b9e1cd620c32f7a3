"""How to share the cores between decoding (Ray workers) and inference (TensorFlow in the driver)
(issue 19.2). Runs ``tagger tag --dry-run`` on the same files once per split and prints a table.

    python bench/bench_split.py --library ~/realmusic --files 30 [--mode adaptive|whole] [--json out.json]

A split is: decode workers (Ray's CPU count for its local instance: ``--workers``), TensorFlow's
intra-op / inter-op threads (0: TensorFlow's default, every core) and the niceness the decode
workers give themselves (inference gets a core first when both want one). Each run has its own
state database, so none decides from another's analyses. Reported: steady tracks/s (start-up
apart) and end to end, CPU seconds per track (every process), and worker busy time / stream wall
time (above the worker count: the workers were oversubscribed... or waiting for a core).
Install the music as bench_adaptive.py says; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_throughput as bt  # noqa: E402
from calibrate_adaptive import pick  # noqa: E402

#: (name, workers, intra, inter, worker_nice)
SPLITS = [
    ("today: 2 workers, TF default", 2, 0, 0, 0),
    ("2 workers nice 10, TF default", 2, 0, 0, 10),
    ("2 workers, TF 2/1", 2, 2, 1, 0),
    ("2 workers nice 10, TF 2/1", 2, 2, 1, 10),
    ("2 workers, TF 1/1", 2, 1, 1, 0),
    ("1 worker, TF 2/1", 1, 2, 1, 0),
    ("3 workers nice 10, TF 2/1", 3, 2, 1, 10),
    ("2 workers nice 10, TF 1/1", 2, 1, 1, 10),
]

WRAPPER = ("import sys, tagger.ray_backend as rb\n"
           "rb.SPLIT_OVERRIDE = rb.CpuSplit(intra={intra}, inter={inter}, worker_nice={nice})\n"
           "from tagger.cli import main\nmain(sys.argv[1:])\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--library", type=Path, required=True)
    ap.add_argument("--files", type=int, default=30)
    ap.add_argument("--min-seconds", type=float, default=60.0)
    ap.add_argument("--mode", choices=["adaptive", "whole"], default="adaptive")
    ap.add_argument("--only", default="", help="comma-separated indexes of SPLITS")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--work", type=Path, default=bt.DEFAULT_WORK / "split")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    root = args.library.resolve()
    files = pick(root, args.files, args.min_seconds)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    lib = work / "library"
    bt.copy_selection(files, root, lib)
    weights, _meta = bt.resolve_model(None, None)
    env = bt.bench_env()
    env["XDG_CONFIG_HOME"] = str(work / "xdg-config")
    audio_s = sum(bt.musiclib.duration_of(p) for p in files)
    chosen = [SPLITS[int(i)] for i in args.only.split(",")] if args.only else SPLITS
    out = {"machine": {"cpu": bt.cpu_model(), "cores": os.cpu_count()}, "tracks": len(files),
           "mode": args.mode, "runs": []}
    print(f"{len(files)} tracks, {audio_s / 3600:.2f} h; {out['machine']}", file=sys.stderr)
    lines = ["| split | tracks/s | tracks/s e2e | CPU s/track | worker busy / wall | load |",
             "|---|---|---|---|---|---|"]
    for _rep in range(args.repeat):
        for name, workers, intra, inter, nice in chosen:
            state, report = work / "state.db", work / "report.json"
            for p in (state, report):
                if p.exists():
                    p.unlink()
            cmd = [sys.executable, "-c", WRAPPER.format(intra=intra, inter=inter, nice=nice), "tag", str(lib),
                   "--model", str(weights), "--state-db", str(state), "--report", str(report), "--quiet",
                   "--dry-run", "--workers", str(workers)] + (["--whole-track"] if args.mode == "whole" else [])
            load = bt.loadavg()
            res, wall, mem = bt.run_sampled(cmd, env=env)
            if res.returncode not in (0, 2):
                raise SystemExit(f"{name}: exit {res.returncode}\n{res.stderr[-2000:]}")
            data = json.loads(report.read_text())
            tm = data["timing"]
            n = tm["analysed"]
            cpu = sum((mem.get("cpu_s") or {}).values())
            row = {"split": name, "workers": workers, "intra": intra, "inter": inter, "nice": nice,
                   "tracks": n, "stream_s": tm["stream"], "wall_s": round(wall, 2),
                   "tracks_per_s": n / tm["stream"], "tracks_per_s_e2e": n / wall, "cpu_s_per_track": cpu / n,
                   "worker_busy_over_wall": tm["worker"] / tm["stream"], "startup": tm["startup"], "load": load,
                   "rest": tm.get("rest")}
            out["runs"].append(row)
            lines.append(f"| {name} | {row['tracks_per_s']:.3f} | {row['tracks_per_s_e2e']:.3f} | "
                         f"{row['cpu_s_per_track']:.2f} | {row['worker_busy_over_wall']:.2f} | {load} |")
            print(lines[-1], file=sys.stderr)
    if args.repeat > 1:
        lines.append("")
        lines.append("| split | median tracks/s | median e2e |")
        lines.append("|---|---|---|")
        for name, *_ in chosen:
            rs = [r for r in out["runs"] if r["split"] == name]
            lines.append(f"| {name} | {statistics.median(r['tracks_per_s'] for r in rs):.3f} | "
                         f"{statistics.median(r['tracks_per_s_e2e'] for r in rs):.3f} |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
