"""A synthetic music library for benchmarks: music-like tracks, made here, in MP3, FLAC and M4A.

Each track is rendered from a seeded "style" (tempo, key, scale, swing, drum pattern, timbres,
distortion, echo) and a song structure (intro, verses, choruses, a bridge, an outro; every section
has its own chord progression, density and instrumentation), so that a genre model sees drums,
bass lines, chords and melodies that change over the track and its predictions differ from track
to track instead of being ties. Audio is 44.1 kHz stereo, like a ripped or bought library, and
encoded with PyAV (libmp3lame MP3 192 kbit/s, AAC-LC M4A 160 kbit/s) and soundfile (FLAC 16 bit).

    from musiclib import build_library
    paths = build_library(Path("lib"), n=30, seconds=(180, 240), seed=0)

Nothing is downloaded; the same (n, seconds, seed) always gives the same audio.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 44100
FORMATS = ("mp3", "flac", "m4a")
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}
TIMBRES = ("sine", "organ", "saw", "square", "pluck", "fm")
PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4), (0, 0, 3, 4), (1, 4, 0, 0), (0, 6, 5, 4))


@dataclass(frozen=True)
class Style:
    """Everything that makes one track sound unlike another."""

    bpm: float
    root: int  # MIDI note of the key's tonic (bass octave)
    scale: str
    swing: float  # 0 straight .. 0.3 heavy shuffle
    kick: tuple[int, ...]  # 16 steps, 1 = hit
    snare: tuple[int, ...]
    hat: tuple[int, ...]
    lead: str
    pad: str
    bass: str
    drive: float  # 0 clean .. 1 heavily distorted
    echo: float  # feedback of a stereo echo
    drums: float  # drum level
    noise: float  # level of a noise bed (tape hiss, crowd, rain)
    density: float  # melody notes per beat


def random_style(rng: np.random.Generator) -> Style:
    def pattern(p: float, fixed: tuple[int, ...] = ()) -> tuple[int, ...]:
        steps = (rng.random(16) < p).astype(int)
        for i in fixed:
            steps[i] = 1
        return tuple(int(s) for s in steps)

    kind = int(rng.integers(0, 4))  # rough families: four-on-the-floor, backbeat, sparse, busy
    if kind == 0:
        kick, snare, hat = pattern(0.0, (0, 4, 8, 12)), pattern(0.05, (4, 12)), pattern(0.3, (2, 6, 10, 14))
    elif kind == 1:
        kick, snare, hat = pattern(0.15, (0, 8)), pattern(0.05, (4, 12)), pattern(0.0, tuple(range(0, 16, 2)))
    elif kind == 2:
        kick, snare, hat = pattern(0.05, (0,)), pattern(0.0, (8,)), pattern(0.15)
    else:
        kick, snare, hat = pattern(0.35, (0, 10)), pattern(0.2, (4, 12)), pattern(0.0, tuple(range(16)))
    return Style(
        bpm=float(rng.uniform(68, 172)),
        root=int(rng.integers(33, 45)),
        scale=str(rng.choice(list(SCALES))),
        swing=float(rng.choice([0.0, 0.0, 0.12, 0.25])),
        kick=kick, snare=snare, hat=hat,
        lead=str(rng.choice(TIMBRES)), pad=str(rng.choice(TIMBRES)),
        bass=str(rng.choice(("sine", "saw", "square", "pluck"))),
        drive=float(rng.choice([0.0, 0.0, 0.3, 0.8])),
        echo=float(rng.uniform(0.0, 0.45)),
        drums=float(rng.choice([0.0, 0.5, 0.8, 1.0])),
        noise=float(rng.choice([0.0, 0.005, 0.02])),
        density=float(rng.uniform(0.5, 3.0)),
    )


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


class _Synth:
    """Renders notes of one timbre; caches each (pitch, length) it has rendered."""

    def __init__(self, timbre: str, sr: int):
        self.timbre, self.sr, self.cache = timbre, sr, {}

    def note(self, midi: int, n: int) -> np.ndarray:
        key = (midi, n)
        if key not in self.cache:
            self.cache[key] = self._render(_midi_hz(midi), n)
        return self.cache[key]

    def _render(self, f: float, n: int) -> np.ndarray:
        t = np.arange(n, dtype=np.float32) / self.sr
        ph = 2 * np.pi * f * t
        k = self.timbre
        if k == "sine":
            y = np.sin(ph)
        elif k == "organ":
            y = np.sin(ph) + 0.5 * np.sin(2 * ph) + 0.3 * np.sin(3 * ph) + 0.2 * np.sin(4 * ph)
        elif k == "saw":
            y = sum(np.sin(h * ph) / h for h in range(1, max(2, min(24, int(8000 / f)))))
        elif k == "square":
            y = sum(np.sin(h * ph) / h for h in range(1, max(2, min(24, int(8000 / f))), 2))
        elif k == "pluck":
            y = sum(np.sin(h * ph) * np.exp(-t * 3 * h) / h for h in range(1, 8))
        else:  # fm
            y = np.sin(ph + 2.5 * np.exp(-3 * t) * np.sin(2 * ph * 1.5))
        attack = min(n, int(0.01 * self.sr))
        env = np.ones(n, np.float32)
        env[:attack] = np.linspace(0, 1, attack, dtype=np.float32)
        release = min(n, int(0.05 * self.sr))
        env[n - release:] *= np.linspace(1, 0, release, dtype=np.float32)
        if k in ("pluck", "fm"):
            env *= np.exp(-t * 2.0)
        return (np.asarray(y, np.float32) * env).astype(np.float32)


def _drum(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "kick":
        n = int(0.35 * sr)
        t = np.arange(n) / sr
        f = 45 + 110 * np.exp(-t * 30)
        return (np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 9)).astype(np.float32)
    if kind == "snare":
        n = int(0.2 * sr)
        t = np.arange(n) / sr
        body = 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 25)
        return (body + 0.7 * rng.standard_normal(n) * np.exp(-t * 18)).astype(np.float32)
    n = int(0.05 * sr)  # closed hi-hat: high-passed noise burst
    noise = rng.standard_normal(n + 1)
    return (0.4 * np.diff(noise) * np.exp(-np.arange(n) / sr * 80)).astype(np.float32)


def render(style: Style, seconds: float, *, seed: int, sr: int = SR) -> np.ndarray:
    """One track, float32 stereo, shape (2, n_samples), peak about 0.9."""
    rng = np.random.default_rng(seed)
    n_total = int(seconds * sr)
    out = np.zeros((2, n_total + sr), np.float32)
    beat = 60.0 / style.bpm
    step = beat / 4
    bar = 4 * beat
    scale = SCALES[style.scale]
    lead, pad, bass = _Synth(style.lead, sr), _Synth(style.pad, sr), _Synth(style.bass, sr)
    drums = {k: _drum(k, sr, rng) for k in ("kick", "snare", "hat")}

    def degree(d: int, octave: int = 0) -> int:
        return style.root + 12 * (octave + d // len(scale)) + scale[d % len(scale)]

    def add(sig: np.ndarray, t: float, gain: float, pan: float) -> None:
        i = int(t * sr)
        if i >= n_total:
            return
        j = min(n_total + sr, i + sig.shape[0])
        seg = sig[: j - i] * gain
        out[0, i:j] += seg * (1 - pan)
        out[1, i:j] += seg * (1 + pan)

    # song structure: (name, bars, progression, drums on, melody density factor, pad on)
    kinds = ["intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"]
    sections = []
    for name in kinds:
        prog = PROGRESSIONS[int(rng.integers(0, len(PROGRESSIONS)))]
        sections.append((name, 8 if name not in ("intro", "outro") else 4, prog))
    t = 0.0
    si = 0
    while t < seconds:
        name, bars, prog = sections[si % len(sections)]
        si += 1
        loud = {"intro": 0.5, "verse": 0.75, "chorus": 1.0, "bridge": 0.6, "outro": 0.5}[name]
        for b in range(bars):
            if t >= seconds:
                break
            chord = prog[b % len(prog)]
            # pad: a triad held for the bar
            if name != "intro" or b % 2 == 0:
                for d in (0, 2, 4):
                    add(pad.note(degree(chord + d, 2), int(bar * sr)), t, 0.05 * loud, -0.3 + 0.3 * d / 2)
            # bass: root on beats, passing notes in busy sections
            for k in range(4):
                d = chord if (k % 2 == 0 or name == "verse") else chord + 4
                add(bass.note(degree(d, 0), int(beat * 0.9 * sr)), t + k * beat, 0.22 * loud, 0.0)
            # drums
            if style.drums > 0 and name not in ("intro",):
                for s in range(16):
                    ts = t + s * step + (style.swing * step if s % 2 else 0.0)
                    if style.kick[s]:
                        add(drums["kick"], ts, 0.5 * style.drums, 0.0)
                    if style.snare[s] and name != "bridge":
                        add(drums["snare"], ts, 0.25 * style.drums, 0.1)
                    if style.hat[s]:
                        add(drums["hat"], ts, 0.12 * style.drums * (0.6 + 0.4 * rng.random()), 0.4)
            # melody: a random walk in the scale, denser in choruses
            dens = style.density * {"chorus": 1.5, "bridge": 0.6}.get(name, 1.0)
            notes = max(1, int(rng.poisson(4 * dens)))
            pos = np.sort(rng.integers(0, 16, notes))
            d = chord + 7
            for p in pos:
                d += int(rng.integers(-2, 3))
                d = int(np.clip(d, 3, 16))
                length = int(step * sr * rng.choice([1, 2, 2, 4]))
                add(lead.note(degree(d, 2), length), t + p * step, 0.12 * loud, float(rng.uniform(-0.5, 0.5)))
            t += bar
    y = out[:, :n_total]
    if style.echo > 0:  # a stereo echo: left delayed by 3/8 beat, right by 1/2 beat
        for ch, frac in ((0, 0.375), (1, 0.5)):
            lag = int(frac * beat * sr)
            src = y[ch].copy()
            for k in range(1, 4):
                y[ch, lag * k:] += (style.echo ** k) * src[: n_total - lag * k]
    if style.drive > 0:
        y = np.tanh(y * (1 + 6 * style.drive)) / np.tanh(1 + 6 * style.drive)
    if style.noise > 0:
        y = y + style.noise * rng.standard_normal(y.shape).astype(np.float32)
    # fade in/out, normalise
    fade = int(min(2.0, seconds / 10) * sr)
    ramp = np.linspace(0, 1, fade, dtype=np.float32)
    y[:, :fade] *= ramp
    y[:, n_total - fade:] *= ramp[::-1]
    return (0.9 * y / max(1e-6, float(np.max(np.abs(y))))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------------------------

def encode(path: Path, x: np.ndarray, *, sr: int = SR) -> None:
    """Write stereo float32 ``x`` (2, n) as ``path`` (format from its extension)."""
    ext = path.suffix.lower().lstrip(".")
    if ext == "flac":
        import soundfile as sf

        with sf.SoundFile(str(path), "w", samplerate=sr, channels=x.shape[0], format="FLAC", subtype="PCM_16") as f:
            for start in range(0, x.shape[1], 1 << 16):
                f.write(np.ascontiguousarray(x[:, start:start + (1 << 16)].T))
        return
    # the encoders' fastest settings: building a library is set-up, not what is measured
    codec, container, rate, options = {
        "mp3": ("libmp3lame", "mp3", 192_000, {"compression_level": "9"}),
        "m4a": ("aac", "ipod", 160_000, {"aac_coder": "fast"}),
    }[ext]
    import av

    layout = "stereo" if x.shape[0] == 2 else "mono"
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sr, layout=layout, options=options)
        stream.bit_rate = rate
        block = 1152 * 8
        for start in range(0, x.shape[1], block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, start:start + block]), format="fltp",
                                               layout=layout)
            frame.sample_rate = sr
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def build_long_file(path: Path, seconds: float, *, seed: int = 7, piece: float = 300.0) -> Path:
    """One very long track (a DJ mix, an audiobook): a ``piece``-second track rendered once and
    encoded again and again, streamed to the encoder (never the whole track in memory)."""
    path = Path(path)
    if path.exists():
        return path
    import av

    x = render(random_style(np.random.default_rng(seed)), piece, seed=seed)
    ext = path.suffix.lower().lstrip(".")
    codec, container, options = {"m4a": ("aac", "ipod", {"aac_coder": "fast"}),
                                 "mp3": ("libmp3lame", "mp3", {"compression_level": "9"})}[ext]
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    total = int(seconds * SR)
    with av.open(str(tmp), "w", format=container) as out:
        stream = out.add_stream(codec, rate=SR, layout="stereo", options=options)
        stream.bit_rate = 128_000
        block, pos = 1152 * 8, 0
        while pos < total:
            i = pos % x.shape[1]
            part = x[:, i:min(i + block, x.shape[1], i + total - pos)]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format="fltp", layout="stereo")
            frame.sample_rate = SR
            frame.pts = pos
            for packet in stream.encode(frame):
                out.mux(packet)
            pos += part.shape[1]
        for packet in stream.encode(None):
            out.mux(packet)
    os.replace(tmp, path)
    return path


def _make_one(args: tuple[str, float, int, str]) -> str:
    path, seconds, seed, _fmt = args
    rng = np.random.default_rng(seed)
    style = random_style(rng)
    x = render(style, seconds, seed=seed)
    p = Path(path)
    tmp = p.with_name(p.stem + ".part" + p.suffix)
    encode(tmp, x)
    os.replace(tmp, p)
    return path


def plan(n: int, *, seconds: tuple[float, float], seed: int,
         formats: tuple[str, ...] = FORMATS) -> list[tuple[str, float, int, str]]:
    """(relative path, length in seconds, seed, format) of each of ``n`` tracks.

    Track i depends on (seed, i) only, so a library of n tracks is the start of a larger one.
    """
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        length = float(rng.uniform(seconds[0], seconds[1])) if seconds[1] > seconds[0] else float(seconds[0])
        fmt = formats[i % len(formats)]
        rel = f"artist{i // 50:03d}/album{(i // 10) % 5}/{i:05d} track.{fmt}"
        out.append((rel, round(length, 2), int(rng.integers(0, 2**31 - 1)), fmt))
    return out


def build_library(root: Path, n: int, *, seconds: tuple[float, float] = (180.0, 240.0), seed: int = 0,
                  formats: tuple[str, ...] = FORMATS, processes: int = 1) -> list[Path]:
    """Make (or complete) the library in ``root``; existing tracks are kept. Returns the paths."""
    root = Path(root)
    todo, paths = [], []
    for rel, length, s, fmt in plan(n, seconds=seconds, seed=seed, formats=formats):
        p = root / rel
        paths.append(p)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            todo.append((str(p), length, s, fmt))
    if todo:
        if processes > 1:
            with ProcessPoolExecutor(processes) as pool:
                list(pool.map(_make_one, todo))
        else:
            for item in todo:
                _make_one(item)
    return paths


def audio_files(root: Path) -> list[Path]:
    """Audio files under ``root`` (what tagger would discover), sorted."""
    exts = {".mp3", ".flac", ".m4a", ".ogg", ".opus", ".wav", ".aiff", ".aif", ".wma"}
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in exts
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def duration_of(path: Path) -> float:
    from tagger.decode import probe

    return probe(path).duration


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


if __name__ == "__main__":  # python bench/musiclib.py DIR N
    import sys
    import time

    t = time.perf_counter()
    ps = build_library(Path(sys.argv[1]), int(sys.argv[2]), processes=int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    print(f"{len(ps)} tracks in {time.perf_counter() - t:.1f} s, "
          f"{_hours(sum(duration_of(p) for p in ps))} of audio; {math.fsum(p.stat().st_size for p in ps) / 1e6:.0f} MB")
