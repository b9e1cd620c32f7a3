"""Small generated libraries for ``tagger learn`` / ``tagger.library`` tests, and a tiny random
model with a backbone embedding (tests only, never shipped).

The library holds album folders of FLAC files of three clearly different generated sounds (the
genres a head can learn apart), with the genres written the messy ways people write them:
case and spacing variants, several genres in one value, an ID3v1 number; some files untagged,
some tagged by tagger itself (provenance), one corrupt file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.conftest import TINY_FEATURES

RATE = 16000
SECONDS = 3.0

#: genre -> the ways its albums spell it (one spelling per album, in turn)
SPELLINGS = {
    "Classical": ["Classical", "classical", "(32)", "CLASSICAL "],
    "Metal": ["Metal", "metal", "Metal; Rock", "(9)"],
    "Electronic": ["Electronic", "electronic", "Electronic/Dance", "ELECTRONIC"],
}


def sound(genre: str, seed: int, seconds: float = SECONDS, rate: int = RATE) -> np.ndarray:
    """A clip of the genre's generated sound: Classical = slow low harmonic tones, Metal = loud
    broadband noise with a buzzing fifth, Electronic = a kick pulse train with a square lead."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    if genre == "Classical":
        f0 = rng.uniform(180, 320)
        y = sum(0.25 / k * np.sin(2 * np.pi * f0 * k * t) for k in (1, 2, 3)) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
        y = y + 0.005 * rng.standard_normal(t.size)
    elif genre == "Metal":
        f0 = rng.uniform(80, 140)
        y = 0.35 * rng.standard_normal(t.size) + 0.3 * np.sign(np.sin(2 * np.pi * f0 * t)) \
            + 0.2 * np.sign(np.sin(2 * np.pi * 1.5 * f0 * t))
    elif genre == "Electronic":
        bpm = rng.uniform(118, 132)
        beat = (t * bpm / 60.0) % 1.0
        kick = np.exp(-beat * 18.0) * np.sin(2 * np.pi * 55.0 * t)
        lead = 0.12 * np.sign(np.sin(2 * np.pi * rng.uniform(1800, 2400) * t)) * (beat < 0.5)
        y = 0.7 * kick + lead + 0.01 * rng.standard_normal(t.size)
    else:
        raise ValueError(genre)
    y = np.asarray(y, np.float64)
    return (0.8 * y / max(1e-9, float(np.abs(y).max()))).astype(np.float32)


def write_flac(path: Path, y: np.ndarray, *, genres: list[str] | None = None, album: str = "", artist: str = "",
               albumartist: str = "") -> Path:
    import mutagen.flac
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, RATE, format="FLAC", subtype="PCM_16")
    f = mutagen.flac.FLAC(path)
    if f.tags is None:
        f.add_tags()
    for key, value in (("ALBUM", album), ("ARTIST", artist), ("ALBUMARTIST", albumartist)):
        if value:
            f.tags[key] = [value]
    if genres:
        f.tags["GENRE"] = list(genres)
    f.save()
    return path


def tag_as_tagger(path: Path, genres: list[str], model_id: str = "0123456789abcdef") -> None:
    """Write genres the way ``tagger tag`` does (with its provenance): tagger's own, not a person's."""
    from tagger import tags

    prov = tags.Provenance(model_id=model_id, genres=tuple(genres), scores=tuple(0.9 for _ in genres),
                           date="2026-01-01T00:00:00Z", tool="tagger test")
    tags.write_genres(str(path), genres, prov)


@dataclass
class Library:
    root: Path
    truth: dict[str, str] = field(default_factory=dict)  # path -> the genre of its sound (every audio file)
    person: dict[str, list[str]] = field(default_factory=dict)  # path -> genre values a person wrote
    untagged: list[str] = field(default_factory=list)
    tagger_owned: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    album_of: dict[str, str] = field(default_factory=dict)  # path -> album title
    artist_of: dict[str, str] = field(default_factory=dict)


def make_library(root: Path, *, albums_per_genre: int = 3, tracks_per_album: int = 4, untagged_albums: int = 0,
                 genres: tuple[str, ...] = ("Classical", "Metal", "Electronic"), seed: int = 0,
                 corrupt: bool = True, tagger_owned: int = 1, seconds: float = SECONDS) -> Library:
    """Album folders ``root/<Artist>/<Album>/NN.flac``, an artist per album. Each genre's albums
    spell it in turn as :data:`SPELLINGS` lists; the last ``untagged_albums`` albums of each genre
    carry no genre (held out), ``tagger_owned`` tracks of the first album of the first genre get a
    tagger-written genre instead of a person's (a wrong one), and a corrupt ``broken.flac`` lies at
    the top when ``corrupt``."""
    lib = Library(root)
    n = 0
    for g, genre in enumerate(genres):
        for a in range(albums_per_genre):
            artist = f"{genre} Artist {a + 1}"
            album = f"{genre} Album {a + 1}"
            spelled = SPELLINGS[genre][a % len(SPELLINGS[genre])]
            held_out = a >= albums_per_genre - untagged_albums
            for k in range(tracks_per_album):
                p = root / artist / album / f"{k + 1:02d} {genre[:3]}.flac"
                values = None if held_out else [spelled]
                write_flac(p, sound(genre, seed * 1000 + n, seconds), genres=values, album=album, artist=artist,
                           albumartist=artist)
                n += 1
                s = str(p)
                lib.truth[s], lib.album_of[s], lib.artist_of[s] = genre, album, artist
                if held_out:
                    lib.untagged.append(s)
                elif g == 0 and a == 0 and k < tagger_owned:
                    tag_as_tagger(p, ["Jazz"])
                    lib.tagger_owned.append(s)
                else:
                    lib.person[s] = [spelled]
    if corrupt:
        bad = root / "broken.flac"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_bytes(b"fLaC" + bytes(np.random.default_rng(seed).integers(0, 0x80, 2000, dtype=np.uint8)))
        lib.corrupt.append(str(bad))
    return lib


def model_with_embedding(out: Path, *, seed: int = 0, labels: tuple[str, ...] = ("blues", "classical", "rock")):
    """A tiny randomly initialised model (tests only) with a 16-unit ``penultimate`` embedding
    layer before a softmax head, on the small test features (8 kHz log-mels, 0.5 s chunks)."""
    import keras

    from tagger.features import FeatureParams
    from tagger.modelmeta import save_bundle

    keras.utils.set_random_seed(seed)
    fp = FeatureParams(**TINY_FEATURES)
    x = keras.Input(fp.input_shape)
    h = keras.layers.Reshape((*fp.input_shape, 1))(x)
    h = keras.layers.Conv2D(8, 3, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(16, activation="tanh")(h)
    emb = keras.layers.BatchNormalization(name="penultimate")(h)
    out_t = keras.layers.Dense(len(labels), activation="softmax")(emb)
    return save_bundle(keras.Model(x, out_t), out, name="model", meta_fields=dict(
        name="tiny-emb", architecture="tiny-test", labels=list(labels), output_activation="softmax",
        features=fp, training={"description": "random weights, tests only"}))
