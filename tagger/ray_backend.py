"""Ray wiring: start or join a cluster, run analyse tasks, place the predictor.

The decisions (how many tasks in flight, where inference runs, batch size, mixed precision) are
pure functions of a resource view, so they are tested with faked clusters.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tagger.errors import FatalError, ModelError
from tagger.model import CPU_BATCH, GPU_BATCH
from tagger.modelmeta import ModelFiles, ModelMeta

log = logging.getLogger(__name__)

K = TypeVar("K")
ACTOR_START_TIMEOUT = 600.0  # seconds to place every predictor actor and load the model
CONNECT_TIMEOUT = 10.0  # seconds for the TCP check of a cluster address before ray.init
NODE_CHECK_TIMEOUT = 120.0  # seconds for the per-node check of a multi-node cluster


@dataclass(frozen=True)
class InferencePlan:
    where: str  # "driver" (CPU, in this process) | "actors" (Ray actors, one per GPU)
    actors: int
    gpus_per_actor: float  # 1.0 for GPU actors; 0.0 runs the actors on CPU (tests, CPU-only pools)
    batch_size: int  # chunks per forward call, per predictor (tagger.model's batch vocabulary)
    mixed_precision: bool  # try mixed_float16 (kept only if the first batch's top-1 labels agree)

    @property
    def flush_size(self) -> int:
        """Chunks the driver gathers before one dispatch: a full batch for every predictor."""
        return self.batch_size * max(1, self.actors)


def plan_inference(resources: dict[str, float], *, batch_size: int | None = None,
                   max_gpu_actors: int | None = None, backend: str = "keras") -> InferencePlan:
    """Where the model runs, given a resource view such as ``ray.cluster_resources()``.

    GPUs in the cluster (whole ones; fractional totals are rounded down): one predictor actor per
    GPU (``num_gpus=1``, so Ray places each on a GPU node and gives it that GPU alone), batch 512
    per actor, mixed precision tried. No GPU: the driver runs the model on its CPU with batch 64
    (measured best on 2 cores; a CPU actor would only add a copy of every batch through the
    object store). ``batch_size`` overrides the batch; ``max_gpu_actors`` caps the actors.
    A ``backend`` "trees" model (numpy, no GPU use) always runs in the driver.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    gpus = int(float(resources.get("GPU", 0) or 0) + 1e-9)
    if gpus >= 1 and backend == "keras":
        n = gpus if max_gpu_actors is None else max(1, min(gpus, max_gpu_actors))
        return InferencePlan("actors", n, 1.0, batch_size or GPU_BATCH, True)
    return InferencePlan("driver", 0, 0.0, batch_size or CPU_BATCH, False)


@dataclass(frozen=True)
class CpuSplit:
    """How a run on one machine without a GPU shares its cores between decoding and inference:
    ``intra``/``inter``: TensorFlow's intra-op and inter-op thread pools in the driver (0: its
    default, every core); ``worker_nice``: the niceness the decode workers add to themselves
    (inference, the slower stage, gets a core first when both want it)."""

    intra: int
    inter: int
    worker_nice: int


#: A split to use instead of cpu_split's rule (bench/bench_split.py sets it); None: the rule.
SPLIT_OVERRIDE: CpuSplit | None = None


def cpu_split(cpus: int) -> CpuSplit:
    """The default split for one machine of ``cpus`` cores, inference in the driver (docs/scaling.md
    "Sharing the cores"). Up to 2 cores: one decode worker per core and TensorFlow's own pools
    (measured: every other split tried was slower on CNN-bound music, or within the noise on
    decode-bound music). From 4 cores: the same, with inter-op 1 (musicnn is a chain of ops:
    a second pool only adds threads) and decode workers at nice 10, so that they do not
    preempt one thread of an intra-op parallel op and hold up all of its threads (reasoned,
    not measured here)."""
    if SPLIT_OVERRIDE is not None:
        return SPLIT_OVERRIDE
    if cpus <= 2:
        return CpuSplit(intra=0, inter=0, worker_nice=0)
    return CpuSplit(intra=0, inter=1, worker_nice=10)


def max_in_flight(workers: int) -> int:
    """Tasks submitted but not yet collected: enough to keep every worker busy while the driver
    predicts, few enough that memory stays flat on a 100,000-file library."""
    return max(2, 2 * workers + 2)


