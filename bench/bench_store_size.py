"""Bytes per file of the state database's rows, with and without the stored embedding.

    python bench/bench_store_size.py [--files 10000]

Fills a fresh state database through tagger's own API (``StateDB.record_file`` and
``store_analysis``) with N file records and N stored analyses shaped as the shipped model makes
them (10 scores, the musicnn backbone's 200-value embedding, realistic 80-byte paths), once with
and once without embeddings, checkpoints and VACUUMs, and prints the bytes per file of each
table. No audio is involved: the row sizes do not depend on it. bench/bench_noop.py --real
measures the same at 100,000 files built from a real run (journal included).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's tagger

from tagger.state import StateDB, StoredAnalysis


def build(path: Path, n: int, *, embedding: bool) -> int:
    rng = random.Random(0)
    db = StateDB(path, flush_every=5000)
    rid = "20261201-020000-aaaa"
    db.begin_run(rid, model_id="m", argv=[], dry_run=False, options={})
    for i in range(n):
        p = f"/home/anna/Music/Artist {i // 100:03d}/Album {(i // 10) % 10}/{i % 10 + 1:02d} Some Track Title {i}.flac"
        size, mtime = 30_000_000 + i, 1_700_000_000_000_000_000 + i
        db.record_file(p, size=size, mtime_ns=mtime, model_id="488692b6e774bf79", outcome="tagged", run_id=rid,
                       decided="abcdef012345")
        db.store_analysis(StoredAnalysis(
            path=p, model_id="488692b6e774bf79", size=size, mtime_ns=mtime,
            scores=tuple(rng.random() for _ in range(10)), chunks=71, seconds=212.3, sampling="whole<=900",
            duration=212.5, backbone="93ac01d236e9b960" if embedding else "",
            embedding=tuple(rng.gauss(0, 1) for _ in range(200)) if embedding else None,
            analysed_at="2026-12-01T02:00:00Z", run_id=rid))
    db.close()
    return _compact(path)


def _compact(path: Path) -> int:
    c = sqlite3.connect(path)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.execute("VACUUM")
    c.close()
    return os.path.getsize(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10000)
    n = ap.parse_args(argv).files
    with tempfile.TemporaryDirectory() as d:
        with_emb = build(Path(d) / "emb.db", n, embedding=True)
        without = build(Path(d) / "noemb.db", n, embedding=False)
        c = sqlite3.connect(Path(d) / "emb.db")
        c.execute("DROP TABLE analyses")
        c.commit()
        c.close()
        records = _compact(Path(d) / "emb.db")
    print(f"{n} files: file records {records / n:.0f} B/file; stored analysis {(without - records) / n:.0f} B/file "
          f"without embedding, {(with_emb - records) / n:.0f} B/file with the 200-value embedding; "
          f"whole database {with_emb / n:.0f} B/file ({with_emb / n * 100_000 / 1e6:.0f} MB at 100,000 files, "
          "journal not included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
