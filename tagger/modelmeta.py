"""The model-metadata contract shared by ``tagger tag`` and the training commands.

A model is two files side by side::

    NAME.keras   the network (stock Keras layers only; loads without custom code)
      or
    NAME.npz     gradient-boosted trees as plain numpy arrays (backend "trees", tagger.trees)
    NAME.json    this metadata

The weights file's suffix follows the ``backend`` field (``BACKENDS``, ``SUFFIXES``).

``NAME.json`` holds (schema 1)::

    {
      "schema": 1,
      "model_id": "<16 hex digits: model_id_for(weights, metadata)>",
      "name": "gtzan-musicnn-transfer",
      "architecture": "musicnn-transfer",
      "backend": "keras" | "trees",                   # weights NAME.keras | NAME.npz
      "labels": ["blues", "classical", ...],          # output order
      "output_activation": "softmax" | "sigmoid",      # trees: softmax
      "aggregation": "mean" | "logit-mean",           # chunk outputs -> track scores (AGGREGATIONS)
      "features": {... tagger.features.FeatureParams ...},
      "input_shape": [187, 96],                        # one chunk, must match features
      "display_names": {"hiphop": "Hip-Hop", ...},     # optional, label -> genre written
      "thresholds": {"rock": 0.52, ...},               # optional, label -> its own threshold (0..1)
      "training": {...},                               # data description, seeds, command
      "metrics": {...},                                # track-level evaluation results
      "created": "2026-11-22T10:00:00Z",
      "licence": "...", "credits": "..."               # optional
    }

The model id is a content hash of the weights file *and* of every metadata field that changes what
tagger writes (labels and their order, display names, output activation, aggregation, features,
backend, thresholds; :data:`DESCRIPTIVE` lists the fields left out), so the state database and the provenance
tag written beside each genre always name exactly the model that produced it: a json whose labels
were reordered by hand no longer passes for the model it came from. Loading checks
every field, the hash, and (once the network is loaded) the input and output shapes, and
refuses an inconsistent model with one clear :class:`~tagger.errors.ModelError`.

**Aggregation.** ``"mean"``: the network outputs probabilities per chunk (``output_activation``
applied inside it) and a track's score is their mean. ``"logit-mean"``: the network outputs
per-chunk *logits* (its last layer is linear) and a track's score is ``sigmoid`` of their mean:
for a linear head on an embedding, ``sigmoid(W . mean_embedding + b)``, exactly what a head
trained on stored track embeddings (:mod:`tagger.heads`) computed and thresholded. It requires
``output_activation`` ``"sigmoid"`` (applied after the mean, by :func:`tagger.aggregate.track_scores`).

**Thresholds.** ``thresholds`` gives labels their own threshold (a label qualifies when its score
reaches it; other labels use ``--min-confidence``, default 0.4). An explicit ``--min-confidence``
(command line or config file) overrides them all. An empty table is the same as none and is left
out of the model id, so models exported before the field existed keep their ids.

This module never imports TensorFlow: a no-op re-run reads the metadata and the model id only.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tagger.errors import ModelError, ParameterError
from tagger.features import FeatureParams

SCHEMA = 1
ACTIVATIONS = ("softmax", "sigmoid")
BACKENDS = ("keras", "trees")
#: the weights file of each backend: NAME + suffix
SUFFIXES = {"keras": ".keras", "trees": ".npz"}
#: chunk outputs -> track scores (see the module doc): the mean of chunk probabilities, or the
#: sigmoid of the mean of chunk logits (heads trained on track embeddings)
AGGREGATIONS = ("mean", "logit-mean")
REQUIRED = ("schema", "model_id", "architecture", "labels", "output_activation", "features", "input_shape")

#: Shipped models, by vocabulary name, as package data in ``tagger/models``.
SHIPPED = {"gtzan": "default", "msd": "msd"}
DEFAULT_VOCABULARY = "gtzan"


@dataclass(frozen=True)
class ModelMeta:
    model_id: str
    architecture: str
    labels: tuple[str, ...]
    output_activation: str
    features: FeatureParams
    input_shape: tuple[int, ...]
    name: str = ""
    backend: str = "keras"
    aggregation: str = "mean"
    display_names: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)  # label -> its own threshold
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    licence: str = ""
    credits: str = ""
    schema: int = SCHEMA

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        d["input_shape"] = list(self.input_shape)
        d["features"] = self.features.to_dict()
        d["thresholds"] = {k: float(v) for k, v in self.thresholds.items()}
        order = ["schema", "model_id", "name", "architecture", "backend", "labels", "output_activation",
                 "aggregation", "features", "input_shape", "display_names", "thresholds", "training",
                 "metrics", "created", "licence", "credits"]
        return {k: d[k] for k in order}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "metadata") -> ModelMeta:
        """Parse and validate; raises ModelError naming the first problem."""
        if not isinstance(data, dict):
            raise ModelError(f"{source}: not a JSON object")
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise ModelError(f"{source}: missing field(s) {', '.join(missing)}")
        if data["schema"] != SCHEMA:
            raise ModelError(f"{source}: schema {data['schema']!r} is not supported (this tagger reads {SCHEMA})")
        try:
            features = FeatureParams.from_dict(data["features"])
        except (ParameterError, TypeError) as exc:
            raise ModelError(f"{source}: {exc}") from None
        labels = data["labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise ModelError(f"{source}: labels must be a non-empty list of strings")
        if len(set(labels)) != len(labels):
            raise ModelError(f"{source}: labels contain duplicates")
        if data["output_activation"] not in ACTIVATIONS:
            raise ModelError(f"{source}: output_activation must be one of {', '.join(ACTIVATIONS)}")
        backend = data.get("backend", "keras")
        if backend not in BACKENDS:
            raise ModelError(f"{source}: backend {backend!r} is not supported ({', '.join(BACKENDS)})")
        if backend == "trees" and data["output_activation"] != "softmax":
            raise ModelError(f"{source}: a trees model's outputs are class probabilities: output_activation "
                             "must be softmax")
        aggregation = data.get("aggregation", "mean")
        if aggregation not in AGGREGATIONS:
            raise ModelError(f"{source}: aggregation {aggregation!r} is not supported ({', '.join(AGGREGATIONS)})")
        if aggregation == "logit-mean" and (data["output_activation"] != "sigmoid" or backend != "keras"):
            raise ModelError(f"{source}: aggregation logit-mean averages a keras network's per-chunk logits "
                             f"and applies a sigmoid: it needs output_activation sigmoid and backend keras, "
                             f"not {data['output_activation']} / {backend}")
        shape = tuple(data["input_shape"]) if isinstance(data["input_shape"], list) else None
        if shape != features.input_shape:
            raise ModelError(
                f"{source}: input_shape {data['input_shape']} does not match the features "
                f"({list(features.input_shape)})"
            )
        model_id = data["model_id"]
        if not isinstance(model_id, str) or len(model_id) < 8:
            raise ModelError(f"{source}: model_id must be a hex string")
        display = data.get("display_names") or {}
        if not isinstance(display, dict):
            raise ModelError(f"{source}: display_names must be an object")
        thresholds = _thresholds(data.get("thresholds"), labels, source=source)
        return cls(
            model_id=model_id,
            architecture=str(data["architecture"]),
            labels=tuple(labels),
            output_activation=data["output_activation"],
            features=features,
            input_shape=shape,
            name=str(data.get("name", "")),
            backend=backend,
            aggregation=aggregation,
            display_names={str(k): str(v) for k, v in display.items()},
            thresholds=thresholds,
            training=dict(data.get("training") or {}),
            metrics=dict(data.get("metrics") or {}),
            created=str(data.get("created", "")),
            licence=str(data.get("licence", "")),
            credits=str(data.get("credits", "")),
        )


def _thresholds(value: Any, labels: list[str], *, source: str) -> dict[str, float]:
    """The ``thresholds`` field: {label: number in [0, 1]} for labels of the model ({} when absent)."""
    import math

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelError(f"{source}: thresholds must be an object (label: number from 0 to 1)")
    out: dict[str, float] = {}
    for label, thr in value.items():
        if label not in labels:
            raise ModelError(f"{source}: thresholds names {label!r}, which is not one of the model's labels")
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not math.isfinite(thr) \
                or not 0.0 <= thr <= 1.0:
            raise ModelError(f"{source}: thresholds: {label!r} must be a number from 0 to 1, got {thr!r}")
        out[str(label)] = float(thr)
    return out


@dataclass(frozen=True)
class ModelFiles:
    weights: Path  # NAME.keras or NAME.npz
    meta: Path  # NAME.json


def file_id(path: Path) -> str:
    """Content hash of a weights file (the first 16 hex digits of its sha256)."""
    return _file_digest(path)[:16]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: Metadata fields that describe a model without changing what it writes: left out of the id
#: (so re-describing a model's training or metrics does not make every file look new).
DESCRIPTIVE = frozenset({"schema", "model_id", "name", "architecture", "training", "metrics", "created",
                         "licence", "credits"})


def model_id_for(weights: Path, meta: ModelMeta | dict[str, Any]) -> str:
    """The model id: sha256 over the weights file and the canonical JSON of every metadata field
    that changes what is written (all but :data:`DESCRIPTIVE`), first 16 hex digits."""
    data = meta.to_dict() if isinstance(meta, ModelMeta) else dict(meta)
    written = {k: v for k, v in data.items() if k not in DESCRIPTIVE}
    if not written.get("thresholds"):  # none: the id of a model from before the field existed
        written.pop("thresholds", None)
    h = hashlib.sha256(b"tagger model id 2\0")
    h.update(bytes.fromhex(_file_digest(weights)))
    h.update(json.dumps(written, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii"))
    return h.hexdigest()[:16]


def shipped_dir() -> Path:
    return Path(str(resources.files("tagger") / "models"))


WHAT_A_MODEL_IS = "a model is a .keras or .npz file with a .json beside it (or their folder)"


def locate(model: str | Path | None = None, *, vocabulary: str | None = None) -> ModelFiles:
    """Find a model's two files.

    ``model`` may be ``NAME.keras``, ``NAME.npz``, ``NAME.json`` (the weights beside it: the one
    of NAME.keras / NAME.npz that exists, the json's backend where both do), or a directory
    holding exactly one model (an export directory). ``None`` means the shipped model for
    ``vocabulary``.
    """
    if model is None:
        vocab = vocabulary or DEFAULT_VOCABULARY
        if vocab not in SHIPPED:
            raise ModelError(f"unknown vocabulary {vocab!r}: choose one of {', '.join(SHIPPED)}")
        meta = (shipped_dir() / SHIPPED[vocab]).with_suffix(".json")
        weights = _weights_beside(meta)
        if weights is None or not meta.is_file():
            raise ModelError(f"the shipped {vocab!r} model is missing from {shipped_dir()}: reinstall tagger")
        return ModelFiles(weights, meta)
    p = Path(model).expanduser()
    if p.is_dir():
        found = sorted(f for suffix in SUFFIXES.values() for f in p.glob(f"*{suffix}"))
        paired = sorted({f.stem for f in found if f.with_suffix(".json").is_file()})
        if len(paired) == 1:
            p = p / f"{paired[0]}.json"
        elif not paired and len(found) == 1:
            p = found[0]  # its missing .json is reported below
        else:
            raise ModelError(f"{p}: expected exactly one model in the folder (NAME.keras or NAME.npz with "
                             f"NAME.json beside it), found {len(paired)}")
    if p.suffix == ".json":
        weights = _weights_beside(p)
        if weights is None:
            raise ModelError(f"{p}: no {' or '.join(p.stem + s for s in SUFFIXES.values())} beside it: "
                             f"{WHAT_A_MODEL_IS}")
        files = ModelFiles(weights, p)
    elif p.suffix in SUFFIXES.values():
        files = ModelFiles(p, p.with_suffix(".json"))
    else:
        raise ModelError(f"{p}: {WHAT_A_MODEL_IS}")
    for f in (files.weights, files.meta):
        if not f.is_file():
            raise ModelError(f"{f}: model file not found")
    return files


def _weights_beside(meta: Path) -> Path | None:
    """NAME.keras or NAME.npz beside ``meta`` (NAME.json), whichever exists; where both do, the
    one of the backend the json names (an unreadable json: NAME.keras, and loading it reports
    the json). None where neither exists."""
    found = [meta.with_suffix(s) for s in SUFFIXES.values() if meta.with_suffix(s).is_file()]
    if len(found) < 2:
        return found[0] if found else None
    try:
        backend = json.loads(meta.read_text(encoding="utf-8")).get("backend", "keras")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        backend = "keras"
    return meta.with_suffix(SUFFIXES.get(backend, SUFFIXES["keras"]))


def load_meta(files: ModelFiles, *, verify_hash: bool = True) -> ModelMeta:
    """Read and validate the metadata; with ``verify_hash``, check it names these weights."""
    try:
        data = json.loads(files.meta.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{files.meta}: cannot read model metadata: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{files.meta}: model metadata is not valid JSON: {exc}") from None
    meta = ModelMeta.from_dict(data, source=str(files.meta))
    if files.weights.suffix != SUFFIXES[meta.backend]:
        raise ModelError(f"{files.meta}: a {meta.backend} model's weights are NAME{SUFFIXES[meta.backend]}, "
                         f"not {files.weights.name}")
    if verify_hash:
        try:
            actual = model_id_for(files.weights, meta)
        except OSError as exc:
            raise ModelError(f"{files.weights}: cannot read model weights: {exc.strerror or exc}") from None
        if actual != meta.model_id:
            raise ModelError(
                f"{files.meta}: model_id {meta.model_id} does not match the weights in "
                f"{files.weights.name} and the labels, features and output of the metadata ({actual}): "
                "the two files do not belong together, or the metadata was edited"
            )
    return meta


def check_network(meta: ModelMeta, net: Any, *, source: str) -> None:
    """Check a loaded network (Keras, or a :class:`tagger.trees.TreeEnsemble`) against its
    metadata: ``net.input_shape`` / ``net.output_shape`` are (None, *shape)."""
    try:
        in_shape = tuple(net.input_shape[1:])
        out_shape = tuple(net.output_shape[1:])
    except Exception as exc:  # multi-input models and the like
        raise ModelError(f"{source}: cannot read the network's input/output shapes: {exc}") from None
    if tuple(d for d in in_shape) != meta.input_shape:
        raise ModelError(f"{source}: network input {list(in_shape)} does not match metadata {list(meta.input_shape)}")
    if out_shape != (len(meta.labels),):
        raise ModelError(f"{source}: network outputs {list(out_shape)} but metadata lists {len(meta.labels)} labels")
    if meta.aggregation == "logit-mean":
        last = _last_activation(net)
        if last not in ("", "linear"):
            raise ModelError(f"{source}: aggregation logit-mean needs a network that outputs logits (a linear "
                             f"last layer), but its last layer applies {last}")


def _last_activation(net: Any) -> str:
    """The name of the activation the network's last layer applies ("" where unknown)."""
    try:
        last = net.layers[-1]
    except (AttributeError, IndexError, TypeError):
        return ""
    kind = type(last).__name__
    if kind in ("Softmax", "ReLU", "LeakyReLU", "ELU", "PReLU"):
        return kind.lower()
    act = getattr(last, "activation", None)
    return str(getattr(act, "__name__", "")) if callable(act) else ""


def save_bundle(net: Any, out: Path, *, meta_fields: dict[str, Any], name: str = "model") -> ModelFiles:
    """Write ``out/NAME.keras`` (``out/NAME.npz`` for backend "trees") and ``out/NAME.json``;
    compute the model id; validate the pair. ``net.save(path)`` writes the weights.

    ``meta_fields`` holds everything but ``model_id``/``schema``/``input_shape``/``created``,
    which are derived here. Returns the files written.
    """
    backend = meta_fields.get("backend", "keras")
    if backend not in SUFFIXES:
        raise ModelError(f"backend {backend!r} is not supported ({', '.join(BACKENDS)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = ModelFiles(out / f"{name}{SUFFIXES[backend]}", out / f"{name}.json")
    net.save(files.weights)
    features = meta_fields["features"]
    if isinstance(features, FeatureParams):
        features = features.to_dict()
    data = dict(meta_fields)
    data.update(
        schema=SCHEMA,
        model_id="0" * 16,  # replaced below, once the fields are canonical
        features=features,
        input_shape=list(FeatureParams.from_dict(features).input_shape),
        created=data.get("created") or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    meta = ModelMeta.from_dict(data, source=str(files.meta))
    meta = dataclasses.replace(meta, model_id=model_id_for(files.weights, meta))
    check_network(meta, net, source=str(files.weights))
    files.meta.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return files


def copy_bundle(files: ModelFiles, dest_dir: Path, name: str) -> ModelFiles:
    """Copy a validated model pair to ``dest_dir/name.{keras|npz,json}`` (export --as-default).

    The weights keep their suffix; a ``name`` model of the other backend in ``dest_dir`` is
    removed (after the copy: meanwhile the json, which names the backend, picks the weights), so
    ``dest_dir`` holds one ``name`` model afterwards.
    """
    load_meta(files)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = ModelFiles(dest_dir / f"{name}{files.weights.suffix}", dest_dir / f"{name}.json")
    shutil.copyfile(files.weights, dest.weights)
    shutil.copyfile(files.meta, dest.meta)
    for suffix in SUFFIXES.values():
        if suffix != dest.weights.suffix:
            (dest_dir / f"{name}{suffix}").unlink(missing_ok=True)
    return dest
