"""Tag-layer edge cases of issue 15: ID3 frames mutagen cannot decode, ID3v1 tags, and the order
in which readers meet several WMA genres.

Every check reads the raw bytes, not mutagen's view of them: the ID3v2 frames are split here from
the tag's bytes (mutagen's normal load drops frames it cannot decode), the 128-byte ID3v1 block is
compared as bytes, and the ASF header is walked object by object (GUIDs and sizes) to see which
``WM/Genre`` value comes first in the file.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from tagger.errors import TagWriteError
from tagger.tags import read_tags, restore_fields, snapshot_fields, write_genres
from tests.fixture_helpers import copy_fixture, fixtures_in
from tests.test_tags import prov_for  # one provenance for every tag test

GENRES = ("Rock", "Pop", "Soul")

pytestmark = pytest.mark.pure


@pytest.fixture(scope="session")
def audio(fixture_dir):
    return fixtures_in(fixture_dir)


def audio_samples(path: Path) -> np.ndarray:
    """Every decoded sample (fixture_helpers.audio_samples, but metadata that is not UTF-8 is
    ignored, as tagger's decoder does: PyAV refuses to open such a file otherwise)."""
    import av

    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.audio[0]
        return np.concatenate([frame.to_ndarray() for frame in container.decode(stream)], axis=1)


def run_tool(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout


# --------------------------------------------------------------------------------------------------
# ID3v2 built and split by hand


def syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def id3_frame(fid: str, data: bytes, version: int = 4) -> bytes:
    if version == 2:
        return fid.encode("ascii") + struct.pack(">L", len(data))[1:] + data
    size = syncsafe(len(data)) if version == 4 else struct.pack(">L", len(data))
    return fid.encode("ascii") + size + b"\x00\x00" + data


def id3_tag(frames: list[bytes], version: int = 4, padding: int = 512) -> bytes:
    body = b"".join(frames) + b"\x00" * padding
    return b"ID3" + bytes([version, 0, 0]) + syncsafe(len(body)) + body


def text_frame(fid: str, encoding: int, raw_text: bytes, version: int = 4) -> bytes:
    return id3_frame(fid, bytes([encoding]) + raw_text, version)


def split_frames(tag: bytes) -> tuple[int, list[bytes]]:
    """(minor version, the raw frames in order) of an ID3v2 tag (no unsynchronisation)."""
    assert tag[:3] == b"ID3", "no ID3v2 tag"
    version, flags = tag[3], tag[5]
    assert not flags & 0xC0, "test tags carry no unsynchronisation or extended header"
    end = 10 + ((tag[6] << 21) | (tag[7] << 14) | (tag[8] << 7) | tag[9])
    pos, frames = 10, []
    head = 6 if version == 2 else 10
    while pos + head <= end and tag[pos : pos + 1] not in (b"\x00", b""):
        if version == 2:
            size = struct.unpack(">L", b"\x00" + tag[pos + 3 : pos + 6])[0]
        elif version == 4:
            size = (tag[pos + 4] << 21) | (tag[pos + 5] << 14) | (tag[pos + 6] << 7) | tag[pos + 7]
        else:
            size = struct.unpack(">L", tag[pos + 4 : pos + 8])[0]
        frames.append(tag[pos : pos + head + size])
        pos += head + size
    return version, frames


def _is_ours(frame: bytes, version: int) -> bool:
    head = 6 if version == 2 else 10
    fid = frame[: 3 if version == 2 else 4]
    if fid in (b"TCON", b"TCO"):
        return True
    if fid in (b"TXXX", b"TXX"):
        enc, data = frame[head], frame[head + 1 :]
        if enc in (1, 2):  # UTF-16: the terminator is two NULs at an even offset
            end = next((i for i in range(0, len(data) - 1, 2) if data[i : i + 2] == b"\x00\x00"), len(data))
            desc = data[:end].decode("utf-16" if enc == 1 else "utf-16-be", "replace")
        else:
            desc = data.split(b"\x00", 1)[0].decode("latin-1" if enc == 0 else "utf-8", "replace")
        return desc == "TAGGER_PROVENANCE"
    return False


def id3_chunk(data: bytes) -> bytes | None:
    """The ID3v2 tag of an MP3 (at the start), a WAV (``id3 `` chunk) or an AIFF (``ID3 `` chunk)."""
    if data[:3] == b"ID3":
        return data
    little = data[:4] == b"RIFF"
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        size = struct.unpack("<L" if little else ">L", data[pos + 4 : pos + 8])[0]
        if cid.lower() == b"id3 ":
            return data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None


def other_frames(path: Path) -> tuple[int, list[bytes]]:
    """The raw ID3v2 frames other than TCON and TXXX:TAGGER_PROVENANCE, in order."""
    tag = id3_chunk(path.read_bytes())
    if tag is None:
        return 0, []
    version, frames = split_frames(tag)
    return version, [f for f in frames if not _is_ours(f, version)]


def frame_ids(path: Path) -> list[bytes]:
    tag = id3_chunk(path.read_bytes())
    if tag is None:
        return []
    version, frames = split_frames(tag)
    return [f[: 3 if version == 2 else 4] for f in frames]


def id3v1_block(path: Path) -> bytes | None:
    data = path.read_bytes()
    return data[-128:] if len(data) >= 128 and data[-128:-125] == b"TAG" else None


def id3v1(title=b"", artist=b"", album=b"", year=b"", comment=b"", track=0, genre=255) -> bytes:
    def field(b: bytes, n: int) -> bytes:
        return b[:n].ljust(n, b"\x00")

    tail = field(comment, 28) + b"\x00" + bytes([track]) if track else field(comment, 30)
    block = b"TAG" + field(title, 30) + field(artist, 30) + field(album, 30) + field(year, 4)
    block += tail + bytes([genre])
    assert len(block) == 128
    return block


def with_id3(audio, kind: str, dest: Path, tag: bytes, name: str) -> Path:
    """A copy of the untagged fixture of ``kind`` (mp3, wav, aiff) carrying ``tag`` as its ID3v2."""
    bare = audio[kind]["bare"].read_bytes()
    path = dest / name
    if kind == "mp3":
        path.write_bytes(tag + bare)
        return path
    assert id3_chunk(bare) is None
    little = kind == "wav"
    cid = b"id3 " if little else b"ID3 "
    chunk = cid + struct.pack("<L" if little else ">L", len(tag)) + tag + (b"\x00" if len(tag) & 1 else b"")
    body = bare[8:] + chunk
    path.write_bytes(bare[:4] + struct.pack("<L" if little else ">L", len(body)) + body)
    return path


def _undecodable_frames(version: int) -> list[bytes]:
    """Frames as found in the wild: text that does not decode in the encoding its frame names
    (mutagen's normal load drops the first three, and rewrites the fourth), and ordinary ones."""
    return [
        text_frame("TIT2", 3, b"Caf\xff title", version),  # UTF-8 that is not UTF-8
        text_frame("TPE1", 3, b"Art\xc3", version),  # UTF-8 cut in the middle of a character
        text_frame("TOPE", 2, b"\xd8\x00", version),  # UTF-16BE: a lone surrogate
        text_frame("TPE2", 1, b"\xff\xfeA", version),  # UTF-16 of odd length (mutagen pads it)
        text_frame("TALB", 0, b"A good album", version),
        text_frame("TCON", 0, b"Jazz", version),
        id3_frame("COMM", b"\x00eng\x00a comment", version),
        text_frame("TXXX", 0, b"MusicBrainz Album Id\x00abc", version),
        id3_frame("XYZW", b"a frame nobody knows", version),
    ]


# --------------------------------------------------------------------------------------------------
# item 2: frames mutagen cannot decode


@pytest.mark.parametrize("version", [4, 3])
@pytest.mark.parametrize("kind", ["mp3", "wav", "aiff"])
def test_undecodable_id3_text_frames_survive_write_and_undo(audio, tmp_path, kind, version):
    path = with_id3(audio, kind, tmp_path, id3_tag(_undecodable_frames(version), version), f"bad.{kind}")
    original = path.read_bytes()
    samples = audio_samples(path)
    others = other_frames(path)
    assert len(others[1]) == 8
    before = snapshot_fields(path)
    assert read_tags(path).genres == ("Jazz",)

    change = write_genres(path, GENRES, prov_for(GENRES))
    assert other_frames(path) == others  # same version, same bytes, same order
    assert read_tags(path).genres == GENRES
    assert (audio_samples(path) == samples).all()
    assert id3v1_block(path) is None  # a file without ID3v1 never gains one

    restore_fields(path, json.loads(json.dumps(change.before)))
    assert snapshot_fields(path) == before
    assert read_tags(path).genres == ("Jazz",)
    assert other_frames(path) == others
    assert (audio_samples(path) == samples).all()
    if kind == "mp3":
        assert path.read_bytes() == original


@pytest.mark.parametrize(
    ("version", "id3v23", "frame"),
    [(4, True, b"TIT2"), (2, False, b"TT2")],
    ids=["v2.4-to-v2.3", "v2.2-to-v2.4"],
)
def test_version_change_that_would_lose_a_frame_is_refused(audio, tmp_path, version, id3v23, frame):
    frames = (
        _undecodable_frames(4)[:4]
        if version == 4
        else [text_frame("TT2", 3, b"Caf\xff", 2), text_frame("TAL", 0, b"Album", 2)]
    )
    path = with_id3(audio, "mp3", tmp_path, id3_tag(frames, version), "bad.mp3")
    original = path.read_bytes()
    with pytest.raises(TagWriteError, match=rf"{frame.decode()} frame cannot be read .*left alone"):
        write_genres(path, GENRES, prov_for(GENRES), id3v23=id3v23)
    assert path.read_bytes() == original


def test_undecodable_genre_frame_is_refused(audio, tmp_path):
    frames = [text_frame("TIT2", 0, b"Title"), text_frame("TCON", 3, b"Jaz\xff")]
    path = with_id3(audio, "mp3", tmp_path, id3_tag(frames), "bad.mp3")
    original = path.read_bytes()
    with pytest.raises(TagWriteError, match=r"genre frame \(TCON\) cannot be read.*left alone"):
        write_genres(path, GENRES, prov_for(GENRES))
    assert path.read_bytes() == original


# --------------------------------------------------------------------------------------------------
# item 3: ID3v1


V1 = id3v1(title=b"v1 title", artist=b"v1 artist", comment=b"v1 comment", genre=8)  # 8: Jazz


@pytest.mark.parametrize("kind", ["mp3", "wav"])  # some taggers append ID3v1 to WAV files too
def test_id3v1_tag_is_kept_exactly(audio, tmp_path, kind):
    frames = [
        text_frame("TIT2", 3, b"v2 title"),
        text_frame("TPE1", 3, b"v2 artist"),
        text_frame("TALB", 3, b"v2 album"),
        text_frame("TDRC", 3, b"2001"),
        text_frame("TRCK", 3, b"7"),
    ]
    path = with_id3(audio, kind, tmp_path, id3_tag(frames), f"v1.{kind}")
    path.write_bytes(path.read_bytes() + V1)
    original = path.read_bytes()
    samples = audio_samples(path)
    others = other_frames(path)
    before = snapshot_fields(path)

    change = write_genres(path, GENRES, prov_for(GENRES))
    assert id3v1_block(path) == V1
    assert other_frames(path) == others  # and no v1 field (comment, genre) copied into v2
    assert frame_ids(path) == [b"TIT2", b"TPE1", b"TALB", b"TDRC", b"TRCK", b"TCON", b"TXXX"]
    assert read_tags(path).genres == GENRES
    assert (audio_samples(path) == samples).all()

    restore_fields(path, json.loads(json.dumps(change.before)))
    assert snapshot_fields(path) == before
    assert path.read_bytes() == original


def test_id3v1_and_v2_as_kid3_reads_them(audio, tmp_path):
    if shutil.which("kid3-cli") is None:
        pytest.skip("kid3-cli is not installed")
    path = with_id3(audio, "mp3", tmp_path, id3_tag([text_frame("TIT2", 3, b"v2 title")]), "v1.mp3")
    path.write_bytes(path.read_bytes() + V1)
    write_genres(path, GENRES, prov_for(GENRES))
    out = run_tool(["kid3-cli", "-c", "get", str(path)])
    tags: dict[str, dict[str, str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("Tag "):
            current = tags.setdefault(line.split(":")[0], {})
        elif current is not None and line.startswith("  "):
            key, _, value = line.strip().partition("  ")
            current[key] = value.strip()
    assert tags["Tag 1"] == {
        "Title": "v1 title", "Artist": "v1 artist", "Comment": "v1 comment", "Genre": "Jazz"
    }
    assert tags["Tag 2"]["Title"] == "v2 title"
    assert tags["Tag 2"]["Genre"] == "|".join(GENRES)
    assert "Comment" not in tags["Tag 2"]


def test_v1_only_mp3_gets_no_v1_fields_in_its_new_v2_tag(audio, tmp_path):
    path = tmp_path / "v1only.mp3"
    path.write_bytes(audio["mp3"]["bare"].read_bytes() + V1)
    original = path.read_bytes()
    samples = audio_samples(path)
    before = snapshot_fields(path)
    assert read_tags(path).genres == ("Jazz",)  # a person's v1 genre still counts as a genre

    change = write_genres(path, GENRES, prov_for(GENRES))
    assert frame_ids(path) == [b"TCON", b"TXXX"]
    assert id3v1_block(path) == V1
    assert read_tags(path).genres == GENRES
    assert (audio_samples(path) == samples).all()

    restore_fields(path, json.loads(json.dumps(change.before)))
    assert snapshot_fields(path) == before
    assert path.read_bytes() == original
    assert read_tags(path).genres == ("Jazz",)


@pytest.mark.parametrize(
    ("frames", "id3v23", "reason"),
    [
        ([text_frame("TIT2", 0, b"Title"), id3_frame("TPE1", b"")], False, "frames mutagen cannot keep"),
        (
            [text_frame("TIT2", 0, b"Title"), text_frame("TSOP", 0, b"Beatles, The")],
            True,
            "TSOP frame has no ID3v2.3",
        ),
    ],
    ids=["empty-frame", "v2.4-only-frame-under-id3v23"],
)
def test_a_write_that_would_drop_a_frame_is_refused(audio, tmp_path, frames, id3v23, reason):
    path = with_id3(audio, "mp3", tmp_path, id3_tag(frames), "drop.mp3")
    original = path.read_bytes()
    with pytest.raises(TagWriteError, match=rf"{reason}.*left alone"):
        write_genres(path, GENRES, prov_for(GENRES), id3v23=id3v23)
    assert path.read_bytes() == original


# --------------------------------------------------------------------------------------------------
# item 7: WMA genre order

ASF_GUIDS = {
    "75b22630-668e-11cf-a6d9-00aa0062ce6c": "Header",
    "5fbf03b5-a92e-11cf-8ee3-00c00c205365": "HeaderExtension",
    "75b22633-668e-11cf-a6d9-00aa0062ce6c": "ContentDescription",
    "d2d0a440-e307-11d2-97f0-00a0c95ea850": "ExtendedContentDescription",
    "c5f8cbea-5baf-4877-8467-aa8c44fa4cca": "Metadata",
    "44231c94-9498-49d1-a141-1d134e457054": "MetadataLibrary",
    "1806d474-cadf-4509-a4ba-9aabcb96aae8": "Padding",
}


def asf_objects(data: bytes, start: int, end: int):
    """(name, body) of each object between ``start`` and ``end``, in file order; the Header's and
    the Header Extension's children follow their parent."""
    pos = start
    while pos + 24 <= end:
        guid = str(uuid.UUID(bytes_le=data[pos : pos + 16]))
        (size,) = struct.unpack("<Q", data[pos + 16 : pos + 24])
        assert 24 <= size <= end - pos, f"bad ASF object size {size} at {pos}"
        name = ASF_GUIDS.get(guid, guid)
        yield name, data[pos + 24 : pos + size]
        if name == "Header":
            yield from asf_objects(data, pos + 30, pos + size)  # count (4) + reserved (2)
        elif name == "HeaderExtension":
            yield from asf_objects(data, pos + 46, pos + size)  # reserved GUID (16) + 2 + size (4)
        pos += size
        if start == 0:
            break  # only the Header object


def asf_attributes(path: Path) -> list[tuple[str, str, int, bytes, int, int]]:
    """Every attribute of the header as (object, name, type, raw value, language, stream), in the
    order a reader walking the objects meets them."""
    data = path.read_bytes()
    out = []
    for obj, body in asf_objects(data, 0, len(data)):
        if obj == "ExtendedContentDescription":
            (count,), pos = struct.unpack("<H", body[:2]), 2
            for _ in range(count):
                (nlen,) = struct.unpack("<H", body[pos : pos + 2])
                name = body[pos + 2 : pos + 2 + nlen].decode("utf-16-le").rstrip("\x00")
                pos += 2 + nlen
                vtype, vlen = struct.unpack("<HH", body[pos : pos + 4])
                out.append((obj, name, vtype, body[pos + 4 : pos + 4 + vlen], -1, -1))
                pos += 4 + vlen
        elif obj in ("Metadata", "MetadataLibrary"):
            (count,), pos = struct.unpack("<H", body[:2]), 2
            for _ in range(count):
                lang, stream, nlen, vtype, vlen = struct.unpack("<HHHHI", body[pos : pos + 12])
                name = body[pos + 12 : pos + 12 + nlen].decode("utf-16-le").rstrip("\x00")
                value = body[pos + 12 + nlen : pos + 12 + nlen + vlen]
                out.append((obj, name, vtype, value, lang, stream))
                pos += 12 + nlen + vlen
    return out


def asf_genres(path: Path) -> list[str]:
    return [
        value.decode("utf-16-le").rstrip("\x00") for _obj, name, _t, value, _l, _s in asf_attributes(path)
        if name == "WM/Genre"
    ]


def asf_others(path: Path) -> list[tuple]:
    """Every attribute but WM/Genre and TAGGER_PROVENANCE, and the Content Description bytes."""
    data = path.read_bytes()
    cd = [body for obj, body in asf_objects(data, 0, len(data)) if obj == "ContentDescription"]
    attrs = [a for a in asf_attributes(path) if a[1] not in ("WM/Genre", "TAGGER_PROVENANCE")]
    return cd + attrs


def test_wma_best_genre_is_first_in_object_order(audio, tmp_path):
    path = copy_fixture(audio, "wma", "genre", tmp_path)
    original = path.read_bytes()
    samples = audio_samples(path)
    others = asf_others(path)
    before = snapshot_fields(path)
    objects = [obj for obj, _ in asf_objects(original, 0, len(original))]
    assert objects.index("HeaderExtension") < objects.index("ExtendedContentDescription")  # FFmpeg's layout

    first = write_genres(path, GENRES, prov_for(GENRES))
    assert asf_genres(path) == list(GENRES)
    assert asf_others(path) == others
    assert (audio_samples(path) == samples).all()

    # A second run (another model) writing one genre, then its undo: one genre goes where
    # every reader reads it, and the undo puts the several values back where they were, in order.
    second = write_genres(path, ("Blues",), prov_for(("Blues",)))
    where = [a[0] for a in asf_attributes(path) if a[1] == "WM/Genre"]
    assert where == ["ExtendedContentDescription"]
    restore_fields(path, json.loads(json.dumps(second.before)))
    assert asf_genres(path) == list(GENRES)
    assert snapshot_fields(path) == first.after

    restore_fields(path, json.loads(json.dumps(first.before)))
    assert snapshot_fields(path) == before
    assert asf_genres(path) == ["Jazz"]
    assert path.read_bytes() == original


@pytest.mark.parametrize("tool", ["kid3-cli", "exiftool"])
def test_wma_genre_order_as_other_readers_see_it(audio, tmp_path, tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    path = copy_fixture(audio, "wma", "genre", tmp_path)
    write_genres(path, GENRES, prov_for(GENRES))
    if tool == "kid3-cli":
        out = run_tool([tool, "-c", "get", str(path)])
        got = [line.split(None, 1)[1].strip() for line in out.splitlines() if line.split()[:1] == ["Genre"]]
    else:
        out = run_tool([tool, "-a", "-s3", "-Genre", str(path)])
        got = [line.strip() for line in out.splitlines() if line.strip()]
    assert got == list(GENRES)
