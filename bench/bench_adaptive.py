"""Adaptive analysis on real full-length music, side by side with whole-track and fixed samples (issue 19).

Install some real recordings first (Debian packages of game soundtracks, Ogg/Opus; nothing is
downloaded by this script), copy them into one folder, and run:

    apt-get install -y drascula-music warzone2100-music singularity-music hyperrogue-music
    mkdir -p ~/realmusic && cp -rL /usr/share/games/singularity/music ~/realmusic/singularity \\
        && cp -rL /usr/share/games/warzone2100/music/albums ~/realmusic/warzone2100 \\
        && cp -rL /usr/share/hyperrogue/music ~/realmusic/hyperrogue \\
        && cp -rL /usr/share/scummvm/drascula/audio ~/realmusic/drascula
    python bench/bench_adaptive.py --library ~/realmusic --files 81 --json adaptive.json

(drascula's de/en/es/fr/it folders are copies of audio/; hyperrogue's sounds/ are effects.)

One run, the same files (tracks of at least ``--min-seconds``, spread over the folders), the
same model, all ``tagger tag --dry-run`` (nothing written, so every run sees the same files;
each has its own state database, so none decides from another's analyses):

  c      decode-only: every file decoded whole at the model's rate in one process per core
         (bench_throughput's run c): the practical limit of this machine for these files
  whole  ``--whole-track`` (the default before issue 19)
  adapt  the default: adaptive analysis (a 30 s first pass; more stages where the decision is close)
  s30    ``--analysis-seconds 30`` (fixed sample, no re-check)
  s60    ``--analysis-seconds 60``

Per run: tracks/s in the steady state (start-up apart) and end to end, the share of decode-only
throughput, audio analysed, tracks re-checked, CPU seconds per track (every process of the run),
and, against whole: the share of files with the same written decision (action and genres) and
the same top-1 label. The machine's CPU model and load average are recorded: other work on the
machine moves the absolute figures, the ratios less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_throughput as bt  # noqa: E402
from calibrate_adaptive import pick  # noqa: E402

RUNS = [("whole", ["--whole-track"]), ("adapt", []), ("s30", ["--analysis-seconds", "30"]),
        ("s60", ["--analysis-seconds", "60"])]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--library", type=Path, required=True)
    ap.add_argument("--files", type=int, default=81)
    ap.add_argument("--min-seconds", type=float, default=60.0)
    ap.add_argument("--vocabulary", default=None, help="default: what tagger tag uses")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--on-existing", default="skip", choices=("skip", "replace"),
                    help="replace: analyse the files that carry a genre already too (every run alike)")
    ap.add_argument("--runs", default=",".join(n for n, _ in RUNS))
    ap.add_argument("--work", type=Path, default=bt.DEFAULT_WORK / "adaptive")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    root = args.library.resolve()
    files = pick(root, args.files, args.min_seconds)
    if not files:
        raise SystemExit(f"{root}: no audio files of {args.min_seconds:g} s or more")
    weights, meta = bt.resolve_model(None, args.vocabulary)
    env = bt.bench_env()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env["XDG_CONFIG_HOME"] = str(work / "xdg-config")
    lib = work / "library"
    bt.copy_selection(files, root, lib)
    durations = [bt.musiclib.duration_of(p) for p in files]
    audio_s = sum(durations)
    processes = args.workers or os.cpu_count() or 1
    loads = [bt.loadavg()]
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"cpu": bt.cpu_model(), "cores": os.cpu_count()},
        "model": {"model_id": meta.model_id, "name": meta.name},
        "library": {"root": str(root), "tracks": len(files), "audio_hours": round(audio_s / 3600, 3),
                    "mean_track_seconds": round(audio_s / len(files), 1),
                    "median_track_seconds": round(statistics.median(durations), 1),
                    "folders": sorted({p.relative_to(root).parts[0] for p in files})},
        "runs": {},
    }
    runs = result["runs"]
    print("c: decode-only ...", file=sys.stderr)
    params = meta.features.to_dict()
    runs["c"] = bt.summarise_pool(f"c: decode-only ({processes} processes)",
                                  bt.pool_run("decode", [str(p) for p in lib.rglob("*") if p.is_file()],
                                              processes=processes, params=params, policy={}),
                                  audio_s, processes)
    loads.append(bt.loadavg())
    extra = ["--workers", str(args.workers)] if args.workers else []
    extra += ["--on-existing", args.on_existing]
    wanted = args.runs.split(",")
    for name, flags in RUNS:
        if name not in wanted:
            continue
        print(f"{name}: tagger tag --dry-run {' '.join(flags)} ...", file=sys.stderr)
        t = time.perf_counter()
        r = bt.run_tagger(name, lib, weights, work, audio_s, [*extra, "--dry-run", *flags], env)
        report = json.loads((work / name / "report.json").read_text())
        r["rechecked_files"] = sum(1 for row in report["files"] if row.get("rechecked"))
        r["analysed_audio_s"] = sum(row.get("duration") or 0 for row in report["files"])
        r["seconds_total"] = round(time.perf_counter() - t, 1)
        runs[name] = r
        loads.append(bt.loadavg())
    result["load_average"] = {"samples": loads, "max": max(loads), "median": statistics.median(loads)}

    c = runs["c"]["tracks_per_s"]
    rows = []
    for name, _ in RUNS:
        if name not in runs:
            continue
        r = runs[name]
        fig = {"run": name, "tracks/s": r["tracks_per_s"], "tracks/s e2e": r["tracks_per_s_e2e"],
               "share of decode-only": r["tracks_per_s"] / c, "CPU s/track": bt.cpu_per_track(r),
               "analysed h": round(r["analysed_audio_s"] / 3600, 3), "rechecked": r["rechecked_files"]}
        if "whole" in runs:
            w = runs["whole"]
            fig["x whole"] = r["tracks_per_s"] / w["tracks_per_s"]
            dec = bt.agreement(w["decisions"], r["decisions"])
            top = bt.agreement(w["top1"], r["top1"])
            fig["same decision"] = f"{dec['same']}/{dec['files']}"
            fig["same top-1"] = f"{top['same']}/{top['files']}"
            r["vs_whole"] = {"decisions": dec, "top1": top}
        rows.append(fig)
    result["figures"] = rows
    cols = ["run", "tracks/s", "tracks/s e2e", "share of decode-only", "x whole", "same decision", "same top-1",
            "rechecked", "analysed h", "CPU s/track"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
             f"| c: decode-only | {bt.fmt(c, 3)} | | 1.00 | | | | | | {bt.fmt(bt.cpu_per_track(runs['c']), 2)} |"]
    for f in rows:
        lines.append("| " + " | ".join(bt.fmt(f.get(k), 3 if k.startswith("tracks") else 2) for k in cols) + " |")
    lib_ = result["library"]
    print(f"\n{lib_['tracks']} tracks, {lib_['audio_hours']} h, mean {lib_['mean_track_seconds']} s "
          f"(median {lib_['median_track_seconds']} s); {result['machine']['cpu']}, {result['machine']['cores']} cores; "
          f"load average {result['load_average']['samples']}")
    print("\n".join(lines))
    if args.json:
        for r in runs.values():
            r.pop("top1", None)
            r.pop("decisions", None)
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
