"""Throughput benchmark: `tagger tag` against the seed projects' loop, side by side (issue 6).

    python bench/bench_throughput.py --files 60 [--model PATH | --vocabulary msd]
                                     [--analysis-seconds 15,30,60] [--json out.json]
    python bench/bench_throughput.py --library ~/Music --files 200 ...   # your own files
    python bench/bench_throughput.py --memory-check                     # 100 vs 2,000 files, a 2-hour file

One run, the same files, the same model; the figures that matter are ratios. What it measures:

  a  baseline: the seed projects' way. One process; per file ``librosa.load(path, sr=model rate)``,
     the model's features (``tagger.features.extract``, so features are the same), plain Keras
     ``model.predict`` on that file's chunks, the mean over chunks, the best genre written with
     mutagen. On its own copy of the library. (librosa.load needs an FFmpeg *binary* for M4A
     through audioread; where there is none, the baseline decodes M4A with PyAV at the file's
     rate and then does what librosa.load does: to_mono, resample with soxr_hq.)
  b  ``tagger tag`` with its defaults, the real CLI in a subprocess, on another copy, with
     ``--report`` JSON for the predictions and the pipeline's per-stage times (``timing``).
  c  decode-only: ``tagger.decode.decode(path, sample_rate=model rate)`` of every file (read,
     decode, average to mono, one soxr resampling; no tags, no features, no model), in one
     process per core like tagger's workers (a process pool, warmed before timing): the
     practical limit of this machine for these files.
  w  analyse-only (shown for the arithmetic): tagger's worker job (tags read + decode + features)
     in the same pool, no Ray, no model.
  bS ``tagger tag --analysis-seconds S`` for each S of ``--analysis-seconds``: decodes only the
     stretches it analyses (seeking), compared with b (top-1 agreement) and with a (speed).

Reported per run: tracks/s and audio hours per hour in the steady state (start-up apart), the
end-to-end wall time, per-stage milliseconds per track, peak RSS of the driver and of the
workers (VmHWM from /proc, sampled, for the process and every descendant), ratios b/a and b/c,
and top-1 agreement between a and b. A table on stdout, everything as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import musiclib  # noqa: E402

DEFAULT_WORK = Path(tempfile.gettempdir()) / "tagger-bench"


# ---------------------------------------------------------------------------------------------
# peak memory of a process tree, from /proc
# ---------------------------------------------------------------------------------------------

def _status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far (from /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(root: int) -> set[int]:
    """Every living descendant of ``root`` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: parse after the last ')'
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def classify(pid: int, root: int, cmd: str) -> str:
    """driver (the root), worker (a Ray worker process), or system (raylet, GCS, agents, ...)."""
    if pid == root:
        return "driver"
    if cmd.startswith("ray::") or "default_worker.py" in cmd:
        return "worker"
    return "system"


