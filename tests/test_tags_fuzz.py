"""Property-based tests of the tag layer (hypothesis, derandomized: the same examples every run).

Real fixtures are damaged where parsers look (headers, tag blocks, atom and chunk sizes, the end
of the file): whatever the damage, reading raises nothing but TagReadError, writing nothing but
TagWriteError, and a failed write leaves the file byte-identical.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tagger.errors import TagReadError, TagWriteError
from tagger.tags import Provenance, read_tags, restore_fields, snapshot_fields, write_genres
from tests.fixture_helpers import FORMAT, KINDS, fixtures_in

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=250,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROV = Provenance(
    model_id="f00dfeedf00dfeed", genres=("Rock", "Pop"), scores=(0.7, 0.2), date="2026-11-22T10:00:00Z"
)

#: Bytes that parsers key on; damage is aimed at windows around them.
MARKERS = [
    b"ID3",
    b"TCON",
    b"TXXX",
    b"Jazz",
    b"fLaC",
    b"OggS",
    b"\x03vorbis",
    b"OpusTags",
    b"OpusHead",
    b"ftyp",
    b"moov",
    b"trak",
    b"udta",
    b"meta",
    b"ilst",
    b"\xa9gen",
    b"stco",
    b"mdat",
    b"free",
    b"RIFF",
    b"fmt ",
    b"data",
    b"id3 ",
    b"FORM",
    b"COMM",
    b"SSND",
    b"ID3 ",
    "WM/Genre".encode("utf-16-le"),
    bytes.fromhex("3026b2758e66cf11"),
    bytes.fromhex("40a4d0d207e3d211"),
    bytes.fromhex("3326b2758e66cf11"),
]

pytestmark = pytest.mark.pure


@pytest.fixture(scope="module")
def audio(fixture_dir):
    return fixtures_in(fixture_dir)


_REGIONS: dict[str, list[tuple[int, int]]] = {}


def hot_regions(path: Path) -> list[tuple[int, int]]:
    """[start, end) windows of ``path`` where headers and tags live."""
    key = str(path)
    if key not in _REGIONS:
        data = path.read_bytes()
        n = len(data)
        regions = [(0, min(n, 512)), (max(0, n - 256), n)]
        for marker in MARKERS:
            i = data.find(marker)
            while i != -1 and len(regions) < 64:
                regions.append((max(0, i - 16), min(n, i + 96)))
                i = data.find(marker, i + 1)
        _REGIONS[key] = regions
    return _REGIONS[key]


mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
    st.integers(min_value=0, max_value=10_000),  # which region
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),  # where in it
    st.sampled_from([0x00, 0xFF, 0x01, 0x7F, 0x80, 0x20]),  # a byte that sizes and flags notice
    st.binary(min_size=1, max_size=24),
    st.integers(min_value=1, max_value=200),  # bytes to delete
)


def mutate(data: bytes, regions: list[tuple[int, int]], ops) -> bytes:
    buf = bytearray(data)
    for op, region, where, byte, blob, count in ops:
        start, end = regions[region % len(regions)]
        end = min(end, len(buf))
        if end <= start:
            continue
        pos = start + int(where * (end - start - 1))
        if op == "flip":
            buf[pos] ^= byte or 0x55
        elif op == "set":
            buf[pos] = byte
        elif op == "insert":
            buf[pos:pos] = blob
        elif op == "delete":
            del buf[pos : pos + count]
        else:
            del buf[pos:]
    return bytes(buf)


def _only(errors, fn, *args, **kwargs):
    """fn's result, or None if it raised one of ``errors`` (anything else fails the test)."""
    try:
        return fn(*args, **kwargs)
    except errors:
        return None