@dataclass
class RayHandle:
    started_here: bool
    address: str
    resources: dict[str, float]
    node_id: str  # the driver's node: files decoded elsewhere were read through the shared path
    nodes: int = 1  # alive nodes when connected
    node_names: dict[str, str] = field(default_factory=dict)  # id -> "1a2b3c4d5e6f (10.0.0.7)" of those nodes

    def lost_nodes(self) -> list[str]:
        """The nodes alive when connected that have left the cluster since ("id (address)")."""
        if len(self.node_names) < 2:
            return []  # one node: if it is gone, so is this driver's Ray
        try:
            import ray

            alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        except Exception:  # the cluster itself is unreachable
            return []
        return [name for node, name in self.node_names.items() if node not in alive]

    def shutdown(self) -> None:
        if self.started_here:
            import ray

            ray.shutdown()


def connect(address: str | None = None, *, num_cpus: int | None = None) -> RayHandle:
    """Join ``address`` (or RAY_ADDRESS), or start a private local instance; reuse an initialised one.

    Without an address (None, empty or ``"local"``, and no RAY_ADDRESS) this always starts a new
    Ray instance of its own (``ray.init(address="local")``): a bare ``ray.init()`` would join the
    cluster the latest ``ray start`` left on this machine, and the run would die with that
    cluster. Joining a cluster only when asked: ``auto`` (that cluster), ``HOST:PORT`` or
    ``ray://HOST:PORT``. The private instance keeps its files under tagger's cache folder
    (:mod:`tagger.dirs`).

    Joining a cluster: every node must run the same tagger and Python packages (workers import
    tagger), and see the music library under the same path (see docs/scaling.md).
    Raises FatalError with one line if Ray cannot start or the cluster cannot be reached.
    """
    import ray

    from tagger import dirs

    if ray.is_initialized():
        ctx = ray.get_runtime_context()
        return RayHandle(False, getattr(ctx, "gcs_address", "") or "", _resources(), ctx.get_node_id(),
                         _alive_nodes(), _node_names())
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None and address.strip().lower() == "local":
        address = None
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.DEBUG if logging.getLogger().isEnabledFor(logging.DEBUG) else logging.ERROR,
        configure_logging=True,
    )
    env_vars = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    if not address:  # the private instance: its workers keep Keras/Matplotlib files where the driver does
        env_vars.update(dirs.isolate())
        temp_dir = dirs.ray_temp_dir()
        if temp_dir is not None:
            dirs.prune_ray_sessions(temp_dir)
            kwargs["_temp_dir"] = temp_dir
        dirs.private_ray_auth()
    env = {"env_vars": env_vars}
    ray_log = logging.getLogger("ray")
    saved_level = ray_log.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        ray_log.setLevel(logging.ERROR)  # start-up chatter (token auth notice, ...) only with -vv
    if address:
        check_reachable(address)  # before ray.init, which retries an unreachable address for minutes
    try:
        if address:
            ray.init(address=address, runtime_env=env, **kwargs)
        else:
            # "local": always a new instance, never the cluster `ray start` runs on this machine
            ray.init(address="local", num_cpus=num_cpus, runtime_env=env, **kwargs)
    except Exception as exc:  # many kinds, all fatal
        msg = " ".join(str(exc).split())[:300] or type(exc).__name__
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise FatalError(f"cannot start {where}: {msg}") from None
    finally:
        ray_log.setLevel(saved_level)
    ctx = ray.get_runtime_context()
    handle = RayHandle(True, address or "local", _resources(), ctx.get_node_id(), _alive_nodes(), _node_names())
    if address:
        log.info("joined the Ray cluster at %s: %d nodes, %g CPUs, %g GPUs", address, handle.nodes,
                 handle.resources.get("CPU", 0), handle.resources.get("GPU", 0))
    return handle


