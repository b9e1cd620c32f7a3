"""musicnn (Pons & Serra, ISMIR 2019 LBD) rebuilt from stock Keras 3 layers, with its weights.

The musicnn 0.1.0 wheel (ISC licence) ships TF1 checkpoints; ``MSD_musicnn`` was trained on
the Million Song Dataset for the 50 most frequent last.fm tags. This module

* rebuilds that network in Keras 3 from stock layers only (:func:`build_musicnn`), so that
  ``keras.saving.load_model(path, safe_mode=True)`` loads it without custom code;
* reads the checkpoint and sets our weights (:func:`find_checkpoint`, :func:`convert_checkpoint`);
* slices the output layer to the genre-like tags (:func:`genre_model`) and writes the shipped
  ``msd`` vocabulary model with :func:`tagger.modelmeta.save_bundle` (:func:`write_msd_bundle`,
  click command :data:`convert_musicnn`);
* offers the transfer-learning building blocks for the training commands
  (:func:`build_transfer`, :func:`embedding_model`, :func:`embed`).

The network, per chunk of 187 frames x 96 mel bands (log10(10000 S + 1)):

front end
    BatchNorm of the input; "timbral" convs 7x38 and 7x67 (204 filters each, time padded by 3
    on both sides, valid in frequency) and "temporal" convs 128x1, 64x1, 32x1 (51 filters each,
    padding "same"); each conv -> ReLU -> BatchNorm -> max over the frequency axis. The five
    (187, k) maps are concatenated: (187, 561).
mid end
    three 1-D convs over time (64 filters, kernel 7, "same"), ReLU -> BatchNorm, the second and
    third with a residual connection; front end and the three mid-end outputs are
    concatenated: (187, 753).
back end
    max and mean over time, interleaved per feature as in the original graph (flatten of a
    (753, 2) stack): 1506 -> BatchNorm -> Dense 200 ReLU -> BatchNorm (``penultimate``) ->
    Dense 50 -> sigmoid.

The two Dropout(0.5) layers of the original back end are left out: they are the identity at
inference, and leaving them out keeps :func:`embed` (frozen features computed once) and a frozen
backbone inside :func:`build_transfer` exactly the same function. The transfer head has its own
dropout.

TensorFlow and Keras are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from tagger.errors import ModelError, ParameterError
from tagger.features import FeatureParams

if TYPE_CHECKING:  # pragma: no cover
    import keras

log = logging.getLogger(__name__)

#: The 50 MSD tags, in the order of the checkpoint's output units (musicnn/configuration.py).
MSD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip

#: The tags kept in the shipped ``msd`` model (checkpoint order), and how they are written.
#: Kept: every tag that names a style of music a record shop or ID3's genre list would file
#: under. Dropped (see :data:`MSD_DROPPED`): decades and eras, moods and listening contexts,
#: voices, instruments and production descriptors.
MSD_GENRES: dict[str, str] = {
    "rock": "Rock",
    "pop": "Pop",
    "alternative": "Alternative",
    "indie": "Indie",
    "electronic": "Electronic",
    "dance": "Dance",
    "alternative rock": "Alternative Rock",
    "jazz": "Jazz",
    "metal": "Metal",
    "classic rock": "Classic Rock",
    "soul": "Soul",
    "indie rock": "Indie Rock",
    "electronica": "Electronica",
    "folk": "Folk",
    "punk": "Punk",
    "blues": "Blues",
    "hard rock": "Hard Rock",
    "ambient": "Ambient",
    "experimental": "Experimental",
    "Hip-Hop": "Hip-Hop",
    "country": "Country",
    "easy listening": "Easy Listening",
    "funk": "Funk",
    "electro": "Electro",
    "heavy metal": "Heavy Metal",
    "Progressive rock": "Progressive Rock",
    "rnb": "R&B",
    "indie pop": "Indie Pop",
    "House": "House",
}

#: Why each of the other 21 tags is not a genre.
MSD_DROPPED: dict[str, str] = {
    "00s": "decade", "80s": "decade", "90s": "decade", "70s": "decade", "60s": "decade",
    "oldies": "era / radio format, not a style",
    "female vocalists": "voice", "male vocalists": "voice", "female vocalist": "voice",
    "beautiful": "mood", "Mellow": "mood", "chill": "mood", "sad": "mood", "happy": "mood",
    "sexy": "mood", "catchy": "mood", "party": "listening context",
    "chillout": "mood / listening context as last.fm users apply it (fires on any quiet track)",
    "instrumental": "absence of vocals, any genre",
    "acoustic": "instrumentation / production, any genre",
    "guitar": "instrument",
}  # fmt: skip

#: The features MSD_musicnn was trained on (musicnn's extractor.batch_data, config.json).
MUSICNN_FEATURES = FeatureParams(
    kind="logmel",
    sample_rate=16000,
    n_fft=512,
    hop_length=256,
    n_mels=96,
    log="log10p",
    log_scale=10000.0,
    chunk_frames=187,
    chunk_hop_frames=187,
)

#: Name of the 200-unit BatchNorm output that transfer learning cuts at.
PENULTIMATE = "penultimate"
EMBEDDING_SIZE = 200
#: Published sha256 of musicnn-0.1.0-py3-none-any.whl (recorded in the model metadata).
WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
CHECKPOINT_FILES = (".index", ".data-00000-of-00001")

LICENCE_TEXT = """\
Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019. Code developed by Jordi Pons \
(www.jordipons.me).

