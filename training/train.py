"""Fit one model on one split (or fold) of a prepared work directory; write a run directory.

A run directory is a loadable tagger model and a record of how it was made::

    RUN/model.keras, RUN/model.json   the network and its metadata (tagger.modelmeta.save_bundle);
                                       `tagger tag --model RUN` works on it
    RUN/run.json                      split (track lists), options, history, timings, command

Training is by chunk, with every chunk of a track labelled with the track's genre; model selection
(early stopping, learning-rate schedule) watches the validation split's loss. Seeded: the same
work directory, options and seed give the same weights on the same machine
(``keras.utils.set_random_seed`` + TensorFlow op determinism, and a batch order and augmentation
drawn from numpy generators keyed by (seed, epoch, batch)).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import ParameterError
from tagger.features import FeatureParams
from training.architectures import ArchSpec
from training.architectures import get as get_arch
from training.cache import FeatureCache, compute_features, load_chunks
from training.datasets import DatasetError, Work, load_work
from training.musicnn import ReproducibleSave

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
MODEL_NAME = "model"
AUGMENTATIONS = ("gain", "mask", "mixup", "pitch", "stretch")
#: Augmentations of the audio (features of changed copies of each training track, see
#: training.cache.VARIANTS); the others change feature chunks batch by batch.
AUDIO_AUGMENTATIONS = ("pitch", "stretch")


# ---------------------------------------------------------------------------------------
# augmentation (pure numpy, on standardised chunks)
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Augment:
    """Which augmentations, and how strong.

    ``gain``: a random gain in +-gain_db (a constant added to dB log-mels; for other log scales
    it is skipped). ``mask``: SpecAugment-style, one time stripe of up to ``time_mask`` frames and
    one frequency stripe of up to ``freq_mask`` bands set to the mean (0 after standardisation).
    ``mixup``: pairs of chunks mixed with a Beta(alpha, alpha) weight, labels mixed alike.
    ``pitch``/``stretch``: the training tracks shifted by +-2 semitones / played at 0.9 and 1.1
    times the speed, as extra training chunks (:data:`training.cache.VARIANTS`); not done here.
    """

    kinds: tuple[str, ...] = ()
    gain_db: float = 6.0
    time_mask: int = 24
    freq_mask: int = 16
    mixup_alpha: float = 0.2

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in AUGMENTATIONS]
        if bad:
            raise ParameterError(f"unknown augmentation {', '.join(bad)}: choose from {', '.join(AUGMENTATIONS)}")


def parse_augment(text: str | None, *, default: Sequence[str] = ()) -> tuple[str, ...]:
    """``"gain,mask"`` -> ("gain", "mask"); ``"none"`` -> (); None -> ``default``."""
    if text is None:
        return tuple(default)
    text = text.strip().lower()
    if text in ("", "none", "off"):
        return ()
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    Augment(kinds=kinds)  # validates
    return kinds


def augment_batch(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, *, augment: Augment, rng: np.random.Generator,
    gain_scale: float | None, gain_multiply: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augment one batch.

    Parameters
    ----------
    x : np.ndarray, shape (batch, frames, bands), float32, standardised log-mel
    y : np.ndarray, shape (batch, n_classes), one-hot (or soft) labels
    w : np.ndarray, shape (batch,), sample weights
    gain_scale : dB -> feature units (1/std for standardised dB features); None disables gain
    gain_multiply : waveform chunks: the gain multiplies (10^(g/20)) instead of adding

    Returns
    -------
    x, y, w of the same shapes (new arrays)
    """
    x = np.array(x, dtype=np.float32, copy=True)
    y = np.array(y, dtype=np.float32, copy=True)
    w = np.array(w, dtype=np.float32, copy=True)
    b = x.shape[0]
    if "gain" in augment.kinds and augment.gain_db > 0 and (gain_scale is not None or gain_multiply):
        g = np.asarray(rng.uniform(-augment.gain_db, augment.gain_db, size=b), dtype=np.float32)
        shape = (b,) + (1,) * (x.ndim - 1)
        if gain_multiply:
            x *= np.power(np.float32(10.0), g / np.float32(20.0)).reshape(shape)
        else:
            assert gain_scale is not None  # the condition above
            x += (g * gain_scale).reshape(shape)
    if "mask" in augment.kinds and x.ndim == 3:
        frames, bands = x.shape[1], x.shape[2]
        for i in range(b):
            tw = int(rng.integers(0, min(augment.time_mask, frames - 1) + 1))
            t0 = int(rng.integers(0, frames - tw + 1))
            fw = int(rng.integers(0, min(augment.freq_mask, bands - 1) + 1))
            f0 = int(rng.integers(0, bands - fw + 1))
            x[i, t0 : t0 + tw, :] = 0.0
            x[i, :, f0 : f0 + fw] = 0.0
    if "mixup" in augment.kinds and b > 1:
        lam = np.asarray(rng.beta(augment.mixup_alpha, augment.mixup_alpha, size=b), dtype=np.float32)
        lam = np.maximum(lam, 1 - lam)  # the first chunk dominates
        perm = rng.permutation(b)
        lx = lam.reshape((b,) + (1,) * (x.ndim - 1))
        x = lx * x + (1 - lx) * x[perm]
        y = lam[:, None] * y + (1 - lam[:, None]) * y[perm]
        w = lam * w + (1 - lam) * w[perm]
    return x, y, w


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------

