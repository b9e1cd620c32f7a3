"""File names as long as the file system allows (issue 15, item 5): the temporary copy, the
byte backup and the report's temporary file never need a longer name than the file's own, so
any name the file system holds can be tagged, restored and reported."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tagger import tags
from tagger.report import Report, Row
from tagger.tags import _safe
from tests.bad_input_helpers import audio_digest, other_tags

PROV = tags.Provenance(model_id="0123456789abcdef", genres=("Rock",), scores=(0.9,),
                       date="2026-01-01T00:00:00Z")

pytestmark = pytest.mark.pure


def _name(stem_char: str, ext: str, limit: int = 255) -> str:
    """A name of exactly ``limit`` bytes: ``stem_char`` repeated, padded with ASCII, then ``ext``."""
    unit = len(stem_char.encode())
    n = (limit - len(ext)) // unit
    pad = limit - len(ext) - n * unit
    name = stem_char * n + "x" * pad + ext
    assert len(name.encode()) == limit
    return name


NAMES = {
    "ascii-wav": (_name("a", ".wav"), "wav-bare.wav"),
    "two-byte-flac": (_name("é", ".flac"), "flac-genre.flac"),
    "three-byte-mp3": (_name("曲", ".mp3"), "mp3-genre.mp3"),
    "four-byte-ogg": (_name("🎵", ".ogg"), "ogg-bare.ogg"),
}


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "lib"
    d.mkdir()
    if os.pathconf(d, "PC_NAME_MAX") != 255:
        pytest.skip("the file system here does not allow names of 255 bytes")
    return d


@pytest.mark.parametrize("hard_link", [False, True], ids=["via-copy", "in-place"])
@pytest.mark.parametrize("case", sorted(NAMES))
def test_write_and_restore_a_255_byte_name(fixture_dir, folder, tmp_path, case, hard_link):
    name, source = NAMES[case]
    path = folder / name
    shutil.copyfile(fixture_dir / source, path)
    if hard_link:  # a second link elsewhere: the save goes in place, with a byte backup beside it
        (tmp_path / "elsewhere").mkdir()
        os.link(path, tmp_path / "elsewhere" / "link")
    before_bytes, before_audio, before_tags = path.read_bytes(), audio_digest(path), other_tags(path)
    genres_before = tags.read_tags(path).genres

    change = tags.write_genres(path, ["Rock"], PROV)
    assert os.listdir(folder) == [name]  # no temporary copy or backup left behind
    assert tags.read_tags(path).genres == ("Rock",)
    assert audio_digest(path) == before_audio and other_tags(path) == before_tags
    assert (os.stat(path).st_nlink == 2) == hard_link
    if shutil.which("exiftool"):  # a second reader, given the long name
        out = subprocess.run(["exiftool", "-s3", "-Genre", str(path)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "Rock", out

    tags.restore_fields(path, change.before)
    assert os.listdir(folder) == [name]
    assert tags.read_tags(path).genres == genres_before
    assert tags.snapshot_fields(path) == change.before
    assert audio_digest(path) == before_audio and other_tags(path) == before_tags
    if source.endswith(".wav"):  # no tags before: restoring removes what tagger added
        assert path.read_bytes() == before_bytes


@pytest.mark.parametrize("name", [
    "a.flac", "x" * 234 + ".wav", "x" * 251 + ".wav", _name("é", ".flac"), _name("曲", ".mp3"),
    _name("🎵", ".ogg"), os.fsdecode(b"\xff" * 250 + b".mp3"),
])
@pytest.mark.parametrize("suffix", [_safe.TMP_SUFFIX, _safe.BAK_SUFFIX])
def test_temp_name_fits_and_is_recognisable(name, suffix):
    token = "0123abcd"
    got = _safe.temp_name(name, suffix, limit=255, token=token)
    raw = os.fsencode(got)
    assert len(raw) <= 255
    assert got.startswith(".") and got.endswith("." + token + suffix)
    if len(os.fsencode(name)) + 21 <= 255:
        assert got == f".{name}.{token}{suffix}"  # short enough: the whole name, as before
    else:
        start = got[1:].split("~")[0]
        assert name.startswith(start) and len(os.fsencode(start)) >= 200  # recognisable by its start
        if max(name) < "\udc80":  # valid UTF-8: a character is never cut in half
            raw.decode("utf-8")
        # names that differ only after the part kept get distinct temporary names (the hash)
        stem, ext = os.path.splitext(name)
        assert _safe.temp_name(stem[:-1] + "Z" + ext, suffix, limit=255, token=token) != got


def test_report_with_a_255_byte_name(folder):
    report = Report(dry_run=True)
    report.add(Row(str(folder / "a.mp3"), "mp3", "tagged"))
    for ext in (".json", ".csv", ".html"):
        out = folder / _name("r", ext)
        report.write(out)
        assert out.stat().st_size > 0
    assert sorted(os.listdir(folder)) == sorted(_name("r", e) for e in (".json", ".csv", ".html"))
