#!/usr/bin/env python
"""Generate tiny, real audio fixtures of every format tagger supports.

    python tests/make_fixtures.py DEST_DIR

or, from Python, ``make_fixtures(dest_dir) -> {kind: {state: Path}}``.

Kinds: ``mp3 flac ogg opus m4a_aac m4a_alac wav aiff wma`` (1.5 s of a seeded tone + noise);
states: ``genre`` (the genre "Jazz", a title and an artist written by a person, i.e. by plain
mutagen, no provenance), ``bare`` (no tags at all) and ``garbage`` (seeded bytes with the extension).

Encoders: PyAV (FFmpeg's libmp3lame, aac, alac, libopus, wmav2) and soundfile/libsndfile (FLAC,
WAV, AIFF, and Ogg Vorbis, written in blocks of 4096 frames: one large Vorbis write crashes
libsndfile). Opus only exists at 48 kHz; the others use 22050 or 44100 Hz. Everything is seeded
and Ogg serial numbers are fixed, so the same versions of the libraries give byte-identical files.

Nothing here imports tagger: the fixtures are written the way other software writes them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SECONDS = 1.5
KINDS = ("mp3", "flac", "ogg", "opus", "m4a_aac", "m4a_alac", "wav", "aiff", "wma")
STATES = ("genre", "bare", "garbage")
EXT = {
    "mp3": ".mp3",
    "flac": ".flac",
    "ogg": ".ogg",
    "opus": ".opus",
    "m4a_aac": ".m4a",
    "m4a_alac": ".m4a",
    "wav": ".wav",
    "aiff": ".aiff",
    "wma": ".wma",
}
#: The tagger format name each kind must be detected as.
FORMAT = {
    "mp3": "mp3",
    "flac": "flac",
    "ogg": "ogg",
    "opus": "opus",
    "m4a_aac": "m4a",
    "m4a_alac": "m4a",
    "wav": "wav",
    "aiff": "aiff",
    "wma": "wma",
}
#: (sample rate, channels) of each kind.
LAYOUT = {
    "mp3": (44100, 2),
    "flac": (44100, 2),
    "ogg": (22050, 1),
    "opus": (48000, 2),
    "m4a_aac": (44100, 2),
    "m4a_alac": (22050, 1),
    "wav": (22050, 1),
    "aiff": (44100, 2),
    "wma": (44100, 2),
}
PERSON_GENRE = "Jazz"
PERSON_TITLE = "Fixture tone"
PERSON_ARTIST = "Tagger Test Ensemble"


def signal(*, rate: int, channels: int, seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """A seeded tone plus noise, float32, shape (channels, n_samples), peak below 0.6."""
    rng = np.random.default_rng(seed)
    n = round(rate * seconds)
    t = np.arange(n) / rate
    rows = []
    for ch in range(channels):
        tone = 0.35 * np.sin(2 * np.pi * (440.0 + 110.0 * ch) * t) + 0.1 * np.sin(2 * np.pi * 1320.0 * t)
        rows.append(tone + 0.05 * rng.standard_normal(n))
    return np.asarray(rows, dtype=np.float32)


def _encode_av(
    path: Path, *, container: str, codec: str, x: np.ndarray, rate: int, bit_rate: int | None
) -> None:
    import av

    channels = x.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if bit_rate:
            stream.bit_rate = bit_rate
        block = 4096
        for start in range(0, x.shape[1], block):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[:, start : start + block]), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _encode_sndfile(path: Path, *, fmt: str, subtype: str, x: np.ndarray, rate: int) -> None:
    import soundfile as sf

    data = np.ascontiguousarray(x.T)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=x.shape[0], format=fmt, subtype=subtype) as f:
        for start in range(0, data.shape[0], 4096):
            f.write(data[start : start + 4096])


def _encode(kind: str, path: Path, seed: int) -> None:
    rate, channels = LAYOUT[kind]
    x = signal(rate=rate, channels=channels, seed=seed)
    if kind == "mp3":
        _encode_av(path, container="mp3", codec="libmp3lame", x=x, rate=rate, bit_rate=128_000)
    elif kind == "opus":
        _encode_av(path, container="ogg", codec="libopus", x=x, rate=rate, bit_rate=64_000)
    elif kind == "m4a_aac":
        _encode_av(path, container="ipod", codec="aac", x=x, rate=rate, bit_rate=96_000)
    elif kind == "m4a_alac":
        _encode_av(path, container="ipod", codec="alac", x=x, rate=rate, bit_rate=None)
    elif kind == "wma":
        _encode_av(path, container="asf", codec="wmav2", x=x, rate=rate, bit_rate=96_000)
    elif kind == "flac":
        _encode_sndfile(path, fmt="FLAC", subtype="PCM_16", x=x, rate=rate)
    elif kind == "ogg":
        _encode_sndfile(path, fmt="OGG", subtype="VORBIS", x=x, rate=rate)
    elif kind == "wav":
        _encode_sndfile(path, fmt="WAV", subtype="PCM_16", x=x, rate=rate)
    elif kind == "aiff":
        _encode_sndfile(path, fmt="AIFF", subtype="PCM_16", x=x, rate=rate)
    else:
        raise ValueError(f"unknown fixture kind {kind!r}")


def _fix_ogg_serial(path: Path, serial: int) -> None:
    """Give the Ogg stream a fixed serial number (libsndfile and FFmpeg pick a random one)."""
    from mutagen.ogg import OggPage

    pages = []
    with open(path, "rb") as f:
        while True:
            try:
                pages.append(OggPage(f))
            except EOFError:
                break
    for page in pages:
        page.serial = serial
    path.write_bytes(b"".join(page.write() for page in pages))


def _strip_tags(path: Path) -> None:
    """Remove every tag the encoder wrote (FFmpeg adds an encoder tag)."""
    import mutagen

    f = mutagen.File(str(path))
    if f is not None and f.tags is not None:
        f.delete()


def _write_person_tags(kind: str, path: Path) -> None:
    """Genre, title and artist as a person's tagger (plain mutagen) writes them."""
    import mutagen

    f = mutagen.File(str(path))
    if FORMAT[kind] in ("mp3", "wav", "aiff"):
        from mutagen.id3 import TCON, TIT2, TPE1

        if f.tags is None:
            f.add_tags()
        f.tags.add(TCON(encoding=3, text=[PERSON_GENRE]))
        f.tags.add(TIT2(encoding=3, text=[PERSON_TITLE]))
        f.tags.add(TPE1(encoding=3, text=[PERSON_ARTIST]))
        f.save(v2_version=4)
        return
    if f.tags is None:
        f.add_tags()
    if FORMAT[kind] in ("flac", "ogg", "opus"):
        f.tags["TITLE"] = [PERSON_TITLE]
        f.tags["ARTIST"] = [PERSON_ARTIST]
        f.tags["GENRE"] = [PERSON_GENRE]
    elif FORMAT[kind] == "m4a":
        f.tags["\xa9nam"] = [PERSON_TITLE]
        f.tags["\xa9ART"] = [PERSON_ARTIST]
        f.tags["\xa9gen"] = [PERSON_GENRE]
    elif FORMAT[kind] == "wma":
        f.tags["Title"] = [PERSON_TITLE]
        f.tags["Author"] = [PERSON_ARTIST]
        f.tags["WM/Genre"] = [PERSON_GENRE]
    f.save()


