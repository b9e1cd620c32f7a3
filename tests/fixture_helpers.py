"""Helpers around the generated audio fixtures (see make_fixtures.py), for any test module.

``audio_fixtures(tmp_path_factory)`` is a plain function: wrap it in a session-scoped fixture
(``conftest.py`` or a test module); ``fixtures_in(folder)`` maps a folder that ``make_fixtures``
filled (conftest's ``fixture_dir``). The files are shared by the whole session: copy one with
:func:`copy_fixture` before changing it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tests.make_fixtures import EXT, FORMAT, KINDS, STATES, make_fixtures

__all__ = [
    "EXT",
    "FORMAT",
    "KINDS",
    "STATES",
    "as_nobody",
    "audio_fixtures",
    "audio_packets",
    "audio_samples",
    "copy_fixture",
    "fixtures_in",
    "shared_tmpdir",
]

_CACHE: dict[str, dict[str, dict[str, Path]]] = {}


def audio_fixtures(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """``{kind: {state: path}}`` of every fixture, generated once per test session (read-only use)."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _CACHE:
        _CACHE[key] = make_fixtures(tmp_path_factory.mktemp("audio-fixtures"))
    return _CACHE[key]


def fixtures_in(folder: str | Path) -> dict[str, dict[str, Path]]:
    """``{kind: {state: path}}`` of the fixtures ``make_fixtures`` wrote into ``folder``."""
    folder = Path(folder)
    out = {kind: {state: folder / f"{kind}-{state}{EXT[kind]}" for state in STATES} for kind in KINDS}
    missing = [str(p) for paths in out.values() for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"fixtures missing in {folder}: {', '.join(missing)}")
    return out


def copy_fixture(
    fixtures: dict[str, dict[str, Path]], kind: str, state: str, dest_dir: Path, name: str | None = None
) -> Path:
    """A private copy of one fixture in ``dest_dir`` (same extension), safe to change."""
    src = fixtures[kind][state]
    dest = Path(dest_dir) / (name or src.name)
    shutil.copyfile(src, dest)
    return dest


def audio_samples(path: str | Path) -> np.ndarray:
    """Every decoded sample of the first audio stream, exactly as the decoder gives them.

    No resampling, no conversion: the decoder's own sample format (int16, int32, float32...),
    shape (channels, n) for planar formats and (1, n * channels) for interleaved ones. Decoding is
    deterministic, so equal arrays before and after a tag write mean the audio was not touched.
    """
    import av

    blocks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            blocks.append(frame.to_ndarray())
    if not blocks:
        return np.zeros((1, 0), dtype=np.float32)
    return np.concatenate(blocks, axis=1)


def audio_packets(path: str | Path) -> list[bytes]:
    """The compressed (or PCM) payload of the first audio stream, packet by packet.

    Container bytes around the audio (tag blocks, Ogg page headers, MP4 chunk offsets) are not
    included, so this is the audio payload whatever the tags do to the layout of the file.
    """
    import av

    out = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            if packet.size:
                out.append(bytes(packet))
    return out


NOBODY = 65534


@contextlib.contextmanager
def as_nobody() -> Iterator[None]:
    """Run the block with permission bits enforced.

    As root (containers, CI) the block runs with effective uid/gid ``nobody``, restored
    afterwards; as an ordinary user nothing changes.
    """
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@contextlib.contextmanager
def shared_tmpdir() -> Iterator[Path]:
    """A temporary folder ``nobody`` can reach (pytest's tmp_path sits below a 0700 folder)."""
    d = Path(tempfile.mkdtemp(prefix="tagger-tags-test-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        for root, dirs, files in os.walk(d):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(d, ignore_errors=True)
