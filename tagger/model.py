"""The model facade: :class:`Model` (what every backend offers), :func:`load`, and
:class:`GenreModel`, a validated Keras network plus its metadata, predicting on large batches
(the ``trees`` backend is :class:`tagger.trees.TreeModel`).

TensorFlow is imported here and only here (and in training/), lazily, so that ``--help``,
``tagger info --no-ray`` and no-op re-runs never pay for it.

Batch vocabulary, used everywhere: ``batch_size`` is the chunks of one forward call of one
model (:data:`CPU_BATCH` on a CPU, :data:`GPU_BATCH` per GPU, or ``--batch-size``);
``flush_size`` is the chunks the driver gathers before it dispatches them at once, a batch for
every predictor (``tagger.ray_backend.InferencePlan.flush_size``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tagger.errors import ModelError
from tagger.modelmeta import ModelFiles, ModelMeta, check_network, load_meta, locate

log = logging.getLogger(__name__)

#: Chunks per forward call: on a CPU (measured best on 2 cores), and per GPU (docs/scaling.md).
CPU_BATCH = 64
GPU_BATCH = 512
#: the most a rewritten inference graph's scores may differ from the network's (float rounding)
REWRITE_TOLERANCE = 1e-4


class Model(Protocol):
    """What tagger asks of a loaded model, whatever its backend (:class:`GenreModel` for Keras,
    :class:`tagger.trees.TreeModel` for trees): made by :func:`load`."""

    @property
    def meta(self) -> ModelMeta: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def precision(self) -> str: ...
    @property
    def rewrites(self) -> list[str]: ...
    @property
    def backbone_id(self) -> str:
        """What identifies the embeddings it computes ("" without an embedding)."""
    @property
    def embedding_size(self) -> int:
        """Columns of embedding :meth:`predict_full` adds after the scores (0: none)."""
    @property
    def net(self) -> Any:
        """The backend's own network (a keras.Model, a trees.TreeEnsemble): for saving and
        training, which know their backend."""
    @property
    def head_norms(self) -> np.ndarray | None:
        """A ``logit-mean`` model's Dense head: each label's kernel column norm (its bfloat16
        bound, :func:`head_bf16_error`); None otherwise."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, *meta.input_shape) float32 chunks -> (n, n_labels) float32 scores."""
    def predict_full(self, x: np.ndarray) -> np.ndarray:
        """(n, *meta.input_shape) -> (n, n_labels + embedding_size) float32."""
    def warm_up(self) -> None:
        """Trace/compile now, so that the first real batch does not pay for it."""
    def with_precision(self, precision: str) -> Model:
        """This model computing in ``precision`` (float32, mixed_float16, mixed_bfloat16)."""


def load(files: ModelFiles, *, meta: ModelMeta | None = None, batch_size: int = CPU_BATCH,
         jit: bool = False) -> Model:
    """Load the model of ``files`` (from :func:`tagger.modelmeta.locate`) for its backend.

    ``meta``: its metadata as :func:`tagger.modelmeta.load_meta` read and verified it (the model
    id checked against the weights); None reads and verifies it here. The network is checked
    against the metadata either way. Raises ModelError with one line for an unusable model.
    """
    if meta is None:
        meta = load_meta(files)
    if meta.backend == "trees":  # numpy only: no TensorFlow
        from tagger.trees import TreeModel

        return TreeModel.load(files, meta, batch_size=batch_size)
    return GenreModel(meta, load_network(files, meta), batch_size=batch_size, jit=jit)


def load_network(files: ModelFiles, meta: ModelMeta) -> Any:
    """The Keras network of ``files``, loaded safely and checked against ``meta``; ModelError
    with one line for an unusable one (:func:`load` and :func:`tagger.heads.build_head_bundle`)."""
    import_tensorflow()
    import keras

    try:
        net = keras.saving.load_model(files.weights, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many kinds; all mean "unusable model"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{files.weights}: cannot load the network: {first}") from None
    check_network(meta, net, source=str(files.weights))
    return net


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
            import tensorflow as tf  # noqa: I001 - tensorflow first, then keras on it
            import keras  # noqa: F401

            tf.config.list_physical_devices("GPU")  # CUDA probing logs here, once
    return sys.modules["tensorflow"]


def set_cpu_threads(intra: int, inter: int) -> bool:
    """TensorFlow's intra-op/inter-op thread pools (0: leave TensorFlow's default). Only before
    TensorFlow runs its first op; returns whether they were set."""
    if not intra and not inter:
        return False
    tf = import_tensorflow()
    try:
        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra))
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter))
    except RuntimeError:  # already initialised (a second run in one process)
        return False
    return True