def check_reachable(address: str, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail fast, with one line, when nothing answers at a cluster address ``host:port`` or
    ``ray://host:port``: ``ray.init`` would retry it for minutes. ``auto``, ``local`` and
    addresses without a port are left to Ray.
    """
    import socket

    host, sep, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc) or type(exc).__name__)
        raise FatalError(f"cannot reach the Ray cluster at {address}: {why.lower()} "
                         "(is `ray start --head` running there, and the port open?)") from None


def _alive_nodes() -> int:
    import ray

    try:
        return sum(1 for n in ray.nodes() if n.get("Alive"))
    except Exception:
        return 1


def _node_names() -> dict[str, str]:
    import ray

    try:
        return {n["NodeID"]: _node_name(n) for n in ray.nodes() if n.get("Alive")}
    except Exception:
        return {}


def task_failure(exc: BaseException, handle: RayHandle | None) -> str:
    """One line for an analyse task that raised (its worker died twice, its node left, ...).

    Ray retries a task whose worker or node died (``max_retries``); this is what is left when
    the retry failed too. Names the nodes that left the cluster during the run, if any."""
    import ray

    text = one_line(exc)
    lost = handle.lost_nodes() if handle is not None else []
    if lost and not isinstance(exc, ray.exceptions.RayTaskError):
        return (f"analysis lost: Ray node {', '.join(lost)} left the cluster during the run and the "
                f"retry failed too ({text}); the next run tries the file again")
    return f"analysis worker failed: {text}"


def _resources() -> dict[str, float]:
    import ray

    try:
        return dict(ray.cluster_resources())
    except Exception:
        return {}


def _node_check(paths: list[str], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runs once on every node: imports what analysis needs and computes the features of one
    second of noise (librosa loads its modules lazily, on first use: seconds of imports), so that
    node's worker is warm when the files arrive; says which of ``paths`` this node cannot see."""
    import numpy as np

    import tagger
    import tagger.analyse
    import tagger.decode
    import tagger.tags
    from tagger.features import FeatureParams, extract

    if params is not None:
        fp = FeatureParams.from_dict(params)
        n = max(fp.min_samples, fp.sample_rate)
        extract(0.1 * np.random.default_rng(0).standard_normal(n).astype(np.float32), params=fp)
    return {"node": current_node(), "version": tagger.__version__,
            "missing": [p for p in paths if not os.path.exists(p)]}


class NodeCheck:
    """The start-up check of a multi-node cluster, running (see :func:`start_node_check`)."""

    def __init__(self, refs: dict[Any, dict[str, Any]]):
        self.refs = refs  # task ref -> the node (an entry of ray.nodes()) it is pinned to

    def result(self, *, timeout: float = NODE_CHECK_TIMEOUT) -> list[str]:
        """Wait for every node's answer. Returns one-line notes for the report (also logged as
        warnings). Raises FatalError if a node cannot run tagger at all."""
        import ray

        import tagger

        if not self.refs:
            return []
        notes: list[str] = []
        try:
            done, pending = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=timeout)
        except Exception as exc:
            return [f"could not check the cluster's nodes: {one_line(exc)}"]
        for ref in pending:
            ray.cancel(ref, force=True)
            notes.append(f"node {_node_name(self.refs[ref])} did not answer the start-up check "
                         f"in {timeout:g} s")
        for ref in done:
            node = self.refs[ref]
            try:
                res = ray.get(ref)
            except Exception as exc:  # cannot import tagger there, died, ...
                if not isinstance(exc, ray.exceptions.RayTaskError) and not _is_alive(node.get("NodeID", "")):
                    # the node (or its worker) went away: not a node that cannot run tagger
                    notes.append(f"node {_node_name(node)} left the cluster during the start-up check "
                                 f"({one_line(exc)}); the run goes on without it")
                    continue
                raise FatalError(f"Ray node {_node_name(node)} cannot run tagger ({one_line(exc)}); "
                                 "install the same tagger and its dependencies on every node") from None
            if res["version"] != tagger.__version__:
                notes.append(f"node {_node_name(node)} runs tagger {res['version']}, "
                             f"this driver {tagger.__version__}")
            if res["missing"]:
                first = res["missing"][0]
                more = f" and {len(res['missing']) - 1} more" if len(res["missing"]) > 1 else ""
                notes.append(f"node {_node_name(node)} cannot see {first}{more}: files decoded there will "
                             "fail; put the library on a path shared by every node")
        for note in notes:
            log.warning("%s", note)
        return notes


