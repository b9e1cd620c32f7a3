"""Album decisions (issue 18): track-level accuracy with and without --albums.

Builds album-structured libraries of copies of the gtzan_mini clips (ID3 album tags written
into the copies; the audio is untouched), analyses each once with the shipped model
(``tagger tag --dry-run``, which fills the store of analyses), then decides it again from the
store with --albums, --no-albums and several --album-dissent values (fast: no analysis), and
scores every written genre against the truth (the genre folder each clip came from).

    python bench/bench_albums.py [--data ../shared/data/gtzan_mini/genres] [--keep DIR] [--json out.json]

Layouts (seeded):

``genre-albums``
    each genre's clips but two as one album (artist = album artist = "<Genre> Band"); into
    four of the albums one clip of another genre is mixed (the odd tracks); the remaining
    clips sit in a folder of loose singles (one artist each), which is never an album.
``mixed-albums``
    albums of 3 to 6 clips drawn from one genre, each with 0 to 2 clips of other genres, no
    album artist (album tag + folder), one album split into CD1/CD2 folders, and one
    compilation (album artist "Various Artists", clips of 4 genres).

Caveat: the shipped model was trained on these very clips, so its per-track accuracy here is
optimistic; the album effect shows on the odd tracks and on the model's remaining errors.
Never commits audio: the libraries live in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gtzan_mini" / "genres"


def clips(data: Path) -> dict[str, list[Path]]:
    return {g.name: sorted(g.glob("*.wav")) for g in sorted(data.iterdir()) if g.is_dir()}


def put(src: Path, dest: Path, *, album: str = "", artist: str = "", albumartist: str = "") -> None:
    from mutagen.id3 import TALB, TPE1, TPE2
    from mutagen.wave import WAVE

    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    f = WAVE(dest)
    f.add_tags()
    if album:
        f.tags.add(TALB(encoding=3, text=[album]))
    if artist:
        f.tags.add(TPE1(encoding=3, text=[artist]))
    if albumartist:
        f.tags.add(TPE2(encoding=3, text=[albumartist]))
    f.save()


def genre_albums(lib: Path, by_genre: dict[str, list[Path]], rng: random.Random) -> dict[str, dict]:
    truth: dict[str, dict] = {}
    genres = list(by_genre)
    odd_into = rng.sample(genres, 4)
    spare = {g: list(cs[-2:]) for g, cs in by_genre.items()}
    for g in genres:
        name = f"{g.title()} Album"
        band = f"{g.title()} Band"
        for i, c in enumerate(by_genre[g][:-2]):
            dest = lib / band / name / f"{i + 1:02d} {c.stem}.wav"
            put(c, dest, album=name, artist=band, albumartist=band)
            truth[str(dest)] = {"genre": g, "kind": "album"}
        if g in odd_into:
            other = rng.choice([x for x in genres if x != g and spare[x]])
            c = spare[other].pop()
            dest = lib / band / name / f"99 odd {c.stem}.wav"
            put(c, dest, album=name, artist=band, albumartist=band)
            truth[str(dest)] = {"genre": other, "kind": "odd"}
    for g, cs in spare.items():
        for c in cs:
            dest = lib / "Singles" / f"{c.stem}.wav"
            put(c, dest, artist=f"Singer {c.stem}")
            truth[str(dest)] = {"genre": g, "kind": "single"}
    return truth


def mixed_albums(lib: Path, by_genre: dict[str, list[Path]], rng: random.Random) -> dict[str, dict]:
    truth: dict[str, dict] = {}
    pool = {g: list(cs) for g, cs in by_genre.items()}
    for cs in pool.values():
        rng.shuffle(cs)
    genres = list(pool)
    # one compilation of 4 genres first
    comp = []
    for g in rng.sample(genres, 4):
        comp.append((pool[g].pop(), g))
    for i, (c, g) in enumerate(comp):
        dest = lib / "Various" / "Hits" / f"{i:02d} {c.stem}.wav"
        put(c, dest, album="Hits", artist=f"Artist {i}", albumartist="Various Artists")
        truth[str(dest)] = {"genre": g, "kind": "compilation"}
    n = 0
    split_done = False
    while True:
        g = rng.choice([x for x in genres if len(pool[x]) >= 3] or [None])
        if g is None:
            break
        size = min(len(pool[g]), rng.randint(3, 6))
        tracks = [(pool[g].pop(), g, "album") for _ in range(size)]
        for _ in range(rng.randint(0, 2)):
            others = [x for x in genres if x != g and pool[x]]
            if others:
                o = rng.choice(others)
                tracks.append((pool[o].pop(), o, "odd"))
        rng.shuffle(tracks)
        n += 1
        name = f"Record {n}"
        folder = lib / f"Band {n}" / name
        for i, (c, tg, kind) in enumerate(tracks):
            sub = folder
            if not split_done and len(tracks) >= 4:
                sub = folder / ("CD1" if i < len(tracks) // 2 else "CD2")
            dest = sub / f"{i + 1:02d} {c.stem}.wav"
            put(c, dest, album=name, artist=f"Band {n}")
            truth[str(dest)] = {"genre": tg, "kind": kind}
        split_done = split_done or len(tracks) >= 4
    for g, cs in pool.items():
        for c in cs:
            dest = lib / "Singles" / f"{c.stem}.wav"
            put(c, dest, artist=f"Singer {c.stem}")
            truth[str(dest)] = {"genre": g, "kind": "single"}
    return truth


def tagger(*args: str) -> int:
    return subprocess.run([sys.executable, "-m", "tagger", *args], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).returncode


def score(report: Path, truth: dict[str, dict]) -> dict:
    from tagger.aggregate import display_name

    rows = {r["path"]: r for r in json.loads(report.read_text())["files"]}
    out = {"tracks": 0, "right": 0, "uncertain": 0, "by_kind": {}, "dissenters": 0, "dissenters_right": 0,
           "written": {}}
    for path, t in truth.items():
        r = rows.get(path, {})
        want = display_name(t["genre"]).casefold()
        got = [g.casefold() for g in r.get("written") or []]
        right = bool(got) and got[0] == want
        out["tracks"] += 1
        out["right"] += right
        out["uncertain"] += r.get("action") == "uncertain"
        k = out["by_kind"].setdefault(t["kind"], {"tracks": 0, "right": 0})
        k["tracks"] += 1
        k["right"] += right
        if r.get("dissent"):
            out["dissenters"] += 1
            out["dissenters_right"] += right
        out["written"][path] = got[0] if got else ""
    out["accuracy"] = round(out["right"] / max(1, out["tracks"]), 4)
    return out


def run_layout(name: str, build, by_genre, work: Path, dissents: list[float], seed: int) -> dict:
    lib = work / name
    truth = build(lib, by_genre, random.Random(seed))
    db = work / f"{name}.db"
    first = work / f"{name}-first.json"
    code = tagger("tag", str(lib), "--dry-run", "--state-db", str(db), "--report", str(first), "--quiet")
    if code not in (0, 2):
        raise SystemExit(f"tagger tag failed on {lib} (exit {code})")
    res: dict = {"layout": name, "tracks": len(truth), "runs": {}}
    runs = [("no-albums", ["--no-albums"])] + [(f"albums dissent={d:g}", ["--albums", "--album-dissent", str(d)])
                                               for d in dissents]
    for label, extra in runs:
        rep = work / f"{name}-{label.replace(' ', '_')}.json"
        tagger("tag", str(lib), "--dry-run", "--state-db", str(db), "--report", str(rep), "--quiet", *extra)
        res["runs"][label] = score(rep, truth)
    base = res["runs"]["no-albums"]["written"]
    for r in res["runs"].values():
        r["changed_vs_no_albums"] = sum(1 for p, g in r["written"].items() if g != base.get(p))
        del r["written"]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--keep", type=Path, help="build the libraries here and keep them")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--dissent", type=float, nargs="*", default=[0.7, 0.8, 0.9, 0.95, 1.0])
    ap.add_argument("--seed", type=int, default=18)
    a = ap.parse_args(argv)
    by_genre = clips(a.data)
    work = a.keep or Path(tempfile.mkdtemp(prefix="bench-albums-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = [run_layout("genre-albums", genre_albums, by_genre, work, a.dissent, a.seed),
                   run_layout("mixed-albums", mixed_albums, by_genre, work, a.dissent, a.seed)]
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    for res in results:
        print(f"\n{res['layout']}: {res['tracks']} tracks")
        print(f"  {'run':24} {'accuracy':>9} {'right':>6} {'changed':>8} {'dissent kept/right':>19}"
              "  by kind (right/tracks)")
        for label, r in res["runs"].items():
            kinds = ", ".join(f"{k} {v['right']}/{v['tracks']}" for k, v in sorted(r["by_kind"].items()))
            print(f"  {label:24} {r['accuracy']:9.3f} {r['right']:6d} {r['changed_vs_no_albums']:8d} "
                  f"{r['dissenters']:>10d}/{r['dissenters_right']:<8d}  {kinds}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
