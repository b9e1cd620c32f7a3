"""The ``trees`` model backend: gradient-boosted trees as plain numpy arrays.

A trees model is ``NAME.npz`` + ``NAME.json`` (the same metadata contract as a Keras model, see
:mod:`tagger.modelmeta`, with ``"backend": "trees"``). Training fits a scikit-learn
``HistGradientBoostingClassifier`` on hand-crafted feature vectors and converts it with
:meth:`TreeEnsemble.from_sklearn`; ``tagger tag`` predicts with numpy alone: no scikit-learn,
no pickle, no TensorFlow.

``NAME.npz`` is a zip of ``.npy`` members (readable with ``numpy.load``), written byte for byte
the same for the same trees (fixed member order and timestamps, no compression), because the
model id is the sha256 of this file. Members, ``n_nodes`` nodes of ``n_trees`` trees stored one
after the other (tree ``t`` is iteration ``t // K``, class ``t % K``, ``K`` trees per iteration:
1 for two classes, else ``n_classes``)::

    version       int64 ()            FORMAT_VERSION
    n_features    int64 ()            input vector length
    n_classes     int64 ()            output columns (classes 0..n_classes-1)
    baseline      float64 (K,)        raw score before any tree
    tree_start    int64 (n_trees+1,)  first node of each tree; the last entry is n_nodes
    feature       int32 (n_nodes,)    split feature
    threshold     float64 (n_nodes,)  x[feature] <= threshold goes left
    missing_left  uint8 (n_nodes,)    1: NaN goes left, 0: right
    left, right   int32 (n_nodes,)    children, indices within the tree (after the node)
    is_leaf       uint8 (n_nodes,)    1 for leaves
    value         float64 (n_nodes,)  leaf value (raw score contribution)

Prediction: raw score of class k = baseline[k] + sum of the leaf values of the class-k trees;
probabilities = softmax over the K raw scores, or for two classes [1 - p, p] with
p = sigmoid(raw). This is ``HistGradientBoostingClassifier.predict_proba`` for numerical
features (scikit-learn 1.9, ``sklearn/ensemble/_hist_gradient_boosting/_predictor.pyx``).
"""

from __future__ import annotations

import io
import logging
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import ModelError, ParameterError
from tagger.model import CPU_BATCH
from tagger.modelmeta import ModelFiles, ModelMeta, check_network

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: member name -> (dtype, ndim), in the order they are written
MEMBERS: dict[str, tuple[np.dtype, int]] = {
    "version": (np.dtype("<i8"), 0),
    "n_features": (np.dtype("<i8"), 0),
    "n_classes": (np.dtype("<i8"), 0),
    "baseline": (np.dtype("<f8"), 1),
    "tree_start": (np.dtype("<i8"), 1),
    "feature": (np.dtype("<i4"), 1),
    "threshold": (np.dtype("<f8"), 1),
    "missing_left": (np.dtype("u1"), 1),
    "left": (np.dtype("<i4"), 1),
    "right": (np.dtype("<i4"), 1),
    "is_leaf": (np.dtype("u1"), 1),
    "value": (np.dtype("<f8"), 1),
}
_NODE_ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "is_leaf", "value")
#: the largest member this reader accepts (a hostile size field must not allocate gigabytes)
MAX_MEMBER_BYTES = 1 << 30
#: (rows x trees) node indices walked at once in predict_proba (bounds its memory: ~8 bytes each,
#: a few arrays of them)
_BLOCK = 1 << 20
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


