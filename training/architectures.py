"""Architecture registry: a name -> how to feed and build a model.

Adding a system is one :func:`register` call with an :class:`ArchSpec`; the training commands
(`--arch NAME`) and the exported metadata (``architecture``) use the name. Builders import Keras
(or their own module) lazily, so listing the registry is instant.

A builder is ``build(num_classes, *, features, **options) -> keras.Model`` taking one chunk of
``features.input_shape`` and giving ``num_classes`` probabilities (softmax), stock Keras layers
only (``tagger tag`` loads models with ``safe_mode`` and no custom objects). ``options`` come
from ``--arch-opt KEY=VALUE``. A ``Normalization`` layer in the network is fitted (``adapt``) on
the training split's chunks before training: per-feature scaling that travels inside the model.

An architecture with ``trainer="trees"`` builds a scikit-learn ``HistGradientBoostingClassifier``
instead (``build(num_classes, *, features, seed, **options)``); it is exported as a
:class:`tagger.trees.TreeEnsemble` (backend ``trees``), which ``tagger tag`` runs with numpy alone.

The systems (from the write-ups the project grew out of; docs/training.md compares them):

=================  =========================  ==================================================
name               features                   network
=================  =========================  ==================================================
raw-cnn1d          waveform, 3 s at 8 kHz     4 x Conv1D-BN-ReLU-MaxPool (kernels 64..8), GAP
features-cnn       descriptor frames, 3 s     Normalization, 2 x Conv1D-BN-ReLU-MaxPool, dropout
features-dense     descriptor statistics, 3 s Normalization, Dense 256-128-64 with dropout
features-gbt       descriptor statistics, 3 s histogram gradient-boosted trees (scikit-learn)
mel-cnn            log-mel, 4 s every 2 s     4 x Conv2D-BN-ReLU-MaxPool, GAP, dropout
mel-cnn-small      log-mel, 4 s every 2 s     Conv2D 32 -> 64, max pooling, dropout, dense 128;
                                              pitch-shift and time-stretch augmentation
musicnn-transfer   musicnn log-mel, 3 s       pretrained musicnn, frozen, new softmax head
=================  =========================  ==================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tagger.errors import ParameterError
from tagger.features import FeatureParams


@dataclass(frozen=True)
class ArchSpec:
    name: str
    features: FeatureParams  # as extracted; mean/std are fitted on the training split if `normalise`
    build: Callable[..., Any]
    description: str = ""
    normalise: bool = True  # scalar mean/std of the training split's features go into FeatureParams
    batch_size: int = 32  # CPU; a GPU uses gpu_batch_size
    gpu_batch_size: int = 256
    learning_rate: float = 1e-3
    epochs: int = 40  # most epochs (early stopping on validation loss usually ends sooner)
    augment: tuple[str, ...] = ()  # default augmentation (see training.train.AUGMENTATIONS)
    options: dict[str, Any] = field(default_factory=dict)  # default builder options
    #: The deepest layer of a pretrained backbone whose outputs may be precomputed (nothing up to it
    #: behaves differently in training). Without augmentation, the frozen layers up to the first
    #: trainable one (at most this one) are run once per chunk and only the chain of layers after
    #: them is trained: the same model, trained in a fraction of the time.
    frozen_until: str | None = None
    credits: str = ""
    licence: str = ""
    trainer: str = "keras"  # "keras" or "trees" (see the module docstring)


REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec, *, replace: bool = False) -> ArchSpec:
    if spec.name in REGISTRY and not replace:
        raise ParameterError(f"architecture {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> ArchSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ParameterError(f"unknown architecture {name!r}: choose one of {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(REGISTRY)


def parse_options(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["filters=16,32", "dropout=0.3", "trainable_from=dense"]`` -> builder options.

    Values: ints, floats, ``true``/``false``, ``none``, comma lists of those, else strings.
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--arch-opt {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if not key.isidentifier():
            raise ParameterError(f"--arch-opt {item!r}: bad key")
        out[key] = _parse_value(value.strip())
    return out


def _parse_value(text: str) -> Any:
    if "," in text:
        return tuple(_parse_value(v.strip()) for v in text.split(",") if v.strip())
    low = text.lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# ---------------------------------------------------------------------------------------
# mel-cnn: the default from-scratch model
# ---------------------------------------------------------------------------------------

#: 4 s chunks every 2 s of a 128-band log-mel (dB) at 22050 Hz, hop 512.
MEL_CNN_FEATURES = FeatureParams(
    kind="logmel", sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128, log="db",
    chunk_frames=172, chunk_hop_frames=86,
)


def build_mel_cnn(num_classes: int, *, features: FeatureParams, filters: tuple[int, ...] | int = (16, 32, 64, 128),
                  dropout: float = 0.3, kernel: int = 3, bn_momentum: float = 0.9) -> Any:
    """Conv2D-BatchNorm-ReLU-MaxPool blocks, global average pooling, dropout, softmax.

    Input (chunk_frames, n_mels) log-mel, standardised; output (num_classes,) probabilities.
    With the default 4 blocks a 172x128 chunk is pooled to 10x8 before the global pooling.
    ``bn_momentum`` 0.9 (Keras: 0.99): small data sets give a few hundred steps in all, too few
    for 0.99's moving averages to forget their initial values.
    """
    import keras
    from keras import layers

    if isinstance(filters, int):
        filters = (filters,)
    inp = keras.Input(shape=features.input_shape, name="logmel")
    x = layers.Reshape((*features.input_shape, 1), name="channel")(inp)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(int(f), kernel, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=float(bn_momentum), name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(float(dropout), name="dropout")(x)
    # float32 output keeps softmax stable under mixed precision
    out = layers.Dense(num_classes, activation="softmax", dtype="float32", name="genre")(x)
    return keras.Model(inp, out, name="mel_cnn")


register(ArchSpec(
    name="mel-cnn",
    features=MEL_CNN_FEATURES,
    build=build_mel_cnn,
    description="chunked log-mel CNN trained from scratch (4 Conv2D blocks, GAP, softmax)",
    normalise=True,
    augment=("gain", "mask", "mixup"),  # best pooled validation accuracy (docs/training.md section 7)
))


# ---------------------------------------------------------------------------------------
# musicnn-transfer: the pretrained musicnn front end (training/musicnn.py) with a new head
# ---------------------------------------------------------------------------------------

MUSICNN_FEATURES = FeatureParams(
    kind="logmel", sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, log="log10p",
    chunk_frames=187, chunk_hop_frames=187,
)


def musicnn_available() -> bool:
    try:
        from training import musicnn
    except ImportError:
        return False
    return hasattr(musicnn, "build_transfer")


def build_musicnn_transfer(num_classes: int, *, features: FeatureParams, **options: Any) -> Any:
    """musicnn's pretrained network with a new softmax head (see training/musicnn.py).

    Options pass through to ``build_transfer``: backbone, head_units, dropout, trainable_from.
    """
    try:
        from training.musicnn import build_transfer
    except ImportError as exc:
        raise ParameterError(f"musicnn-transfer is not available: {exc}") from None
    if features.input_shape != MUSICNN_FEATURES.input_shape:
        raise ParameterError(f"musicnn-transfer needs chunks of {MUSICNN_FEATURES.input_shape}")
    return build_transfer(num_classes, **options)


register(ArchSpec(
    name="musicnn-transfer",
    features=MUSICNN_FEATURES,
    build=build_musicnn_transfer,
    description="pretrained musicnn (MSD) front end, frozen, with a new softmax head",
    normalise=False,  # musicnn was trained on raw log10(10000 S + 1)
    augment=(),
    epochs=100,  # a head on frozen features: a fraction of a second per epoch
    frozen_until="penultimate",
    credits="musicnn by Jordi Pons and Xavier Serra (MTG, Universitat Pompeu Fabra), ISC licence",
    licence="ISC (musicnn weights)",
))


# ---------------------------------------------------------------------------------------
# mel-cnn-small: the small 2-D CNN of the write-up that reported 42%
# ---------------------------------------------------------------------------------------

def build_mel_cnn_small(num_classes: int, *, features: FeatureParams, filters: tuple[int, ...] = (32, 64),
                        dense: int = 128, dropout: float = 0.25, dense_dropout: float = 0.5) -> Any:
    """Conv2D(32)-ReLU-MaxPool, Conv2D(64)-ReLU-MaxPool, dropout, flatten, Dense(128)-ReLU,
    dropout, softmax. No batch normalisation, no global pooling: the flatten makes it the largest
    network here by weights (11 M for a 172x128 chunk), small only in its convolutions."""
    import keras
    from keras import layers

    inp = keras.Input(shape=features.input_shape, name="logmel")
    x = layers.Reshape((*features.input_shape, 1), name="channel")(inp)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(int(f), 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Dropout(float(dropout), name="dropout1")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(int(dense), activation="relu", name="dense")(x)
    x = layers.Dropout(float(dense_dropout), name="dropout2")(x)
    out = layers.Dense(num_classes, activation="softmax", dtype="float32", name="genre")(x)
    return keras.Model(inp, out, name="mel_cnn_small")


register(ArchSpec(
    name="mel-cnn-small",
    features=MEL_CNN_FEATURES,
    build=build_mel_cnn_small,
    description="small log-mel CNN (Conv2D 32 -> 64, dense 128) with pitch-shift and time-stretch augmentation",
    normalise=True,
    augment=("pitch", "stretch"),
))


# ---------------------------------------------------------------------------------------
# raw-cnn1d: a 1-D CNN on the waveform
# ---------------------------------------------------------------------------------------

#: 3-s chunks every 1.5 s of the waveform resampled to 8 kHz (genre cues sit well below 4 kHz;
#: 8 kHz keeps the first convolution affordable on a CPU).
RAW_FEATURES = FeatureParams(kind="waveform", sample_rate=8000, chunk_frames=24000, chunk_hop_frames=12000)


def build_raw_cnn1d(num_classes: int, *, features: FeatureParams,
                    filters: tuple[int, ...] = (16, 32, 64, 128), kernels: tuple[int, ...] = (64, 32, 16, 8),
                    strides: tuple[int, ...] = (4, 2, 1, 1), pools: tuple[int, ...] = (4, 4, 4, 2),
                    dropout: float = 0.3) -> Any:
    """Conv1D-BatchNorm-ReLU-MaxPool blocks with shrinking kernels and strides, global average
    pooling, dropout, softmax. Input (chunk_samples, 1) standardised waveform."""
    import keras
    from keras import layers

    if not len(filters) == len(kernels) == len(strides) == len(pools):
        from tagger.errors import ParameterError

        raise ParameterError("raw-cnn1d: filters, kernels, strides and pools need the same length")
    inp = keras.Input(shape=features.input_shape, name="waveform")
    x = inp
    for i, (f, k, st, p) in enumerate(zip(filters, kernels, strides, pools), start=1):
        x = layers.Conv1D(int(f), int(k), strides=int(st), padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling1D(int(p), name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    x = layers.Dropout(float(dropout), name="dropout")(x)
    out = layers.Dense(num_classes, activation="softmax", dtype="float32", name="genre")(x)
    return keras.Model(inp, out, name="raw_cnn1d")


register(ArchSpec(
    name="raw-cnn1d",
    features=RAW_FEATURES,
    build=build_raw_cnn1d,
    description="1-D CNN on the raw waveform (8 kHz, 3-s chunks)",
    normalise=True,
    augment=("gain",),
))


# ---------------------------------------------------------------------------------------
# features-*: the classic hand-crafted descriptors (MFCC, chroma, contrast, roll-off, ZCR, ...)
# ---------------------------------------------------------------------------------------

#: librosa's descriptors over 3-s chunks every 1.5 s at 22050 Hz (frames of 2048, hop 512).
DESCRIPTOR_FEATURES = FeatureParams(
    kind="descriptors", sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128, log="none",
    chunk_frames=130, chunk_hop_frames=65, n_mfcc=20,
)
#: The same descriptors summarised per chunk (mean and standard deviation of each).
HANDCRAFTED_FEATURES = FeatureParams(
    kind="handcrafted", sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128, log="none",
    chunk_frames=130, chunk_hop_frames=65, n_mfcc=20,
)


def build_features_cnn(num_classes: int, *, features: FeatureParams, filters: tuple[int, ...] = (32, 64),
                       kernel: int = 5, dense: int = 64, dropout: float = 0.3) -> Any:
    """Per-descriptor scaling (Normalization), Conv1D-BN-ReLU-MaxPool over time, global average
    pooling, dense, dropout, softmax. Input (frames, descriptors)."""
    import keras
    from keras import layers

    inp = keras.Input(shape=features.input_shape, name="descriptors")
    x = layers.Normalization(axis=-1, name="scale")(inp)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv1D(int(f), int(kernel), padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling1D(2, name=f"pool{i}")(x)
        x = layers.Dropout(float(dropout) / 2, name=f"drop{i}")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    x = layers.Dense(int(dense), activation="relu", name="dense")(x)
    x = layers.Dropout(float(dropout), name="dropout")(x)
    out = layers.Dense(num_classes, activation="softmax", dtype="float32", name="genre")(x)
    return keras.Model(inp, out, name="features_cnn")


def build_features_dense(num_classes: int, *, features: FeatureParams, units: tuple[int, ...] = (256, 128, 64),
                         dropout: float = 0.3) -> Any:
    """Per-feature scaling (Normalization), Dense-ReLU-Dropout layers, softmax. Input (n_features,)."""
    import keras
    from keras import layers

    if isinstance(units, int):
        units = (units,)
    inp = keras.Input(shape=features.input_shape, name="features")
    x = layers.Normalization(axis=-1, name="scale")(inp)
    for i, u in enumerate(units, start=1):
        x = layers.Dense(int(u), activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(float(dropout), name=f"dropout{i}")(x)
    out = layers.Dense(num_classes, activation="softmax", dtype="float32", name="genre")(x)
    return keras.Model(inp, out, name="features_dense")


def build_features_gbt(num_classes: int, *, features: FeatureParams, seed: int = 0, max_iter: int = 300,
                       learning_rate: float = 0.1, max_leaf_nodes: int = 15, min_samples_leaf: int = 20,
                       l2_regularization: float = 1.0) -> Any:
    """scikit-learn's HistGradientBoostingClassifier (the same histogram-binned gradient boosting
    as XGBoost's ``hist`` method and LightGBM). No early stopping of its own: the number of trees
    is chosen on our validation tracks (training.train), never on chunks of training tracks."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=int(max_iter), learning_rate=float(learning_rate), max_leaf_nodes=int(max_leaf_nodes),
        min_samples_leaf=int(min_samples_leaf), l2_regularization=float(l2_regularization),
        early_stopping=False, random_state=int(seed),
    )


register(ArchSpec(
    name="features-cnn",
    features=DESCRIPTOR_FEATURES,
    build=build_features_cnn,
    description="small CNN on frame-wise MFCC, chroma, contrast, roll-off, ZCR (3-s chunks)",
    normalise=False,  # per-descriptor scaling inside the network
    augment=(),
))
register(ArchSpec(
    name="features-dense",
    features=HANDCRAFTED_FEATURES,
    build=build_features_dense,
    description="dense network with dropout on per-chunk descriptor statistics",
    normalise=False,
    augment=(),
    batch_size=64,
))
register(ArchSpec(
    name="features-gbt",
    features=HANDCRAFTED_FEATURES,
    build=build_features_gbt,
    description="gradient-boosted trees (scikit-learn HistGradientBoosting) on per-chunk descriptor statistics",
    normalise=False,
    augment=(),
    trainer="trees",
))
