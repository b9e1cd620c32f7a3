"""The model-metadata contract shared by ``tagger tag`` and the training commands.

A model is two files side by side::

    NAME.keras   the network (stock Keras layers only; loads without custom code)
    NAME.json    this metadata

``NAME.json`` holds (schema 1)::

    {
      "schema": 1,
      "model_id": "<first 16 hex digits of sha256 of NAME.keras>",
      "name": "gtzan-musicnn-transfer",
      "architecture": "musicnn-transfer",
      "backend": "keras",
      "labels": ["blues", "classical", ...],          # output order
      "output_activation": "softmax" | "sigmoid",
      "aggregation": "mean",                          # chunk probabilities -> track scores
      "features": {... tagger.features.FeatureParams ...},
      "input_shape": [187, 96],                        # one chunk, must match features
      "display_names": {"hiphop": "Hip-Hop", ...},     # optional, label -> genre written
      "training": {...},                               # data description, seeds, command
      "metrics": {...},                                # track-level evaluation results
      "created": "2026-11-22T10:00:00Z",
      "licence": "...", "credits": "..."               # optional
    }

The model id is a content hash of the weights file, so the state database and the provenance
tag written beside each genre always name exactly the weights that produced it. Loading checks
every field, the hash, and (once Keras has loaded the network) the input and output shapes, and
refuses an inconsistent model with one clear :class:`~tagger.errors.ModelError`.

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
BACKENDS = ("keras",)
AGGREGATIONS = ("mean",)
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
        order = ["schema", "model_id", "name", "architecture", "backend", "labels", "output_activation",
                 "aggregation", "features", "input_shape", "display_names", "training", "metrics",
                 "created", "licence", "credits"]
        return {k: d[k] for k in order}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "metadata") -> "ModelMeta":
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
        aggregation = data.get("aggregation", "mean")
        if aggregation not in AGGREGATIONS:
            raise ModelError(f"{source}: aggregation {aggregation!r} is not supported")
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
            training=dict(data.get("training") or {}),
            metrics=dict(data.get("metrics") or {}),
            created=str(data.get("created", "")),
            licence=str(data.get("licence", "")),
            credits=str(data.get("credits", "")),
        )


@dataclass(frozen=True)
class ModelFiles:
    weights: Path  # NAME.keras
    meta: Path  # NAME.json


def file_id(path: Path) -> str:
    """Content hash of a weights file: the model id."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def shipped_dir() -> Path:
    return Path(str(resources.files("tagger") / "models"))


def locate(model: str | Path | None = None, *, vocabulary: str | None = None) -> ModelFiles:
    """Find a model's two files.

    ``model`` may be ``NAME.keras``, ``NAME.json``, or a directory holding exactly one
    ``*.keras`` (an export directory). ``None`` means the shipped model for ``vocabulary``.
    """
    if model is None:
        vocab = vocabulary or DEFAULT_VOCABULARY
        if vocab not in SHIPPED:
            raise ModelError(f"unknown vocabulary {vocab!r}: choose one of {', '.join(SHIPPED)}")
        base = shipped_dir() / SHIPPED[vocab]
        files = ModelFiles(base.with_suffix(".keras"), base.with_suffix(".json"))
        if not files.weights.exists() or not files.meta.exists():
            raise ModelError(f"the shipped {vocab!r} model is missing from {shipped_dir()}: reinstall tagger")
        return files
    p = Path(model).expanduser()
    if p.is_dir():
        found = sorted(p.glob("*.keras"))
        if len(found) != 1:
            raise ModelError(f"{p}: expected exactly one .keras file in the folder, found {len(found)}")
        p = found[0]
    if p.suffix not in (".keras", ".json"):
        raise ModelError(f"{p}: a model is a .keras file with a .json beside it (or their folder)")
    files = ModelFiles(p.with_suffix(".keras"), p.with_suffix(".json"))
    for f in (files.weights, files.meta):
        if not f.is_file():
            raise ModelError(f"{f}: model file not found")
    return files


def load_meta(files: ModelFiles, *, verify_hash: bool = True) -> ModelMeta:
    """Read and validate the metadata; with ``verify_hash``, check it names these weights."""
    try:
        data = json.loads(files.meta.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{files.meta}: cannot read model metadata: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{files.meta}: model metadata is not valid JSON: {exc}") from None
    meta = ModelMeta.from_dict(data, source=str(files.meta))
    if verify_hash:
        try:
            actual = file_id(files.weights)
        except OSError as exc:
            raise ModelError(f"{files.weights}: cannot read model weights: {exc.strerror or exc}") from None
        if actual != meta.model_id:
            raise ModelError(
                f"{files.meta}: model_id {meta.model_id} does not match the weights in "
                f"{files.weights.name} ({actual}); the two files do not belong together"
            )
    return meta


def check_network(meta: ModelMeta, net: Any, *, source: str) -> None:
    """Check a loaded Keras network against its metadata (shapes)."""
    try:
        in_shape = tuple(net.input_shape[1:])
        out_shape = tuple(net.output_shape[1:])
    except Exception as exc:  # multi-input models and the like
        raise ModelError(f"{source}: cannot read the network's input/output shapes: {exc}") from None
    if tuple(d for d in in_shape) != meta.input_shape:
        raise ModelError(f"{source}: network input {list(in_shape)} does not match metadata {list(meta.input_shape)}")
    if out_shape != (len(meta.labels),):
        raise ModelError(f"{source}: network outputs {list(out_shape)} but metadata lists {len(meta.labels)} labels")


def save_bundle(net: Any, out: Path, *, meta_fields: dict[str, Any], name: str = "model") -> ModelFiles:
    """Write ``out/NAME.keras`` and ``out/NAME.json``; compute the model id; validate the pair.

    ``meta_fields`` holds everything but ``model_id``/``schema``/``input_shape``/``created``,
    which are derived here. Returns the files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = ModelFiles(out / f"{name}.keras", out / f"{name}.json")
    net.save(files.weights)
    features = meta_fields["features"]
    if isinstance(features, FeatureParams):
        features = features.to_dict()
    data = dict(meta_fields)
    data.update(
        schema=SCHEMA,
        model_id=file_id(files.weights),
        features=features,
        input_shape=list(FeatureParams.from_dict(features).input_shape),
        created=data.get("created") or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    meta = ModelMeta.from_dict(data, source=str(files.meta))
    check_network(meta, net, source=str(files.weights))
    files.meta.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return files


def copy_bundle(files: ModelFiles, dest_dir: Path, name: str) -> ModelFiles:
    """Copy a validated model pair to ``dest_dir/name.{keras,json}`` (export --as-default)."""
    load_meta(files)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = ModelFiles(dest_dir / f"{name}.keras", dest_dir / f"{name}.json")
    shutil.copyfile(files.weights, dest.weights)
    shutil.copyfile(files.meta, dest.meta)
    return dest