class TreeEnsemble:
    """Fitted boosted trees (numerical splits only) as numpy arrays; see the module docstring.

    Construct with :meth:`from_sklearn` or :meth:`load`; the arrays are validated on construction.
    """

    def __init__(self, arrays: dict[str, np.ndarray], *, source: str = "trees"):
        a = _validated(arrays, source=source)
        self._arrays = a
        self.n_features = int(a["n_features"])
        self.n_classes = int(a["n_classes"])
        starts = a["tree_start"]
        first = np.repeat(starts[:-1], np.diff(starts))  # each node's tree's first node
        self._leaf = a["is_leaf"] == 1
        # children as global node indices: node i goes to _children[2 * i + go_left]
        self._children = np.stack([first + a["right"], first + a["left"]], axis=1).ravel()
        self._feature = a["feature"].astype(np.int64)
        self._threshold = a["threshold"]
        self._missing_left = a["missing_left"] == 1
        self._value = a["value"]
        self._roots = starts[:-1]
        self._baseline = a["baseline"]

    # -- shapes (what tagger.modelmeta.check_network reads) --------------------------------
    @property
    def input_shape(self) -> tuple[None, int]:
        return (None, self.n_features)

    @property
    def output_shape(self) -> tuple[None, int]:
        return (None, self.n_classes)

    @property
    def trees_per_iteration(self) -> int:
        return 1 if self.n_classes == 2 else self.n_classes

    @property
    def n_iterations(self) -> int:
        return len(self._roots) // self.trees_per_iteration

    # -- conversion ---------------------------------------------------------------------------
    @classmethod
    def from_sklearn(cls, clf: Any) -> TreeEnsemble:
        """The trees of a fitted ``sklearn.ensemble.HistGradientBoostingClassifier`` whose
        ``classes_`` are the integers 0..k-1 (k >= 2) and whose features are all numerical.

        Raises ParameterError for anything else (unfitted, a regressor, categorical features,
        other class labels).
        """
        predictors = getattr(clf, "_predictors", None)
        classes = getattr(clf, "classes_", None)
        if predictors is None or classes is None or not hasattr(clf, "_baseline_prediction"):
            raise ParameterError(f"from_sklearn: need a fitted HistGradientBoostingClassifier, "
                                 f"got {type(clf).__name__}")
        classes = np.asarray(classes)
        k = len(classes)
        if (k < 2 or not np.issubdtype(classes.dtype, np.integer)
                or not np.array_equal(classes, np.arange(k))):
            raise ParameterError(f"from_sklearn: classes_ must be the integers 0..k-1 (k >= 2), "
                                 f"got {classes.tolist()[:12]}")
        categorical = getattr(clf, "is_categorical_", None)
        if categorical is not None and np.any(categorical):
            raise ParameterError("from_sklearn: categorical features are not supported (numerical only)")
        per_iteration = 1 if k == 2 else k
        if int(clf.n_trees_per_iteration_) != per_iteration:
            raise ParameterError(f"from_sklearn: {clf.n_trees_per_iteration_} trees per iteration "
                                 f"for {k} classes (expected {per_iteration})")
        baseline = np.asarray(clf._baseline_prediction, dtype=np.float64).reshape(-1)
        nodes = []
        for i, trees in enumerate(predictors):
            if len(trees) != per_iteration:
                raise ParameterError(f"from_sklearn: iteration {i} has {len(trees)} trees, "
                                     f"expected {per_iteration}")
            for tree in trees:
                n = tree.nodes
                if np.any(n["is_categorical"]):
                    raise ParameterError("from_sklearn: categorical splits are not supported")
                nodes.append(n)
        sizes = np.array([len(n) for n in nodes], dtype=np.int64)

        def cat(field: str, dtype: Any) -> np.ndarray:
            return np.concatenate([n[field] for n in nodes] or [np.zeros(0)]).astype(dtype)

        return cls({
            "version": np.array(FORMAT_VERSION, np.int64),
            "n_features": np.array(int(clf.n_features_in_), np.int64),
            "n_classes": np.array(k, np.int64),
            "baseline": baseline,
            "tree_start": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            "feature": cat("feature_idx", np.int32),
            "threshold": cat("num_threshold", np.float64),
            "missing_left": cat("missing_go_to_left", np.uint8),
            "left": cat("left", np.int32),
            "right": cat("right", np.int32),
            "is_leaf": cat("is_leaf", np.uint8),
            "value": cat("value", np.float64),
        }, source="from_sklearn")

    # -- prediction ---------------------------------------------------------------------------
    def raw_scores(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (before softmax/sigmoid).

        x: (n, n_features) float; NaN follows each split's missing-value direction.
        Returns (n, trees_per_iteration) float64.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ParameterError(f"trees: x must have shape (n, {self.n_features}), got {x.shape}")
        # scikit-learn compares in float64 (float32 converts exactly)
        x = np.ascontiguousarray(x, dtype=np.float64)
        n, trees, per = x.shape[0], len(self._roots), self.trees_per_iteration
        out = np.empty((n, per), dtype=np.float64)
        rows = max(1, _BLOCK // max(1, trees))
        for lo in range(0, n, rows):
            xb = x[lo : lo + rows]
            b = xb.shape[0]
            flat = xb.ravel()
            node = np.tile(self._roots, b)  # (row, tree) pairs, row-major: each one's current node
            offset = np.repeat(np.arange(b, dtype=np.int64) * self.n_features, trees)  # its row in flat
            todo = np.flatnonzero(~self._leaf[node])
            while todo.size:  # one level per pass: every pair not yet at a leaf moves to a child
                at = node[todo]
                v = flat[offset[todo] + self._feature[at]]
                go_left = (v <= self._threshold[at]) | (np.isnan(v) & self._missing_left[at])
                at = self._children[2 * at + go_left]
                node[todo] = at
                todo = todo[~self._leaf[at]]  # children lie after their parent: this ends
            leaves = self._value[node].reshape(b, trees // per, per)
            out[lo : lo + b] = self._baseline + leaves.sum(axis=1)
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, as ``HistGradientBoostingClassifier.predict_proba``.

        x: (n, n_features) float32. Returns (n, n_classes) float32, rows summing to 1.
        """
        raw = self.raw_scores(x)
        if self.n_classes == 2:
            p = np.exp(-np.logaddexp(0.0, -raw[:, 0]))  # sigmoid without overflow
            return np.stack([1.0 - p, p], axis=1).astype(np.float32)
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    # -- the weights file ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the trees to ``path`` (one .npz file; same trees, same bytes)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, (dtype, _) in MEMBERS.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(self._arrays[name], dtype=dtype, order="C"),
                                          version=(1, 0), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.create_system, info.external_attr = 3, 0o644 << 16  # the same on every OS
                zf.writestr(info, buf.getvalue())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TreeEnsemble:
        """Read a file written by :meth:`save`. No pickle; every array's dtype, shape and every
        index is checked: a corrupt or hostile file raises ModelError with one line."""
        source = str(path)
        try:
            arrays = _read_members(Path(path))
        except ModelError:
            raise
        except Exception as exc:  # zipfile/numpy raise many kinds on a broken file
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ModelError(f"{source}: not a readable trees model: {reason}") from None
        return cls(arrays, source=source)


def _read_members(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a trees .npz, each checked against MEMBERS before its data is read."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        expected = [f"{name}.npy" for name in MEMBERS]
        if sorted(names) != sorted(expected):
            missing = sorted(set(expected) - set(names))
            extra = sorted(set(names) - set(expected))
            problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
                       ([f"unexpected {', '.join(extra)}"] if extra else []) or ["repeated members"]
            raise ModelError(f"{path}: not a trees model file ({'; '.join(problems)})")
        for name, (dtype, ndim) in MEMBERS.items():
            info = zf.getinfo(f"{name}.npy")
            if info.file_size > MAX_MEMBER_BYTES:
                raise ModelError(f"{path}: {name} is {info.file_size} bytes, more than a trees model holds")
            with zf.open(info) as f:
                major, _ = np.lib.format.read_magic(f)
                if major == 1:
                    shape, fortran, got = np.lib.format.read_array_header_1_0(f)
                elif major == 2:
                    shape, fortran, got = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ModelError(f"{path}: {name}: .npy format version {major} is not supported")
                if got != dtype or len(shape) != ndim:
                    raise ModelError(f"{path}: {name} is a {len(shape)}-d {got} array, "
                                     f"expected {ndim}-d {dtype}")
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > info.file_size:
                    raise ModelError(f"{path}: {name}: its header says {nbytes} bytes of data, "
                                     f"the member holds {info.file_size}")
                data = f.read(nbytes + 1)
                if len(data) != nbytes:
                    raise ModelError(f"{path}: {name} holds {len(data)} bytes of data, "
                                     f"its header says {nbytes}")
                out[name] = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return out


def _validated(arrays: dict[str, np.ndarray], *, source: str) -> dict[str, np.ndarray]:
    """Copies of ``arrays`` in their MEMBERS dtypes, checked to describe valid trees: every
    internal node's children lie after it in its own tree (so every walk ends at a leaf)."""

    def bad(reason: str) -> ModelError:
        return ModelError(f"{source}: invalid trees model: {reason}")

    missing = [k for k in MEMBERS if k not in arrays]
    if missing:
        raise bad(f"missing {', '.join(missing)}")
    a = {}
    for name, (dtype, ndim) in MEMBERS.items():
        arr = np.asarray(arrays[name])
        if arr.ndim != ndim or arr.dtype.kind not in "iuf":
            raise bad(f"{name} must be a {ndim}-d numeric array")
        a[name] = np.array(arr, dtype=dtype.newbyteorder("="))
    if int(a["version"]) != FORMAT_VERSION:
        raise bad(f"format version {int(a['version'])} (this tagger reads {FORMAT_VERSION})")
    n_features, n_classes = int(a["n_features"]), int(a["n_classes"])
    if n_features < 1:
        raise bad(f"n_features {n_features}")
    if n_classes < 2:
        raise bad(f"n_classes {n_classes} (need at least 2)")
    per = 1 if n_classes == 2 else n_classes
    if a["baseline"].shape != (per,) or not np.all(np.isfinite(a["baseline"])):
        raise bad(f"baseline must be {per} finite numbers")
    starts = a["tree_start"]
    n_nodes = a["feature"].shape[0]
    if any(a[k].shape != (n_nodes,) for k in _NODE_ARRAYS):
        raise bad("the node arrays differ in length")
    if starts.shape[0] < 1 or starts[0] != 0 or starts[-1] != n_nodes or np.any(np.diff(starts) < 1):
        raise bad("tree_start must rise from 0 to the number of nodes, every tree at least one node")
    trees = starts.shape[0] - 1
    if trees % per:
        raise bad(f"{trees} trees is not a whole number of iterations of {per}")
    sizes = np.diff(starts)
    local = np.arange(n_nodes, dtype=np.int64) - np.repeat(starts[:-1], sizes)
    size = np.repeat(sizes, sizes)
    if np.any(a["is_leaf"] > 1) or np.any(a["missing_left"] > 1):
        raise bad("is_leaf and missing_left must be 0 or 1")
    inner = a["is_leaf"] == 0
    for child in ("left", "right"):
        c = a[child][inner].astype(np.int64)
        if np.any(c <= local[inner]) or np.any(c >= size[inner]):
            raise bad(f"a {child} child index lies outside its tree (or before its parent)")
    f = a["feature"][inner]
    if np.any(f < 0) or np.any(f >= n_features):
        raise bad(f"a split feature lies outside 0..{n_features - 1}")
    if np.any(np.isnan(a["threshold"][inner])):
        raise bad("a split threshold is NaN")
    if not np.all(np.isfinite(a["value"][~inner])):
        raise bad("a leaf value is not finite")
    return a


class TreeModel:
    """A trees model with the interface of :class:`tagger.model.GenreModel` (the pipeline, the
    Ray predictor, ``tagger explain`` and training's evaluation use either unchanged). Trees
    compute in float64 and answer float32; there is no reduced-precision mode."""

    def __init__(self, meta: ModelMeta, net: TreeEnsemble, *, batch_size: int = CPU_BATCH):
        self.meta = meta
        self.net = net
        self.precision = "float32"
        self.batch_size = int(batch_size)
        self.jit = False
        self.rewrites: list[str] = []

    @classmethod
    def load(cls, files: ModelFiles, meta: ModelMeta, *, batch_size: int = CPU_BATCH) -> TreeModel:
        """The trees of ``files.weights`` checked against ``meta`` (already validated)."""
        net = TreeEnsemble.load(files.weights)
        check_network(meta, net, source=str(files.weights))
        log.debug("%s: %d iterations of %d trees", files.weights, net.n_iterations, net.trees_per_iteration)
        return cls(meta, net, batch_size=batch_size)

    def with_precision(self, precision: str) -> TreeModel:
        """``self``: trees always compute in full precision (the names GenreModel accepts are
        accepted, anything else is a ValueError)."""
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: float32, mixed_float16 or mixed_bfloat16")
        return self

    def warm_up(self) -> None:
        """Nothing to compile; one prediction checks the model runs."""
        self.predict(np.zeros((1, *self.meta.input_shape), np.float32))

    #: trees have no embedding and no logit head (GenreModel's interface)
    embedding_size = 0
    backbone_id = ""
    head_norms = None

    def predict_full(self, x: np.ndarray) -> np.ndarray:
        """As :meth:`predict` (trees have no embedding)."""
        return self.predict(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities: x (n, *meta.input_shape) float32 -> (n, n_labels) float32."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.meta.input_shape:
            raise ModelError(f"model expects chunks of shape {self.meta.input_shape}, got {x.shape[1:]}")
        return self.net.predict_proba(x.reshape(x.shape[0], -1))