def fit_normalisation(x: np.ndarray, *, block: int = 256) -> tuple[float, float]:
    """Scalar mean and standard deviation of every value of ``x`` (any shape), in float64."""
    n, s, ss = 0, 0.0, 0.0
    for i in range(0, x.shape[0], block):
        part = np.asarray(x[i : i + block], dtype=np.float64)
        n += part.size
        s += float(part.sum())
        ss += float(np.square(part).sum())
    if n == 0:
        raise ParameterError("no training features to normalise")
    mean = s / n
    std = math.sqrt(max(ss / n - mean * mean, 0.0))
    return float(mean), float(max(std, 1e-6))


def standardise(x: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Raw cached chunks -> model input: :func:`tagger.features.standardise`, the scaling
    :func:`tagger.features.extract` applies with the same params."""
    from tagger.features import standardise as scale

    return scale(x, params=params)


@functools.lru_cache(maxsize=1)
def _batches_class():
    import keras

    class ChunkBatches(keras.utils.PyDataset):
        """Shuffled, augmented, weighted batches of training chunks; deterministic per seed."""

        def __init__(self, x, y, w, *, params, batch_size, augment, seed, num_classes):
            super().__init__(workers=1, use_multiprocessing=False, max_queue_size=4)
            self.x, self.y, self.w = x, y, w
            self.params = params
            self.batch_size = int(batch_size)
            self.augment = augment
            self.seed = int(seed)
            self.num_classes = int(num_classes)
            self.epoch = 0
            self.gain_scale = (1.0 / (params.std or 1.0)) if params.log == "db" and params.kind == "logmel" else None
            self.gain_multiply = params.kind == "waveform"
            self._order()

        def _order(self):
            self.order = np.random.default_rng([self.seed, 7, self.epoch]).permutation(self.x.shape[0])

        def __len__(self):
            return int(math.ceil(self.x.shape[0] / self.batch_size))

        def __getitem__(self, i):
            idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
            x = standardise(self.x[idx], self.params)
            y = np.eye(self.num_classes, dtype=np.float32)[self.y[idx]]
            w = self.w[idx].astype(np.float32)
            if self.augment.kinds:
                rng = np.random.default_rng([self.seed, 11, self.epoch, i])
                x, y, w = augment_batch(x, y, w, augment=self.augment, rng=rng, gain_scale=self.gain_scale,
                                         gain_multiply=self.gain_multiply)
            return x, y, w

        def on_epoch_end(self):
            self.epoch += 1
            self._order()

    return ChunkBatches


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-chunk weights balancing classes by chunk count: n / (n_classes * count[class]).

    y : shape (n,), int class indices. Returns shape (n,), float32 (all 1 for balanced data)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    per_class = np.where(counts > 0, y.shape[0] / (n_classes * np.maximum(counts, 1)), 0.0)
    return per_class[y].astype(np.float32)


def audio_variants(kinds: Sequence[str]) -> list[str]:
    """The audio variants (training.cache.VARIANTS) the augmentations ``kinds`` ask for."""
    from training.cache import VARIANTS

    return [v for k in kinds if k in AUDIO_AUGMENTATIONS for v in VARIANTS[k]]


def features_for(work: Work, spec: ArchSpec, tracks: Sequence[str], *, ray_address: str | None = None,
                 workers: int | None = None, variant: str | None = None,
                 ) -> tuple[FeatureCache, dict[str, str], list[str]]:
    """Cached features of ``tracks`` for ``spec`` (computing what is missing, e.g. for an
    architecture other than the one prepared). Returns the cache, track -> sha and the tracks
    that have no usable features for this architecture."""
    paths = {t: work.path_of(t) for t in tracks}
    max_seconds = work.data.get("max_seconds")
    report = compute_features(list(paths.values()), params=spec.features, cache_dir=work.cache_dir,
                              max_seconds=max_seconds, ray_address=ray_address, workers=workers,
                              variant=variant)
    sha_of, dropped = {}, []
    for t, p in paths.items():
        if p in report.shas:
            sha_of[t] = report.shas[p]
        else:
            dropped.append(t)
            log.warning("%s: no %s features (%s); left out", t, spec.name, report.failed[p].reason)
    return FeatureCache(work.cache_dir, spec.features, max_seconds, variant), sha_of, dropped


def split_digest(split: dict[str, list[str]]) -> str:
    blob = json.dumps({k: sorted(v) for k, v in sorted(split.items())}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# devices and determinism
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    gpu: bool
    names: tuple[str, ...]
    mixed_precision: bool

    def to_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "devices": list(self.names), "mixed_precision": self.mixed_precision}


def setup_device(*, seed: int, mixed_precision: bool | None = None) -> Device:
    """GPU if TensorFlow sees one (memory growth on; mixed precision unless told otherwise),
    else CPU; seeds Python, numpy and Keras and turns on op determinism."""
    from tagger.model import configure_devices, quiet_tensorflow

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    try:
        # Ops running side by side make CPU training results vary in the last bits from run to
        # run, even with op determinism (measured: identical weights only with one inter-op
        # thread); kernels still use every core (intra-op threads).
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        if tf.config.threading.get_inter_op_parallelism_threads() != 1:
            log.warning("TensorFlow was started before training: re-runs may differ in the last bits")
    tf.get_logger().setLevel(logging.ERROR)  # "retracing" notes: predict on several models in one process
    gpus = tf.config.list_physical_devices("GPU")
    mixed = bool(gpus) if mixed_precision is None else (mixed_precision and bool(gpus))
    names = configure_devices(mixed_precision=mixed)
    if not mixed:
        keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(int(seed))
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception as exc:
        log.debug("op determinism unavailable: %s", exc)
    return Device(bool(gpus), tuple(names), mixed)


def float32_network(net: Any, rebuild: Any) -> Any:
    """A float32 copy of a network trained under mixed precision (identical weights).

    ``rebuild()`` builds the same architecture; it is called under the float32 policy. Exported
    models are float32 so that CPU inference is neither slow nor different from the GPU's."""
    import keras

    policy = keras.mixed_precision.global_policy()
    if all(getattr(layer, "dtype_policy", None) is None or layer.dtype_policy.compute_dtype == "float32"
           for layer in net.layers):
        return net
    keras.mixed_precision.set_global_policy("float32")
    try:
        fresh = rebuild()
        fresh.set_weights(net.get_weights())
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return fresh


def frozen_cut(net: Any, limit: str) -> str | None:
    """Where a frozen backbone ends: the layer before the first one with trainable weights, but
    no deeper than ``limit`` (the deepest layer the architecture allows to be precomputed)."""
    names = [layer.name for layer in net.layers]
    if limit not in names:
        return None
    first = next((i for i, layer in enumerate(net.layers) if layer.trainable_weights), None)
    if first is None or not any(layer.weights for layer in net.layers[:first]):
        return None  # nothing frozen worth precomputing
    return names[min(first - 1, names.index(limit))]


def frozen_split(net: Any, layer_name: str) -> tuple[Any, Any] | None:
    """(backbone, head) of ``net`` cut after ``layer_name``, or None when that is not possible.

    Possible when no layer up to ``layer_name`` has trainable weights and the layers after it form
    a chain (each takes the previous one's output). The head shares its layers with ``net``, so
    training the head on the backbone's outputs trains ``net``.
    """
    import keras

    try:
        cut = net.get_layer(layer_name)
    except ValueError:
        return None
    backbone = keras.Model(net.input, cut.output, name=f"{net.name}_backbone")
    if backbone.trainable_weights:
        return None
    names = [layer.name for layer in net.layers]
    rest = net.layers[names.index(layer_name) + 1 :]
    if not rest:
        return None
    inp = keras.Input(shape=tuple(cut.output.shape[1:]), name="backbone_output")
    x, prev = inp, cut
    for layer in rest:
        try:
            if layer.input is not prev.output:
                return None
        except (AttributeError, ValueError):  # a layer used twice has no single input
            return None
        x, prev = layer(x), layer
    if prev is not net.layers[-1] or net.output is not prev.output:
        return None
    return backbone, keras.Model(inp, x, name=f"{net.name}_head")


def predict_blocks(model: Any, x: np.ndarray, params: FeatureParams, *, batch_size: int,
                   block: int = 2048) -> np.ndarray:
    """``model`` outputs for raw cached chunks, standardised block by block (bounded memory).

    x : shape (n, *input_shape). Returns shape (n, *output_shape), float32."""
    outs = [np.asarray(model.predict(standardise(x[i : i + block], params), batch_size=batch_size, verbose=0),
                       dtype=np.float32) for i in range(0, x.shape[0], block)]
    return np.concatenate(outs) if outs else np.zeros((0, *model.output_shape[1:]), np.float32)


class _EpochLog:
    """A Keras callback logging one line per epoch through ``logging`` (no progress bars)."""

    @staticmethod
    def make(total: int):
        import keras

        class EpochLog(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                lr = logs.get("learning_rate")
                log.info(
                    "epoch %d/%d: loss %.4f acc %.3f | val_loss %.4f val_acc %.3f%s (%.1f s)",
                    epoch + 1, total, logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                    logs.get("val_loss", float("nan")), logs.get("val_accuracy", float("nan")),
                    f" lr {lr:.2g}" if lr is not None else "", time.perf_counter() - self.t0,
                )

        return EpochLog()


# ---------------------------------------------------------------------------------------
# the trainers: arrays in, a fitted model out
# ---------------------------------------------------------------------------------------

@dataclass
class Trained:
    """What :func:`train_arrays` gives back."""

    model: Any  # a float32 keras.Model, or a tagger.trees.TreeEnsemble (trainer "trees")
    history: dict[str, list[float]]  # per epoch (keras) or per boosting iteration (trees)
    best_epoch: int
    device: Device
    batch_size: int
    lr: float
    fit_s: float
    cut: str | None = None  # frozen backbone layer whose outputs were precomputed
    params: FeatureParams | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Chunk probabilities for raw (cached) chunks, shape (n, n_classes), float32."""
        if self.params is None:
            raise ValueError("a trained model without its feature parameters cannot predict")
        if hasattr(self.model, "predict_proba"):  # tagger.trees.TreeEnsemble
            return self.model.predict_proba(standardise(x, self.params))
        return predict_blocks(self.model, x, self.params, batch_size=self.batch_size)


def train_arrays(
    spec: ArchSpec, *, params: FeatureParams, options: dict[str, Any], n_classes: int,
    x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
    epochs: int, seed: int, batch_size: int | None = None, learning_rate: float | None = None, patience: int = 8,
    augment: Augment = Augment(), mixed_precision: bool | None = None,
) -> Trained:
    """Train ``spec`` on raw chunks ``x_tr`` (labels ``y_tr``, class indices), choosing the model
    (early stopping, number of trees) on ``x_va``/``y_va``; ``params`` carries the normalisation.

    x_* : shape (n, *params.input_shape); y_* : shape (n,), int. Classes are balanced by weights.
    """
    if spec.trainer == "trees":
        return _train_trees(spec, params=params, options=options, n_classes=n_classes, x_tr=x_tr, y_tr=y_tr,
                            x_va=x_va, y_va=y_va, seed=seed)
    device = setup_device(seed=seed, mixed_precision=mixed_precision)
    import keras

    bs = int(batch_size or (spec.gpu_batch_size if device.gpu else spec.batch_size))
    lr = float(learning_rate or spec.learning_rate)

    def build():
        return spec.build(n_classes, features=params, **options)

    net = build()
    for layer in net.layers:  # per-feature scaling inside the model, fitted on the training chunks
        if isinstance(layer, keras.layers.Normalization):
            layer.adapt(standardise(x_tr, params))
    xv = standardise(x_va, params)
    yv = np.eye(n_classes, dtype=np.float32)[y_va]
    cut = frozen_cut(net, spec.frozen_until) if spec.frozen_until and not augment.kinds else None
    parts = frozen_split(net, cut) if cut else None
    if parts is not None:
        backbone, head = parts
        t_emb = time.perf_counter()
        x_fit = predict_blocks(backbone, x_tr, params, batch_size=bs)
        xv_fit = predict_blocks(backbone, x_va, params, batch_size=bs)
        log.info("frozen backbone (up to %s): outputs of %d chunks computed once (%.1f s); training the rest",
                 cut, x_fit.shape[0] + xv_fit.shape[0], time.perf_counter() - t_emb)
        trained, fit_params = head, dataclasses.replace(params, mean=None, std=None)
    else:
        cut = None
        trained, x_fit, xv_fit, fit_params = net, x_tr, xv, params
    trained.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    batches = _batches_class()(x_fit, y_tr, class_weights(y_tr, n_classes), params=fit_params,
                               batch_size=bs, augment=augment, seed=seed, num_classes=n_classes)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 3),
                                          min_lr=1e-5),
        _EpochLog.make(epochs),
    ]
    t_fit = time.perf_counter()
    hist = trained.fit(batches, validation_data=(xv_fit, yv), epochs=epochs, callbacks=callbacks, verbose=0)
    fit_s = time.perf_counter() - t_fit
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    best_epoch = int(np.argmin(history["val_loss"])) + 1 if history.get("val_loss") else len(history["loss"])
    if device.mixed_precision:
        net = float32_network(net, build)
    return Trained(net, history, best_epoch, device, bs, lr, fit_s, cut, params)


def _train_trees(spec: ArchSpec, *, params: FeatureParams, options: dict[str, Any], n_classes: int,
                 x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, seed: int) -> Trained:
    """Gradient-boosted trees: boost up to ``max_iter`` rounds, pick the round with the lowest
    validation log-loss (our validation tracks, so no chunk of a training track decides it), refit
    with that many rounds (deterministic: same seed, same data)."""
    from tagger.trees import TreeEnsemble

    if len(params.input_shape) != 1:
        raise ParameterError(f"{spec.name}: trees need one feature vector per chunk, not {params.input_shape}")
    xt = standardise(x_tr, params)
    xv = standardise(x_va, params)
    w = class_weights(y_tr, n_classes)
    t_fit = time.perf_counter()
    clf = spec.build(n_classes, features=params, seed=seed, **options)
    clf.fit(xt, y_tr, sample_weight=w)
    eps = 1e-7
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for x, y, key in ((xt, y_tr, ""), (xv, y_va, "val_")):
        for p in clf.staged_predict_proba(x):
            p = _full_proba(p, clf.classes_, n_classes)
            history[f"{key}loss"].append(float(-np.mean(np.log(np.clip(p[np.arange(y.size), y], eps, 1.0)))))
            history[f"{key}accuracy"].append(float(np.mean(p.argmax(axis=1) == y)))
    best = int(np.argmin(history["val_loss"])) + 1
    if best < clf.n_iter_:
        clf.set_params(max_iter=best)
        clf.fit(xt, y_tr, sample_weight=w)
    fit_s = time.perf_counter() - t_fit
    if list(clf.classes_) != list(range(n_classes)):
        raise ParameterError(f"{spec.name}: every class needs training chunks (got classes {list(clf.classes_)})")
    log.info("%s: %d boosting rounds chosen on validation loss %.4f (%.1f s)", spec.name, best,
             history["val_loss"][best - 1], fit_s)
    device = Device(False, ("CPU",), False)
    # batch: every chunk at once; learning rate: the boosting shrinkage
    return Trained(TreeEnsemble.from_sklearn(clf), history, best, device, len(xt), float(clf.learning_rate), fit_s,
                   None, params)


def _full_proba(p: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    if p.shape[1] == n_classes:
        return p
    out = np.zeros((p.shape[0], n_classes))
    out[:, np.asarray(classes, np.int64)] = p
    return out


# ---------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------

def fit(
    work_dir: str | Path,
    *,
    arch: str = "mel-cnn",
    out: str | Path,
    fold: int | None = None,
    final: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    patience: int = 8,
    augment: Sequence[str] | None = None,
    arch_options: dict[str, Any] | None = None,
    mixed_precision: bool | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Train ``arch`` on the single split, fold ``fold``, or (``final``) everything but validation.

    ``None`` options take the architecture's defaults (:class:`~training.architectures.ArchSpec`).

    Writes ``out/model.{keras,json}`` and ``out/run.json``; returns the run record.
    """
    t_start = time.perf_counter()
    if fold is not None and final:
        raise ParameterError("choose --fold or --all, not both")
    work = load_work(work_dir)
    spec = get_arch(arch)
    epochs = int(epochs or spec.epochs)
    if epochs < 1:
        raise ParameterError("epochs must be at least 1")
    options = {**spec.options, **(arch_options or {})}
    kinds = tuple(spec.augment) if augment is None else tuple(augment)
    aug = Augment(kinds=kinds)
    out = Path(out).expanduser().resolve()

    split = work.split(fold, final=final)
    all_tracks = [t for side in ("train", "valid", "test") for t in split[side]]
    cache, sha_of, dropped = features_for(work, spec, all_tracks, ray_address=ray_address, workers=workers)
    split = {side: [t for t in tracks if t in sha_of] for side, tracks in split.items()}
    labels = work.labels
    label_of = work.label_of
    index = {lab: i for i, lab in enumerate(labels)}
    missing = [lab for lab in labels if not any(label_of[t] == lab for t in split["train"])]
    if missing:
        raise DatasetError(f"no training track left for {', '.join(missing)}")
    if not split["valid"]:
        raise DatasetError("no validation track left")
    t_feat = time.perf_counter()

    x_tr, own_tr = load_chunks(cache, [sha_of[t] for t in split["train"]])
    y_tr = np.array([index[label_of[split["train"][i]]] for i in own_tr], dtype=np.int64)
    x_va, own_va = load_chunks(cache, [sha_of[t] for t in split["valid"]])
    y_va = np.array([index[label_of[split["valid"][i]]] for i in own_va], dtype=np.int64)
    params = spec.features
    if spec.normalise:
        mean, std = fit_normalisation(x_tr)
        params = dataclasses.replace(params, mean=round(mean, 6), std=round(std, 6))
    for variant in audio_variants(aug.kinds):
        # audio-domain augmentation: the training tracks' variants, computed once and cached
        vcache, vsha, _ = features_for(work, spec, split["train"], ray_address=ray_address, workers=workers,
                                       variant=variant)
        kept = [t for t in split["train"] if t in vsha]
        xa, own = load_chunks(vcache, [vsha[t] for t in kept])
        x_tr = np.concatenate([x_tr, xa])
        y_tr = np.concatenate([y_tr, np.array([index[label_of[kept[i]]] for i in own], dtype=np.int64)])
        log.info("augmentation %s: %d more training chunks", variant, xa.shape[0])
    log.info("%s: %d train tracks (%d chunks), %d validation tracks (%d chunks)%s",
             spec.name, len(split["train"]), x_tr.shape[0], len(split["valid"]), x_va.shape[0],
             f", mean {params.mean:.3f} std {params.std:.3f}" if spec.normalise else "")

    trained = train_arrays(spec, params=params, options=options, n_classes=len(labels), x_tr=x_tr, y_tr=y_tr,
                           x_va=x_va, y_va=y_va, epochs=epochs, seed=seed, batch_size=batch_size,
                           learning_rate=learning_rate, patience=patience, augment=aug,
                           mixed_precision=mixed_precision)
    history, device, bs, lr, fit_s = trained.history, trained.device, trained.batch_size, trained.lr, trained.fit_s
    best_epoch = trained.best_epoch

    # track-level validation accuracy of the restored (best) weights
    pv = trained.predict(x_va)
    track_pred = np.array([int(np.argmax(pv[own_va == i].mean(axis=0))) for i in range(len(split["valid"]))])
    track_true = np.array([index[label_of[t]] for t in split["valid"]])
    validation = {
        "track_accuracy": float(np.mean(track_pred == track_true)),
        "chunk_accuracy": float(np.mean(np.argmax(pv, axis=1) == y_va)),
        "tracks": len(split["valid"]),
        "best_val_loss": float(min(history.get("val_loss", [float("nan")]))),
    }
    log.info("validation: track accuracy %.3f (%d tracks), chunk accuracy %.3f",
             validation["track_accuracy"], validation["tracks"], validation["chunk_accuracy"])
    cut = trained.cut

    prep_split = work.data["split"]
    if fold is not None:
        split_desc = {"method": "k-fold", "k": work.n_folds, "fold": fold, "seed": work.data["folds"]["seed"]}
    elif final:
        split_desc = {"method": f"all tracks but validation ({prep_split['method']} split)",
                      "seed": prep_split.get("seed")}
    else:
        split_desc = {"method": prep_split["method"], "seed": prep_split.get("seed")}
    split_desc.update({side: len(v) for side, v in split.items()}, tracks_digest=split_digest(split))
    options_rec = {
        "epochs": epochs, "epochs_run": len(history["loss"]), "best_epoch": best_epoch, "patience": patience,
        "batch_size": bs, "learning_rate": lr, "augment": list(aug.kinds), "arch_options": _jsonable(options),
    }
    training_meta = {
        "data": work.describe(),
        "split": split_desc,
        "seed": seed,
        **options_rec,
        "device": device.to_dict(),
        "command": command,
    }
    meta_fields = {
        "name": f"{work.data['name']}-{spec.name}",
        "architecture": spec.name,
        "backend": spec.trainer,
        "labels": list(labels),
        "output_activation": "softmax",
        "aggregation": "mean",
        "features": params,
        "display_names": {},
        "training": training_meta,
        "metrics": {"validation": validation},
        "licence": spec.licence,
        "credits": spec.credits,
    }
    from tagger.modelmeta import save_bundle

    saved = ReproducibleSave(trained.model) if spec.trainer == "keras" else trained.model
    files = save_bundle(saved, out, meta_fields=meta_fields, name=MODEL_NAME)
    record = {
        "format": 1,
        "frozen_backbone_until": cut,
        "arch": spec.name,
        "work": str(work.dir),
        "fold": fold,
        "final": final,
        "seed": seed,
        "labels": list(labels),
        "features": params.to_dict(),
        "max_seconds": work.data.get("max_seconds"),
        "split": split,
        "split_desc": split_desc,
        "dropped": dropped,
        "options": options_rec,
        "device": device.to_dict(),
        "history": history,
        "validation": validation,
        "model_id": json.loads(files.meta.read_text())["model_id"],
        "timings": {"features_s": round(t_feat - t_start, 2), "fit_s": round(fit_s, 2),
                    "per_epoch_s": round(fit_s / max(1, len(history["loss"])), 2),
                    "total_s": round(time.perf_counter() - t_start, 2)},
        "command": command,
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    _write_json(out / RUN_FILE, record)
    log.info("%s: model %s written to %s (%.0f s)", spec.name, record["model_id"], out, record["timings"]["total_s"])
    return record


def load_run(run_dir: str | Path) -> dict[str, Any]:
    d = Path(run_dir).expanduser().resolve()
    f = d / RUN_FILE
    if not f.is_file():
        raise DatasetError(f"{d}: not a training run (no {RUN_FILE}; run `tagger train fit`)")
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{f}: unreadable: {exc}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
