"""Run the ``tagger`` command as cron would (a fresh Python process) and measure it.

Used by bench/bench_store.py and bench/bench_noop.py. For one run of ``python -m tagger ARGS``:

* wall time: from starting the process to its exit;
* CPU time (user + system) of the whole process tree, in two parts:

  - ``resource.getrusage(RUSAGE_CHILDREN)`` before and after: exact for the driver and for every
    descendant reaped by a parent that waits for its children (Ray's GCS, raylet, dashboard and
    agents are started by the driver and waited for). The benchmark makes itself a *child
    subreaper* (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``), so a process whose parent dies first is
    re-parented to it instead of to init, and reaped (and counted) after the run;
  - plus, sampled from /proc every ``interval`` seconds, the CPU of processes whose parent
    *ignores* SIGCHLD: the kernel reaps those itself and their times are added to nobody's
    children times. Ray's raylet does this to its workers, so Ray workers are counted from the
    samples: up to one interval of each worker's last moments is missed (``lost_to_rusage`` says
    how much came from samples).

  Not counted: a process still alive ``grace`` seconds after the driver exited
  (``still_running``), and work done by processes outside the tree (none for a local Ray; a
  remote cluster's workers);
* the CPU split by process kind (driver, Ray workers, other Ray processes: sampled, so a process
  that lives less than one interval, such as the driver of a 0.2-s run, may be missing from the
  split but not from the total) and peak RSS (``bench_throughput.PeakRSS``);
* which heavy modules the driver imported: the process is ``python -c PROBE ARGS``, where PROBE
  runs ``runpy.run_module("tagger")`` exactly as ``python -m tagger`` does and, when the command
  has finished, writes ``{"tensorflow": bool, "ray": bool, ...}`` (``name in sys.modules``) to
  the file named by ``$TAGGER_BENCH_PROBE``. Whether Ray *started*: Ray processes in the tree
  (a raylet, workers), and the report's ``timing.startup.ray``.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # this checkout's tagger, before any installed one

from bench_throughput import PeakRSS, cpu_model, descendants, loadavg  # noqa: E402

PROBE = r"""
import json, os, runpy, sys
code = 0
try:
    runpy.run_module("tagger", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
finally:
    out = os.environ.get("TAGGER_BENCH_PROBE")
    if out:
        with open(out, "w") as f:
            mods = {m: m in sys.modules for m in ("tensorflow", "keras", "ray", "numpy", "mutagen")}
            mods["tagger_file"] = getattr(sys.modules.get("tagger"), "__file__", None)
            json.dump(mods, f)
sys.exit(code)
"""

#: what the probe checks; "heavy" are the two the store of analyses promises not to need
HEAVY = ("tensorflow", "ray")

_subreaper = False
_SIGCHLD_BIT = 1 << 16  # SIGCHLD (17) in /proc/PID/status SigIgn


class TreeSampler(PeakRSS):
    """PeakRSS that also notes each process's parent and whether that parent ignores SIGCHLD."""

    def __init__(self, root: int, interval: float = 0.25):
        super().__init__(root, interval)
        self.orphaned_cpu: dict[int, float] = {}  # pid -> CPU s, for processes the kernel reaps itself

    def sample(self) -> None:
        super().sample()
        for pid in list(self.cpu):
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{ppid}/status", encoding="ascii", errors="replace") as f:
                    ign = next((int(ln.split()[1], 16) for ln in f if ln.startswith("SigIgn:")), 0)
            except (OSError, ValueError, IndexError):
                continue
            if ppid != os.getpid() and ign & _SIGCHLD_BIT:
                self.orphaned_cpu[pid] = self.cpu[pid]
            else:
                self.orphaned_cpu.pop(pid, None)  # re-parented to us (or to a waiting parent): in rusage


def enable_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); True if it worked."""
    global _subreaper
    if _subreaper:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


def _reap_orphans(grace: float) -> list[int]:
    """Reap every exited descendant re-parented to us; wait up to ``grace`` s for the living.
    Returns the pids still running after that (their CPU time is not counted)."""
    deadline = time.monotonic() + grace
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return []
        if pid:
            continue
        if time.monotonic() >= deadline:
            return sorted(descendants(os.getpid()))
        time.sleep(0.05)


def bench_env(work: Path) -> dict[str, str]:
    """The children's environment: no user config file (XDG_CONFIG_HOME in ``work``), quiet TF,
    no Ray usage stats, this checkout's tagger first on the path."""
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(work / "xdg-config")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def measure(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            interval: float = 0.25, grace: float = 20.0, timeout: float | None = None) -> dict[str, Any]:
    """Run ``cmd`` and measure it and its process tree (see the module doc)."""
    enable_subreaper()
    load_before = loadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=None if cwd is None else str(cwd))
    sampler = TreeSampler(proc.pid, interval)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        sampler.stop()
        raise SystemExit(f"{cmd[0]}: still running after {timeout} s; killed\n{err[-2000:]}") from None
    wall = time.perf_counter() - t
    sampler.sample()
    mem = sampler.stop()
    left = _reap_orphans(grace) if _subreaper else []
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rusage = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lost = sum(sampler.orphaned_cpu.values())
    kinds = sampler.kind
    return {
        "exit": proc.returncode,
        "wall_s": round(wall, 3),
        "cpu_s": round(rusage + lost, 3),
        "cpu_rusage_s": round(rusage, 3),
        "lost_to_rusage_s": round(lost, 3),  # sampled CPU of processes the kernel reaped itself (Ray workers)
        "cpu_user_s": round(after.ru_utime - before.ru_utime, 3),
        "cpu_sys_s": round(after.ru_stime - before.ru_stime, 3),
        "cpu_counted": "process tree (subreaper)" if _subreaper else "reaped children only (no subreaper)",
        "still_running": left,
        "sampled": mem,  # cpu_s by driver / worker / system, peak RSS in MB
        "processes": len(kinds),
        "ray_processes": len([k for k in kinds.values() if k != "driver"]),
        "other_commands": sorted({sampler.cmd.get(p, "")[:40] for p, k in kinds.items()
                                  if k != "driver"})[:8],
        "load_before": load_before,
        "load_after": loadavg(),
        "stdout": out,
        "stderr": err,
    }


def run_tagger(args: list[str], *, env: dict[str, str], interval: float = 0.25, grace: float = 20.0,
               timeout: float | None = None) -> dict[str, Any]:
    """Run ``python -m tagger ARGS`` (through the probe) and measure it (see the module doc)."""
    fd, probe_file = tempfile.mkstemp(prefix="tagger-probe-", suffix=".json")
    os.close(fd)
    try:
        r = measure([sys.executable, "-c", PROBE, *args], env={**env, "TAGGER_BENCH_PROBE": probe_file},
                    cwd=ROOT, interval=interval, grace=grace, timeout=timeout)
        try:
            modules = json.loads(Path(probe_file).read_text() or "{}")
        except (OSError, ValueError):
            modules = {}
    finally:
        Path(probe_file).unlink(missing_ok=True)
    r["command"] = ["tagger", *args]
    r["imported"] = {m: bool(modules.get(m)) for m in ("tensorflow", "keras", "ray", "numpy", "mutagen")}
    r["probe_ran"] = bool(modules)
    r["tagger_file"] = modules.get("tagger_file")
    return r


def machine() -> dict[str, Any]:
    import platform

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def summary_line(stdout: str) -> str:
    lines = [ln for ln in stdout.splitlines() if "files" in ln and ("(" in ln)]
    return lines[-1].strip() if lines else ""
