"""A real multi-node Ray cluster on this machine, for tests and the scaling benchmark.

Every node is a ``ray start --block`` process in its own process group, started from this
interpreter's environment (so workers import this tagger). Stopping kills exactly those process
groups: never ``ray stop``, which would kill every Ray on the machine (other test sessions, the
pytest process's own ``ray_session``). Ports are chosen free, so this cluster never collides with
a local ``ray.init()``; Ray's session files go to a private temp dir.

Only this machine's own addresses are ever used: the head's GCS address is read back from the
temp dir Ray writes it to, and refused unless it is an address of this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 120.0  # seconds for a node to come up (2 busy cores can be slow)


def cluster_env(**extra: str) -> dict[str, str]:
    """Environment for nodes, drivers and tagger subprocesses: no token auth (Ray 2.60's default
    for ``ray start --head``), no usage stats, quiet TF, and no inherited RAY_ADDRESS."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", TF_CPP_MIN_LOG_LEVEL="3",
               RAY_DEDUP_LOGS="0", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def free_ports(n: int) -> list[int]:
    """n distinct ports free right now (held together while choosing, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def is_local_address(host: str) -> bool:
    """True if ``host`` is an address of this machine (it can be bound here)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def _die_with_parent() -> None:  # preexec_fn: a node must not outlive the test process
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _ray_cli() -> list[str]:
    exe = Path(sys.executable).with_name("ray")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


@dataclass
class Node:
    name: str
    cwd: Path
    proc: subprocess.Popen
    log: Path
    custom: dict = field(default_factory=dict)  # the custom resources it advertises
    node_id: str = ""


