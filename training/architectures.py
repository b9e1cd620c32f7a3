"""Architecture registry: a name -> how to feed and build a model.

Adding a system is one :func:`register` call with an :class:`ArchSpec`; the training commands
(`--arch NAME`) and the exported metadata (``architecture``) use the name. Builders import Keras
(or their own module) lazily, so listing the registry is instant.

A builder is ``build(num_classes, *, features, **options) -> keras.Model`` taking one chunk of
``features.input_shape`` and giving ``num_classes`` probabilities (softmax), stock Keras layers
only (``tagger tag`` loads models with ``safe_mode`` and no custom objects). ``options`` come
from ``--arch-opt KEY=VALUE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

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
        from training import musicnn  # noqa: F401
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
