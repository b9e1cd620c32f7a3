"""No-op re-run benchmark: how long does a nightly run take when nothing changed?

Builds a library of N real FLAC files (3.2 s generated tones, distinct per file), tags it with
the shipped model, then times the next, no-op runs of the `tagger` command as a user's cron job
would start it (a fresh process: Python start-up, imports, walk, state lookups, summary).

    python bench/bench_noop.py --files 1000 [--runs 5] [--keep DIR]
    python bench/bench_noop.py --files 100000 --real 1000 [--runs 3] [--keep DIR]

With ``--real K`` (K < N) only the first K files are generated and tagged by a real ``tagger
tag`` run; the other N - K files are byte copies of them (copy i of real file i mod K, in its own
album folder, tags included: exactly what a tagged library holds), and the state database gets
for each copy what that run would have recorded for it: the real file's record (outcome, model,
run, decision settings) and its stored analysis, each with the copy's own path, size and
mtime (``StateDB.record_file``, ``StateDB.store_analysis``), and, where tagger wrote the real
file, a copy of its undo-journal entry (inserted with the columns ``StateDB.journal_add``
writes, in one transaction: one commit per entry would take minutes). So the no-op run walks N
real files and looks up N real records, as it would after tagging N files, without analysing N
files first. The real files are 8 kHz tones without noise in this mode (12 KB each).

Prints the wall time of each no-op run, their median, and checks that the run changed nothing
(no file's bytes or mtime changed) and that the driver imported neither Ray nor TensorFlow.
Also the state database's size: bytes per file, by table, with and without stored analyses.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # this checkout's tagger, before any installed one


def layout(i: int) -> str:
    """Relative path of file i: 10 tracks an album, 10 albums an artist."""
    return f"artist{i // 100:04d}/album{(i // 10) % 10}/{i:06d} track.flac"


def build_library(root: Path, n: int, seconds: float = 3.2, sr: int = 16000,
                  noise: float = 0.05) -> list[Path]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        p = root / layout(i)
        p.parent.mkdir(parents=True, exist_ok=True)
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        y = 0.2 * np.sin(2 * np.pi * f0 * t) + (noise * rng.standard_normal(t.size) if noise else 0.0)
        sf.write(p, y.astype(np.float32), sr)
        paths.append(p)
    return paths


def fill_copies(root: Path, state: Path, real: int, total: int) -> dict[str, float]:
    """Files real..total-1 as copies of the real ones, recorded as the real run recorded those."""
    from tagger.state import StateDB

    t = time.perf_counter()
    src = [str(root / layout(i)) for i in range(real)]
    journal: list[tuple] = []
    with StateDB(state) as db:
        recs = db.records(src)
        model_ids = {r.model_id for r in recs.values()}
        if len(model_ids) != 1:
            raise SystemExit(f"the real run recorded {len(recs)} of {real} files, models {model_ids}")
        stored = db.analyses(src, model_ids.pop())
        conn = sqlite3.connect(state)
        entries: dict[bytes, list[tuple]] = {}
        for row in conn.execute("SELECT path, run_id, before, after, written_at, status, size_before, "
                                "mtime_ns_before FROM journal ORDER BY id"):
            entries.setdefault(row[0], []).append(row[1:])
        conn.close()
        for i in range(real, total):
            s = src[i % real]
            dst = root / layout(i)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s, dst)
            st = dst.stat()
            r = recs.get(s)
            if r is None:
                continue
            db.record_file(str(dst), size=st.st_size, mtime_ns=st.st_mtime_ns, model_id=r.model_id,
                           outcome=r.outcome, run_id=r.run_id, decided=r.decided)
            a = stored.get(s)
            if a is not None:
                db.store_analysis(dataclasses.replace(a, path=str(dst), size=st.st_size,
                                                      mtime_ns=st.st_mtime_ns))
            for run_id, before, after, written_at, status, sb, mb in entries.get(os.fsencode(s), []):
                journal.append((run_id, os.fsencode(str(dst)), before, after, st.st_size, st.st_mtime_ns,
                                written_at, status, sb, mb))
    conn = sqlite3.connect(state, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO journal (run_id, path, before, after, size_after, mtime_ns_after, "
                     "written_at, status, size_before, mtime_ns_before) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", journal)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"copies": total - real, "journal_entries_copied": len(journal),
            "seconds": round(time.perf_counter() - t, 1)}


def db_size(state: Path, files: int) -> dict[str, object]:
    """The state database's size: as tagger left it, per table (dbstat), and compacted (VACUUM
    INTO) with and without the stored analyses."""
    out: dict[str, object] = {"files": files, "bytes": state.stat().st_size}
    wal = Path(str(state) + "-wal")
    out["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
    conn = sqlite3.connect(state)
    try:
        tables = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    except sqlite3.OperationalError:  # SQLite built without dbstat
        tables = {}
    out["tables_bytes"] = tables
    out["rows"] = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                   for t in ("files", "analyses", "journal", "runs")}
    with tempfile.TemporaryDirectory() as tmp:
        full, bare = Path(tmp) / "full.db", Path(tmp) / "bare.db"
        conn.execute("VACUUM INTO ?", (str(full),))
        conn.close()
        out["compacted_bytes"] = full.stat().st_size
        c2 = sqlite3.connect(full)
        c2.execute("DELETE FROM analyses")
        c2.commit()
        c2.execute("VACUUM INTO ?", (str(bare),))
        c2.close()
        out["compacted_without_analyses_bytes"] = bare.stat().st_size
    out["bytes_per_file"] = round(out["bytes"] / files, 1)
    out["compacted_bytes_per_file"] = round(out["compacted_bytes"] / files, 1)
    out["without_analyses_bytes_per_file"] = round(out["compacted_without_analyses_bytes"] / files, 1)
    for t, b in tables.items():
        rows = out["rows"].get(t)
        if rows:
            out.setdefault("bytes_per_row", {})[t] = round(b / rows, 1)
    return out


def fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--real", type=int, default=None,
                    help="generate and tag only this many files; the rest are recorded copies (see above)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default=None, help="a model for every run (default: the shipped one)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="build the library here and keep it (reused next time)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    import tagger_run

    real = args.files if args.real is None else min(args.real, args.files)
    work = args.keep or Path(tempfile.mkdtemp(prefix="tagger-noop-"))
    lib, state = work / "lib", work / "state.db"
    env = tagger_run.bench_env(work)
    model = ["--model", args.model] if args.model else []
    result: dict[str, object] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                                 "machine": tagger_run.machine(), "files": args.files, "real": real}
    try:
        if not state.exists():
            if lib.exists():
                shutil.rmtree(lib)
            t = time.perf_counter()
            small = dict(sr=8000, noise=0.0) if real < args.files else {}
            build_library(lib, real, **small)
            print(f"built {real} files in {time.perf_counter() - t:.1f} s")
            t = time.perf_counter()
            first = tagger_run.run_tagger(["tag", str(lib), "--state-db", str(state), "--quiet", *model],
                                          env=env)
            print(f"first run (tags {real} files): exit {first['exit']} in {time.perf_counter() - t:.1f} s "
                  f"{first['stdout'].strip()}")
            if first["exit"] not in (0, 2):
                print(first["stderr"][-3000:])
                return 1
            result["first_run"] = {k: first[k] for k in ("wall_s", "cpu_s", "exit")}
            if real < args.files:
                fill = fill_copies(lib, state, real, args.files)
                print(f"recorded {fill['copies']} copies ({fill['journal_entries_copied']} journal entries) "
                      f"in {fill['seconds']} s")
                result["fill"] = fill
        else:
            print(f"reusing {work}")
        paths = sorted(lib.rglob("*.flac"))
        result["size"] = db_size(state, len(paths))
        before = fingerprint(paths)
        runs = []
        for i in range(args.runs):
            r = tagger_run.run_tagger(["tag", str(lib), "--state-db", str(state), *model], env=env)
            runs.append(r)
            heavy = [m for m in tagger_run.HEAVY if r["imported"].get(m)]
            said = tagger_run.summary_line(r["stdout"]) or r["stderr"].strip()[-300:]
            print(f"no-op run {i + 1}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU, exit {r['exit']}, "
                  f"load {r['load_before']:.2f}; {said}; "
                  f"imported: {', '.join(heavy) or 'neither Ray nor TensorFlow'}")
        after = fingerprint(paths)
        times = [r["wall_s"] for r in runs]
        result.update({
            "runs": [{k: r[k] for k in ("wall_s", "cpu_s", "exit", "imported", "ray_processes",
                                        "load_before")}
                     | {"summary": tagger_run.summary_line(r["stdout"])} for r in runs],
            "median_s": statistics.median(times), "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "changed_nothing": before == after,
            "nothing_to_do": all(tagger_run.summary_line(r["stdout"]).startswith("nothing to do")
                                 for r in runs),
            "no_tensorflow_no_ray": all(r["probe_ran"] and not r["ray_processes"]
                                        and not any(r["imported"].get(m) for m in tagger_run.HEAVY)
                                        for r in runs),
        })
        s = result["size"]
        print(f"\nno-op re-run over {len(paths)} tagged files: median {result['median_s']:.2f} s wall "
              f"(min {min(times):.2f}, max {max(times):.2f}), CPU {result['median_cpu_s']:.2f} s; "
              f"files unchanged: {result['changed_nothing']}; nothing to do: {result['nothing_to_do']}; "
              f"neither Ray nor TensorFlow: {result['no_tensorflow_no_ray']}")
        print(f"state database: {s['bytes'] / 1e6:.1f} MB ({s['bytes_per_file']} bytes per file; compacted "
              f"{s['compacted_bytes_per_file']}, "
              f"without stored analyses {s['without_analyses_bytes_per_file']}); "
              f"per table: {s['tables_bytes']}; rows: {s['rows']}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        ok = result["changed_nothing"] and result["nothing_to_do"] and result["no_tensorflow_no_ray"]
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
