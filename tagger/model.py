"""GenreModel: a validated Keras network plus its metadata, predicting on large batches.

TensorFlow is imported here and only here (and in training/), lazily, so that ``--help``,
``tagger info --no-ray`` and no-op re-runs never pay for it.
"""

from __future__ import annotations

import logging
import os
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def configure_devices(*, mixed_precision: bool = False) -> list[str]:
    """Turn on memory growth for every visible GPU; returns their names."""
    quiet_tensorflow()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised
            pass
    if gpus and mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    return [g.name for g in gpus]


class GenreModel:
    """Load once, predict many. ``predict`` takes (n, *input_shape) chunks, any n."""

    def __init__(self, meta: ModelMeta, net: Any, *, batch_size: int = DEFAULT_CPU_BATCH, jit: bool = False):
        import tensorflow as tf

        self.meta = meta
        self.net = net
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
        quiet_tensorflow()
        import keras

        try:
            net = keras.saving.load_model(files.weights, compile=False, safe_mode=True)
        except Exception as exc:  # keras raises many kinds; all mean "unusable model"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{files.weights}: cannot load the network: {first}") from None
        check_network(meta, net, source=str(files.weights))
        return cls(meta, net, batch_size=batch_size, jit=jit)

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
