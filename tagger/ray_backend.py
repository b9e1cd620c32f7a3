"""Ray wiring: start or join a cluster, run analyse tasks, place the predictor.

The decisions (how many tasks in flight, where inference runs, batch size, mixed precision) are
pure functions of a resource view, so they are tested with faked clusters.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from tagger.errors import FatalError

log = logging.getLogger(__name__)

CPU_BATCH = 64
GPU_BATCH = 512


@dataclass(frozen=True)
class InferencePlan:
    where: str  # "driver" (CPU, in this process) | "actors" (one Ray actor per GPU)
    actors: int
    gpus_per_actor: float
    batch_size: int
    mixed_precision: bool


def plan_inference(resources: dict[str, float], *, batch_size: int | None = None,
                   max_gpu_actors: int | None = None) -> InferencePlan:
    """Where the CNN runs, given ``ray.cluster_resources()``.

    GPUs in the cluster: one predictor actor per GPU (``num_gpus=1``), batch 512, mixed precision.
    No GPU: the driver runs the model on its CPU with batch 64 (measured best on 2 cores; a CPU
    actor would only add a copy of every batch through the object store).
    """
    gpus = int(resources.get("GPU", 0) or 0)
    if gpus >= 1:
        n = gpus if max_gpu_actors is None else max(1, min(gpus, max_gpu_actors))
        return InferencePlan("actors", n, 1.0, batch_size or GPU_BATCH, True)
    return InferencePlan("driver", 0, 0.0, batch_size or CPU_BATCH, False)


def max_in_flight(workers: int) -> int:
    """Tasks submitted but not yet collected: enough to keep every worker busy while the driver
    predicts, few enough that memory stays flat on a 100,000-file library."""
    return max(2, 2 * workers + 2)


@dataclass
class RayHandle:
    started_here: bool
    address: str
    resources: dict[str, float]
    node_id: str

    def shutdown(self) -> None:
        if self.started_here:
            import ray

            ray.shutdown()


def connect(address: str | None = None, *, num_cpus: int | None = None) -> RayHandle:
    """Join ``address`` (or RAY_ADDRESS), or start a local instance; reuse an initialised one.

    Raises FatalError with one line if Ray cannot start or the cluster cannot be reached.
    """
    import ray

    if ray.is_initialized():
        ctx = ray.get_runtime_context()
        return RayHandle(False, getattr(ctx, "gcs_address", "") or "", _resources(), ctx.get_node_id())
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    # Workers must be able to import tagger: propagate this interpreter's path (an editable or
    # source checkout); an installed tagger needs nothing.
    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}}
    try:
        if address:
            ray.init(address=address, runtime_env=env, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, runtime_env=env, **kwargs)
    except Exception as exc:  # noqa: BLE001 - many kinds, all fatal
        msg = " ".join(str(exc).split())[:300] or type(exc).__name__
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise FatalError(f"cannot start {where}: {msg}") from None
    ctx = ray.get_runtime_context()
    return RayHandle(True, address or "local", _resources(), ctx.get_node_id())


def _resources() -> dict[str, float]:
    import ray

    try:
        return dict(ray.cluster_resources())
    except Exception:  # noqa: BLE001
        return {}


_REMOTE = None


def analyse_remote():
    """The Ray task wrapping :func:`tagger.analyse.analyse_file` (created once, lazily)."""
    global _REMOTE
    if _REMOTE is None:
        import ray

        from tagger.analyse import analyse_file

        # max_retries: a worker killed mid-task (OOM killer, SIGKILL) is retried once, then the
        # file is reported failed. Application errors are returned, not raised, so never retried.
        _REMOTE = ray.remote(num_cpus=1, max_retries=1)(analyse_file)
    return _REMOTE


class Predictor:
    """Holds a GenreModel. Runs in the driver on CPU, or as a Ray actor holding one GPU."""

    def __init__(self, model_path: str | None, vocabulary: str | None, batch_size: int, mixed_precision: bool):
        from tagger.model import GenreModel, configure_devices

        gpus = configure_devices(mixed_precision=mixed_precision)
        self.devices = gpus
        self.model = GenreModel.load(model_path, vocabulary=vocabulary, batch_size=batch_size)

    def predict(self, x):
        return self.model.predict(x)

    def ready(self) -> list[str]:
        return self.devices


def make_actors(plan: InferencePlan, model_path: str | None, vocabulary: str | None):
    import ray

    cls = ray.remote(num_gpus=plan.gpus_per_actor, num_cpus=1)(Predictor)
    actors = [cls.remote(model_path, vocabulary, plan.batch_size, plan.mixed_precision) for _ in range(plan.actors)]
    ray.get([a.ready.remote() for a in actors])
    return actors