Permission to use, copy, modify, and/or distribute this software for any purpose with or without \
fee is hereby granted, provided that the above copyright notice and this permission notice appear \
in all copies.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS \
SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE \
AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES \
WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, \
NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE \
OF THIS SOFTWARE.
"""

CREDITS = (
    "Weights: musicnn MSD_musicnn by Jordi Pons and Xavier Serra, Music Technology Group, "
    "Universitat Pompeu Fabra; \"musicnn: pre-trained convolutional neural networks for music "
    "audio tagging\", ISMIR 2019 late-breaking/demo (arXiv:1909.06654); "
    "https://github.com/jordipons/musicnn. Converted to Keras 3 by tagger (training/musicnn.py). "
    "Licence notice: " + " ".join(LICENCE_TEXT.split())
)

# --------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------

#: (keras layer, TF1 variable scope, kind) in the order the original graph creates them.
_TIMBRAL = (("timbral_74", 38), ("timbral_77", 67))  # int(0.4*96), int(0.7*96) mel bands
_TEMPORAL = (("temporal_128", 128), ("temporal_64", 64), ("temporal_32", 32))
LAYER_MAP: tuple[tuple[str, str, str], ...] = (
    ("input_bn", "batch_normalization", "bn"),
    ("timbral_74_conv", "conv2d", "conv2d"),
    ("timbral_74_bn", "batch_normalization_1", "bn"),
    ("timbral_77_conv", "conv2d_1", "conv2d"),
    ("timbral_77_bn", "batch_normalization_2", "bn"),
    ("temporal_128_conv", "conv2d_2", "conv2d"),
    ("temporal_128_bn", "batch_normalization_3", "bn"),
    ("temporal_64_conv", "conv2d_3", "conv2d"),
    ("temporal_64_bn", "batch_normalization_4", "bn"),
    ("temporal_32_conv", "conv2d_4", "conv2d"),
    ("temporal_32_bn", "batch_normalization_5", "bn"),
    ("midend_1_conv", "conv2d_5", "conv1d"),
    ("midend_1_bn", "batch_normalization_6", "bn"),
    ("midend_2_conv", "conv2d_6", "conv1d"),
    ("midend_2_bn", "batch_normalization_7", "bn"),
    ("midend_3_conv", "conv2d_7", "conv1d"),
    ("midend_3_bn", "batch_normalization_8", "bn"),
    ("pool_bn", "batch_normalization_9", "bn"),
    ("dense", "dense", "dense"),
    (PENULTIMATE, "batch_normalization_10", "bn"),
    ("logits", "dense_1", "dense"),
)


def _keras():
    from tagger.model import quiet_tensorflow

    quiet_tensorflow()
    import keras

    return keras


def build_musicnn(
    *,
    num_classes: int = len(MSD_LABELS),
    frames: int = 187,
    n_mels: int = 96,
    name: str = "msd_musicnn",
) -> keras.Model:
    """The MSD_musicnn network with fresh weights.

    Input (batch, frames, n_mels) log-mel chunks; output (batch, num_classes) sigmoid. Layer
    names are stable (see :data:`LAYER_MAP`); the 200-unit embedding is the layer
    :data:`PENULTIMATE`. Stock Keras layers only.
    """
    keras = _keras()
    from keras import layers as L

    if num_classes < 1:
        raise ParameterError(f"num_classes={num_classes!r}: must be positive")
    if n_mels < 67:
        raise ParameterError(f"n_mels={n_mels!r}: the 7x67 timbral filter needs at least 67 mel bands")

    x_in = keras.Input(shape=(frames, n_mels), name="logmel")
    x = L.Reshape((frames, n_mels, 1), name="expand")(x_in)
    x = L.BatchNormalization(epsilon=1e-3, name="input_bn")(x)

    # front end: max over frequency after each conv -> (frames, filters)
    branches = []
    padded = L.ZeroPadding2D(padding=((3, 3), (0, 0)), name="timbral_pad")(x)
    for block, width in _TIMBRAL:
        h = L.Conv2D(204, (7, width), padding="valid", activation="relu", name=f"{block}_conv")(padded)
        h = L.BatchNormalization(epsilon=1e-3, name=f"{block}_bn")(h)
        h = L.MaxPooling2D(pool_size=(1, n_mels - width + 1), name=f"{block}_pool")(h)
        branches.append(L.Reshape((frames, 204), name=block)(h))
    for block, length in _TEMPORAL:
        h = L.Conv2D(51, (length, 1), padding="same", activation="relu", name=f"{block}_conv")(x)
        h = L.BatchNormalization(epsilon=1e-3, name=f"{block}_bn")(h)
        h = L.MaxPooling2D(pool_size=(1, n_mels), name=f"{block}_pool")(h)
        branches.append(L.Reshape((frames, 51), name=block)(h))
    front = L.Concatenate(axis=-1, name="frontend")(branches)  # (frames, 561)

    # mid end: 1-D convs over time (the original's 7 x width 2-D convs + transposes)
    m1 = L.Conv1D(64, 7, padding="same", activation="relu", name="midend_1_conv")(front)
    m1 = L.BatchNormalization(epsilon=1e-3, name="midend_1_bn")(m1)
    m2 = L.Conv1D(64, 7, padding="same", activation="relu", name="midend_2_conv")(m1)
    m2 = L.BatchNormalization(epsilon=1e-3, name="midend_2_bn")(m2)
    m2 = L.Add(name="midend_2_res")([m2, m1])
    m3 = L.Conv1D(64, 7, padding="same", activation="relu", name="midend_3_conv")(m2)
    m3 = L.BatchNormalization(epsilon=1e-3, name="midend_3_bn")(m3)
    m3 = L.Add(name="midend_3_res")([m3, m2])
    mid = L.Concatenate(axis=-1, name="midend")([front, m1, m2, m3])  # (frames, 753)
    width = mid.shape[-1]

    # back end: [max_0, mean_0, max_1, mean_1, ...] as flatten((753, 2)) in the original
    pmax = L.Reshape((width, 1), name="max_pool_col")(L.GlobalMaxPooling1D(name="max_pool")(mid))
    pmean = L.Reshape((width, 1), name="mean_pool_col")(L.GlobalAveragePooling1D(name="mean_pool")(mid))
    pool = L.Flatten(name="pool")(L.Concatenate(axis=-1, name="pool_stack")([pmax, pmean]))
    h = L.BatchNormalization(epsilon=1e-3, name="pool_bn")(pool)
    h = L.Dense(EMBEDDING_SIZE, activation="relu", name="dense")(h)
    h = L.BatchNormalization(epsilon=1e-3, name=PENULTIMATE)(h)
    h = L.Dense(num_classes, name="logits")(h)
    out = L.Activation("sigmoid", dtype="float32", name="tags")(h)
    return keras.Model(x_in, out, name=name)


# --------------------------------------------------------------------------------------------
# the checkpoint
# --------------------------------------------------------------------------------------------

def find_checkpoint(source: str | Path, *, extract_to: str | Path | None = None) -> Path:
    """The ``MSD_musicnn`` checkpoint folder inside ``source``.

    ``source`` is the wheel file (``musicnn-0.1.0-py3-none-any.whl``), an unpacked wheel (the
    folder holding ``musicnn/``), the ``musicnn`` package folder, or ``MSD_musicnn`` itself.
    A wheel is unpacked (only ``musicnn/MSD_musicnn/*`` and the licence) into ``extract_to``,
    default a new temporary folder that the caller may delete.

    Returns the folder holding ``.index`` and ``.data-00000-of-00001`` (the TF1 checkpoint
    prefix is that folder plus ``/``). Raises :class:`ModelError` with one line otherwise.
    """
    src = Path(source).expanduser()
    if not src.exists():
        raise ModelError(f"{src}: not found (expected {WHEEL_NAME} or its unpacked folder)")
    if src.is_file():
        if not zipfile.is_zipfile(src):
            raise ModelError(f"{src}: not a wheel (zip) file")
        dest = Path(extract_to) if extract_to is not None else Path(tempfile.mkdtemp(prefix="musicnn-"))
        with zipfile.ZipFile(src) as zf:
            names = [n for n in zf.namelist() if n.startswith("musicnn/MSD_musicnn/") and not n.endswith("/")]
            names += [n for n in zf.namelist() if n.endswith(".dist-info/LICENSE.md")]
            if not any(n.endswith("/.index") for n in names):
                raise ModelError(f"{src}: no musicnn/MSD_musicnn checkpoint in this wheel")
            for n in names:
                target = dest / n
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(n) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
        log.info("unpacked %d files of %s into %s", len(names), src.name, dest)
        src = dest
    for candidate in (src / "musicnn" / "MSD_musicnn", src / "MSD_musicnn", src):
        if all((candidate / f).is_file() for f in CHECKPOINT_FILES):
            return candidate
    raise ModelError(
        f"{src}: no MSD_musicnn checkpoint ({', '.join(CHECKPOINT_FILES)}) in this folder, "
        "musicnn/MSD_musicnn or MSD_musicnn"
    )


def checkpoint_prefix(checkpoint_dir: str | Path) -> str:
    """The TF1 checkpoint prefix: musicnn's files are named ``.index`` etc., so the folder + ``/``."""
    return str(Path(checkpoint_dir)) + "/"


def read_checkpoint(checkpoint_dir: str | Path) -> dict[str, np.ndarray]:
    """Every model variable of the checkpoint (Adam slots and step counters left out)."""
    from tagger.model import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    try:
        reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(checkpoint_dir))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{checkpoint_dir}: cannot read the checkpoint: {first}") from None
    names = reader.get_variable_to_shape_map()
    return {
        n: np.asarray(reader.get_tensor(n))
        for n in sorted(names)
        if "/Adam" not in n and n not in ("beta1_power", "beta2_power", "global_step")
    }


def convert_checkpoint(checkpoint_dir: str | Path) -> keras.Model:
    """The full 50-tag MSD_musicnn as a Keras model, weights read from the TF1 checkpoint.

    Every checkpoint variable must be used exactly once and match our shapes, else
    :class:`ModelError`. The result is deterministic: the same checkpoint gives the same weights
    bit for bit (they are copied, never computed).
    """
    variables = read_checkpoint(checkpoint_dir)
    net = build_musicnn()
    used: set[str] = set()
    for layer_name, scope, kind in LAYER_MAP:
        layer = net.get_layer(layer_name)
        keys = ("gamma", "beta", "moving_mean", "moving_variance") if kind == "bn" else ("kernel", "bias")
        try:
            values = [variables[f"{scope}/{k}"] for k in keys]
        except KeyError as exc:
            raise ModelError(f"{checkpoint_dir}: checkpoint lacks variable {exc.args[0]}") from None
        if kind == "conv1d":  # (7, width, 1, 64) 2-D kernel over a 1-channel map -> 1-D kernel
            values[0] = values[0][:, :, 0, :]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise ModelError(
                f"{checkpoint_dir}: {scope} has shapes {got}, layer {layer_name} needs {expected}"
            )
        layer.set_weights([v.astype(np.float32) for v in values])
        used.update(f"{scope}/{k}" for k in keys)
    unused = sorted(set(variables) - used)
    if unused:
        raise ModelError(
            f"{checkpoint_dir}: not an MSD_musicnn checkpoint (unused variables {', '.join(unused[:4])})"
        )
    log.info("converted %d checkpoint variables from %s", len(used), checkpoint_dir)
    return net


def genre_model(full: keras.Model, *, labels: list[str] | tuple[str, ...] | None = None) -> keras.Model:
    """The same network with only the outputs for ``labels`` (default: the keys of :data:`MSD_GENRES`).

    The last Dense layer's columns are sliced; every other weight is copied unchanged, so the
    outputs equal ``full``'s outputs at those columns.
    """
    keep = list(MSD_GENRES) if labels is None else list(labels)
    unknown = [t for t in keep if t not in MSD_LABELS]
    if unknown or not keep or len(set(keep)) != len(keep):
        raise ParameterError(f"labels: must be distinct MSD tags; not MSD tags: {unknown}")
    cols = np.array([MSD_LABELS.index(t) for t in keep])
    net = build_musicnn(num_classes=len(keep), name="msd_musicnn_genres")
    for layer in full.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name == "logits":
            kernel, bias = weights
            weights = [np.ascontiguousarray(kernel[:, cols]), np.ascontiguousarray(bias[cols])]
        net.get_layer(layer.name).set_weights(weights)
    return net


# --------------------------------------------------------------------------------------------
# the shipped bundle
# --------------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def normalise_keras_file(path: str | Path) -> None:
    """Make a ``.keras`` file a pure function of the network: fixed zip timestamps, no
    ``date_saved`` in its ``metadata.json`` (Keras never reads it back), and the memory
    addresses Keras writes as ``shared_object_id`` renumbered. The real creation
    date is in the model's JSON metadata. With this, converting the same checkpoint with the
    same Keras and h5py versions reproduces the shipped file, hence its model id, byte for byte.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zin:
        entries = [(info, zin.read(info.filename)) for info in zin.infolist()]
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zout:
        for info, data in entries:
            if info.filename == "metadata.json":
                meta = json.loads(data)
                meta.pop("date_saved", None)
                data = json.dumps(meta, sort_keys=True).encode()
            elif info.filename == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data))).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            zout.writestr(fixed, data)
    os.replace(tmp, path)


def _renumber_shared_objects(config: Any) -> Any:
    """Replace Keras' ``shared_object_id`` values (Python ``id()``s of objects shared between
    layers, e.g. the dtype policy) by 1, 2, ... in order of first appearance; sharing is kept."""
    ids: dict[Any, int] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (ids.setdefault(v, len(ids) + 1) if k == "shared_object_id" else walk(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(config)


class ReproducibleSave:
    """The network as :func:`tagger.modelmeta.save_bundle` sees it (``save``, shapes), saved so
    that the ``.keras`` bytes (hence the model id) depend only on the network: fixed zip
    timestamps, no save date (:func:`normalise_keras_file`). Identical re-runs give identical
    model ids. Used by every export: ``train fit``/``export`` and the musicnn conversion."""

    def __init__(self, net: keras.Model):
        self.net = net

    @property
    def input_shape(self):
        return self.net.input_shape

    @property
    def output_shape(self):
        return self.net.output_shape

    def save(self, path: str | Path) -> None:
        self.net.save(path)
        normalise_keras_file(path)


def _versions() -> dict[str, str]:
    import h5py
    import keras
    import tensorflow as tf

    return {"keras": keras.__version__, "tensorflow": tf.__version__, "h5py": h5py.__version__}


def _find_licence(checkpoint_dir: Path) -> Path | None:
    for parent in (checkpoint_dir.parent.parent, checkpoint_dir.parent):
        found = sorted(parent.glob("musicnn-*.dist-info/LICENSE.md"))
        if found:
            return found[0]
    return None


def msd_meta_fields(*, source: Path, checkpoint_dir: Path) -> dict[str, Any]:
    """Metadata of the shipped ``msd`` model (everything :func:`save_bundle` does not derive)."""
    result = checkpoint_dir / "experiment.result"
    metrics: dict[str, Any] = {}
    if result.is_file():  # "AUC: <roc>" then "AUC: <pr>" (musicnn's own evaluation)
        lines = result.read_text().splitlines()
        aucs = [float(line.split(":", 1)[1]) for line in lines if line.startswith("AUC:")]
        if len(aucs) == 2:
            metrics = {
                "msd_roc_auc": round(aucs[0], 4),
                "msd_pr_auc": round(aucs[1], 4),
                "evaluated_on": "MSD test split, all 50 tags, by the musicnn authors (experiment.result)",
            }
    training: dict[str, Any] = {
        "description": (
            "musicnn MSD_musicnn (Pons & Serra 2019): trained by its authors on the Million Song "
            "Dataset audio previews with the 50 most frequent last.fm tags (multi-label, sigmoid, "
            "Adam lr 0.001, batch 32, 3 s chunks of 187 frames). Converted by tagger from the TF1 "
            "checkpoint of the musicnn 0.1.0 wheel into stock Keras 3 layers (numerically equal to "
            "the original graph, max abs difference <= 1e-4 on real audio, see tests/test_musicnn.py); "
            f"the output layer was sliced to the {len(MSD_GENRES)} genre-like tags of the 50."
        ),
        "dataset": "Million Song Dataset (last.fm tags), 50 tags",
        "source": WHEEL_NAME,
        "source_sha256": WHEEL_SHA256,
        "checkpoint": "musicnn/MSD_musicnn (experiment 1562267674ismir_17)",
        "checkpoint_sha256": {f: _sha256(checkpoint_dir / f) for f in CHECKPOINT_FILES},
        "command": f"tagger train convert-musicnn {WHEEL_NAME} --out tagger/models",
        "labels_dropped": sorted(MSD_DROPPED),
        "converted_with": _versions(),
    }
    if source.is_file():
        digest = _sha256(source)
        if digest != WHEEL_SHA256:
            log.warning("%s: sha256 %s differs from the published musicnn 0.1.0 wheel", source, digest)
            training["source_sha256"] = digest
    return {
        "name": "msd-musicnn",
        "architecture": "musicnn",
        "backend": "keras",
        "labels": list(MSD_GENRES),
        "output_activation": "sigmoid",
        "aggregation": "mean",
        "features": MUSICNN_FEATURES,
        "display_names": dict(MSD_GENRES),
        "training": training,
        "metrics": metrics,
        "licence": "ISC",
        "credits": CREDITS,
    }


def write_msd_bundle(source: str | Path, out: str | Path, *, name: str = "msd"):
    """Convert ``source`` (see :func:`find_checkpoint`) and write ``out/NAME.keras``,
    ``out/NAME.json`` and ``out/LICENSE-musicnn.txt``. Returns the :class:`ModelFiles`."""
    from tagger.modelmeta import save_bundle

    source = Path(source).expanduser()
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="musicnn-") as tmp:
        ckpt = find_checkpoint(source, extract_to=tmp)
        full = convert_checkpoint(ckpt)
        net = genre_model(full)
        fields = msd_meta_fields(source=source, checkpoint_dir=ckpt)
        files = save_bundle(ReproducibleSave(net), out, meta_fields=fields, name=name)
        licence = _find_licence(ckpt)
        text = licence.read_text(encoding="utf-8") if licence else LICENCE_TEXT
        if " ".join(text.split()) != " ".join(LICENCE_TEXT.split()):
            raise ModelError(f"{licence}: the licence is not musicnn 0.1.0's ISC notice; refusing to ship")
        (out / "LICENSE-musicnn.txt").write_text(text, encoding="utf-8")
    log.info("wrote %s and %s", files.weights, files.meta)
    return files


@click.command("convert-musicnn")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write msd.keras, msd.json and LICENSE-musicnn.txt to [default: tagger's models folder].",
)
def convert_musicnn(source: Path, out: Path | None) -> None:
    """Convert musicnn's MSD_musicnn checkpoint into the shipped msd model.

    SOURCE is musicnn-0.1.0-py3-none-any.whl (pip download --no-deps musicnn==0.1.0), the
    unpacked wheel, or its MSD_musicnn folder.
    """
    from tagger.modelmeta import load_meta, shipped_dir

    out = out if out is not None else shipped_dir()
    try:
        files = write_msd_bundle(source, out)
    except (ModelError, ParameterError) as exc:
        raise click.ClickException(str(exc)) from None
    meta = load_meta(files)
    size = files.weights.stat().st_size / 1e6
    click.echo(f"wrote {files.weights} ({size:.1f} MB) and {files.meta.name}: model {meta.model_id}, "
               f"{len(meta.labels)} genres")


# --------------------------------------------------------------------------------------------
# transfer learning
# --------------------------------------------------------------------------------------------

def load_backbone() -> keras.Model:
    """The shipped ``msd`` model (hash-checked, ``safe_mode=True``)."""
    from tagger.model import GenreModel

    return GenreModel.load(vocabulary="msd").net


def embedding_model(backbone: keras.Model | None = None) -> keras.Model:
    """``backbone`` (default: the shipped msd model) cut at :data:`PENULTIMATE`.

    Input (batch, 187, 96) log-mel chunks; output (batch, 200). Shares layers with ``backbone``.
    """
    keras = _keras()
    net = backbone if backbone is not None else load_backbone()
    try:
        feat = net.get_layer(PENULTIMATE).output
    except ValueError:
        raise ParameterError(
            f"backbone {net.name!r} has no layer {PENULTIMATE!r}: not a musicnn model"
        ) from None
    return keras.Model(net.input, feat, name=f"{net.name}_embedding")


def embed(chunks: np.ndarray, *, model: keras.Model | None = None, batch_size: int = 64) -> np.ndarray:
    """Frozen musicnn embeddings of log-mel chunks (inference mode).

    Parameters
    ----------
    chunks : np.ndarray, shape (n, 187, 96), features made with :data:`MUSICNN_FEATURES`
    model : an :func:`embedding_model` (default: built from the shipped msd model; pass one
        when calling repeatedly)

    Returns
    -------
    np.ndarray, shape (n, 200), float32
    """
    from tagger.model import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    model = model if model is not None else embedding_model()
    x = np.asarray(chunks, dtype=np.float32)
    shape = tuple(model.input_shape[1:])
    if x.ndim != 3 or x.shape[1:] != shape:
        raise ParameterError(f"chunks: expected shape (n, {shape[0]}, {shape[1]}), got {x.shape}")
    if batch_size < 1:
        raise ParameterError(f"batch_size={batch_size!r}: must be positive")
    width = int(model.output_shape[-1])
    out = np.empty((x.shape[0], width), dtype=np.float32)
    if x.shape[0] == 0:
        return out
    fn = tf.function(
        lambda t: tf.cast(model(t, training=False), tf.float32),
        input_signature=[tf.TensorSpec((None, *shape), tf.float32)],
    )
    for start in range(0, x.shape[0], batch_size):
        out[start : start + batch_size] = fn(x[start : start + batch_size]).numpy()
    return out


def build_transfer(
    num_classes: int,
    *,
    backbone: keras.Model | None = None,
    head_units: int = 0,
    dropout: float = 0.3,
    trainable_from: str | None = None,
) -> keras.Model:
    """A genre classifier on top of the musicnn embedding, as one Keras model of stock layers.

    The backbone (default: the shipped msd model, loaded fresh) is cut at :data:`PENULTIMATE`
    and frozen; with ``trainable_from`` the layers from that one on (in the backbone's
    topological layer order) are trainable again. Meaningful cut points are the mid end
    (``"midend_1_conv"``), the back end (``"pool_bn"``) and the dense layer (``"dense"``);
    the five front-end branches interleave in that order, so cutting inside them is not. Frozen BatchNorm
    layers run in inference mode (Keras 3). The new head is
    ``[Dropout] -> [Dense head_units ReLU -> Dropout] -> Dense num_classes -> softmax``.

    A passed ``backbone`` is modified in place (its layers' ``trainable`` flags) and shares its
    layers with the result. Input (batch, 187, 96); output (batch, num_classes) softmax.
    """
    keras = _keras()
    from keras import layers as L

    if not isinstance(num_classes, int) or num_classes < 2:
        raise ParameterError(f"num_classes={num_classes!r}: must be an integer >= 2")
    if head_units < 0:
        raise ParameterError(f"head_units={head_units!r}: must be >= 0")
    if not 0.0 <= dropout < 1.0:
        raise ParameterError(f"dropout={dropout!r}: must be in [0, 1)")
    net = backbone if backbone is not None else load_backbone()
    feat_model = embedding_model(net)
    names = [layer.name for layer in feat_model.layers]
    if trainable_from is not None and trainable_from not in names:
        raise ParameterError(
            f"trainable_from={trainable_from!r}: no such layer; choose one of {', '.join(names[1:])}"
        )
    start = names.index(trainable_from) if trainable_from is not None else len(names)
    for i, layer in enumerate(feat_model.layers):
        layer.trainable = i >= start

    h = feat_model.output
    if dropout > 0:
        h = L.Dropout(dropout, name="head_dropout")(h)
    if head_units > 0:
        h = L.Dense(head_units, activation="relu", name="head_dense")(h)
        if dropout > 0:
            h = L.Dropout(dropout, name="head_dense_dropout")(h)
    h = L.Dense(num_classes, name="head_logits")(h)
    out = L.Activation("softmax", dtype="float32", name="genres")(h)
    model = keras.Model(feat_model.input, out, name="musicnn_transfer")
    log.info(
        "transfer model: %d trainable / %d weights (trainable from %s)",
        sum(int(np.prod(w.shape)) for w in model.trainable_weights),
        sum(int(np.prod(w.shape)) for w in model.weights),
        trainable_from or "the head",
    )
    return model
