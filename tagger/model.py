"""GenreModel: a validated Keras network plus its metadata, predicting on large batches.

TensorFlow is imported here and only here (and in training/), lazily, so that ``--help``,
``tagger info --no-ray`` and no-op re-runs never pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import ModelError
from tagger.modelmeta import ModelFiles, ModelMeta, check_network, load_meta, locate

log = logging.getLogger(__name__)

DEFAULT_CPU_BATCH = 64
DEFAULT_GPU_BATCH = 512


def quiet_tensorflow() -> None:
    """Silence TF/absl start-up noise (must run before ``import tensorflow``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _silenced_stderr():
    """TF 2.21 prints absl messages from C++ before its log level applies; hide fd 2 meanwhile
    (Python exceptions still propagate). TAGGER_TF_VERBOSE=1 shows them."""
    if os.environ.get("TAGGER_TF_VERBOSE"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow():
    """``import tensorflow`` (and keras) quietly; returns the tensorflow module."""
    quiet_tensorflow()
    if "tensorflow" not in sys.modules:
        with _silenced_stderr():
            import tensorflow as tf  # noqa: F401
            import keras  # noqa: F401

            tf.config.list_physical_devices("GPU")  # CUDA probing logs here, once
    return sys.modules["tensorflow"]


def configure_devices(*, mixed_precision: bool = False) -> list[str]:
    """Turn on memory growth for every visible GPU; returns their names."""
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised
            pass
    if gpus and mixed_precision:
        import keras

        # Affects networks *built* afterwards (training). A loaded network keeps the policy it
        # was saved with: inference switches precision with GenreModel.with_precision.
        keras.mixed_precision.set_global_policy("mixed_float16")
    return [g.name for g in gpus]


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of rows whose best label is the same in both.

    reference, candidate: (n, n_labels) scores for the same n chunks. Returns a float in [0, 1]
    (1.0 for n == 0).
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape or reference.ndim != 2:
        raise ValueError(f"need two (n, n_labels) arrays of one shape, got {reference.shape} and {candidate.shape}")
    if reference.shape[0] == 0:
        return 1.0
    return float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))


def keep_mixed_precision(reference: np.ndarray, candidate: np.ndarray, *, min_agreement: float = 1.0) -> bool:
    """Whether float16 inference may replace float32: the decision of the GPU predictor.

    reference: (n, n_labels) float32 scores of a batch; candidate: the same batch under
    mixed_float16. True when the top-1 labels agree on at least ``min_agreement`` of the rows
    (default: every row) and every candidate score is finite; otherwise inference stays float32.
    """
    candidate = np.asarray(candidate)
    if not np.all(np.isfinite(candidate)):
        return False
    return top1_agreement(reference, candidate) >= min_agreement


class GenreModel:
    """Load once, predict many. ``predict`` takes (n, *input_shape) chunks, any n."""

    def __init__(self, meta: ModelMeta, net: Any, *, batch_size: int = DEFAULT_CPU_BATCH, jit: bool = False,
                 precision: str = "float32"):
        tf = import_tensorflow()
        self.meta = meta
        self.net = net
        self.precision = precision
        self.batch_size = int(batch_size)
        self.jit = bool(jit)
        spec = tf.TensorSpec((None, *meta.input_shape), tf.float32)

        def _call(x):
            return tf.cast(net(x, training=False), tf.float32)

        self._fn = tf.function(_call, input_signature=[spec], jit_compile=jit, reduce_retracing=True)

    @classmethod
    def load(
        cls,
        model: str | Path | ModelFiles | None = None,
        *,
        vocabulary: str | None = None,
        batch_size: int = DEFAULT_CPU_BATCH,
        jit: bool = False,
    ) -> "GenreModel":
        files = model if isinstance(model, ModelFiles) else locate(model, vocabulary=vocabulary)
        meta = load_meta(files)
        import_tensorflow()
        import keras

        try:
            net = keras.saving.load_model(files.weights, compile=False, safe_mode=True)
        except Exception as exc:  # keras raises many kinds; all mean "unusable model"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{files.weights}: cannot load the network: {first}") from None
        check_network(meta, net, source=str(files.weights))
        return cls(meta, net, batch_size=batch_size, jit=jit)

    def with_precision(self, precision: str) -> "GenreModel":
        """This model computing in ``precision`` ("float32" or "mixed_float16"), same weights.

        Mixed precision computes in float16 with float32 variables; the output layer (the final
        softmax/sigmoid) stays float32, as Keras recommends. A clone: ``self`` is unchanged.
        """
        if precision == self.precision:
            return self
        if precision not in ("float32", "mixed_float16"):
            raise ValueError(f"unknown precision {precision!r}: float32 or mixed_float16")
        import keras

        last = self.net.layers[-1]

        def clone(layer):
            cfg = layer.get_config()
            cfg["dtype"] = "float32" if layer is last else precision
            return layer.__class__.from_config(cfg)

        try:
            net = keras.models.clone_model(self.net, clone_function=clone)
            net.set_weights(self.net.get_weights())
        except Exception as exc:  # a layer that cannot be re-created from its config
            raise ModelError(f"cannot run this model in {precision}: {type(exc).__name__}: {exc}") from None
        return GenreModel(self.meta, net, batch_size=self.batch_size, jit=self.jit, precision=precision)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities, shape (n, n_labels), float32.

        The batch dimension of the compiled function is dynamic, so it is traced once; under
        XLA (``jit``) shapes are static, so the last partial batch is padded to ``batch_size``.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.meta.input_shape:
            raise ModelError(f"model expects chunks of shape {self.meta.input_shape}, got {x.shape[1:]}")
        n = x.shape[0]
        out = np.empty((n, len(self.meta.labels)), dtype=np.float32)
        bs = self.batch_size
        for start in range(0, n, bs):
            part = x[start : start + bs]
            m = part.shape[0]
            if self.jit and m < bs:
                part = np.concatenate([part, np.zeros((bs - m, *part.shape[1:]), np.float32)])
            out[start : start + m] = self._fn(part).numpy()[:m]
        return out