def start_node_check(paths: list[str], *, params: dict[str, Any] | None = None) -> NodeCheck:
    """Before a run on a multi-node cluster: one small task pinned to every node with a CPU,
    started without waiting (the driver loads the model meanwhile; :meth:`NodeCheck.result`).

    It proves each node can run tagger (same version as the driver), warms one worker per node
    in parallel (otherwise the driver's node, whose workers are pre-started, takes most of a
    small library before the other nodes' workers have imported numpy and librosa), and checks
    that the node sees ``paths`` (the library roots and a sample of files) under the same names.
    ``params``: the model's FeatureParams as a dict (the warm-up computes features with them).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
    task = remote_task(_node_check, max_retries=0)
    return NodeCheck({
        task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            paths, params): n
        for n in nodes
    })


def check_nodes(paths: list[str], *, params: dict[str, Any] | None = None,
                timeout: float = NODE_CHECK_TIMEOUT) -> list[str]:
    """:func:`start_node_check` and wait for its result."""
    return start_node_check(paths, params=params).result(timeout=timeout)


def _is_alive(node_id: str) -> bool:
    import ray

    try:
        return any(n["NodeID"] == node_id and n.get("Alive") for n in ray.nodes())
    except Exception:  # the cluster itself is gone
        return False


def _node_name(node: dict[str, Any]) -> str:
    return f"{node.get('NodeID', '')[:12]} ({node.get('NodeManagerAddress', '?')})"


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most 240 characters: its last non-empty line (Ray's task
    and actor errors end with the remote exception's own line; that is the useful one), or its
    type's name."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text[:240]


def warm_workers(count: int, *, params: dict[str, Any]) -> list[Any]:
    """Start ``count`` one-CPU tasks that import what analysis needs and compute features once
    (librosa loads its modules on first use: seconds), without waiting for them: on one machine
    they run while the driver imports TensorFlow and loads the model, so the first files do not
    pay for cold workers. Returns the tasks' refs (nothing needs to wait for them)."""
    task = remote_task(_node_check, max_retries=0)
    return [task.remote([], params) for _ in range(max(0, count))]


# ---------------------------------------------------------------------------------------------
# tasks: one lazy wrapper, one bounded loop (tagger tag's analyses, training's feature cache)
# ---------------------------------------------------------------------------------------------

_TASKS: dict[tuple[Callable[..., Any], int, int], Any] = {}


def remote_task(fn: Callable[..., Any], *, num_cpus: int = 1, max_retries: int = 1) -> Any:
    """``fn`` as a Ray task (created once per function and options, lazily: importing this
    module never imports Ray). ``max_retries``: a worker killed mid-task (OOM killer, SIGKILL)
    is retried that many times, then the task raises. Application errors are returned by
    tagger's tasks, not raised, so they are never retried."""
    key = (fn, num_cpus, max_retries)
    if key not in _TASKS:
        import ray

        _TASKS[key] = ray.remote(num_cpus=num_cpus, max_retries=max_retries)(fn)
    return _TASKS[key]


def analyse_remote() -> Any:
    """The Ray task wrapping :func:`tagger.analyse.analyse_file` (one retry)."""
    from tagger.analyse import analyse_file

    return remote_task(analyse_file, max_retries=1)


@dataclass(frozen=True)
class Finished(Generic[K]):
    """A task of a :class:`TaskStream` that ended: its key, and its value or what ``ray.get``
    raised (its worker died twice, its node left, it was cancelled, ...)."""

    key: K
    value: Any = None
    error: BaseException | None = None


class TaskStream(Generic[K]):
    """At most ``limit`` Ray tasks in flight, each under a key; finished ones collected as they
    come, hung ones stopped. The bounded loop of ``tagger tag`` (:class:`tagger.pipeline.Tagger`)
    and of training's feature cache (:func:`bounded`): memory stays flat however many files.

    A task's clock (``overdue``) starts when it is among the ``slots`` oldest outstanding tasks
    (Ray runs them in order), not when it was submitted: time spent waiting in the queue behind
    slow files is not the file's fault.
    """

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self._tasks: dict[Any, list[Any]] = {}  # ref -> [key, monotonic time its clock started or None]

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def full(self) -> bool:
        return len(self._tasks) >= self.limit

    def add(self, ref: Any, key: K) -> None:
        self._tasks[ref] = [key, None]

    def finished(self, timeout: float | None = 0.5) -> list[Finished[K]]:
        """Wait up to ``timeout`` seconds (None: until one ends) for a task to end, then take
        every task that has ended, without waiting further."""
        import ray

        if not self._tasks:
            return []
        refs = list(self._tasks)
        done, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if done and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            done = done + more
        out: list[Finished[K]] = []
        for ref in done:
            key = self._tasks.pop(ref)[0]
            try:
                out.append(Finished(key, ray.get(ref)))
            except Exception as exc:  # the caller turns it into the file's failure
                out.append(Finished(key, error=exc))
        return out

    def overdue(self, timeout: float | None, *, slots: int | None = None) -> list[K]:
        """Cancel (force: the worker is killed) and drop the tasks running for longer than
        ``timeout`` seconds (None or 0: never); returns their keys."""
        import ray

        if not timeout:
            return []
        now, out = time.monotonic(), []
        for i, (ref, entry) in enumerate(list(self._tasks.items())):
            if slots is not None and i >= slots:
                break
            if entry[1] is None:
                entry[1] = now
                continue
            if now - entry[1] > timeout:
                ray.cancel(ref, force=True)
                del self._tasks[ref]
                out.append(entry[0])
        return out

    def cancel_all(self) -> list[K]:
        """Cancel every task in flight (a stop); returns their keys."""
        import ray

        keys = [entry[0] for entry in self._tasks.values()]
        for ref in self._tasks:
            ray.cancel(ref, force=True)
        self._tasks.clear()
        return keys