@dataclass
class LocalCluster:
    """``with LocalCluster.start(...) as c:`` or ``c = LocalCluster.start(...); ...; c.stop()``."""

    root: Path
    address: str = ""
    nodes: list[Node] = field(default_factory=list)
    env: dict = field(default_factory=dict)  # extra environment of every node (RAY_* settings)

    # -------------------------------------------------------------------------------------
    @classmethod
    def start(cls, *, head_cpus: int = 1, workers: list[dict] | None = None,
              object_store_bytes: int = 150_000_000, env: dict | None = None) -> LocalCluster:
        """Start a head node with ``head_cpus`` CPUs and one worker node per entry of ``workers``
        (``{"cpus": 1, "resources": {"name": 1}}``); wait until every node is alive. ``env``:
        extra environment of the nodes (e.g. ``RAY_health_check_period_ms``)."""
        # A node's `ray start` gives up after ~30 s without an answer from the GCS; on two busy
        # cores (the rest of the suite runs its own Ray beside) that happens now and then, so a
        # failed start is retried once with fresh ports before the test errors.
        for attempt in (1, 2):
            root = Path(tempfile.mkdtemp(prefix="tgr-", dir="/tmp"))  # short: Unix socket paths <= 107
            c = cls(root, env=dict(env or {}))
            try:
                c._start_head(head_cpus, object_store_bytes)
                for i, w in enumerate(workers or []):
                    c._start_worker(f"node{i + 2}", int(w.get("cpus", 1)), dict(w.get("resources", {})),
                                    object_store_bytes)
                c._wait_for_nodes()
            except RuntimeError:
                c.stop()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                c.stop()
                raise
            return c
        raise AssertionError("unreachable")

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def head(self) -> Node:
        return self.nodes[0]

    # -------------------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> Node:
        cwd = self.root / name
        cwd.mkdir()
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([*_ray_cli(), "start", "--block", *args], cwd=cwd, env=cluster_env(**self.env),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        node = Node(name, cwd, proc, log)
        self.nodes.append(node)
        return node

    def _common(self, cpus: int, object_store_bytes: int, ports: list[int]) -> list[str]:
        return [
            f"--num-cpus={cpus}", "--num-gpus=0", f"--object-store-memory={object_store_bytes}",
            f"--temp-dir={self.root / 'ray'}", "--disable-usage-stats",
            f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
            f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
            f"--metrics-export-port={ports[4]}", f"--runtime-env-agent-port={ports[5]}",
            "--min-worker-port=0", "--max-worker-port=0",  # workers: any free port
        ]

    def _start_head(self, cpus: int, object_store_bytes: int) -> None:
        ports = free_ports(9)
        node = self._spawn("head", [
            "--head", f"--port={ports[6]}", f"--ray-client-server-port={ports[7]}",
            "--include-dashboard=false", f"--dashboard-port={ports[8]}",
            *self._common(cpus, object_store_bytes, ports),
        ])
        address_file = self.root / "ray" / "ray_current_cluster"
        deadline = time.monotonic() + START_TIMEOUT
        while not address_file.exists() or not address_file.read_text().strip():
            self._check_alive(node)
            if time.monotonic() > deadline:
                raise RuntimeError(f"Ray head did not start in {START_TIMEOUT:.0f} s:\n{self.log_tail(node)}")
            time.sleep(0.2)
        address = address_file.read_text().strip()
        host, _, port = address.rpartition(":")
        if not is_local_address(host) or int(port) != ports[6]:
            raise RuntimeError(f"the head registered as {address}, which is not this machine's own address")
        self.address = address

    def _start_worker(self, name: str, cpus: int, resources: dict, object_store_bytes: int) -> None:
        node = self._spawn(name, [f"--address={self.address}", f"--resources={json.dumps(resources)}",
                                  *self._common(cpus, object_store_bytes, free_ports(6))])
        node.custom = resources

    def _wait_for_nodes(self) -> None:
        """Wait until every node is alive in the GCS; learn each node's id (a driver subprocess,
        so this process's own Ray stays untouched)."""
        probe = r"""
import json, sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False, include_dashboard=False, logging_level="ERROR")
want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) >= want or time.monotonic() > deadline:
        break
    time.sleep(0.3)
print(json.dumps([{"id": n["NodeID"], "resources": n["Resources"]} for n in alive]))
"""
        r = subprocess.run([sys.executable, "-c", probe, self.address, str(len(self.nodes)),
                            str(START_TIMEOUT)], env=cluster_env(), capture_output=True, text=True,
                           timeout=START_TIMEOUT + 60)
        for n in self.nodes:
            self._check_alive(n)
        if r.returncode != 0:
            raise RuntimeError(f"cannot query the cluster: {r.stderr[-2000:]}")
        alive = json.loads(r.stdout.strip().splitlines()[-1])
        if len(alive) != len(self.nodes):
            raise RuntimeError(f"{len(alive)} of {len(self.nodes)} nodes came up:\n"
                               f"{self.log_tail(self.nodes[-1])}")
        head = [a for a in alive if "node:__internal_head__" in a["resources"]]
        self.head.node_id = head[0]["id"]
        others = [a for a in alive if a is not head[0]]
        for node in self.nodes[1:]:  # matched by the node's own custom resources
            mine = [a for a in others if node.custom and set(node.custom) <= set(a["resources"])]
            if len(mine) == 1:
                node.node_id = mine[0]["id"]
        self.resources = {a["id"]: a["resources"] for a in alive}

    def node_with_resource(self, name: str) -> str:
        """Id of the node advertising custom resource ``name``."""
        ids = [i for i, r in self.resources.items() if name in r]
        if len(ids) != 1:
            raise LookupError(f"{len(ids)} nodes advertise {name!r}")
        return ids[0]

    def _check_alive(self, node: Node) -> None:
        if node.proc.poll() is not None:
            raise RuntimeError(f"Ray node {node.name} exited with {node.proc.returncode}:\n"
                               f"{self.log_tail(node)}")

    @staticmethod
    def log_tail(node: Node, chars: int = 3000) -> str:
        try:
            return node.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -------------------------------------------------------------------------------------
    def stop(self, *, grace: float = 3.0) -> None:
        """Stop every node: SIGTERM to each node's process group, then after ``grace`` seconds
        SIGKILL to every process of this cluster (``ray stop --force``, but only ours: the nodes'
        process groups and every descendant, such as Ray workers in sessions of their own).
        Removes the temp dir. Safe to call twice."""
        ours = self.processes()
        for node in reversed(self.nodes):
            _signal_group(node.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _running({**ours, **self.processes()}):
            time.sleep(0.1)
        ours.update(self.processes())
        for pid in _running(ours):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _running(ours) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._stopped = ours
        shutil.rmtree(self.root, ignore_errors=True)

    def processes(self) -> dict[int, int]:
        """This cluster's processes now, pid -> start time: the nodes' process groups and all
        their descendants."""
        leaders = {n.proc.pid for n in self.nodes}
        info = {pid: st for pid in _all_pids() if (st := _stat(pid)) is not None}
        found = {p for p, (_, _, pgrp, _) in info.items() if pgrp in leaders} | (leaders & set(info))
        _add_descendants(found, info)
        return {p: info[p][3] for p in found}

    def kill_node(self, node: Node) -> int:
        """SIGKILL every process of one node (its ``ray start`` group, the raylet, its workers),
        as a machine that loses power would. Returns how many processes were killed."""
        info = {pid: st for pid in _all_pids() if (st := _stat(pid)) is not None}
        found = {p for p, (_, _, pgrp, _) in info.items() if pgrp == node.proc.pid} | {node.proc.pid}
        _add_descendants(found, info)
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return len(found)

    def leftover_processes(self) -> list[int]:
        """Processes of this cluster still running after :meth:`stop` (empty when clean)."""
        return sorted(_running({**getattr(self, "_stopped", {}), **self.processes()}))


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgrp, start time) of a process, or None if it is gone."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return f[0], int(f[1]), int(f[2]), int(f[19])
    except (OSError, IndexError, ValueError):
        return None


def _running(pids: dict[int, int]) -> set[int]:
    """The pids that still exist as the same process (same start time) and are not zombies."""
    alive = set()
    for pid, started in pids.items():
        st = _stat(pid)
        if st is not None and st[3] == started and st[0] != "Z":
            alive.add(pid)
    return alive


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # start_new_session: the group id is the node's pid


def _all_pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def _add_descendants(found: set[int], info: dict[int, tuple]) -> None:
    """Add to ``found`` every descendant of its processes (``info``: pid -> _stat(pid))."""
    todo = list(found)
    while todo:
        p = todo.pop()
        for child, (_, ppid, _, _) in info.items():
            if ppid == p and child not in found:
                found.add(child)
                todo.append(child)
