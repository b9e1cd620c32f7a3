"""No-op re-run benchmark: how long does a nightly run take when nothing changed?

Builds a library of N real FLAC files (3 s generated tones, distinct per file), tags it once with
the shipped model, then times the second, no-op run of the `tagger` command as a user's cron job
would start it (a fresh process: Python start-up, imports, walk, state lookups, summary).

    python bench/bench_noop.py --files 1000 [--runs 5] [--keep DIR]

Prints the wall time of each no-op run, their median, and checks that the run changed nothing
(no file's bytes or mtime changed) and started neither Ray nor TensorFlow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def build_library(root: Path, n: int, seconds: float = 3.2, sr: int = 16000) -> list[Path]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        d = root / f"artist{i // 100:02d}" / f"album{(i // 10) % 10}"
        d.mkdir(parents=True, exist_ok=True)
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        y = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.size)
        p = d / f"{i:05d} track.flac"
        sf.write(p, y.astype(np.float32), sr)
        paths.append(p)
    return paths


def fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="build the library here and keep it")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="tagger-noop-"))
    lib, state = work / "lib", work / "state.db"
    tagger = [sys.executable, "-m", "tagger"]
    try:
        if not lib.exists():
            t = time.perf_counter()
            paths = build_library(lib, args.files)
            print(f"built {len(paths)} files in {time.perf_counter() - t:.1f} s")
        paths = sorted(lib.rglob("*.flac"))
        t = time.perf_counter()
        first = subprocess.run([*tagger, "tag", str(lib), "--state-db", str(state), "--quiet"],
                               capture_output=True, text=True)
        print(f"first run: exit {first.returncode} in {time.perf_counter() - t:.1f} s {first.stdout.strip()}")
        if first.returncode not in (0, 2):
            print(first.stderr)
            return 1
        before = fingerprint(paths)
        times = []
        probe = ("import sys, runpy; sys.argv = ['tagger'] + sys.argv[1:];\n"
                 "try:\n    runpy.run_module('tagger', run_name='__main__')\n"
                 "except SystemExit as e:\n    code = e.code\n"
                 "heavy = [m for m in ('tensorflow', 'ray') if m in sys.modules]\n"
                 "print('HEAVY=' + ','.join(heavy)); sys.exit(code)")
        for i in range(args.runs):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", probe, "tag", str(lib), "--state-db", str(state)],
                                 capture_output=True, text=True)
            wall = time.perf_counter() - t
            times.append(wall)
            summary = [ln for ln in out.stdout.splitlines() if "files:" in ln]
            heavy = [ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY=")]
            print(f"no-op run {i + 1}: {wall:.2f} s wall, exit {out.returncode}; {summary[0] if summary else out.stderr.strip()}; "
                  f"{heavy[0] if heavy else ''}")
        after = fingerprint(paths)
        result = {
            "files": len(paths), "runs": times, "median_s": statistics.median(times),
            "changed_nothing": before == after,
        }
        print(f"\nno-op re-run over {len(paths)} tagged files: median {result['median_s']:.2f} s wall "
              f"(min {min(times):.2f}, max {max(times):.2f}); files unchanged: {result['changed_nothing']}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return 0 if result["changed_nothing"] else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
