"""Heads on a backbone: a linear layer trained on stored track embeddings, exported as a model.

A *head model* is a backbone network (the shipped musicnn network, or any model with a
:data:`tagger.model.EMBEDDING_LAYER`) up to its embedding layer, followed by one linear
``Dense`` layer, ``head``, that outputs a logit per label. Its metadata says aggregation
``"logit-mean"`` and output activation ``"sigmoid"``: ``tagger tag`` averages the chunks'
logits and applies the sigmoid (:func:`tagger.aggregate.track_scores`). The head is linear, so

    sigmoid(mean_c(W . e_c + b)) = sigmoid(W . mean_c(e_c) + b)

and the score ``tag`` computes for a track is exactly :func:`head_scores` of the track's
embedding (the mean of its chunk embeddings), the vector the store of analyses keeps
(``tagger.state.StoredAnalysis.embedding``) and a head is trained on. A threshold chosen on
:func:`head_scores` is therefore the threshold ``tag`` applies to the same number (up to the
float16 rounding of stored embeddings and float32 arithmetic).

:func:`build_head_bundle` writes such a model with :func:`tagger.modelmeta.save_bundle`; it
shares the backbone's features, embedding layer and weights, so its backbone id
(:func:`tagger.model.backbone_id`) is the backbone's and embeddings stored under either model
are interchangeable.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import ModelError
from tagger.modelmeta import SCHEMA, ModelFiles, ModelMeta, load_meta, save_bundle

#: The name of a head model's output layer.
HEAD_LAYER = "head"


def head_logits(embeddings: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``embeddings @ weights + bias`` in float64: (n, d), (d, g), (g,) -> (n, g)."""
    e = np.asarray(embeddings, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    if e.ndim != 2 or w.ndim != 2 or b.ndim != 1 or e.shape[1] != w.shape[0] or w.shape[1] != b.shape[0]:
        raise ValueError(f"need embeddings (n, d), weights (d, g) and bias (g,); got {e.shape}, {w.shape}, {b.shape}")
    return e @ w + b


def head_scores(embeddings: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Track scores of a linear head on track embeddings: ``sigmoid(e @ W + b)``, (n, g) float32.

    embeddings: (n, d) track embeddings (means of chunk embeddings); weights: (d, g); bias: (g,).
    Exactly the scores ``tagger tag`` computes with the model :func:`build_head_bundle` makes of
    ``weights`` and ``bias`` (aggregation ``logit-mean``: per-chunk logits averaged, then the
    sigmoid), up to float rounding.
    """
    from tagger.aggregate import sigmoid

    return sigmoid(head_logits(embeddings, weights, bias)).astype(np.float32)


def _load_network(backbone: ModelFiles) -> Any:
    """The backbone's Keras network, validated against its metadata (tagger.model.load_network)."""
    from tagger.model import load_network

    meta = load_meta(backbone)
    if meta.backend != "keras":
        raise ModelError(f"{backbone.weights}: a {meta.backend} model has no embedding layer to put a head on")
    return load_network(backbone, meta)


def _embedding(net: Any, source: Path) -> Any:
    from tagger.model import EMBEDDING_LAYER, embedding_tensor

    emb = embedding_tensor(net)
    if emb is None:
        raise ModelError(f"{source}: the network has no {EMBEDDING_LAYER!r} layer (a vector per chunk) to put a "
                         "head on")
    return emb


@functools.lru_cache(maxsize=8)
def _embedding_size(weights: str, size: int, mtime_ns: int) -> int:
    files = ModelFiles(Path(weights), Path(weights).with_suffix(".json"))
    return int(_embedding(_load_network(files), files.weights).shape[-1])


def embedding_size(backbone: ModelFiles) -> int:
    """The size of the track embedding the backbone computes (200 for the shipped musicnn
    models). Loads the network (TensorFlow) once per weights file."""
    try:
        st = Path(backbone.weights).stat()
    except OSError as exc:
        raise ModelError(f"{backbone.weights}: cannot read model weights: {exc.strerror or exc}") from None
    if Path(backbone.meta) != Path(backbone.weights).with_suffix(".json"):
        return int(_embedding(_load_network(backbone), backbone.weights).shape[-1])
    return _embedding_size(str(backbone.weights), st.st_size, st.st_mtime_ns)


def _head_architecture(backbone_architecture: str) -> str:
    base = backbone_architecture.split("-", 1)[0] if backbone_architecture else "backbone"
    return f"{base}-head"


def build_head_bundle(backbone: ModelFiles, *, weights: np.ndarray, bias: np.ndarray, labels: Sequence[str],
                      display_names: Mapping[str, str], thresholds: Mapping[str, float], out_dir: Path,
                      model_name: str, training: Mapping[str, Any], metrics: Mapping[str, Any],
                      name: str = "model") -> ModelFiles:
    """Write ``out_dir/NAME.keras`` + ``NAME.json``: the backbone network up to
    :data:`tagger.model.EMBEDDING_LAYER` (its own layers and weights) and a linear ``Dense``
    head of ``weights`` (d, g) and ``bias`` (g,), one logit per label.

    The metadata: the backbone's features (and input shape), architecture ``<backbone>-head``
    (``musicnn-head``), aggregation ``logit-mean``, output activation ``sigmoid``, ``labels``
    (in the columns' order), ``display_names``, per-label ``thresholds``, ``training`` (with a
    ``backbone`` block naming the backbone model added), ``metrics``, and the backbone's licence
    and credits (its weights travel with the head). Returns the files written; raises
    ModelError naming the first problem (a backbone without an embedding, shapes that do not
    fit, a threshold out of range or for an unknown label).
    """
    import keras

    from tagger.model import backbone_id

    bmeta = load_meta(backbone)
    net = _load_network(backbone)
    emb = _embedding(net, backbone.weights)
    labels = [str(x) for x in labels]
    w = np.asarray(weights, dtype=np.float32)
    b = np.asarray(bias, dtype=np.float32)
    d = int(emb.shape[-1])
    if w.shape != (d, len(labels)) or b.shape != (len(labels),):
        raise ModelError(f"head weights {list(w.shape)} and bias {list(b.shape)} do not fit an embedding of {d} "
                         f"values and {len(labels)} labels (expected [{d}, {len(labels)}] and [{len(labels)}])")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
        raise ModelError("head weights or bias hold NaN or infinity")
    if any(layer.name == HEAD_LAYER for layer in net.layers):
        raise ModelError(f"{backbone.weights}: the backbone already has a layer named {HEAD_LAYER!r}")
    head = keras.layers.Dense(len(labels), activation=None, name=HEAD_LAYER, dtype="float32")
    out = head(emb)
    model = keras.Model(net.inputs[0], out, name=f"{_head_architecture(bmeta.architecture)}".replace("-", "_"))
    head.set_weights([w, b])
    train = dict(training)
    train.setdefault("backbone", {"model_id": bmeta.model_id, "name": bmeta.name,
                                  "architecture": bmeta.architecture, "backbone_id": backbone_id(net, bmeta)})
    fields: dict[str, Any] = dict(
        name=model_name, architecture=_head_architecture(bmeta.architecture), backend="keras", labels=labels,
        output_activation="sigmoid", aggregation="logit-mean", features=bmeta.features.to_dict(),
        display_names={str(k): str(v) for k, v in display_names.items()},
        thresholds={str(k): v for k, v in thresholds.items()},
        training=train, metrics=dict(metrics), licence=bmeta.licence, credits=bmeta.credits,
    )
    # the metadata is checked before anything is written: a bad threshold leaves out_dir as it was
    ModelMeta.from_dict({**fields, "schema": SCHEMA, "model_id": "0" * 16,
                         "input_shape": list(bmeta.features.input_shape)}, source="head metadata")
    return save_bundle(model, Path(out_dir), name=name, meta_fields=fields)


__all__ = ["HEAD_LAYER", "build_head_bundle", "embedding_size", "head_logits", "head_scores"]
