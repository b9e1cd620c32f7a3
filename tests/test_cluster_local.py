"""A ``ray start`` cluster on the same machine as a default run, and a node lost mid-run.

Issue 15, item 10: without ``--ray-address`` a bare ``ray.init()`` attached to the cluster the
latest ``ray start`` left on this host (Ray reads its address from ``<ray temp>/ray/
ray_current_cluster``); two runs did and died with that cluster. A default run must start a
private local instance, and a node that dies mid-run must cost only the files it held.

The cluster here is two real nodes (tests/cluster_helpers.py: free ports, a private temp dir,
only this cluster's processes are ever killed). So that Ray's address discovery finds *this*
cluster and not someone else's, the tagger subprocess gets ``RAY_TMPDIR`` = the cluster's temp
root: exactly the situation of a person who ran ``ray start --head`` with Ray's default
``/tmp/ray``, without touching ``/tmp/ray``. The GCS is told to notice a dead node within about
a second (health checks every 300 ms) instead of Ray's default of about 15 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import soundfile as sf

from tests.cluster_helpers import LocalCluster, cluster_env
from tests.conftest import tone

ROOT = Path(__file__).resolve().parents[1]
NODE2 = "tagger_test_lost_node"
# PYTHONPATH: nodes, their workers and the driver import this checkout's tagger (not another
# install of it in the same environment)
FAST_HEALTH = {"PYTHONPATH": str(ROOT), "RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "300",
               "RAY_health_check_timeout_ms": "300", "RAY_health_check_failure_threshold": "2"}

pytestmark = [pytest.mark.slow, pytest.mark.tf, pytest.mark.ray]


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster.start(head_cpus=1, workers=[{"cpus": 1, "resources": {NODE2: 1}}], env=FAST_HEALTH)
    try:
        yield c
    finally:
        c.stop()
    assert not c.leftover_processes()


def make_lib(root: Path, n: int, seconds: float) -> list[Path]:
    root.mkdir(parents=True)
    paths = []
    for i in range(n):
        p = root / f"track{i:02d}{'.flac' if i % 2 else '.wav'}"
        sf.write(p, tone(seconds, sr=22050, freq=110.0 * 2 ** (i / 6), seed=i), 22050)
        paths.append(p)
    return paths


def tagger_env(cluster: LocalCluster) -> dict[str, str]:
    # RAY_TMPDIR: where Ray looks for the latest `ray start` cluster; XDG_CACHE_HOME: short, so
    # the private instance's sockets fit (and nothing lands in the real home)
    return cluster_env(RAY_TMPDIR=str(cluster.root), XDG_CACHE_HOME=str(cluster.root / "c"), PYTHONPATH=str(ROOT))


def test_default_run_does_not_join_the_ray_start_cluster(cluster, tiny_model, tmp_path):
    assert (cluster.root / "ray" / "ray_current_cluster").read_text().strip() == cluster.address
    lib = tmp_path / "lib"
    make_lib(lib, 2, 3.0)
    report = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "tagger", "tag", str(lib), "--model", str(tiny_model.weights),
                        "--state-db", str(tmp_path / "s.db"), "--min-confidence", "0", "--dry-run",
                        "--report", str(report)], env=tagger_env(cluster), cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(report.read_text())
    info = data["model"]["inference"]["cluster"]
    ours = {n.node_id for n in cluster.nodes}
    assert info["address"] == "local" and info["nodes"] == 1, info
    assert info["driver_node"] not in ours, "the default run joined the `ray start` cluster"
    assert not {row["node"] for row in data["files"]} & ours
    # its session lives under tagger's cache folder, not in the cluster's (or /tmp/ray)
    sessions = list((cluster.root / "c" / "tagger" / "ray").glob("session_*"))
    assert sessions, "no private session under XDG_CACHE_HOME/tagger/ray"


def test_a_node_killed_mid_run_costs_only_its_files(cluster, tiny_model, tmp_path):
    """SIGKILL every process of the second node as soon as the first file is tagged: Ray
    retries that node's tasks on the head (max_retries=1), or the files fail with a reason
    naming the node; every file already analysed is written; report and state are saved."""
    from tagger.state import StateDB
    from tagger.tags import read_tags

    n = 40
    paths = make_lib(tmp_path / "lib", n, 60.0)
    report, state = tmp_path / "r.json", tmp_path / "s.db"
    node2 = cluster.nodes[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tagger", "-v", "tag", str(tmp_path / "lib"), "--model", str(tiny_model.weights),
         "--state-db", str(state), "--min-confidence", "0", "--batch-size", "1", "--report", str(report),
         "--ray-address", cluster.address, "--no-albums"],  # files are written while others are analysed
        env=tagger_env(cluster), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = 0
    err: list[str] = []
    timer = threading.Timer(300, proc.kill)  # a hang must fail the test, not the suite
    timer.start()
    try:
        for line in proc.stderr:  # event-driven: the first tagged file, then the kill
            err.append(line)
            if not killed and "tagged:" in line:
                killed = cluster.kill_node(node2)
        out = proc.stdout.read()
        rc = proc.wait()
    finally:
        timer.cancel()
        proc.stdout.close()
        proc.stderr.close()
    assert killed, "".join(err)[-3000:]
    assert rc in (0, 2), out + "".join(err)[-3000:]
    data = json.loads(report.read_text())
    rows = {Path(x["path"]).name: x for x in data["files"]}
    assert len(rows) == n  # every file has its row: none lost with the node
    tagged = [p for p in paths if rows[p.name]["action"] == "tagged"]
    failed = [rows[p.name] for p in paths if rows[p.name]["action"] == "failed"]
    assert len(tagged) + len(failed) == n
    for x in failed:
        assert x["error_kind"] == "worker" and node2.node_id[:12] in x["reason"], x
        assert "\n" not in x["reason"]
    assert rc == (2 if failed else 0)
    # the run saw the node go, and said so
    assert any(node2.node_id[:12] in note and "left the cluster during the run" in note
               for note in data["notes"]), data["notes"]
    # files analysed before and after the loss are written, and the state knows them
    for p in tagged:
        assert list(read_tags(str(p)).genres) == rows[p.name]["written"], p.name
    with StateDB(state) as db:
        records = db.records(str(p) for p in paths)
        run = db.runs()[0]
    assert set(records) == {str(p) for p in tagged}
    assert run.status == "finished"
