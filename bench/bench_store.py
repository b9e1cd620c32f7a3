"""The store of analyses, measured (issue 16): dry run -> apply, and a settings change, side by
side on the same files and the same state database.

    python bench/bench_store.py [--files 1000] [--seconds 30] [--keep DIR] [--json store.json]
                                [--model PATH] [--change=--top-k,2 ...] [--tagger-arg=ARG ...]

Builds (or, with ``--keep DIR``, reuses) a library of generated music (bench/musiclib.py: drums,
bass, chords, melodies and song sections; 44.1 kHz stereo; MP3, FLAC and M4A in turn), all
``--seconds`` long, copies it to a work folder with a new state database, and runs there, each
as a fresh ``python -m tagger`` process (as cron starts it), one after the other:

  a   tag LIB --dry-run --report a.json        analyse everything, write nothing; the
                                               analyses go to the store
  b   tag LIB --report b.json                  apply: decided from the store (no decode,
                                               no TensorFlow, no Ray)
  c   tag LIB --top-k 2 --dry-run --report c.json   settings change, previewed: every file
                                               decided again from the store
  d   tag LIB --top-k 2 --report d.json        settings change, applied
  c2  tag LIB --top-k 3 --min-confidence 0.1 --dry-run ...   a second change, one that
  d2  tag LIB --top-k 3 --min-confidence 0.1 ...             rewrites most files
  e   tag LIB --top-k 3 --min-confidence 0.1   no-op re-run (cron the night after)

(``--change`` replaces the two default changes; each one gets its dry run and its run.)

For every step: wall time, CPU time of the whole process tree (driver, Ray's processes and
workers: see bench/tagger_run.py for what is counted), whether the driver imported TensorFlow
and Ray and whether Ray processes ran, how many files were analysed now and how many decided
from the store (the report rows' ``analysis``), and the report's ``timing``. Checks: the genres
b wrote (read back with mutagen) are exactly a's "would tag", file by file, and no other file
changed; each d changed exactly the files its c said it would, to the genres c said, and
nothing else; e changed nothing and said "nothing to do".
A table on stdout; everything as JSON with ``--json``. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # this checkout's tagger, before any installed one

import musiclib  # noqa: E402
import tagger_run  # noqa: E402
from bench_throughput import copy_selection  # noqa: E402  (one copy of a library for every bench)

#: the goals of issue 16
GOAL_APPLY_SHARE = 0.05  # apply wall time / dry-run wall time
GOAL_CHANGE_S = 5.0  # a settings change over the stored library
#: the settings changes measured by default: a small one (a second genre where one scores >= 0.4)
#: and one that rewrites most files (up to three genres from 0.1)
DEFAULT_CHANGES = ["--top-k,2", "--top-k,3,--min-confidence,0.1"]


# ---------------------------------------------------------------------------------------------
# the library
# ---------------------------------------------------------------------------------------------

def library(work: Path, n: int, seconds: float, seed: int, processes: int) -> tuple[Path, list[Path], float]:
    """The pristine generated library in ``work`` (built once, reused), its files, build seconds."""
    root = work / f"library-{seconds:g}s-seed{seed}"
    t = time.perf_counter()
    paths = musiclib.build_library(root, n, seconds=(seconds, seconds), seed=seed, processes=processes)
    return root, paths, time.perf_counter() - t


def read_genres(path: Path) -> list[str]:
    """The file's genre values as a reader sees them (mutagen's easy interface: ID3 TCON, Vorbis
    GENRE, MP4 ©gen)."""
    import mutagen

    f = mutagen.File(path, easy=True)
    if f is None or f.tags is None:
        return []
    try:
        return [str(g) for g in f.tags.get("genre", [])]
    except (KeyError, ValueError):
        return []


def snapshot(paths: list[Path]) -> dict[str, tuple[int, int]]:
    out = {}
    for p in paths:
        st = p.stat()
        out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


# ---------------------------------------------------------------------------------------------
# one step
# ---------------------------------------------------------------------------------------------

def step(key: str, lib: Path, state: Path, work: Path, extra: list[str], env: dict[str, str], *,
         report: bool = True, model: str | None = None) -> dict[str, Any]:
    args = ["tag", str(lib), "--state-db", str(state), *extra]
    if model:
        args += ["--model", model]
    rep = work / f"{key}.json"
    if report:
        rep.unlink(missing_ok=True)
        args += ["--report", str(rep)]
    r = tagger_run.run_tagger(args, env=env)
    if r["exit"] not in (0, 2):
        raise SystemExit(f"step {key}: tagger exited {r['exit']}\n{r['stdout']}\n{r['stderr'][-3000:]}")
    r["key"] = key
    r["summary"] = tagger_run.summary_line(r["stdout"])
    if report:
        data = json.loads(rep.read_text())
        rows = data.get("files", [])
        r["report"] = str(rep)
        r["counts"] = data.get("counts", {})
        r["timing"] = data.get("timing", {})
        r["analysis"] = {k: sum(1 for x in rows if (x.get("analysis") or "") == k)
                         for k in ("now", "stored", "")}
        r["rows"] = {x["path"]: {"action": x["action"], "written": list(x.get("written") or []),
                                 "analysis": x.get("analysis") or "", "reason": x.get("reason", "")}
                     for x in rows}
        r["ray_started"] = "ray" in (r["timing"].get("startup") or {}) or r["ray_processes"] > 0
    else:
        r["ray_started"] = r["ray_processes"] > 0
    r.pop("stdout", None)
    r["stderr_tail"] = r.pop("stderr", "")[-1500:]
    return r


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------

def check_apply(dry: dict[str, Any], apply: dict[str, Any], genres_after: dict[str, list[str]],
                genres_before: dict[str, list[str]]) -> dict[str, Any]:
    """b wrote exactly what a said it would, file by file; files a would not tag are untouched."""
    wrong = []
    for path, row in dry["rows"].items():
        want = row["written"] if row["action"] == "would tag" else genres_before.get(path, [])
        got = genres_after.get(path)
        if got != want:
            wrong.append({"path": path, "dry_run": row["action"], "want": want, "got": got})
        b = apply["rows"].get(path)
        want_action = "tagged" if row["action"] == "would tag" else row["action"]
        if b is None or b["action"] != want_action or b["written"] != row["written"]:
            wrong.append({"path": path, "dry_run": [row["action"], row["written"]],
                          "apply": None if b is None else [b["action"], b["written"]]})
    missing = sorted(set(genres_after) - set(dry["rows"]))
    return {"ok": not wrong and not missing, "files": len(dry["rows"]),
            "would_tag": sum(1 for r in dry["rows"].values() if r["action"] == "would tag"),
            "mismatches": wrong[:20], "not_in_dry_run": missing[:20]}


def check_change(preview: dict[str, Any], apply: dict[str, Any], before: dict[str, tuple[int, int]],
                 after: dict[str, tuple[int, int]], genres_before: dict[str, list[str]],
                 genres_after: dict[str, list[str]]) -> dict[str, Any]:
    """d changed exactly the files c said it would tag, to the genres c said; nothing else."""
    said = {p for p, r in preview["rows"].items() if r["action"] == "would tag"}
    changed = {p for p in after if after[p] != before.get(p)}
    wrong = []
    for p in sorted(said | changed):
        want = preview["rows"][p]["written"] if p in said else genres_before.get(p)
        if genres_after.get(p) != want or (p in said) != (p in changed):
            wrong.append({"path": p, "said": p in said, "changed": p in changed, "want": want,
                          "got": genres_after.get(p)})
    actions_differ = [p for p, r in preview["rows"].items()
                      if (apply["rows"].get(p) or {}).get("written") != r["written"]
                      or (apply["rows"].get(p) or {}).get("action") != ("tagged" if r["action"] == "would tag"
                                                                          else r["action"])]
    return {"ok": not wrong and not actions_differ, "would_tag": len(said), "changed": len(changed),
            "mismatches": wrong[:20], "actions_differ": actions_differ[:20]}


# ---------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> dict[str, Any]:
    work = args.keep or Path(tempfile.mkdtemp(prefix="tagger-store-"))
    work.mkdir(parents=True, exist_ok=True)
    env = tagger_run.bench_env(work)
    loads = [tagger_run.loadavg()]
    root, pristine, built = library(work, args.files, args.seconds, args.seed, args.build_processes)
    print(f"library: {len(pristine)} tracks of {args.seconds:g} s in {root} "
          f"({built:.0f} s to build or check)", file=sys.stderr)
    run_dir = work / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir()
    lib, state = run_dir / "lib", run_dir / "state.db"
    paths = copy_selection(pristine, root, lib)
    sizes = sum(p.stat().st_size for p in paths)
    changes = [[a for a in c.split(",") if a] for c in (args.change or DEFAULT_CHANGES)]
    steps: dict[str, dict[str, Any]] = {}
    plan = [("a", "dry run", ["--dry-run"], True), ("b", "apply", [], True)]
    pairs = []  # (preview key, applied key, the step before)
    before = "b"
    for i, change in enumerate(changes):
        c, d = ("c", "d") if i == 0 else (f"c{i + 1}", f"d{i + 1}")
        what = " ".join(change)
        plan += [(c, f"change {what}, dry run", [*change, "--dry-run"], True),
                 (d, f"change {what}", change, True)]
        pairs.append((c, d, before))
        before = d
    plan.append(("e", "no-op re-run", changes[-1], False))
    genres: dict[str, dict[str, list[str]]] = {"start": {str(p): read_genres(p) for p in paths}}
    stats: dict[str, dict[str, tuple[int, int]]] = {"start": snapshot(paths)}
    for key, name, extra, report in plan:
        print(f"{key}: {name} ...", file=sys.stderr)
        r = step(key, lib, state, run_dir, [*args.tagger_arg, *extra], env, report=report, model=args.model)
        r["name"] = name
        steps[key] = r
        genres[key] = {str(p): read_genres(p) for p in paths}
        stats[key] = snapshot(paths)
        loads.append(tagger_run.loadavg())
        print(f"   {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU; {r['summary']}", file=sys.stderr)

    checks: dict[str, Any] = {
        "dry_run_changed_nothing": stats["a"] == stats["start"],
        "apply_wrote_the_dry_run": check_apply(steps["a"], steps["b"], genres["b"], genres["start"]),
    }
    for c, d, prev in pairs:
        checks[f"{d}_wrote_what_{c}_said"] = check_change(steps[c], steps[d], stats[prev], stats[d],
                                                           genres[prev], genres[d])
        checks[f"{c}_changed_nothing"] = stats[c] == stats[prev]
    checks["noop_changed_nothing"] = stats["e"] == stats[before]
    checks["noop_said_nothing_to_do"] = steps["e"]["summary"].startswith("nothing to do")
    for key in steps:
        s = steps[key]
        if key not in ("a", "e"):
            checks[f"{key}_all_from_store"] = (s["analysis"]["stored"] == len(s["rows"])
                                               and not s["timing"].get("analysed"))
        if key != "a":
            checks[f"{key}_no_tensorflow_no_ray"] = (s["probe_ran"] and not s["imported"].get("tensorflow")
                                                     and not s["imported"].get("ray")
                                                     and not s["ray_started"])
    ok = all(v["ok"] if isinstance(v, dict) else bool(v) for v in checks.values())
    a, b = steps["a"], steps["b"]
    slowest = max((k for pair in pairs for k in pair[:2]), key=lambda k: steps[k]["wall_s"])
    goals = {
        "apply_share_of_dry_run": round(b["wall_s"] / a["wall_s"], 4),
        "apply_share_goal": GOAL_APPLY_SHARE,
        "apply_share_met": b["wall_s"] / a["wall_s"] <= GOAL_APPLY_SHARE,
        "change_s": {k: steps[k]["wall_s"] for pair in pairs for k in pair[:2]},
        "change_slowest": slowest, "change_goal_s": GOAL_CHANGE_S,
        "change_met": steps[slowest]["wall_s"] <= GOAL_CHANGE_S,
        "apply_cpu_share_of_dry_run": round(b["cpu_s"] / a["cpu_s"], 4) if a["cpu_s"] else None,
        "noop_s": steps["e"]["wall_s"],
    }
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": tagger_run.machine(),
        "library": {"root": str(root), "tracks": len(paths), "seconds_each": args.seconds,
                    "audio_hours": round(len(paths) * args.seconds / 3600, 3),
                    "megabytes": round(sizes / 1e6, 1),
                    "formats": sorted({p.suffix.lstrip(".") for p in paths}),
                    "generated": "bench/musiclib.py", "seed": args.seed},
        "model": args.model or "shipped default",
        "tagger_file": steps["a"].get("tagger_file"),
        "changes": changes, "tagger_args": args.tagger_arg,
        "state_db_bytes": state.stat().st_size if state.exists() else None,
        "load_average": {"samples": loads, "median": statistics.median(loads), "max": max(loads)},
        "steps": steps, "checks": checks, "ok": ok, "goals": goals,
    }
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def table(result: dict[str, Any]) -> str:
    cols = ["step", "wall s", "CPU s (tree)", "driver CPU s", "Ray CPU s", "TF imported",
            "Ray imported / started", "analysed now", "from store", "written", "load 1-min", "summary"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for key, s in result["steps"].items():
        cpu = s["sampled"].get("cpu_s", {})
        an = s.get("analysis") or {}
        counts = s.get("counts") or {}
        written = counts.get("tagged", counts.get("would tag", "-")) if counts else "-"
        lines.append("| " + " | ".join([
            f"{key}: {s['name']}", f"{s['wall_s']:.2f}", f"{s['cpu_s']:.2f}",
            f"{cpu['driver']:.2f}" if cpu.get("driver") else "-",
            f"{cpu.get('worker', 0) + cpu.get('system', 0):.2f}" if s["ray_processes"] else "0",
            "yes" if s["imported"].get("tensorflow") else "no",
            f"{'yes' if s['imported'].get('ray') else 'no'} / {'yes' if s['ray_started'] else 'no'}",
            str(an.get("now", "-")), str(an.get("stored", "-")), str(written),
            f"{s['load_before']:.2f}", s["summary"] or "-",
        ]) + " |")
    return "\n".join(lines)


def print_report(result: dict[str, Any]) -> None:
    lib, m = result["library"], result["machine"]
    print(f"\nlibrary: {lib['tracks']} generated tracks of {lib['seconds_each']:g} s "
          f"({', '.join(lib['formats'])}), "
          f"{lib['audio_hours']} h, {lib['megabytes']} MB; model: {result['model']}")
    print(f"machine: {m['cpu']}, {m['cores']} cores; "
          f"load average: median {result['load_average']['median']}, "
          f"max {result['load_average']['max']}")
    print(table(result))
    g = result["goals"]
    print(f"\napply / dry run: {g['apply_share_of_dry_run']:.1%} of the wall time "
          f"(goal <= {g['apply_share_goal']:.0%}: "
          f"{'met' if g['apply_share_met'] else 'MISSED'}); CPU {g['apply_cpu_share_of_dry_run']:.1%}")
    print("settings changes: " + ", ".join(f"{k} {v:.2f} s" for k, v in g["change_s"].items())
          + f" (goal <= {g['change_goal_s']:g} s: {'met' if g['change_met'] else 'MISSED'}, "
            f"slowest {g['change_slowest']})")
    print(f"state database: {result['state_db_bytes']} bytes")
    for k, v in result["checks"].items():
        ok = v["ok"] if isinstance(v, dict) else v
        extra = ""
        if isinstance(v, dict):
            counts = [f"{kk} {vv}" for kk, vv in v.items() if isinstance(vv, int) and kk != "ok"]
            extra = " (" + ", ".join(counts) + ")"
            if not ok:
                extra += f" {v.get('mismatches') or v.get('actions_differ')}"
        print(f"check {k}: {'ok' if ok else 'FAILED'}{extra}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000, help="tracks in the library (default 1000)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each generated track (default 30)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="a model for every step (default: the shipped one)")
    ap.add_argument("--change", action="append", default=None, metavar="ARG,ARG",
                    help="a settings change, comma-separated (repeatable; each gets a dry run c and a run "
                         "d, one after the other; e re-runs the last). "
                         f"Default: {' and '.join(DEFAULT_CHANGES)}")
    ap.add_argument("--tagger-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for every step (repeatable), e.g. --tagger-arg=--min-confidence "
                         "--tagger-arg=0.3")
    ap.add_argument("--keep", type=Path, default=None,
                    help="work folder kept afterwards; its generated library is reused by the next run")
    ap.add_argument("--build-processes", type=int, default=2, help="processes generating the library")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