class PeakRSS(threading.Thread):
    """Samples the peak RSS (VmHWM) of a process and all its descendants until stopped.

    VmHWM is the kernel's high-water mark of each process, so a sample taken any time after a
    peak sees it; only a process that peaks and exits between two samples is missed.
    """

    def __init__(self, root: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak: dict[int, int] = {}  # pid -> VmHWM kB
        self.cpu: dict[int, float] = {}  # pid -> CPU seconds at the last sample
        self.kind: dict[int, str] = {}
        self.cmd: dict[int, str] = {}
        self._halt = threading.Event()

    def sample(self) -> None:
        pids = {self.root} | (descendants(self.root) if os.path.exists(f"/proc/{self.root}") else set())
        for pid in pids:
            hwm = _status_kb(pid, "VmHWM")
            if hwm is None:
                continue
            cmd = _cmdline(pid)
            if cmd:
                self.cmd[pid] = cmd
                self.kind[pid] = classify(pid, self.root, cmd)  # a Ray worker renames itself once started
            self.peak[pid] = max(hwm, self.peak.get(pid, 0))
            cpu = _cpu_seconds(pid)
            if cpu is not None:
                self.cpu[pid] = max(cpu, self.cpu.get(pid, 0.0))

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        def mb(kb: int) -> float:
            return round(kb / 1024, 1)

        by = {"driver": [], "worker": [], "system": []}
        cpu = {"driver": 0.0, "worker": 0.0, "system": 0.0}
        for pid, kb in self.peak.items():
            by[self.kind.get(pid, "system")].append(kb)
            cpu[self.kind.get(pid, "system")] += self.cpu.get(pid, 0.0)
        return {
            "driver_mb": mb(max(by["driver"], default=0)),
            "worker_mb": mb(max(by["worker"], default=0)),
            "workers": len(by["worker"]),
            "system_mb": mb(sum(by["system"])),
            # CPU seconds (sampled: up to one interval of each process's last moments is missed)
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        }


def run_sampled(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                interval: float = 0.5) -> tuple[subprocess.CompletedProcess, float, dict[str, Any]]:
    """Run ``cmd``; returns (result, wall seconds, peak RSS summary of its process tree)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    sampler = PeakRSS(proc.pid, interval)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    sampler.sample()  # the root is a zombie until reaped; its last VmHWM was taken while it ran
    mem = sampler.stop()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), wall, mem


# ---------------------------------------------------------------------------------------------
# a: the seed-style loop (runs in a child process: python bench_throughput.py --_baseline ...)
# ---------------------------------------------------------------------------------------------

def _load_native_pyav(path: str):
    """(channels, n) float32 at the file's own rate and that rate, with PyAV: what audioread's
    FFmpeg backend would hand librosa.load, without an ffmpeg binary."""
    import av
    import numpy as np

    blocks, sr, resampler = [], None, None
    with av.open(path) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            sr = frame.sample_rate
            if frame.format.name != "fltp":
                if resampler is None:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=frame.sample_rate)
                frames = resampler.resample(frame)
            else:
                frames = [frame]
            blocks.extend(f.to_ndarray() for f in frames)
    return np.concatenate(blocks, axis=1), sr


def seed_load(path: str, sr: int):
    """``librosa.load(path, sr=sr)``; M4A/WMA without an FFmpeg binary as described above."""
    import librosa

    try:
        y, _ = librosa.load(path, sr=sr)
        return y, "librosa.load"
    except Exception as exc:  # librosa raises NoBackendError (audioread) for formats libsndfile lacks
        if type(exc).__name__ != "NoBackendError":
            raise
    y, native = _load_native_pyav(path)
    y = librosa.to_mono(y)
    if native != sr:
        y = librosa.resample(y, orig_sr=native, target_sr=sr, res_type="soxr_hq")
    return y, "pyav+librosa"


def seed_write(path: str, genre: str) -> None:
    """The seed projects' tag write: mutagen's easy interface (an ID3 frame for WAV/AIFF,
    which have no easy interface)."""
    import mutagen
    from mutagen.id3 import ID3, TCON

    f = mutagen.File(path, easy=True)
    if f.tags is None:
        f.add_tags()
    if isinstance(f.tags, ID3):
        f.tags.add(TCON(encoding=3, text=[genre]))
    else:
        f["genre"] = [genre]
    f.save()


def baseline_main(args: argparse.Namespace) -> int:
    """The seed projects' loop, timed stage by stage; writes a JSON result."""
    import resource

    t_start = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    startup: dict[str, float] = {}
    t = time.perf_counter()
    import librosa
    import mutagen  # noqa: F401
    import numpy as np

    from tagger.features import extract
    from tagger.modelmeta import load_meta, locate
    startup["imports"] = time.perf_counter() - t
    t = time.perf_counter()
    from tagger.model import import_tensorflow

    import_tensorflow()  # plain `import tensorflow, keras`, with TF's start-up chatter hidden
    import keras
    startup["tensorflow"] = time.perf_counter() - t
    t = time.perf_counter()
    files = locate(args.model)
    meta = load_meta(files)
    net = keras.saving.load_model(files.weights, compile=False)
    startup["model"] = time.perf_counter() - t
    t = time.perf_counter()
    net.predict(np.zeros((1, *meta.input_shape), np.float32), verbose=0)  # trace once
    startup["trace"] = time.perf_counter() - t
    t = time.perf_counter()  # librosa loads its modules on first use: start-up too (as tagger's worker warm-up)
    noise = 0.1 * np.random.default_rng(0).standard_normal(44100 * 2).astype(np.float32)
    extract(librosa.resample(noise, orig_sr=44100, target_sr=meta.features.sample_rate, res_type="soxr_hq"),
            params=meta.features)
    startup["warm"] = time.perf_counter() - t
    fp, labels = meta.features, list(meta.labels)
    paths = [line for line in Path(args.files_from).read_text().splitlines() if line]
    rows, stages = [], {"decode": 0.0, "features": 0.0, "inference": 0.0, "write": 0.0}
    t_loop = time.perf_counter()
    for p in paths:
        row: dict[str, Any] = {"path": p}
        try:
            t0 = time.perf_counter()
            y, how = seed_load(p, fp.sample_rate)
            t1 = time.perf_counter()
            x = extract(y, params=fp)
            t2 = time.perf_counter()
            probs = net.predict(x, verbose=0)
            t3 = time.perf_counter()
            scores = probs.mean(axis=0)
            best = int(np.argmax(scores))
            label = labels[best]
            seed_write(p, meta.display_names.get(label, label))
            t4 = time.perf_counter()
            for k, v in (("decode", t1 - t0), ("features", t2 - t1), ("inference", t3 - t2), ("write", t4 - t3)):
                stages[k] += v
            row.update(label=label, score=round(float(scores[best]), 4), chunks=int(x.shape[0]),
                       seconds=round(y.shape[0] / fp.sample_rate, 2), loader=how)
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        rows.append(row)
    loop = time.perf_counter() - t_loop
    result = {
        "startup": startup, "loop": loop, "stages": stages, "rows": rows,
        "in_process_wall": time.perf_counter() - t_start,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


# ---------------------------------------------------------------------------------------------
# c and w: decode-only and analyse-only in a process pool
# ---------------------------------------------------------------------------------------------

def _pool_init() -> None:
    import numpy  # noqa: F401
    import soundfile  # noqa: F401

    import tagger.analyse
    import tagger.decode
    import tagger.tags  # noqa: F401


def _decode_job(args: tuple[str, int]) -> tuple[float, float]:
    from tagger.decode import decode

    path, sr = args
    t = time.perf_counter()
    y = decode(path, sample_rate=sr)
    return time.perf_counter() - t, y.shape[0] / sr


def _analyse_job(args: tuple[str, dict, dict]) -> tuple[float, dict[str, float], bool]:
    from tagger.analyse import analyse_file

    path, params, policy = args
    t = time.perf_counter()
    res = analyse_file(path, params=params, policy=policy)
    timing = {"tags": res.timing.tags, "decode": res.timing.decode, "features": res.timing.features}
    return time.perf_counter() - t, timing, res.features is not None


def _warm_job(args: tuple[str, dict]) -> int:
    import numpy as np

    from tagger.features import FeatureParams, extract

    fp = FeatureParams.from_dict(args[1])
    extract(0.1 * np.random.default_rng(0).standard_normal(fp.sample_rate * 4).astype(np.float32), params=fp)
    return os.getpid()


def pool_run(kind: str, paths: list[str], *, processes: int, params: dict, policy: dict) -> dict[str, Any]:
    """Time ``kind`` (decode | analyse) over ``paths`` in a warmed pool of ``processes``."""
    with ProcessPoolExecutor(processes, initializer=_pool_init) as pool:
        list(pool.map(_warm_job, [(paths[0], params)] * processes * 2))  # imports, librosa's lazy modules
        t = time.perf_counter()
        if kind == "decode":
            res = list(pool.map(_decode_job, [(p, params["sample_rate"]) for p in paths]))
            wall = time.perf_counter() - t
            busy = sum(r[0] for r in res)
            return {"tracks": len(paths), "wall": wall, "busy": busy, "stages": {"decode": busy},
                    "analysed_seconds": sum(r[1] for r in res)}
        res = list(pool.map(_analyse_job, [(p, params, policy) for p in paths]))
        wall = time.perf_counter() - t
        stages = {k: sum(r[1].get(k, 0.0) for r in res) for k in ("tags", "decode", "features")}
        return {"tracks": sum(1 for r in res if r[2]), "wall": wall, "busy": sum(r[0] for r in res), "stages": stages}


# ---------------------------------------------------------------------------------------------
# the library and its copies
# ---------------------------------------------------------------------------------------------

def copy_selection(paths: list[Path], root: Path, dest: Path) -> list[Path]:
    """Copy ``paths`` (under ``root``) to ``dest``, keeping their relative paths."""
    if dest.exists():
        shutil.rmtree(dest)
    out = []
    for p in paths:
        q = dest / p.relative_to(root)
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, q)
        out.append(q)
    return out


def loadavg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_env() -> dict[str, str]:
    """The environment for the child processes: the user's config file out of the way."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------

def rate(tracks: int, seconds: float) -> float:
    return tracks / seconds if seconds > 0 else float("nan")


def agreement(a: dict[str, str], b: dict[str, str]) -> dict[str, Any]:
    """Top-1 agreement of two {relative path: label} maps over the files both analysed."""
    common = sorted(set(a) & set(b))
    same = [k for k in common if a[k] == b[k]]
    return {"files": len(common), "same": len(same), "agreement": (len(same) / len(common)) if common else None,
            "differ": [{"path": k, "a": a[k], "b": b[k]} for k in common if a[k] != b[k]][:20]}


def per_track_ms(stages: dict[str, float], n: int) -> dict[str, float]:
    return {k: round(1000 * v / n, 1) for k, v in stages.items()} if n else {}


def summarise_baseline(res: dict[str, Any], wall: float, mem: dict[str, Any], audio_s: float,
                       root: Path) -> dict[str, Any]:
    ok = [r for r in res["rows"] if "label" in r]
    n = len(ok)
    stages = dict(res["stages"])
    stages["other"] = max(0.0, res["loop"] - sum(stages.values()))
    startup = {k: round(v, 3) for k, v in res["startup"].items()}
    startup["process"] = round(wall - res["loop"] - sum(res["startup"].values()), 3)
    return {
        "name": "a: seed-style loop", "tracks": n, "failed": len(res["rows"]) - n, "wall": round(wall, 2),
        "steady": round(res["loop"], 2), "startup": startup,
        "tracks_per_s": rate(n, res["loop"]), "tracks_per_s_e2e": rate(n, wall),
        "audio_h_per_h": audio_s / res["loop"] if res["loop"] else None,
        "ms_per_track": per_track_ms(stages, n), "memory": mem,
        "loaders": sorted({r.get("loader", "") for r in ok}),
        "top1": {str(Path(r["path"]).relative_to(root)): r["label"] for r in ok},
        "errors": [r for r in res["rows"] if "error" in r][:10],
    }


def summarise_tagger(name: str, report: dict[str, Any], wall: float, mem: dict[str, Any], audio_s: float,
                     root: Path, rc: int) -> dict[str, Any]:
    tm = report.get("timing") or {}
    rows = report.get("files", [])
    top1 = {str(Path(r["path"]).relative_to(root)): r["predicted"][0]["label"] for r in rows if r.get("predicted")}
    decisions = {str(Path(r["path"]).relative_to(root)): f"{r['action']}: {'|'.join(r.get('written') or [])}"
                 for r in rows}
    n = int(tm.get("analysed") or len(top1))
    stream = float(tm.get("stream") or 0.0)
    startup = {k: round(v, 3) for k, v in (tm.get("startup") or {}).items()}
    startup["process"] = round(wall - stream - sum(startup.values()), 3)
    busy = {"tags": tm.get("tags", 0.0), "decode": tm.get("decode", 0.0), "features": tm.get("features", 0.0),
            "inference": tm.get("infer", 0.0), "write": tm.get("write", 0.0)}
    busy["other"] = max(0.0, stream - busy["inference"] - busy["write"])  # driver: waiting, Ray calls, decisions
    return {
        "name": name, "tracks": n, "failed": (report.get("counts") or {}).get("failed", 0), "exit": rc,
        "counts": report.get("counts"), "wall": round(wall, 2), "steady": round(stream, 2), "startup": startup,
        "tracks_per_s": rate(n, stream), "tracks_per_s_e2e": rate(n, wall),
        "audio_h_per_h": audio_s / stream if stream else None,
        "analysed_audio_h": round((tm.get("audio_seconds") or 0.0) / 3600, 3),
        "ms_per_track": per_track_ms(busy, n), "memory": mem, "chunks": tm.get("chunks"),
        "batches": tm.get("batches"), "inference": (report.get("model") or {}).get("inference"),
        "top1": top1, "decisions": decisions, "rechecked": tm.get("rechecked", 0),
    }


def summarise_pool(name: str, res: dict[str, Any], audio_s: float, processes: int) -> dict[str, Any]:
    n = res["tracks"]
    return {"name": name, "tracks": n, "processes": processes, "wall": round(res["wall"], 2),
            "busy": round(res["busy"], 2),
            "steady": round(res["wall"], 2), "tracks_per_s": rate(n, res["wall"]),
            "audio_h_per_h": audio_s / res["wall"], "ms_per_track": per_track_ms(res["stages"], n),
            "cpu_utilisation": round(res["busy"] / (res["wall"] * processes), 3)}


def fmt(v: Any, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def cpu_per_track(run: dict[str, Any]) -> float | None:
    """CPU seconds per track, every process of the run together (start-up included); for the
    pool runs, the workers' busy seconds. Less sensitive to other load than wall time."""
    if not run.get("tracks"):
        return None
    cpu = (run.get("memory") or {}).get("cpu_s")
    if cpu:
        return sum(cpu.values()) / run["tracks"]
    if "busy" in run:
        return run["busy"] / run["tracks"]
    return None


def table(runs: list[dict[str, Any]]) -> str:
    cols = ["run", "tracks", "tracks/s", "audio h/h", "wall ms/track", "tags", "decode", "features", "inference",
            "write", "other", "CPU s/track", "start-up s", "driver MB", "worker MB"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in runs:
        ms = r.get("ms_per_track", {})
        mem = r.get("memory") or {}
        start = r.get("startup")
        lines.append("| " + " | ".join([
            r["name"], str(r["tracks"]), fmt(r["tracks_per_s"], 3), fmt(r.get("audio_h_per_h"), 0),
            fmt(1000 / r["tracks_per_s"] if r["tracks_per_s"] else None, 0),
            *(fmt(ms.get(k), 0) for k in ("tags", "decode", "features", "inference", "write", "other")),
            fmt(cpu_per_track(r), 2),
            fmt(sum(start.values()), 1) if start else "-",
            fmt(mem.get("driver_mb"), 0) if mem else "-", fmt(mem.get("worker_mb"), 0) if mem else "-",
        ]) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the runs
# ---------------------------------------------------------------------------------------------

def run_tagger(name: str, lib: Path, model: Path, work: Path, audio_s: float, extra: list[str],
               env: dict[str, str]) -> dict[str, Any]:
    tag = work / name.split(":")[0].strip().replace(" ", "_")
    tag.mkdir(parents=True, exist_ok=True)
    report, state = tag / "report.json", tag / "state.db"
    for p in (report, state):
        if p.exists():
            p.unlink()
    cmd = [sys.executable, "-m", "tagger", "tag", str(lib), "--model", str(model), "--state-db", str(state),
           "--report", str(report), "--quiet", *extra]
    res, wall, mem = run_sampled(cmd, env=env)
    if res.returncode not in (0, 2) or not report.exists():
        raise SystemExit(f"{name}: tagger exited {res.returncode}\n{res.stdout}\n{res.stderr[-3000:]}")
    out = summarise_tagger(name, json.loads(report.read_text()), wall, mem, audio_s, lib, res.returncode)
    out["command"] = " ".join(cmd[1:])
    return out


def run_baseline(lib_paths: list[Path], lib: Path, model: Path, work: Path, audio_s: float,
                 env: dict[str, str]) -> dict[str, Any]:
    listing, out = work / "baseline-files.txt", work / "baseline.json"
    listing.write_text("\n".join(str(p) for p in lib_paths) + "\n")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_baseline", "--model", str(model),
           "--_files-from", str(listing), "--_out", str(out)]
    res, wall, mem = run_sampled(cmd, env=env)
    if res.returncode != 0:
        raise SystemExit(f"baseline exited {res.returncode}\n{res.stderr[-3000:]}")
    data = json.loads(out.read_text())
    mem["ru_maxrss_mb"] = round(data["ru_maxrss_mb"], 1)
    return summarise_baseline(data, wall, mem, audio_s, lib)


def seek_check(paths: list[Path], sr: int, chunk_seconds: float, budget: float) -> list[dict[str, Any]]:
    """Per format: decoding the whole of one file vs only the stretches ``--analysis-seconds
    budget`` plans (what the worker does). Seeking works when the sampled decode costs about
    budget/duration of the whole one, not the whole."""
    from tagger.analyse import plan_segments
    from tagger.decode import decode, probe

    out, seen = [], set()
    for p in paths:
        ext = p.suffix.lower()
        if ext in seen:
            continue
        seen.add(ext)
        dur = probe(p).duration
        segs = plan_segments(dur, analysis_seconds=budget, max_seconds=900.0, chunk_seconds=chunk_seconds)

        def best(f, k=3):
            ts = []
            for _ in range(k):
                t = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t)
            return min(ts)

        whole = best(lambda p=p: decode(p, sample_rate=sr))
        part = best(lambda p=p, segs=segs: [decode(p, sample_rate=sr, offset=o, duration=d) for o, d in segs])
        last = segs[-1]
        tail = best(lambda p=p, last=last: decode(p, sample_rate=sr, offset=last[0], duration=last[1]))
        out.append({"format": ext.lstrip("."), "duration": round(dur, 1), "segments": len(segs),
                    "sampled_seconds": round(sum(d or dur for _, d in segs), 1),
                    "whole_ms": round(1000 * whole, 1), "sampled_ms": round(1000 * part, 1),
                    "last_segment_ms": round(1000 * tail, 1),
                    "cost_fraction": round(part / whole, 3),
                    "audio_fraction": round(sum(d or dur for _, d in segs) / dur, 3)})
    return out


def resolve_model(model: str | None, vocabulary: str | None) -> tuple[Path, Any]:
    from tagger.errors import ModelError
    from tagger.modelmeta import load_meta, locate

    try:
        files = locate(model, vocabulary=vocabulary)
    except ModelError as exc:
        if model is None and vocabulary is None:
            # what `tagger tag` would use is not installed (yet): say so, fall back to msd
            print(f"note: {exc}; using the shipped msd model", file=sys.stderr)
            files = locate(None, vocabulary="msd")
        else:
            raise
    return files.weights, load_meta(files)


def main_bench(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    weights, meta = resolve_model(args.model, args.vocabulary)
    env = bench_env()
    env["XDG_CONFIG_HOME"] = str(work / "xdg-config")  # no user config.toml changes tagger's defaults
    processes = args.workers or os.cpu_count() or 1
    loads = [loadavg()]
    if args.library:
        root = args.library.resolve()
        files = musiclib.audio_files(root)[: args.files]
        if not files:
            raise SystemExit(f"{root}: no audio files")
    else:
        lo, hi = args.seconds
        root = work / f"library-{lo:g}-{hi:g}s-seed{args.seed}"
        t = time.perf_counter()
        files = musiclib.build_library(root, args.files, seconds=(lo, hi), seed=args.seed,
                                       processes=args.build_processes)
        print(f"library: {len(files)} tracks in {root} ({time.perf_counter() - t:.0f} s to build)", file=sys.stderr)
    durations = {p: musiclib.duration_of(p) for p in files}
    audio_s = sum(durations.values())
    sizes = sum(p.stat().st_size for p in files)
    formats = sorted({p.suffix.lower().lstrip(".") for p in files})
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "model": {"path": str(weights), "model_id": meta.model_id, "name": meta.name,
                  "architecture": meta.architecture, "sample_rate": meta.features.sample_rate,
                  "chunk_seconds": round(meta.features.chunk_seconds, 3),
                  "chunk_hop_seconds": round(meta.features.chunk_hop_seconds, 3)},
        "library": {"root": str(root), "tracks": len(files), "formats": formats,
                    "audio_hours": round(audio_s / 3600, 3),
                    "mean_track_seconds": round(audio_s / len(files), 1), "megabytes": round(sizes / 1e6, 1)},
        "runs": {},
    }
    params = meta.features.to_dict()
    whole_policy = {"model_id": meta.model_id, "on_existing": "skip", "analysis_seconds": None, "max_seconds": 900.0}
    runs = result["runs"]

    if not args.no_decode:
        print("c: decode-only ...", file=sys.stderr)
        runs["c"] = summarise_pool(f"c: decode-only ({processes} processes)",
                                   pool_run("decode", [str(p) for p in files], processes=processes, params=params,
                                            policy=whole_policy), audio_s, processes)
        loads.append(loadavg())
        print("w: analyse-only ...", file=sys.stderr)
        runs["w"] = summarise_pool(f"w: worker job only ({processes} processes)",
                                   pool_run("analyse", [str(p) for p in files], processes=processes, params=params,
                                            policy=whole_policy), audio_s, processes)
        loads.append(loadavg())
    if not args.no_baseline:
        print("a: seed-style loop ...", file=sys.stderr)
        copy_a = copy_selection(files, root, work / "copy-a")
        runs["a"] = run_baseline(copy_a, work / "copy-a", weights, work, audio_s, env)
        loads.append(loadavg())
    print("b: tagger tag ...", file=sys.stderr)
    copy_selection(files, root, work / "copy-b")
    extra = ["--workers", str(args.workers)] if args.workers else []
    extra += args.tagger_arg or []
    runs["b"] = run_tagger("b: tagger tag", work / "copy-b", weights, work, audio_s, extra, env)
    loads.append(loadavg())
    for s in args.analysis_seconds:
        key = f"b{s:g}"
        print(f"{key}: tagger tag --analysis-seconds {s:g} ...", file=sys.stderr)
        copy_selection(files, root, work / f"copy-{key}")
        runs[key] = run_tagger(f"{key}: tagger tag --analysis-seconds {s:g}", work / f"copy-{key}", weights, work,
                               audio_s, [*extra, "--analysis-seconds", f"{s:g}"], env)
        loads.append(loadavg())
    result["seek"] = seek_check(files, meta.features.sample_rate, meta.features.chunk_seconds,
                                min(args.analysis_seconds or [30.0]))
    result["load_average"] = {"samples": loads, "max": max(loads), "median": statistics.median(loads)}

    # ratios and agreement
    figs: dict[str, Any] = {}
    b = runs["b"]
    if "a" in runs and not runs["a"]["tracks"]:
        print(f"a: no file analysed: {runs['a']['errors'][:3]}", file=sys.stderr)
    if "a" in runs and runs["a"]["tracks"]:
        a = runs["a"]
        figs["b/a"] = b["tracks_per_s"] / a["tracks_per_s"]
        figs["b/a end-to-end"] = b["tracks_per_s_e2e"] / a["tracks_per_s_e2e"]
        figs["top1 a vs b"] = agreement(a["top1"], b["top1"])
    if "c" in runs:
        figs["b/c"] = b["tracks_per_s"] / runs["c"]["tracks_per_s"]
        figs["b/w"] = b["tracks_per_s"] / runs["w"]["tracks_per_s"]
    for s in args.analysis_seconds:
        r = runs[f"b{s:g}"]
        if "b/a" in figs:
            figs[f"b{s:g}/a"] = r["tracks_per_s"] / runs["a"]["tracks_per_s"]
            figs[f"top1 a vs b{s:g}"] = agreement(runs["a"]["top1"], r["top1"])
        figs[f"top1 b vs b{s:g}"] = agreement(b["top1"], r["top1"])
        # what gets written: same action and genres; and top-1 among the tracks b itself tags
        figs[f"decisions b vs b{s:g}"] = agreement(b["decisions"], r["decisions"])
        sure = {k for k, v in b["decisions"].items() if v.startswith(("tagged", "would tag"))}
        figs[f"top1 b vs b{s:g}, tracks b tags"] = agreement({k: v for k, v in b["top1"].items() if k in sure},
                                                             r["top1"])
    result["figures"] = figs
    return result


def print_report(result: dict[str, Any]) -> None:
    lib, model = result["library"], result["model"]
    print(f"\nlibrary: {lib['tracks']} tracks ({', '.join(lib['formats'])}), {lib['audio_hours']} h of audio, "
          f"mean {lib['mean_track_seconds']} s, {lib['megabytes']} MB")
    print(f"model: {model['name']} ({model['architecture']}, {model['model_id']}), "
          f"{model['chunk_seconds']} s chunks at {model['sample_rate']} Hz")
    print(f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
          f"load average during the runs: median {result['load_average']['median']}, "
          f"max {result['load_average']['max']}")
    runs = list(result["runs"].values())
    print("\nSteady state (start-up apart). Stage columns: busy ms per track; tags/decode/features run in the workers, "
          "in parallel with each other and with inference/write in the driver.")
    print(table(runs))
    print("\nstart-up (s):")
    for r in runs:
        if r.get("startup"):
            print(f"  {r['name']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["startup"].items())
                  + f"; end to end {r['wall']:.1f} s = {r['tracks_per_s_e2e']:.3f} tracks/s")
    figs = result["figures"]
    print()
    for k, v in figs.items():
        if isinstance(v, dict):
            print(f"{k}: {v['same']}/{v['files']} = {fmt(v['agreement'], 3)}"
                  + (f"  (differ: {v['differ'][:3]})" if v["differ"] else ""))
        else:
            print(f"{k}: {v:.2f}x")
    for s in result.get("seek", []):
        print(f"seek {s['format']}: {s['segments']} segments = {s['sampled_seconds']} s of {s['duration']} s "
              f"({s['audio_fraction']:.0%}) cost {s['sampled_ms']} ms vs {s['whole_ms']} ms whole "
              f"({s['cost_fraction']:.0%}); last segment alone {s['last_segment_ms']} ms")


# ---------------------------------------------------------------------------------------------
# memory: driver flat in library size; a worker on a 2-hour file
# ---------------------------------------------------------------------------------------------

def memory_check(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work / "memory"
    work.mkdir(parents=True, exist_ok=True)
    weights, meta = resolve_model(args.model, args.vocabulary)
    env = bench_env()
    env["XDG_CONFIG_HOME"] = str(work / "xdg-config")
    distinct = musiclib.build_library(work / "distinct", 100, seconds=(args.short_seconds, args.short_seconds),
                                      seed=args.seed, processes=args.build_processes)
    out: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "runs": {}}
    for n in args.memory_sizes:
        lib = work / f"lib-{n}"
        if lib.exists():
            shutil.rmtree(lib)
        for i in range(n):  # n files: the 100 distinct tracks again and again, under distinct paths
            src = distinct[i % len(distinct)]
            dest = lib / f"copy{i // len(distinct):03d}" / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        audio_s = sum(musiclib.duration_of(p) for p in distinct) * n / len(distinct)
        r = run_tagger(f"{n} files", lib, weights, work, audio_s, [], env)
        r.pop("top1", None)
        out["runs"][str(n)] = r
        print(f"{n} files of {args.short_seconds:g} s: driver peak {r['memory']['driver_mb']} MB, worker peak "
              f"{r['memory']['worker_mb']} MB, {r['tracks_per_s']:.2f} tracks/s", file=sys.stderr)
    sizes = [str(n) for n in args.memory_sizes]
    peaks = [out["runs"][k]["memory"]["driver_mb"] for k in sizes]
    out["driver_growth"] = round(peaks[-1] / peaks[0] - 1, 3)
    # a 2-hour file: worker memory with the default cap (max_analysis_seconds 900 s, sampled)
    long = musiclib.build_long_file(work / "long" / "two hours.m4a", args.long_minutes * 60)
    r = run_tagger("2-hour file", long.parent, weights, work, args.long_minutes * 60, [], env)
    r.pop("top1", None)
    out["runs"]["long"] = r
    # and what decoding all of it at once would take, for comparison (the cap avoids this)
    n_native = args.long_minutes * 60 * musiclib.SR
    n_model = args.long_minutes * 60 * meta.features.sample_rate
    out["long_uncapped_estimate_mb"] = round((n_native + n_model) * 4 / 2**20)
    return out


# ---------------------------------------------------------------------------------------------
# bfloat16 against float32 (the margin of tagger.model.close_call comes from here)
# ---------------------------------------------------------------------------------------------

def precision_check(args: argparse.Namespace) -> dict[str, Any]:
    """Every file's chunks through the model in float32 and in bfloat16 (as tagger computes on
    a CPU with AMX): the largest score differences, per chunk and per track, and how many
    track decisions (top-1) differ, with and without tagger's float32 re-check of close calls."""
    import numpy as np

    from tagger.aggregate import chunk_probabilities, track_scores
    from tagger.decode import decode
    from tagger.features import extract
    from tagger.model import BF16_ERROR, BF16_ERROR_CHUNK, GenreModel, close_call

    weights, meta = resolve_model(args.model, args.vocabulary)
    if args.library:
        files = musiclib.audio_files(args.library.resolve())[: args.files]
    else:
        lo, hi = args.seconds
        files = musiclib.build_library(args.work / f"library-{lo:g}-{hi:g}s-seed{args.seed}", args.files,
                                       seconds=(lo, hi), seed=args.seed, processes=args.build_processes)
    fp32 = GenreModel.load(weights, batch_size=32)
    bf16 = fp32.with_precision("mixed_bfloat16")
    chunk_err, track_err, flips, flips_after, close, margins = 0.0, 0.0, 0, 0, 0, []
    worst = 0.0  # largest (difference / close_call's error bound): must stay below 1

    def bound(n: int) -> float:
        return BF16_ERROR + BF16_ERROR_CHUNK / n

    for p in files:
        x = extract(decode(p, sample_rate=meta.features.sample_rate), params=meta.features)
        oa, ob = fp32.predict(x), bf16.predict(x)  # probabilities, or a logit-mean model's logits
        a, b = chunk_probabilities(oa, meta.aggregation), chunk_probabilities(ob, meta.aggregation)
        chunk_err = max(chunk_err, float(np.abs(a - b).max()))
        sa, sb = track_scores(oa, meta.aggregation), track_scores(ob, meta.aggregation)
        track_err = max(track_err, float(np.abs(sa - sb).max()))
        worst = max(worst, float(np.abs(sa - sb).max()) / bound(x.shape[0]),
                    float(np.abs(a - b).max()) / bound(1))  # a track, and any chunk as a track of one
        top = np.sort(sa)[::-1]
        margins.append(float(top[0] - top[1]))
        flip = int(sa.argmax() != sb.argmax())
        is_close = close_call(sb, top_k=1, min_confidence=0.4, chunks=x.shape[0])
        close += int(is_close)
        flips += flip
        flips_after += int(flip and not is_close)
    return {"model": meta.name, "files": len(files), "max_chunk_score_difference": round(chunk_err, 5),
            "max_track_score_difference": round(track_err, 5), "top1_flips": flips,
            "top1_flips_after_recheck": flips_after, "close_calls_rechecked": close,
            "error_bound": f"{BF16_ERROR} + {BF16_ERROR_CHUNK} / chunks",
            "smallest_top1_margin": round(min(margins), 4), "worst_difference_to_bound": round(worst, 3)}


# ---------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=30, help="tracks in the library (default 30)")
    ap.add_argument("--seconds", type=lambda s: tuple(float(x) for x in s.split(",")), default=(180.0, 240.0),
                    metavar="MIN,MAX", help="length of the generated tracks (default 180,240)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--library", type=Path, default=None, help="benchmark on (copies of) the audio files in DIR")
    ap.add_argument("--model", default=None, help="NAME.keras (default: what `tagger tag` uses)")
    ap.add_argument("--vocabulary", default=None, help="a shipped model by vocabulary (gtzan, msd)")
    ap.add_argument("--analysis-seconds", type=lambda s: [float(x) for x in s.split(",") if x], default=[],
                    metavar="S1,S2", help="also run tagger tag --analysis-seconds S for each S")
    ap.add_argument("--workers", type=int, default=None,
                    help="tagger --workers and decode-only processes (default: cores)")
    ap.add_argument("--tagger-arg", action="append", metavar="ARG", help="extra argument for run b (repeatable)")
    ap.add_argument("--no-baseline", action="store_true", help="skip run a")
    ap.add_argument("--no-decode", action="store_true", help="skip runs c and w")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"work folder (default {DEFAULT_WORK})")
    ap.add_argument("--build-processes", type=int, default=1, help="processes generating the library")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument("--memory-check", action="store_true", help="only the memory checks (see --memory-sizes)")
    ap.add_argument("--memory-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 2000])
    ap.add_argument("--short-seconds", type=float, default=10.0, help="track length for --memory-check")
    ap.add_argument("--long-minutes", type=float, default=120.0, help="length of the long file for --memory-check")
    ap.add_argument("--precision-check", action="store_true",
                    help="only compare bfloat16 with float32 scores on the library (see tagger.model.close_call)")
    ap.add_argument("--_baseline", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_files-from", dest="files_from", help=argparse.SUPPRESS)
    ap.add_argument("--_out", dest="out", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._baseline:
        return baseline_main(args)
    if args.precision_check:
        result = precision_check(args)
        print(json.dumps(result, indent=1))
    elif args.memory_check:
        result = memory_check(args)
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
        for k, r in result["runs"].items():
            print(f"{k}: driver {r['memory']['driver_mb']} MB, worker {r['memory']['worker_mb']} MB, "
                  f"{r['tracks']} tracks, {r['tracks_per_s']:.2f} tracks/s")
    else:
        result = main_bench(args)
        print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