def bounded(items: Iterable[K], submit: Callable[[K], Any], *, limit: int) -> Iterator[Finished[K]]:
    """Run ``submit(item)`` (which starts a Ray task and returns its ref) for every item, with
    at most ``limit`` in flight, yielding each as it finishes (:class:`Finished`)."""
    stream: TaskStream[K] = TaskStream(limit)
    todo = iter(items)
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and not stream.full:
            try:
                item = next(todo)
            except StopIteration:
                exhausted = True
                return
            stream.add(submit(item), item)

    fill()
    while len(stream):
        yield from stream.finished(timeout=None)
        fill()


# ---------------------------------------------------------------------------------------------
# the predictor
# ---------------------------------------------------------------------------------------------

class Predictor:
    """Holds a loaded :class:`tagger.model.Model`. Runs in the driver on CPU, or as a Ray actor
    (one per GPU).

    ``files``/``meta``: the model as the driver located and verified it (``modelmeta.locate``,
    ``load_meta``); None reads and verifies ``meta`` here. ``shipped``: the vocabulary when it is
    a shipped model, found on this node by vocabulary where the driver's path is not there (a
    cluster node with tagger installed elsewhere; it must be the same model).

    With ``mixed_precision`` the first batch is predicted in float32 and in mixed_float16; float16
    is kept for the rest of the run only if :func:`tagger.model.keep_mixed_precision` accepts it
    (same top-1 label for every chunk), otherwise the predictor stays float32. The first batch's
    answer is always the float32 one. A trees model (``meta.backend == "trees"``) runs as it is:
    no GPU set-up, no bfloat16 or float16.
    """

    def __init__(self, files: ModelFiles, meta: ModelMeta | None = None, *, batch_size: int,
                 shipped: str | None = None, mixed_precision: bool = False, min_agreement: float = 1.0,
                 cpu_bfloat16: bool | None = None):
        from tagger.model import GenreModel, configure_devices, cpu_bfloat16_default, forward_flops, load

        files, meta = _model_on_this_node(files, meta, shipped)
        keras = meta.backend == "keras"
        self.devices = configure_devices() if keras else []  # memory growth on every visible GPU
        self.model = load(files, meta=meta, batch_size=batch_size)
        self.labels = len(meta.labels)
        #: on a CPU with bfloat16 matrix units (AMX): the float32 model, for predict_exact, while
        #: self.model computes in bfloat16 (see tagger.model.close_call for how it is used)
        self.exact: Any = None
        if cpu_bfloat16 is None:
            cpu_bfloat16 = (isinstance(self.model, GenreModel) and not self.devices and not mixed_precision
                            and cpu_bfloat16_default(forward_flops(self.model.net)))
        if self.model.meta.aggregation == "logit-mean" and self.model.head_norms is None:
            cpu_bfloat16 = False  # logits without a Dense head: no bound on the bfloat16 error (close_call)
        if cpu_bfloat16 and keras:
            self.exact, self.model = self.model, self.model.with_precision("mixed_bfloat16")
            self.exact.warm_up()
        self.model.warm_up()
        self.min_agreement = min_agreement
        self._candidate = self.model.with_precision("mixed_float16") if mixed_precision and keras else None
        self.agreement: float | None = None

    @property
    def approximate(self) -> bool:
        """True when predict computes in bfloat16 and predict_exact in float32."""
        return self.exact is not None

    @property
    def head_norms(self):
        """:attr:`tagger.model.GenreModel.head_norms` of the model (None for a ``mean`` model)."""
        return (self.exact or self.model).head_norms

    def predict_exact(self, x):
        """Like predict, always in float32 (the re-check of a close call)."""
        return (self.exact or self.model).predict(x)

    def predict(self, x):
        """x: (n, *input_shape) float32 chunks -> (n, n_labels) float32 scores."""
        return self.predict_full(x)[:, : self.labels]

    def predict_full(self, x):
        """x: (n, *input_shape) float32 chunks -> (n, n_labels + embedding_size) float32: the
        scores, then each chunk's embedding where the model has one (Model.predict_full)."""
        if self._candidate is None:
            return self.model.predict_full(x)
        from tagger.model import keep_mixed_precision, top1_agreement

        labels = self.labels
        candidate, self._candidate = self._candidate, None
        reference = self.model.predict_full(x)
        trial = candidate.predict_full(x)
        self.agreement = top1_agreement(reference[:, :labels], trial[:, :labels])
        if keep_mixed_precision(reference[:, :labels], trial[:, :labels], min_agreement=self.min_agreement):
            self.model = candidate
            log.info("mixed precision kept: top-1 agreement %.4f on %d chunks", self.agreement, len(x))
        else:
            log.warning("mixed precision changes predictions (top-1 agreement %.4f on %d chunks); "
                        "staying with float32", self.agreement, len(x))
        return reference

    def info(self) -> dict[str, Any]:
        """Where and how this predictor runs (for the report)."""
        return {
            "node": current_node(), "devices": list(self.devices), "batch_size": self.model.batch_size,
            "precision": "undecided" if self._candidate is not None else self.model.precision,
            "agreement": self.agreement, "rewrites": list(self.model.rewrites),
            "exact_fallback": "float32" if self.exact is not None else None,
            "embedding": {"backbone": self.model.backbone_id, "size": self.model.embedding_size},
        }

    def ready(self) -> list[str]:
        return list(self.devices)


