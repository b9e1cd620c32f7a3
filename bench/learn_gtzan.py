"""The closing-note experiment of `tagger learn`: learn on a gtzan_mini-shaped library with a
third of its albums untagged, then tag those and score them against the held-out truth.

1. ``../shared/data/gtzan_mini/genres`` (10 genres, 7-8 real GTZAN clips each) is copied into a
   library of album folders: each genre's clips in file order form 3 albums (3+2+2 clips; jazz's
   8: 3+3+2), ``LIB/<Genre> Artist <k>/<Genre> Album <k>/NN.wav``, **an artist per album** (GTZAN
   repeats artists within a genre, and an artist per genre would put a whole genre on one side of
   every split; so artist-grouping here is album-grouping, and the figures are somewhat
   optimistic where GTZAN's clips of one genre share an artist).
2. The genres are written into the files (ID3 in WAV, with album, artist and album artist) the
   messy ways people write them, one spelling per album: case and spacing variants ("Blues",
   "blues", "country "), "Hip Hop" / "hip-hop" / "HipHop", ID3v1 numbers ("(0)", "(17)").
3. One album per genre is left untagged (the album index rotates with the genre, so the held-out
   album is not always the largest): the held-out third, its truth kept aside.
4. ``tagger learn LIB --out MODEL`` (the tagged albums hold 4-5 tracks per genre in 2 albums, so
   ``--min-tracks 4 --min-albums 2``; everything else default: 5 folds grouped by album+artist,
   target precision 0.95), then ``tagger tag HELD_OUT --model MODEL --dry-run --report`` and the
   shipped model the same way (``--no-albums`` too), scored against the truth with Wilson
   intervals. The shipped model was trained on these very clips: its figures are optimistic.

    python bench/learn_gtzan.py --work /tmp/learn-gtzan [--target 0.95] [--json out.json]

Every command runs as a user would run it (``python -m tagger``), with a private state database
and an empty config file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "gtzan_mini" / "genres"

NAMES = {"blues": "Blues", "classical": "Classical", "country": "Country", "disco": "Disco", "hiphop": "Hip-Hop",
         "jazz": "Jazz", "metal": "Metal", "pop": "Pop", "reggae": "Reggae", "rock": "Rock"}
#: one spelling per album (the held-out album's is never written)
SPELLINGS = {
    "blues": ["Blues", "blues", "(0)"], "classical": ["Classical", "CLASSICAL", "(32)"],
    "country": ["Country", "country ", "(2)"], "disco": ["Disco", "disco", "(4)"],
    "hiphop": ["Hip Hop", "hip-hop", "HipHop"], "jazz": ["Jazz", "jazz", "(8)"], "metal": ["Metal", "metal ", "(9)"],
    "pop": ["Pop", "pop", "(13)"], "reggae": ["Reggae", "reggae", "(16)"], "rock": ["Rock", "rock", "(17)"],
}


def album_sizes(n: int) -> list[int]:
    base, extra = divmod(n, 3)
    return [base + (1 if i < extra else 0) for i in range(3)]


def write_tags(path: Path, *, genre: str | None, album: str, artist: str) -> None:
    import mutagen.wave
    from mutagen.id3 import TALB, TCON, TPE1, TPE2

    f = mutagen.wave.WAVE(path)
    if f.tags is None:
        f.add_tags()
    f.tags.add(TALB(encoding=3, text=[album]))
    f.tags.add(TPE1(encoding=3, text=[artist]))
    f.tags.add(TPE2(encoding=3, text=[artist]))
    if genre is not None:
        f.tags.add(TCON(encoding=3, text=[genre]))
    f.save()


def build_library(lib: Path) -> tuple[dict[str, str], list[Path], dict[str, list[str]]]:
    """The library; returns (path -> true genre key, held-out album folders, genre -> spellings written)."""
    if lib.exists():
        shutil.rmtree(lib)
    truth: dict[str, str] = {}
    held: list[Path] = []
    written: dict[str, list[str]] = {}
    for gi, genre in enumerate(sorted(p.name for p in DATA.iterdir() if p.is_dir())):
        clips = sorted((DATA / genre).glob("*.wav"))
        start = 0
        for a, size in enumerate(album_sizes(len(clips))):
            artist = f"{NAMES[genre]} Artist {a + 1}"
            album = f"{NAMES[genre]} Album {a + 1}"
            folder = lib / artist / album
            folder.mkdir(parents=True)
            untagged = a == gi % 3
            for k, clip in enumerate(clips[start:start + size]):
                dest = folder / f"{k + 1:02d} {clip.stem}.wav"
                shutil.copyfile(clip, dest)
                spelled = None if untagged else SPELLINGS[genre][a]
                write_tags(dest, genre=spelled, album=album, artist=artist)
                truth[str(dest)] = genre
                if spelled:
                    written.setdefault(genre, []).append(spelled)
            if untagged:
                held.append(folder)
            start += size
    return truth, held, written


def tagger(*args: str, log: list[dict], check: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tagger", *map(str, args)]
    t, c0 = time.perf_counter(), os.times()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    c1 = os.times()
    log.append({"command": " ".join(["tagger", *map(str, args)]), "exit": r.returncode,
                "wall_s": round(time.perf_counter() - t, 1),
                "cpu_s": round((c1.children_user - c0.children_user) + (c1.children_system - c0.children_system), 1)})
    print(f"$ tagger {' '.join(map(str, args))}\n  exit {r.returncode}, {log[-1]['wall_s']} s", flush=True)
    if r.returncode not in check:
        sys.stdout.write(r.stdout[-4000:])
        sys.stderr.write(r.stderr[-4000:])
        raise SystemExit(f"tagger {args[0]} exited {r.returncode}")
    return r


def score(report: Path, truth: dict[str, str]) -> dict:
    """The first written genre of each held-out file against its truth (by genre key)."""
    from tagger.metrics import wilson_interval
    from tagger.taxonomy import genre_key

    rows = json.loads(report.read_text(encoding="utf-8"))["files"]
    n = right = wrong = 0
    per: dict[str, dict[str, int]] = {}
    for row in rows:
        if row["path"] not in truth:
            continue
        n += 1
        g = truth[row["path"]]
        d = per.setdefault(g, {"tracks": 0, "right": 0, "wrong": 0})
        d["tracks"] += 1
        w = row.get("written") or []
        if not w:
            continue
        if genre_key(w[0]) == genre_key(g):
            right += 1
            d["right"] += 1
        else:
            wrong += 1
            d["wrong"] += 1
    given = right + wrong

    def ci(k: int, m: int) -> list[float]:
        return [round(v, 4) for v in wilson_interval(k, m)]

    return {"tracks": n, "given": given, "right": right, "wrong": wrong,
            "accuracy": round(right / n, 4) if n else None, "accuracy_ci95": ci(right, n),
            "precision": round(right / given, 4) if given else None, "precision_ci95": ci(right, given),
            "coverage": round(given / n, 4) if n else None, "per_genre": per}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/tmp/learn-gtzan")
    ap.add_argument("--target", type=float, default=0.95, help="--target-precision of tagger learn")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: gtzan_mini is not there")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    lib, db, cfg = work / "lib", work / "state.db", work / "config.toml"
    truth, held, written = build_library(lib)
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    cfg.write_text("", encoding="utf-8")
    held_truth = {p: g for p, g in truth.items() if any(p.startswith(str(h) + os.sep) for h in held)}
    print(f"library: {len(truth)} clips in {sum(1 for _ in lib.glob('*/*'))} albums, {len(held_truth)} held out "
          f"in {len(held)} albums", flush=True)
    log: list[dict] = []
    common = ["--state-db", db, "--config", cfg]
    suffix = f"-{a.target:g}"
    model = work / f"model{suffix}"
    if model.exists():
        shutil.rmtree(model)
    r = tagger("learn", lib, "--out", model, "--min-tracks", 4, "--min-albums", 2, "--target-precision", a.target,
               "--report", work / f"learn{suffix}.html", *common, log=log)
    learn_out = r.stdout
    runs = {}
    for name, extra in (("learnt", ["--model", model]), ("learnt, --no-albums", ["--model", model, "--no-albums"]),
                        ("shipped", []), ("shipped, --no-albums", ["--no-albums"])):
        rep = work / f"tag-{name.replace(', --', '-').replace(' ', '')}{suffix}.json"
        tagger("tag", *held, "--dry-run", "--report", rep, *extra, *common, log=log)
        runs[name] = score(rep, held_truth)
    learn = json.loads((model / "learn.json").read_text(encoding="utf-8"))
    out = {
        "library": {"clips": len(truth), "albums": sum(1 for _ in lib.glob("*/*")), "held_out": len(held_truth),
                    "held_out_albums": len(held), "artist": "one per album", "spellings": written},
        "learn": {"genres": [{k: g[k] for k in ("name", "tracks", "threshold", "reachable", "best_precision")}
                             | {"cv_precision": g["learnt"]["precision"], "cv_precision_ci95": g["learnt"]["precision_ci95"],
                                "cv_recall": g["learnt"]["recall"], "cv_recall_ci95": g["learnt"]["recall_ci95"],
                                "shipped_precision": (g["base"] or {}).get("precision"),
                                "shipped_recall": (g["base"] or {}).get("recall")}
                             for g in learn["genres"]],
                  "summary": learn["summary"], "top1": {k: learn["top1"][k] for k in ("tracks", "right", "accuracy", "ci95")},
                  "cv": {k: learn["cv"][k] for k in ("folds", "grouping", "groups", "notes", "l2", "target_precision")},
                  "taxonomy": learn["taxonomy"]["table"], "timing": learn.get("timing")},
        "held_out": runs, "commands": log, "target_precision": a.target,
        "cpu": _cpu(), "load_average": os.getloadavg(),
    }
    print(learn_out)
    for name, s in runs.items():
        prec = "–" if s["precision"] is None else f"{s['precision']:.1%}"
        print(f"{name:<22} right {s['right']}/{s['tracks']} ({s['accuracy']:.1%}, 95% CI "
              f"{s['accuracy_ci95'][0]:.1%}–{s['accuracy_ci95'][1]:.1%}); written {s['given']} "
              f"(precision {prec}), wrong {s['wrong']}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