def configure_devices(*, mixed_precision: bool = False) -> list[str]:
    """Turn on memory growth for every visible GPU; returns their names."""
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus and mixed_precision:
        import keras

        # Affects networks *built* afterwards (training). A loaded network keeps the policy it
        # was saved with: inference switches precision with GenreModel.with_precision.
        keras.mixed_precision.set_global_policy("mixed_float16")
    return [g.name for g in gpus]


#: Models that cost at least this many floating-point operations per chunk compute in bfloat16
#: on CPUs with AMX (musicnn: 2.8e9; the from-scratch mel CNN: 1.6e8, where bfloat16 gains little).
BF16_MIN_FLOPS = 5e8


def cpu_has_amx_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def cpu_bfloat16_default(flops: float | None = None) -> bool:
    """Whether CPU inference computes in bfloat16: where the CPU has AMX bfloat16 units (Intel
    Xeon since Sapphire Rapids), which run musicnn's convolutions about 5x faster than float32
    AVX-512 (elsewhere bfloat16 is emulated and slower), for models of at least
    ``BF16_MIN_FLOPS`` per chunk (``flops``; None: any). TAGGER_CPU_BF16=0 or 1 decides instead.
    Decisions stay those of float32: see :func:`close_call`."""
    env = os.environ.get("TAGGER_CPU_BF16", "").strip().lower()
    if env in ("0", "1", "false", "true", "no", "yes", "off", "on"):
        return env in ("1", "true", "yes", "on")
    if flops is not None and flops < BF16_MIN_FLOPS:
        return False
    return cpu_has_amx_bf16()


def forward_flops(net: Any) -> float:
    """Floating-point operations of one forward pass of one input, counting the convolutions
    and dense layers (2 per multiply-add); 0.0 where shapes are unknown."""
    total = 0.0
    for layer in getattr(net, "layers", []):
        kernel = getattr(layer, "kernel", None)
        if kernel is None or type(layer).__name__ not in _FOLDABLE:
            continue
        try:
            out = [int(d) for d in layer.output.shape[1:-1]]
            groups = max(1, getattr(layer, "groups", 1))
            total += 2.0 * float(np.prod(out or [1])) * float(np.prod(kernel.shape)) / groups
        except (AttributeError, TypeError, ValueError):
            continue
    return total


#: The most a bfloat16 track score may be off from float32, as used by close_call: about 1.8x
#: the largest differences measured (bench/bench_throughput.py --precision-check, the shipped
#: musicnn models on the 71 GTZAN clips and 100 generated tracks: 0.032 for single chunks, 0.012
#: for 10-chunk tracks, 0.008 for 70-chunk ones):
#: BF16_ERROR + BF16_ERROR_CHUNK / chunks.
BF16_ERROR = 0.015
BF16_ERROR_CHUNK = 0.04


#: Heads with aggregation "logit-mean" (tagger.heads: the musicnn backbone, a float32 linear head):
#: under bfloat16 only the backbone's embedding moves, so a chunk's logit for a label moves by at most
#: the head column's L2 norm times HEAD_BF16_LOGIT + HEAD_BF16_LOGIT_CHUNK / chunks. About 1.8x the
#: largest differences measured (bench/bench_heads.py, the 71 GTZAN clips, 230 unit directions: the
#: columns of a head fitted on them, the embeddings' 20 main axes, 200 random ones): 0.161 for
#: single chunks, 0.095 for 10-chunk tracks. The shipped bound (BF16_ERROR) does not hold for such
#: heads: the fitted head's track scores moved up to 1.2x it.
HEAD_BF16_LOGIT = 0.16
HEAD_BF16_LOGIT_CHUNK = 0.13