@FUZZ
@given(
    kind=st.sampled_from(KINDS),
    state=st.sampled_from(["genre", "bare"]),
    ops=st.lists(mutation, min_size=1, max_size=4),
    id3v23=st.booleans(),
)
def test_damaged_files_never_escape_the_error_contract(audio, kind, state, ops, id3v23):
    src = audio[kind][state]
    damaged = mutate(src.read_bytes(), hot_regions(src), ops)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / src.name
        path.write_bytes(damaged)

        info = _only(TagReadError, read_tags, path)
        _only(TagReadError, snapshot_fields, path)

        change = _only(TagWriteError, write_genres, path, ["Rock", "Pop"], PROV, id3v23=id3v23)
        event("read " + ("ok" if info else "refused") + ", write " + ("ok" if change else "refused"))
        if change is None:
            assert path.read_bytes() == damaged  # a failed write changes nothing
        else:
            # a write that succeeded was verified: the genres read back
            assert read_tags(path).genres == ("Rock", "Pop")
            assert info is None or info.format == read_tags(path).format
            written = path.read_bytes()
            try:
                restore_fields(path, change.before)
            except TagWriteError:
                assert path.read_bytes() == written
            else:
                assert snapshot_fields(path) == change.before or change.before.get("_id3") == "2.2"
        assert os.listdir(d) == [path.name]  # no temporary copy or backup left behind


@FUZZ
@given(
    data=st.binary(min_size=0, max_size=600),
    ext=st.sampled_from(sorted({".mp3", ".flac", ".ogg", ".opus", ".m4a", ".wav", ".aiff", ".wma"})),
)
def test_random_bytes_with_signatures(data, ext):
    """Random bytes behind each container's signature: the parsers' worst case."""
    prefixes = {
        ".mp3": b"ID3\x04\x00\x00\x00\x00\x01\x00",
        ".flac": b"fLaC",
        ".ogg": b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x01vorbis",
        ".opus": b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead",
        ".m4a": b"\x00\x00\x00\x18ftypM4A ",
        ".wav": b"RIFF\xff\x00\x00\x00WAVE",
        ".aiff": b"FORM\x00\x00\x10\x00AIFF",
        ".wma": bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"),
    }
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("x" + ext)
        content = prefixes[ext] + data
        path.write_bytes(content)
        _only(TagReadError, read_tags, path)
        if _only(TagWriteError, write_genres, path, ["Rock"], PROV) is None:
            assert path.read_bytes() == content
        assert os.listdir(d) == [path.name]


genre_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30
).filter(lambda g: g.strip())


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(
    model_id=genre_text,
    genres=st.lists(genre_text, min_size=0, max_size=5),
    scores=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), max_size=5),
)
def test_provenance_round_trips(model_id, genres, scores):
    p = Provenance(model_id=model_id, genres=tuple(genres), scores=tuple(scores), date="2026-11-22T10:00:00Z")
    assert Provenance.parse(p.to_string()) == p


@settings(derandomize=True, database=None, deadline=None, max_examples=500)
@given(
    text=st.one_of(st.text(max_size=200), st.text(alphabet="model=genrs;|\\ datescor0.5Z-T:", max_size=120))
)
def test_provenance_parse_never_raises(text):
    p = Provenance.parse(text)
    assert p is None or Provenance.parse(p.to_string()) == p


def _id3_code(g: str) -> bool:
    g = g.strip()
    return (g.isdecimal() and int(g) < 256) or g in ("RX", "CR")


@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kind=st.sampled_from(KINDS), genres=st.lists(genre_text, min_size=1, max_size=4), id3v23=st.booleans())
def test_any_genre_text_round_trips(audio, kind, genres, id3v23):
    src = audio[kind]["genre"]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / src.name
        shutil.copyfile(src, path)
        want = tuple(g.strip() for g in genres)
        if FORMAT[kind] in ("mp3", "wav", "aiff") and any(_id3_code(g) for g in want):
            with pytest.raises(TagWriteError, match="ID3v1 genre code"):
                write_genres(path, genres, PROV, id3v23=id3v23)
            assert path.read_bytes() == src.read_bytes()
            return
        write_genres(path, genres, PROV, id3v23=id3v23)
        assert read_tags(path).genres == want
