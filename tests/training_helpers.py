"""Helpers for the training tests: a tiny synthetic GTZAN-shaped tree.

Three "genres" with clearly different timbres (so a small CNN learns something in a few epochs):

- ``drone``: low harmonic tones (110-220 Hz fundamentals, 6 harmonics), slow tremolo
- ``hiss``: band-passed noise bursts around 3-6 kHz
- ``chirp``: rising sine sweeps 500-2000 Hz repeated every half second

Every clip is seeded by (genre, index), so the tree is identical on every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 22050
GENRES = ("chirp", "drone", "hiss")


def synth(genre: str, index: int, *, seconds: float = 8.0, sr: int = SR) -> np.ndarray:
    """One clip, shape (n,), float32 in [-1, 1]."""
    rng = np.random.default_rng([GENRES.index(genre), index, 12345])
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if genre == "drone":
        f0 = rng.uniform(110, 220)
        y = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 7))
        y *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t)
    elif genre == "hiss":
        noise = rng.standard_normal(n)
        spec = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(n, 1 / sr)
        lo = rng.uniform(2500, 3500)
        spec[(freqs < lo) | (freqs > lo + 3000)] = 0
        y = np.fft.irfft(spec, n)
        gate = (np.sin(2 * np.pi * rng.uniform(1.5, 3.0) * t) > -0.3).astype(float)
        y *= gate
    elif genre == "chirp":
        period = 0.5
        phase_t = np.mod(t, period)
        f = 500 + 1500 * phase_t / period
        y = np.sin(2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 6.28))
    else:
        raise ValueError(genre)
    y = y / (np.max(np.abs(y)) + 1e-9) * rng.uniform(0.3, 0.8)
    y += 0.003 * rng.standard_normal(n)
    return y.astype(np.float32)


def make_tree(root: Path, *, per_genre: int = 4, seconds: float = 8.0, genres=GENRES, subdir: str = "genres",
              ext: str = "wav") -> Path:
    """Write ``root/<subdir>/<genre>/<genre>.0000i.<ext>``; returns ``root``."""
    import soundfile as sf

    base = root / subdir if subdir else root
    for g in genres:
        d = base / g
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_genre):
            sf.write(str(d / f"{g}.{i:05d}.{ext}"), synth(g, i, seconds=seconds), SR, subtype="PCM_16")
    return root


def invoke(*args) -> str:
    """``tagger train ARGS`` through CliRunner; asserts exit 0 and returns the output."""
    from click.testing import CliRunner

    from training.cli import train

    res = CliRunner().invoke(train, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output