def _garbage(path: Path, seed: int) -> None:
    """Seeded bytes below 0x80: never a container signature or an MPEG frame sync."""
    rng = np.random.default_rng(seed)
    path.write_bytes(rng.integers(0, 0x80, size=4096, dtype=np.uint8).tobytes())


def make_fixtures(dest_dir: str | Path) -> dict[str, dict[str, Path]]:
    """Write every kind in every state into ``dest_dir``; ``{kind: {state: path}}``.

    File names are ``<kind>-<state><ext>`` (``m4a_alac-genre.m4a``).
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, Path]] = {}
    for i, kind in enumerate(KINDS):
        ext = EXT[kind]
        paths = {state: dest / f"{kind}-{state}{ext}" for state in STATES}
        _encode(kind, paths["bare"], seed=i)
        if kind in ("ogg", "opus"):
            _fix_ogg_serial(paths["bare"], serial=0x7A6700 + i)
        _strip_tags(paths["bare"])
        paths["genre"].write_bytes(paths["bare"].read_bytes())
        _write_person_tags(kind, paths["genre"])
        _garbage(paths["garbage"], seed=1000 + i)
        out[kind] = paths
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} DEST_DIR", file=sys.stderr)
        return 2
    made = make_fixtures(argv[1])
    for kind, paths in made.items():
        for state, path in paths.items():
            print(f"{kind:9} {state:8} {path.stat().st_size:8d}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
