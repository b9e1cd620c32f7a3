"""``tagger evaluate`` on a gtzan_mini-shaped library, with the shipped models.

Builds a library of copies of the gtzan_mini clips (WAV, audio untouched) in album folders, two
albums per genre, with the genre written into each copy's ID3 tag as a person would write it
("Blues", "Hip-Hop" on one album and "Hip Hop" on the other, "Rock", ...), then runs
``tagger evaluate`` on it with each shipped vocabulary (fresh state database: every clip is
analysed once per model) and prints the headline figures; ``--json`` keeps them.

    python bench/bench_evaluate.py [--data ../shared/data/gtzan_mini/genres] [--keep DIR] [--json out.json]

Caveat: the shipped gtzan model was trained on these very clips, so its figures here flatter it;
the msd model (musicnn's own MSD tags) never saw them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gtzan_mini" / "genres"

#: How the owner spells each genre, per album (album 1, album 2).
SPELLING = {
    "blues": ("Blues", "Blues"), "classical": ("Classical", "classical"), "country": ("Country", "Country"),
    "disco": ("Disco", "Disco"), "hiphop": ("Hip-Hop", "Hip Hop"), "jazz": ("Jazz", "Jazz"),
    "metal": ("Metal", "Metal"), "pop": ("Pop", "Pop"), "reggae": ("Reggae", "Reggae"), "rock": ("Rock", "Rock"),
}


def build(lib: Path, data: Path) -> int:
    from mutagen.id3 import TALB, TCON, TPE1, TPE2
    from mutagen.wave import WAVE

    n = 0
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        clips = sorted(folder.glob("*.wav"))
        half = (len(clips) + 1) // 2
        for i, src in enumerate(clips):
            album = 1 if i < half else 2
            genre = SPELLING[folder.name][album - 1]
            artist = f"{folder.name.title()} Band {album}"
            dest = lib / artist / f"Album {album}" / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            f = WAVE(dest)
            f.add_tags()
            f.tags.add(TALB(encoding=3, text=[f"Album {album}"]))
            f.tags.add(TPE1(encoding=3, text=[artist]))
            f.tags.add(TPE2(encoding=3, text=[artist]))
            f.tags.add(TCON(encoding=3, text=[genre]))
            f.save()
            n += 1
    return n


#: A config a user of the msd vocabulary might write: its sub-genre labels to their parent genres
#: (pairs by name only; nothing chosen from these results).
MSD_MAP = ('[evaluate]\nmap = {"heavy metal" = "Metal", "hard rock" = "Rock", "classic rock" = "Rock", '
           '"alternative rock" = "Rock", "indie rock" = "Rock", "Progressive rock" = "Rock"}\n')


def evaluate(lib: Path, work: Path, vocabulary: str, *, name: str = "", config: str = "") -> dict:
    name = name or vocabulary
    report = work / f"evaluate-{name}.json"
    cfg = work / f"{name}.toml"
    cfg.write_text(config, encoding="utf-8")
    cmd = [sys.executable, "-m", "tagger", "evaluate", str(lib), "--vocabulary", vocabulary,
           "--state-db", str(work / "state.db"), "--config", str(cfg), "--report", str(report),
           "--report", str(work / f"evaluate-{name}.html")]
    t0 = time.monotonic()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    took = time.monotonic() - t0
    print(out.stdout)
    if out.returncode not in (0, 2):
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"tagger evaluate exited {out.returncode}")
    data = json.loads(report.read_text(encoding="utf-8"))
    return {
        "run": name, "vocabulary": vocabulary, "seconds": round(took, 1), "model": data["model"]["name"],
        "files": data["library"]["evaluated"],
        "top1": data["top1_agreement"], "top1_reachable": data["top1_agreement_reachable"],
        "precision": data["precision"], "coverage": data["coverage"],
        "mapping": {m["label"]: [m["genre"], m["how"]] for m in data["mapping"] if m["genre"]},
        "unmapped_labels": data["unmapped_labels"], "unreached_genres": data["unreached_genres"],
        "per_genre": {g: {k: v[k] for k in ("precision", "precision_ci95", "recall", "recall_ci95", "support",
                                             "predicted")} for g, v in data["per_genre"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--keep", type=Path, help="build the library and reports here and keep them")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="tagger-bench-evaluate-"))
    work.mkdir(parents=True, exist_ok=True)
    lib = work / "library"
    if lib.exists():  # a kept library (and its store of analyses) is used again as it is
        print(f"library: {lib} (kept from an earlier run)")
    else:
        print(f"library: {build(lib, args.data)} clips in {lib}")
    results = [evaluate(lib, work, "gtzan"), evaluate(lib, work, "msd"),
               evaluate(lib, work, "msd", name="msd-map", config=MSD_MAP)]
    for r in results:
        print(f"{r['run']}: {r['files']} files, top-1 {r['top1']['value']:.1%} {r['top1']['ci95']}, "
              f"precision {r['precision']['value']:.1%}, coverage {r['coverage']['value']:.1%} ({r['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