def head_bf16_error(scores: np.ndarray, column_norms: np.ndarray, *, chunks: int = 1) -> np.ndarray:
    """Per label, the most a ``logit-mean`` head's bfloat16 track score may be off from float32:
    the score's logit may be off by ``column_norms * (HEAD_BF16_LOGIT + HEAD_BF16_LOGIT_CHUNK /
    chunks)``, and the sigmoid turns that into at most this much (little for saturated scores)."""
    from tagger.aggregate import logit, sigmoid

    lg = logit(scores)
    d = np.asarray(column_norms, dtype=np.float64) * (HEAD_BF16_LOGIT + HEAD_BF16_LOGIT_CHUNK / max(1, chunks))
    s = sigmoid(lg)
    return np.maximum(sigmoid(lg + d) - s, s - sigmoid(lg - d))


def close_call(scores: np.ndarray, *, top_k: int, min_confidence: float | np.ndarray, chunks: int = 1,
               error: float | np.ndarray | None = None, ranking: bool = True) -> bool:
    """Whether a decision on ``scores`` could change if every score moved by up to ``error``.

    scores: (n_labels,) track scores, the mean over ``chunks`` chunks. ``min_confidence``: the
    threshold, one for every label, or an array of one per label (:class:`tagger.aggregate.Thresholds`).
    ``error``: one bound for every score, or one per label (:func:`head_bf16_error`).
    The decision reads the ranking of the best ``top_k + 1`` scores and compares the qualifying
    labels with their thresholds: a call is close when two neighbours in that ranking could swap
    (they are less than their two errors apart), or one of the best ``top_k`` labels that could
    qualify is less than its error from its threshold (or, with per-label thresholds, two
    neighbours among the labels that could qualify could swap). With one threshold the two rules
    are the same. The pipeline re-computes such a track in float32, so a bfloat16 run writes
    (and ranks first) what a float32 run would.
    ``error`` None: the bfloat16 bound for a track of ``chunks`` chunks.
    ``ranking`` False: only what is written counts (the genres that qualify, up to ``top_k``, and
    their order), not the ranking of labels that cannot qualify: a track none of whose scores can
    reach its threshold is clear however close its best two are. Adaptive analysis decides so
    (tagger.adaptive.needs_rest): hearing more of a track could change only its scores, and
    what is written is what must not change.
    """
    if error is None:
        error = BF16_ERROR + BF16_ERROR_CHUNK / max(1, chunks)
    scores = np.asarray(scores, dtype=np.float64)
    err = np.broadcast_to(np.asarray(error, dtype=np.float64), scores.shape)
    order = np.argsort(-scores, kind="stable")

    def swap(idx: np.ndarray) -> bool:  # neighbours (best first) that may change places
        return bool(idx.size > 1 and np.any(scores[idx[:-1]] - scores[idx[1:]] < err[idx[:-1]] + err[idx[1:]]))

    top = order[: top_k + 1]
    if ranking and swap(top):
        return True
    thr = np.asarray(min_confidence, dtype=np.float64)
    if not ranking and thr.ndim == 0:  # the per-label rule below, which reads only labels that could qualify
        thr = np.full(scores.shape, float(thr))
    if thr.ndim == 0:
        best = top[:top_k]
        return bool(np.any(np.abs(scores[best] - float(thr)) < err[best]))
    if thr.shape != scores.shape:
        raise ValueError(f"need one threshold per score: {thr.shape} thresholds for {scores.shape} scores")
    # the labels that could qualify, best first: what the decision picks its top_k from
    could = order[scores[order] > thr[order] - err[order]][: top_k + 1]
    best = could[:top_k]
    return bool(np.any(np.abs(scores[best] - thr[best]) < err[best])) or swap(could)


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
    The outputs may be probabilities or, for a ``logit-mean`` model, logits: the sigmoid is
    monotonic, so both give the same top-1 labels.
    """
    candidate = np.asarray(candidate)
    if not np.all(np.isfinite(candidate)):
        return False
    return top1_agreement(reference, candidate) >= min_agreement


# ---------------------------------------------------------------------------------------------
# inference graph: the network's own layers, with batch normalisation folded away where that
# is exact (up to float rounding); used by GenreModel when it checks out against the network
# ---------------------------------------------------------------------------------------------

_FOLDABLE = ("Conv1D", "Conv2D", "Conv3D", "Dense")
_POOLS = ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D")


def inference_graph(net: Any, extra: list[Any] | None = None) -> tuple[Any, list[str]]:
    """A forward pass equal to ``net(x, training=False)`` that does less work, or None.

    Rewrites of a Keras functional network for inference (the stored network is not changed;
    its model id stays the same). Batch normalisation at inference is, per channel,
    ``x * a + b``; three patterns lose the pass it makes over the activations:

    * ``Conv``/``Dense`` (linear) -> ``BatchNormalization``: folded into the kernel and bias
      (the from-scratch CNN's blocks); equal up to float rounding;
    * ``Conv`` (linear or ReLU) -> ``BatchNormalization`` -> ``MaxPooling`` (musicnn's front end
      normalises 187x59x204 activations, then keeps one value in 59): ``x * a + b`` is monotonic
      in ``x``, so the max of the normalised values is the normalised max where ``a >= 0`` and the
      normalised min where ``a < 0``; the min is the max of the negated convolution, so the
      channels with ``a < 0`` get negated weights, the pooling runs on the convolution, then
      ReLU and the normalisation run on the pooled values (59 times fewer), with the same float
      operations as before: the same numbers, bit for bit;
    * ``BatchNormalization`` -> ``MaxPooling`` otherwise: the same, with the min pooled as
      ``-max(-x)``.

    Returns ``(fn, notes)``: ``fn(x)`` runs the rewritten graph, ``notes`` names each rewrite;
    ``fn`` is None when nothing applies or the network is not a single-input, single-output
    functional graph. Shared layers are left alone. ``extra``: inner tensors of ``net`` (an
    embedding) that ``fn`` returns too, as ``(output, *extra)``; a rewrite never swallows them.
    """
    import keras
    import tensorflow as tf

    try:
        by_depth = net._nodes_by_depth
        nodes = [n for d in sorted(by_depth, reverse=True) for n in by_depth[d]
                 if n.operation is not None and not n.is_input]
        inputs, outputs = list(net.inputs), list(net.outputs)
    except AttributeError:  # a Sequential or subclassed model without a functional graph
        return None, []
    if len(inputs) != 1 or len(outputs) != 1:
        return None, []
    consumers: dict[int, list[Any]] = {}
    producer: dict[int, Any] = {}
    uses: dict[int, int] = {}  # nodes a layer is called in (shared layers are left alone)
    for node in nodes:
        uses[id(node.operation)] = uses.get(id(node.operation), 0) + 1
        for t in node.input_tensors:
            consumers.setdefault(id(t), []).append(node)
        for t in node.outputs:
            producer[id(t)] = node
    extra = list(extra or [])
    final = {id(t) for t in outputs} | {id(t) for t in extra}

    def single(node: Any | None) -> bool:
        return node is not None and uses[id(node.operation)] == 1

    def only_consumer(node: Any) -> Any | None:
        if len(node.outputs) != 1 or id(node.outputs[0]) in final:
            return None
        nxt = consumers.get(id(node.outputs[0]), [])
        return nxt[0] if len(nxt) == 1 and single(nxt[0]) else None

    def kind(node: Any | None) -> str:
        return type(node.operation).__name__ if node is not None else ""

    def activation(layer: Any) -> str:
        act = getattr(layer, "activation", None)
        for name in ("linear", "relu"):
            if act is getattr(keras.activations, name):
                return name
        return "other"

    def bn_affine(bn: Any) -> tuple[np.ndarray, np.ndarray] | None:
        if getattr(bn, "renorm", False):
            return None
        axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
        if axis not in (-1, len(bn.input.shape) - 1):
            return None
        var = np.asarray(keras.ops.convert_to_numpy(bn.moving_variance), np.float64)
        mean = np.asarray(keras.ops.convert_to_numpy(bn.moving_mean), np.float64)
        gamma = np.asarray(keras.ops.convert_to_numpy(bn.gamma), np.float64) if bn.scale else np.ones_like(var)
        beta = np.asarray(keras.ops.convert_to_numpy(bn.beta), np.float64) if bn.center else np.zeros_like(var)
        a = gamma / np.sqrt(var + bn.epsilon)
        return a, beta - mean * a

    def weights(layer: Any) -> tuple[np.ndarray, np.ndarray]:
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64)
        bias = (np.asarray(keras.ops.convert_to_numpy(layer.bias), np.float64) if layer.use_bias
                else np.zeros(kernel.shape[-1]))
        return kernel, bias

    def rebuilt(layer: Any, suffix: str, kernel: np.ndarray, bias: np.ndarray, **changes: Any) -> Any:
        cfg = layer.get_config()
        cfg.update(use_bias=True, name=f"{layer.name}_{suffix}", **changes)
        new = type(layer).from_config(cfg)
        new.build(layer.input.shape)
        new.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        return new

    identity = lambda x: x  # noqa: E731
    replace: dict[int, Any] = {}  # id(node) -> callable replacing the node's layer call
    notes: list[str] = []
    for node in nodes:
        if kind(node) != "BatchNormalization" or not single(node) or id(node) in replace:
            continue
        bn = node.operation
        affine = bn_affine(bn)
        if affine is None or len(node.input_tensors) != 1:
            continue
        a, b = affine
        prev: Any = producer.get(id(node.input_tensors[0]))  # None where no layer makes it (checked first)
        prev_ok = (single(prev) and id(prev) not in replace and only_consumer(prev) is node
                   and kind(prev) in _FOLDABLE and prev.operation.kernel.shape[-1] == a.shape[0]
                   and not getattr(prev.operation, "groups", 1) > 1)
        nxt: Any = only_consumer(node)  # None where several layers read it (kind(None) == "")
        pool_next = (kind(nxt) in _POOLS and id(nxt) not in replace
                     and getattr(nxt.operation, "data_format", "channels_last") == "channels_last")
        if prev_ok and activation(prev.operation) == "linear":
            kernel, bias = weights(prev.operation)
            replace[id(prev)] = rebuilt(prev.operation, "bn_folded", kernel * a, bias * a + b)
            replace[id(node)] = identity
            notes.append(f"{bn.name} folded into {prev.operation.name}")
        elif pool_next and prev_ok and kind(prev) != "Dense" and activation(prev.operation) == "relu":
            sign = np.where(a < 0, -1.0, 1.0)
            kernel, bias = weights(prev.operation)
            conv = rebuilt(prev.operation, "signed", kernel * sign, bias * sign, activation="linear")
            pool, s = nxt.operation, tf.constant(sign, dtype=conv.compute_dtype)

            def pool_relu_norm(z, pool=pool, bn=bn, s=s):
                return bn(tf.nn.relu(pool(z) * s), training=False)

            replace[id(prev)], replace[id(node)], replace[id(nxt)] = conv, identity, pool_relu_norm
            notes.append(f"{pool.name} before {bn.name} (sign-split {prev.operation.name})")
        elif pool_next:
            negative, pool = tf.constant(a < 0), nxt.operation

            def pool_norm(x, pool=pool, bn=bn, negative=negative):
                return bn(tf.where(negative, -pool(-x), pool(x)), training=False)

            replace[id(node)], replace[id(nxt)] = identity, pool_norm
            notes.append(f"{pool.name} before {bn.name}")
    if not notes:
        return None, []

    def fn(x):
        values = {id(inputs[0]): x}
        for node in nodes:
            args, kwargs = node.arguments.fill_in(values)
            if id(node) in replace:
                out = replace[id(node)](*args)
            else:
                op = node.operation
                if "training" in getattr(op, "_call_context_args", {}):
                    kwargs["training"] = False
                out = op(*args, **kwargs)
            for t, v in zip(node.outputs, out if isinstance(out, (list, tuple)) else [out], strict=False):
                values[id(t)] = v
        if extra:
            return (values[id(outputs[0])], *(values[id(t)] for t in extra))
        return values[id(outputs[0])]

    return fn, notes


#: The layer whose output is a model's track embedding: the pretrained backbone's pooled
#: 200-unit output in musicnn-based models (the shipped ones, and musicnn-transfer exports).
EMBEDDING_LAYER = "penultimate"


def embedding_tensor(net: Any) -> Any | None:
    """The output of ``net``'s :data:`EMBEDDING_LAYER` when it has one (a vector per chunk)."""
    try:
        layer = net.get_layer(EMBEDDING_LAYER)
        out = layer.output
    except (ValueError, AttributeError):
        return None
    return out if len(out.shape) == 2 and out.shape[-1] else None


def backbone_id(net: Any, meta: ModelMeta) -> str:
    """What identifies the embeddings a network computes: a hash of its features and of every
    weight from the input up to :data:`EMBEDDING_LAYER` (16 hex digits). Two models with the same
    backbone (a new head on the shipped one) share it; their stored embeddings are interchangeable."""
    import hashlib

    import keras

    emb = embedding_tensor(net)
    if emb is None:
        return ""
    sub = keras.Model(net.inputs[0], emb)
    h = hashlib.sha256(b"tagger backbone 1\0" + meta.features.digest().encode())
    for w in sub.weights:
        a = np.ascontiguousarray(keras.ops.convert_to_numpy(w), dtype=np.float32)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


class GenreModel:
    """Load once, predict many. ``predict`` takes (n, *input_shape) chunks, any n.

    A network with an :data:`EMBEDDING_LAYER` computes, in the same forward pass, each chunk's
    embedding as well: ``predict_full`` returns the scores followed by the embedding
    (``embedding_size`` more columns), ``predict`` the scores only.
    """

    def __init__(self, meta: ModelMeta, net: Any, *, batch_size: int = CPU_BATCH, jit: bool = False,
                 precision: str = "float32", optimize: bool = True):
        tf = import_tensorflow()
        self.meta = meta
        self.net = net
        self.precision = precision
        self.batch_size = int(batch_size)
        self.jit = bool(jit)
        spec = tf.TensorSpec((None, *meta.input_shape), tf.float32)
        emb = embedding_tensor(net)
        self.embedding_size = 0 if emb is None else int(emb.shape[-1])
        self._backbone: str | None = None
        if emb is not None:
            import keras

            both = keras.Model(net.inputs[0], [net.outputs[0], emb])

            def _call(x):
                out, e = both(x, training=False)
                return tf.concat([tf.cast(out, tf.float32), tf.cast(e, tf.float32)], axis=1)
        else:

            def _call(x):
                return tf.cast(net(x, training=False), tf.float32)

        self._fn = tf.function(_call, input_signature=[spec], jit_compile=jit, reduce_retracing=True)
        self._plain = self._fn
        #: rewrites of the inference graph in use (see inference_graph); checked on first use
        self.rewrites: list[str] = []
        self._checked = True
        if optimize:
            try:
                fast, notes = inference_graph(net, extra=None if emb is None else [emb])
            except Exception as exc:  # an unusual graph: run it as it is
                log.debug("inference graph rewrite skipped: %s", exc)
                fast, notes = None, []
            if fast is not None and emb is not None:

                def _fast(x):
                    out, e = fast(x)
                    return tf.concat([tf.cast(out, tf.float32), tf.cast(e, tf.float32)], axis=1)
            elif fast is not None:

                def _fast(x):
                    return tf.cast(fast(x), tf.float32)

            if fast is not None:
                self._fn = tf.function(_fast, input_signature=[spec], jit_compile=jit, reduce_retracing=True)
                self.rewrites, self._checked = notes, False

    @classmethod
    def load(
        cls,
        model: str | Path | ModelFiles | None = None,
        *,
        vocabulary: str | None = None,
        batch_size: int = CPU_BATCH,
        jit: bool = False,
    ) -> Model:
        """:func:`load` the model ``model`` names (see :func:`tagger.modelmeta.locate`; None: the
        shipped one for ``vocabulary``): a :class:`GenreModel`, or a TreeModel for a trees model."""
        files = model if isinstance(model, ModelFiles) else locate(model, vocabulary=vocabulary)
        return load(files, batch_size=batch_size, jit=jit)

    def with_precision(self, precision: str) -> GenreModel:
        """This model computing in ``precision`` ("float32", "mixed_float16" or "mixed_bfloat16"),
        same weights.

        Mixed precision computes in float16 with float32 variables; the output layer (the final
        softmax/sigmoid) stays float32, as Keras recommends. A clone: ``self`` is unchanged.
        """
        if precision == self.precision:
            return self
        if precision not in ("float32", "mixed_float16", "mixed_bfloat16"):
            raise ValueError(f"unknown precision {precision!r}: float32, mixed_float16 or mixed_bfloat16")
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

    def warm_up(self) -> None:
        """Trace (and under XLA compile) the inference function now, so that the first real
        batch does not pay for it (start-up, not steady state)."""
        n = self.batch_size if self.jit else 1
        self.predict(np.zeros((n, *self.meta.input_shape), np.float32))

    def _check_rewrites(self) -> None:
        """The rewritten graph must give the network's answers: compared once, on seeded noise
        scaled like features; any difference above float rounding falls back to the network."""
        self._checked = True
        n = self.batch_size if self.jit else 4
        x = np.random.default_rng(0).normal(0.0, 2.0, (n, *self.meta.input_shape)).astype(np.float32)
        ref, got = self._plain(x).numpy(), self._fn(x).numpy()
        diff = float(np.max(np.abs(ref - got))) if ref.size else 0.0
        if not np.isfinite(diff) or diff > REWRITE_TOLERANCE:
            log.warning("optimised inference graph differs from the network by %.2g; using the network as it is", diff)
            self._fn, self.rewrites = self._plain, []
        else:
            log.debug("inference graph: %s (max difference %.2g)", "; ".join(self.rewrites), diff)

    @property
    def head_norms(self) -> np.ndarray | None:
        """For a ``logit-mean`` model whose last layer is a Dense head: the L2 norm of each
        label's column of its kernel (what :func:`head_bf16_error` scales with); None otherwise."""
        if self.meta.aggregation != "logit-mean":
            return None
        last = self.net.layers[-1] if getattr(self.net, "layers", None) else None
        if last is None or type(last).__name__ != "Dense":
            return None
        import keras

        kernel = np.asarray(keras.ops.convert_to_numpy(last.kernel), dtype=np.float64)
        return np.linalg.norm(kernel, axis=0) if kernel.shape == (kernel.shape[0], len(self.meta.labels)) else None

    @property
    def backbone_id(self) -> str:
        """:func:`backbone_id` of this network ("" without an embedding), computed once."""
        if self._backbone is None:
            self._backbone = backbone_id(self.net, self.meta)
        return self._backbone

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities, shape (n, n_labels), float32 (see :meth:`predict_full`)."""
        return self.predict_full(x)[:, : len(self.meta.labels)]

    def predict_full(self, x: np.ndarray) -> np.ndarray:
        """Probabilities and, where the network has one, each chunk's embedding after them:
        shape (n, n_labels + embedding_size), float32.

        The batch dimension of the compiled function is dynamic, so it is traced once; under
        XLA (``jit``) shapes are static, so the last partial batch is padded to ``batch_size``.
        Otherwise a partial batch is cut into powers of two (71 chunks with batch 64: 64, 4,
        2, 1): oneDNN prepares and caches kernels per batch size, and every size between 1 and
        the batch (one per track length) would cost time and, with musicnn, gigabytes.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.meta.input_shape:
            raise ModelError(f"model expects chunks of shape {self.meta.input_shape}, got {x.shape[1:]}")
        if not self._checked:
            self._check_rewrites()
        n = x.shape[0]
        out = np.empty((n, len(self.meta.labels) + self.embedding_size), dtype=np.float32)
        bs = self.batch_size
        for start, m in batch_slices(n, bs, pow2_tail=not self.jit):
            part = x[start : start + m]
            if self.jit and m < bs:
                part = np.concatenate([part, np.zeros((bs - m, *part.shape[1:]), np.float32)])
            out[start : start + m] = self._fn(part).numpy()[:m]
        return out


def batch_slices(n: int, batch_size: int, *, pow2_tail: bool = True) -> list[tuple[int, int]]:
    """(start, length) of the batches for ``n`` chunks: full batches, then the rest either as
    one batch or (``pow2_tail``) as descending powers of two, so that only log2(batch_size)
    different batch shapes ever occur."""
    out, start = [], 0
    while n - start >= batch_size:
        out.append((start, batch_size))
        start += batch_size
    rest = n - start
    if rest and not pow2_tail:
        return out + [(start, rest)]
    bit = 1 << max(0, rest.bit_length() - 1)
    while rest:
        if rest >= bit:
            out.append((start, bit))
            start, rest = start + bit, rest - bit
        bit >>= 1
    return out
