"""The generated audio fixtures are what they claim to be (tests/make_fixtures.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mutagen
import numpy as np
import pytest

from tests.fixture_helpers import (
    EXT,
    FORMAT,
    KINDS,
    STATES,
    audio_fixtures,
    audio_packets,
    audio_samples,
    fixtures_in,
)
from tests.make_fixtures import (
    LAYOUT,
    PERSON_ARTIST,
    PERSON_GENRE,
    PERSON_TITLE,
    SECONDS,
    make_fixtures,
    signal,
)

MUTAGEN_CLASS = {
    "mp3": "MP3",
    "flac": "FLAC",
    "ogg": "OggVorbis",
    "opus": "OggOpus",
    "m4a_aac": "MP4",
    "m4a_alac": "MP4",
    "wav": "WAVE",
    "aiff": "AIFF",
    "wma": "ASF",
}
CODEC = {
    "mp3": ("mp3float", "mp3"),  # FFmpeg's MP3 decoders
    "flac": "flac",
    "ogg": "vorbis",
    "opus": "opus",
    "m4a_aac": "aac",
    "m4a_alac": "alac",
    "wav": "pcm_s16le",
    "aiff": "pcm_s16be",
    "wma": "wmav2",
}

pytestmark = pytest.mark.pure


@pytest.fixture(scope="session")
def audio(fixture_dir):
    return fixtures_in(fixture_dir)


def test_every_kind_and_state_exists_with_its_extension(audio):
    assert set(audio) == set(KINDS)
    for kind in KINDS:
        assert set(audio[kind]) == set(STATES)
        for state, path in audio[kind].items():
            assert path.suffix == EXT[kind]
            assert 0 < path.stat().st_size < 300_000, (kind, state)  # tiny


@pytest.mark.parametrize("kind", KINDS)
def test_audio_is_real_and_has_the_planned_layout(audio, kind):
    import av

    rate, channels = LAYOUT[kind]
    for state in ("genre", "bare"):
        path = audio[kind][state]
        with av.open(str(path)) as c:
            stream = c.streams.audio[0]
            name = stream.codec_context.name
            assert name in CODEC[kind] if isinstance(CODEC[kind], tuple) else name == CODEC[kind]
            assert stream.codec_context.sample_rate == rate
            assert stream.codec_context.channels == channels
        samples = audio_samples(path)
        n = samples.size // channels
        assert abs(n / rate - SECONDS) < 0.1, (kind, n / rate)
        assert np.abs(samples.astype(np.float64)).max() > 0  # not silence
        assert audio_packets(path)


@pytest.mark.parametrize("kind", KINDS)
def test_person_tags_are_plain_format_tags(audio, kind):
    f = mutagen.File(str(audio[kind]["genre"]))
    assert type(f).__name__ == MUTAGEN_CLASS[kind]
    from mediafile import MediaFile

    mf = MediaFile(str(audio[kind]["genre"]))
    assert (mf.genres, mf.title, mf.artist) == ([PERSON_GENRE], PERSON_TITLE, PERSON_ARTIST)
    assert "TAGGER_PROVENANCE" not in str(f.tags)


@pytest.mark.parametrize("kind", KINDS)
def test_bare_files_have_no_tags(audio, kind):
    f = mutagen.File(str(audio[kind]["bare"]))
    assert type(f).__name__ == MUTAGEN_CLASS[kind]
    assert f.tags is None or len(list(f.tags.keys())) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_is_not_audio(audio, kind):
    path = audio[kind]["garbage"]
    try:
        f = mutagen.File(str(path))
    except mutagen.MutagenError:
        f = None
    assert f is None
    data = path.read_bytes()
    assert max(data) < 0x80  # no frame sync, no binary signature can hide in it


@pytest.mark.parametrize("kind", KINDS)
def test_genre_and_bare_versions_share_the_audio(audio, kind):
    a = audio_samples(audio[kind]["genre"])
    b = audio_samples(audio[kind]["bare"])
    assert a.dtype == b.dtype and np.array_equal(a, b)  # same audio, only the tags differ


def test_signal_is_seeded():
    a = signal(rate=8000, channels=2, seed=3)
    assert a.shape == (2, int(8000 * SECONDS)) and a.dtype == np.float32
    assert np.array_equal(a, signal(rate=8000, channels=2, seed=3))
    assert not np.array_equal(a, signal(rate=8000, channels=2, seed=4))
    assert np.abs(a).max() < 0.7


def test_generation_is_deterministic(audio, tmp_path):
    again = make_fixtures(tmp_path / "again")
    for kind in KINDS:
        for state in STATES:
            assert again[kind][state].read_bytes() == audio[kind][state].read_bytes(), (kind, state)


def test_audio_fixtures_helper_generates_once_per_session(tmp_path_factory):
    first = audio_fixtures(tmp_path_factory)
    assert audio_fixtures(tmp_path_factory) is first
    assert fixtures_in(first["mp3"]["genre"].parent) == first


def test_script_entry_point(tmp_path):
    script = Path(__file__).with_name("make_fixtures.py")
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == len(KINDS) * len(STATES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{k}-{s}{EXT[k]}" for k in KINDS for s in STATES
    )
    bad = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_format_names_match_the_tag_layer():
    from tagger.tags import SUPPORTED

    for kind in KINDS:
        assert SUPPORTED[EXT[kind]] == FORMAT[kind]