def _model_on_this_node(files: ModelFiles, meta: ModelMeta | None,
                        shipped: str | None) -> tuple[ModelFiles, ModelMeta]:
    """The model files to load here, and their verified metadata: the driver's (``meta``, read
    and verified where None), or, for a shipped model whose files are not at the driver's path
    on this node, this node's own shipped model of that vocabulary (it must have the same id)."""
    from tagger.modelmeta import load_meta, locate

    if shipped is not None and meta is not None and not (files.weights.is_file() and files.meta.is_file()):
        here = locate(None, vocabulary=shipped)
        mine = load_meta(here)
        if mine.model_id != meta.model_id:
            raise ModelError(f"this node's tagger ships another {shipped!r} model ({mine.model_id}, the "
                             f"driver's is {meta.model_id}): install the same tagger on every node")
        return here, mine
    return files, (meta if meta is not None else load_meta(files))


def current_node() -> str:
    """The Ray node id this process runs on; "" outside Ray. Never imports Ray just to ask
    (``tagger explain`` and the tests run analyses without it)."""
    ray = sys.modules.get("ray")
    try:
        if ray is not None and ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:
        pass
    return ""


def make_actors(plan: InferencePlan, files: ModelFiles, meta: ModelMeta, *, shipped: str | None = None):
    """Start ``plan.actors`` predictor actors (each ``num_gpus=plan.gpus_per_actor``, one CPU) for
    the model the driver located and verified (``files``, ``meta``; ``shipped``: see
    :class:`Predictor`) and wait until each has loaded it. An actor that dies (a GPU out of
    memory) is restarted once and its call retried."""
    import ray

    cls: Any = ray.remote(num_gpus=plan.gpus_per_actor, num_cpus=1, max_restarts=1, max_task_retries=1)(Predictor)
    actors = [cls.remote(files, meta, batch_size=plan.batch_size, shipped=shipped,
                         mixed_precision=plan.mixed_precision) for _ in range(plan.actors)]
    try:
        ray.get([a.ready.remote() for a in actors], timeout=ACTOR_START_TIMEOUT)
    except Exception as exc:  # cannot place or load: fatal, with one line
        for a in actors:
            ray.kill(a)
        msg = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise FatalError(f"cannot start the inference actors: {msg}") from None
    return actors
