"""The tag layer: formats, multi-valued genres, provenance, safety of writes, undo, errors."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import mutagen
import numpy as np
import pytest

from tagger.errors import ParameterError, TagReadError, TagWriteError
from tagger.tags import (
    PROVENANCE_KEY,
    SUPPORTED,
    FieldChange,
    FileChangedError,
    Provenance,
    TagInfo,
    read_tags,
    restore_fields,
    snapshot_fields,
    write_genres,
)
from tagger.tags._base import describe
from tests.fixture_helpers import (
    FORMAT,
    KINDS,
    as_nobody,
    audio_packets,
    audio_samples,
    copy_fixture,
    fixtures_in,
    shared_tmpdir,
)
from tests.make_fixtures import PERSON_ARTIST, PERSON_GENRE, PERSON_TITLE

PROV = Provenance(
    model_id="0123456789abcdef", genres=("Rock", "Pop"), scores=(0.83, 0.12), date="2026-11-22T10:00:00Z"
)
UNICODE_GENRES = ("Musique électronique", "日本のロック", "Hip-Hop/Rap", "Drum & Bass; Jungle|Breaks")
ROOT = os.geteuid() == 0  # permission tests then run as "nobody" (see fixture_helpers.as_nobody)

pytestmark = pytest.mark.pure


@pytest.fixture(scope="session")
def audio(fixture_dir):
    return fixtures_in(fixture_dir)  # conftest's session-wide generated fixtures


def prov_for(genres) -> Provenance:
    return Provenance(
        model_id="feedfacecafebeef",
        genres=tuple(genres),
        scores=(0.5,) * len(genres),
        date="2026-01-02T03:04:05Z",
    )


# --------------------------------------------------------------------------------------------------
# independent readers


def open_plain(path: Path, kind: str | None = None):
    """The file opened by plain mutagen: its own detection, or the class for ``kind``
    (mutagen.File trusts a ``.mp3`` extension over the content)."""
    if kind is None:
        return mutagen.File(str(path))
    from mutagen.aiff import AIFF
    from mutagen.asf import ASF
    from mutagen.flac import FLAC
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    cls = {
        "mp3": MP3,
        "flac": FLAC,
        "ogg": OggVorbis,
        "opus": OggOpus,
        "m4a": MP4,
        "wav": WAVE,
        "aiff": AIFF,
        "wma": ASF,
    }[FORMAT[kind]]
    return cls(str(path))


def native_fields(path: Path, kind: str | None = None) -> tuple[list[str], str | None]:
    """(genres, provenance text) read with plain mutagen, format by format."""
    f = open_plain(path, kind)
    tags = f.tags
    name = type(f).__name__
    if name in ("MP3", "WAVE", "AIFF"):
        tcon = tags.getall("TCON")
        txxx = tags.getall("TXXX:" + PROVENANCE_KEY)
        return (list(tcon[0].text) if tcon else []), (txxx[0].text[0] if txxx else None)
    if name in ("FLAC", "OggVorbis", "OggOpus"):
        prov = tags.get(PROVENANCE_KEY)
        return list(tags.get("GENRE", [])), (prov[0] if prov else None)
    if name == "MP4":
        prov = tags.get("----:com.apple.iTunes:" + PROVENANCE_KEY)
        return list(tags.get("\xa9gen", [])), (bytes(prov[0]).decode() if prov else None)
    if name == "ASF":
        genres = [str(v) for k, v in tags if k == "WM/Genre"]
        prov = [str(v) for k, v in tags if k == PROVENANCE_KEY]
        return genres, (prov[0] if prov else None)
    raise AssertionError(name)


def other_tags(path: Path) -> list:
    """Every tag except tagger's two fields, as comparable text."""
    f = mutagen.File(str(path))
    tags = f.tags
    if tags is None:
        return []
    ours = {
        "TCON",
        "TXXX:" + PROVENANCE_KEY,
        "GENRE",
        PROVENANCE_KEY,
        "\xa9gen",
        "WM/Genre",
        "----:com.apple.iTunes:" + PROVENANCE_KEY,
    }
    if type(f).__name__ in ("MP3", "WAVE", "AIFF"):
        return sorted((k, repr(v)) for k, v in tags.items() if k not in ours)
    if type(f).__name__ == "MP4":
        return sorted((k, repr(v)) for k, v in tags.items() if k not in ours)
    return [(k.upper(), repr(v)) for k, v in tags if k.upper() not in {o.upper() for o in ours}]


def mediafile_genres(path: Path):
    from mediafile import MediaFile

    return MediaFile(str(path)).genres


# --------------------------------------------------------------------------------------------------
# constants and provenance


def test_supported_extensions():
    """One table (tagger.formats) for the walk and the tag layer: every format it names has a
    writer's label, extensions are lower case with the dot, and the aliases map where they should."""
    from tagger import discover
    from tagger.formats import EXTENSIONS
    from tagger.tags import LABELS

    assert SUPPORTED is EXTENSIONS and discover.AUDIO_EXTS is EXTENSIONS
    assert set(SUPPORTED.values()) == set(LABELS) == {"mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff", "wma"}
    assert all(e.startswith(".") and e == e.lower() for e in SUPPORTED)
    assert [SUPPORTED[e] for e in (".oga", ".m4b", ".mp4", ".aif", ".aifc")] == ["ogg", "m4a", "m4a", "aiff", "aiff"]
    assert PROVENANCE_KEY == "TAGGER_PROVENANCE"


def test_provenance_string_format():
    p = Provenance(
        model_id="abc",
        genres=("Rock", "Pop"),
        scores=(0.83, 0.12),
        date="2026-11-22T10:00:00Z",
        tool="tagger 0.1.0",
    )
    assert (
        p.to_string()
        == "model=abc; genres=Rock|Pop; scores=0.83|0.12; date=2026-11-22T10:00:00Z; tool=tagger 0.1.0"
    )
    assert Provenance.parse(p.to_string()) == p


def test_provenance_default_tool_and_now():
    import tagger

    p = Provenance.now(model_id="m1", genres=["Jazz"], scores=[0.9])
    assert p.tool == f"tagger {tagger.__version__}"
    assert p.date.endswith("Z") and len(p.date) == len("2026-11-22T10:00:00Z")
    assert Provenance.parse(p.to_string()) == p


@pytest.mark.parametrize(
    "genres",
    [
        ("Rock",),
        UNICODE_GENRES,
        ("a|b", "c;d", "back\\slash", "trailing\\", "k=v", "; leading"),
        ("Rock/Pop", "R&B", "Ünïcödé ‑ dash"),
    ],
)
def test_provenance_round_trips_any_genre(genres):
    p = Provenance(
        model_id="id;with|specials",
        genres=genres,
        scores=tuple(0.1 * i for i in range(len(genres))),
        date="2026-11-22T10:00:00Z",
    )
    q = Provenance.parse(p.to_string())
    assert q == p
    assert q.genres == tuple(g.strip() for g in genres)


def test_provenance_scores_rounded_to_stored_precision():
    p = Provenance(model_id="m", genres=("Rock",), scores=(0.123456789,), date="2026-11-22T10:00:00Z")
    assert p.scores == (0.1235,)
    assert "scores=0.1235;" in p.to_string()
    assert Provenance.parse(p.to_string()) == p


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Jazz",
        "model=abc",
        "model=abc; genres=Rock",  # no date
        "model=abc; genres=Rock; scores=0.5; date=yesterday",
        "model=abc; genres=Rock; scores=x; date=2026-11-22T10:00:00Z",
        "model=abc; genres=Rock; scores=nan; date=2026-11-22T10:00:00Z",
        "model=; genres=Rock; scores=0.5; date=2026-11-22T10:00:00Z",
        "model=a; model=b; genres=Rock; scores=0.5; date=2026-11-22T10:00:00Z",
        "model=a; genres; date=2026-11-22T10:00:00Z",
        "\x00\x01\x02",
        None,
        42,
    ],
)
def test_provenance_parse_returns_none_for_junk(text):
    assert Provenance.parse(text) is None


def test_provenance_parse_tolerates_unknown_keys_and_missing_optional():
    p = Provenance.parse("model=m; genres=Rock; date=2026-11-22T10:00:00Z; future=thing")
    assert p is not None and p.genres == ("Rock",) and p.scores == () and p.tool == ""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"genres": "Rock"},
        {"genres": ("Rock", " ")},
        {"scores": (float("inf"),)},
        {"model_id": " "},
        {"date": "not a date"},
    ],
)
def test_provenance_rejects_bad_values(kwargs):
    base = {"model_id": "m", "genres": ("Rock",), "scores": (0.5,), "date": "2026-11-22T10:00:00Z"}
    base.update(kwargs)
    with pytest.raises(ParameterError):
        Provenance(**base)


@pytest.mark.parametrize(
    "genres, prov_genres, owned",
    [
        (("Rock", "Pop"), ("Rock", "Pop"), True),
        (("rock", "POP"), ("Rock", "Pop"), True),  # casefold
        (("Straße",), ("STRASSE",), True),  # casefold, not lower
        (("Rock",), ("Rock", "Pop"), False),  # a person removed one
        (("Pop", "Rock"), ("Rock", "Pop"), False),  # a person reordered them
        (("Jazz",), ("Rock",), False),  # a person replaced it
        ((), ("Rock",), False),  # a person deleted it
    ],
)
def test_tagger_owned(genres, prov_genres, owned):
    prov = Provenance(model_id="m", genres=prov_genres, scores=(), date="2026-11-22T10:00:00Z")
    assert TagInfo(format="mp3", genres=genres, provenance=prov).tagger_owned is owned
    assert TagInfo(format="mp3", genres=genres, provenance=None).tagger_owned is False


# --------------------------------------------------------------------------------------------------
# reading


@pytest.mark.parametrize("kind", KINDS)
def test_read_person_genre(audio, kind):
    info = read_tags(audio[kind]["genre"])
    assert info == TagInfo(format=FORMAT[kind], genres=(PERSON_GENRE,), provenance=None)
    assert not info.tagger_owned


@pytest.mark.parametrize("kind", KINDS)
def test_read_untagged(audio, kind):
    assert read_tags(audio[kind]["bare"]) == TagInfo(format=FORMAT[kind], genres=(), provenance=None)


@pytest.mark.parametrize("kind", KINDS)
def test_unparseable_raises_tag_read_error(audio, kind):
    path = audio[kind]["garbage"]
    with pytest.raises(TagReadError) as err:
        read_tags(path)
    assert err.value.path == str(path)
    assert err.value.reason.startswith("not a")
    assert "\n" not in err.value.reason


def test_read_missing_file(tmp_path):
    with pytest.raises(TagReadError, match="file not found"):
        read_tags(tmp_path / "nope.mp3")


def test_read_permission_denied(audio):
    with shared_tmpdir() as d:
        path = copy_fixture(audio, "flac", "genre", d)
        path.chmod(0)
        with as_nobody(), pytest.raises(TagReadError, match="permission denied"):
            read_tags(path)


def test_read_empty_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.write_bytes(b"")
    with pytest.raises(TagReadError, match="not a FLAC file"):
        read_tags(path)


@pytest.mark.parametrize(
    "kind, ext",
    [
        ("flac", ".mp3"),
        ("mp3", ".flac"),
        ("m4a_aac", ".ogg"),
        ("wma", ".wav"),
        ("opus", ".ogg"),
        ("wav", ".aiff"),
    ],
)
def test_content_decides_not_the_extension(audio, tmp_path, kind, ext):
    path = copy_fixture(audio, kind, "genre", tmp_path, name="misnamed" + ext)
    assert read_tags(path).format == FORMAT[kind]
    samples = audio_samples(path)
    write_genres(path, ["Rock", "Pop"], prov_for(["Rock", "Pop"]))
    info = read_tags(path)
    assert info.format == FORMAT[kind] and info.genres == ("Rock", "Pop") and info.tagger_owned
    assert native_fields(path, kind)[0] == ["Rock", "Pop"]  # still the same, parseable container
    assert np.array_equal(audio_samples(path), samples)


def test_garbage_named_mp3_says_not_an_mp3(audio):
    with pytest.raises(TagReadError, match="not an MP3 file"):
        read_tags(audio["mp3"]["garbage"])


def test_unsupported_ogg_codec_is_rejected_clearly(tmp_path):
    page = bytearray(b"OggS" + bytes(22) + b"\x01" + b"\x1e" + b"Speex   " + bytes(22))
    path = tmp_path / "speex.ogg"
    path.write_bytes(bytes(page))
    with pytest.raises(TagReadError, match="unsupported format: Ogg Speex"):
        read_tags(path)


# --------------------------------------------------------------------------------------------------
# writing: every format, read back by tagger, mediafile and plain mutagen


@pytest.mark.parametrize("state", ["genre", "bare"])
@pytest.mark.parametrize("kind", KINDS)
def test_write_multi_valued_genres(audio, tmp_path, kind, state):
    path = copy_fixture(audio, kind, state, tmp_path)
    genres = ["Rock", "Pop", "Musique électronique"]
    prov = prov_for(genres)
    others = other_tags(path)
    samples, packets = audio_samples(path), audio_packets(path)

    change = write_genres(path, genres, prov)

    info = read_tags(path)
    assert info.genres == tuple(genres)
    assert info.provenance == prov and info.tagger_owned
    assert native_fields(path) == (genres, prov.to_string())
    assert mediafile_genres(path) == genres
    assert other_tags(path) == others  # nothing else changed
    if state == "genre":
        assert mediafile_genres(path) is not None
        from mediafile import MediaFile

        mf = MediaFile(str(path))
        assert (mf.title, mf.artist) == (PERSON_TITLE, PERSON_ARTIST)
    # audio untouched: decoded samples and the demuxed payload are identical
    assert np.array_equal(audio_samples(path), samples)
    assert audio_packets(path) == packets
    # the change record is JSON and exact
    assert isinstance(change, FieldChange)
    assert json.loads(json.dumps(change.before)) == change.before
    assert json.loads(json.dumps(change.after)) == change.after
    assert change.after == snapshot_fields(path)
    assert change.before != change.after


@pytest.mark.parametrize("kind", KINDS)
def test_unicode_and_separator_genres_round_trip(audio, tmp_path, kind):
    path = copy_fixture(audio, kind, "genre", tmp_path)
    write_genres(path, UNICODE_GENRES, prov_for(UNICODE_GENRES))
    info = read_tags(path)
    assert info.genres == UNICODE_GENRES and info.tagger_owned
    assert mediafile_genres(path) == list(UNICODE_GENRES)


@pytest.mark.parametrize("kind", KINDS)
def test_rewrite_by_tagger_replaces_its_own_values(audio, tmp_path, kind):
    path = copy_fixture(audio, kind, "genre", tmp_path)
    write_genres(path, ["Rock", "Pop"], prov_for(["Rock", "Pop"]))
    write_genres(path, ["Blues"], prov_for(["Blues"]))
    assert native_fields(path) == (["Blues"], prov_for(["Blues"]).to_string())
    assert read_tags(path).tagger_owned


@pytest.mark.parametrize("kind", ["mp3", "wav", "aiff"])
def test_id3v24_default_is_one_tcon_frame_with_several_values(audio, tmp_path, kind):
    path = copy_fixture(audio, kind, "genre", tmp_path)
    write_genres(path, ["Rock", "Pop"], PROV)
    f = mutagen.File(str(path))
    assert f.tags.version == (2, 4, 0)
    assert len(f.tags.getall("TCON")) == 1 and f.tags.getall("TCON")[0].text == ["Rock", "Pop"]
    raw = path.read_bytes()
    assert raw.count(b"TCON") == 1
    assert b"Rock\x00Pop" in raw  # the v2.4 NUL separator, UTF-8


@pytest.mark.parametrize("kind", ["mp3", "wav", "aiff"])
def test_id3v23_uses_nul_separator_that_mediafile_splits(audio, tmp_path, kind):
    path = copy_fixture(audio, kind, "genre", tmp_path)
    samples = audio_samples(path)
    genres = ["Rock", "Hip-Hop/Rap"]  # a "/" separator would turn this into three values
    write_genres(path, genres, prov_for(genres), id3v23=True)
    f = mutagen.File(str(path))
    assert f.tags.version == (2, 3, 0)
    assert f.tags.getall("TCON")[0].text == genres
    assert "Rock\x00Hip-Hop/Rap".encode("utf-16-le") in path.read_bytes()
    assert mediafile_genres(path) == genres
    assert read_tags(path).genres == tuple(genres)
    assert np.array_equal(audio_samples(path), samples)


def test_existing_id3v23_tag_stays_v23_by_default(audio, tmp_path):
    from mutagen.id3 import TYER

    path = copy_fixture(audio, "mp3", "genre", tmp_path)
    f = mutagen.File(str(path))
    f.tags.update_to_v23()
    f.tags.add(TYER(encoding=0, text=["1999"]))
    f.save(v2_version=3)
    write_genres(path, ["Rock", "Pop"], PROV)
    g = mutagen.id3.ID3(str(path), translate=False)
    assert g.version == (2, 3, 0)
    assert g.getall("TYER")[0].text == ["1999"]  # not rewritten to a v2.4 TDRC
    assert mediafile_genres(path) == ["Rock", "Pop"]


def test_id3_genre_starting_with_parenthesis(audio, tmp_path):
    path = copy_fixture(audio, "mp3", "bare", tmp_path)
    genres = ["(17) not a number", "(Live)"]
    change = write_genres(path, genres, prov_for(genres))
    assert read_tags(path).genres == tuple(genres)
    restore_fields(path, change.before)
    assert read_tags(path).genres == ()


def test_id3_numeric_genre_reference_is_read_as_name(audio, tmp_path):
    from mutagen.id3 import TCON

    path = copy_fixture(audio, "mp3", "bare", tmp_path)
    f = mutagen.File(str(path))
    f.add_tags()
    f.tags.add(TCON(encoding=0, text=["(8)"]))
    f.save()
    assert read_tags(path).genres == ("Jazz",)
    change = write_genres(path, ["Rock"], prov_for(["Rock"]))
    assert change.before["TCON"]["text"] == ["(8)"]  # the raw value, for an exact undo
    restore_fields(path, change.before)
    assert mutagen.id3.ID3(str(path), translate=False).getall("TCON")[0].text == ["(8)"]


@pytest.mark.parametrize("kind", ["flac", "ogg", "opus"])
def test_vorbis_repeated_genre_fields_keep_comment_order(audio, tmp_path, kind):
    path = copy_fixture(audio, kind, "genre", tmp_path)
    f = mutagen.File(str(path))
    f.tags.clear()
    f.tags.extend([("TITLE", "t"), ("genre", "Jazz"), ("ARTIST", "a"), ("Genre", "Swing"), ("DATE", "2001")])
    f.save()
    write_genres(path, ["Rock", "Pop"], PROV)
    pairs = list(mutagen.File(str(path)).tags)
    assert pairs == [
        ("TITLE", "t"),
        ("GENRE", "Rock"),
        ("GENRE", "Pop"),
        ("ARTIST", "a"),
        ("DATE", "2001"),
        (PROVENANCE_KEY, PROV.to_string()),
    ]


def test_asf_several_genre_attributes(audio, tmp_path):
    path = copy_fixture(audio, "wma", "genre", tmp_path)
    write_genres(path, ["Rock", "Pop", "Soul"], prov_for(["Rock", "Pop", "Soul"]))
    f = mutagen.File(str(path))
    assert [str(v) for v in f.tags["WM/Genre"]] == ["Rock", "Pop", "Soul"]


# --------------------------------------------------------------------------------------------------
# undo


@pytest.mark.parametrize("state", ["genre", "bare"])
@pytest.mark.parametrize("kind", KINDS)
def test_restore_fields_puts_values_back_exactly(audio, tmp_path, kind, state):
    path = copy_fixture(audio, kind, state, tmp_path)
    original = path.read_bytes()
    before = snapshot_fields(path)
    change = write_genres(path, UNICODE_GENRES, prov_for(UNICODE_GENRES))
    assert change.before == before
    restore_fields(path, json.loads(json.dumps(change.before)))  # as a journal would store it
    assert snapshot_fields(path) == before
    assert read_tags(path) == read_tags(audio[kind][state])
    if state == "genre":
        # the fixtures carry padding, so the undo even gives back the same bytes
        assert path.read_bytes() == original


def test_restore_refuses_a_snapshot_of_another_format(audio, tmp_path):
    mp3 = copy_fixture(audio, "mp3", "genre", tmp_path)
    flac = copy_fixture(audio, "flac", "genre", tmp_path)
    original = flac.read_bytes()
    with pytest.raises(TagWriteError, match="snapshot is for a mp3 file"):
        restore_fields(flac, snapshot_fields(mp3))
    assert flac.read_bytes() == original


# --------------------------------------------------------------------------------------------------
# safety


def _all_saves_raise(monkeypatch):
    def boom(self, target):
        raise AssertionError("save called")

    for mod, cls in [
        ("id3", "ID3Handler"),
        ("vorbis", "VorbisHandler"),
        ("mp4", "MP4Handler"),
        ("asf", "ASFHandler"),
    ]:
        module = __import__(f"tagger.tags.{mod}", fromlist=[cls])
        monkeypatch.setattr(getattr(module, cls), "save", boom)
    monkeypatch.setattr(
        os, "replace", lambda *a, **k: (_ for _ in ()).throw(AssertionError("replace called"))
    )


@pytest.mark.parametrize("kind", KINDS)
def test_dry_run_never_saves(audio, tmp_path, kind, monkeypatch):
    path = copy_fixture(audio, kind, "genre", tmp_path)
    original = path.read_bytes()
    _all_saves_raise(monkeypatch)
    change = write_genres(path, ["Rock", "Pop"], PROV, dry_run=True)
    assert path.read_bytes() == original
    assert change.before == snapshot_fields(path)
    assert change.after != change.before
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_dry_run_predicts_the_real_write(audio, tmp_path):
    for kind in KINDS:
        path = copy_fixture(audio, kind, "genre", tmp_path)
        planned = write_genres(path, ["Rock", "Pop"], PROV, dry_run=True, id3v23=kind == "mp3")
        done = write_genres(path, ["Rock", "Pop"], PROV, id3v23=kind == "mp3")
        assert planned == done, kind


def test_expect_detects_a_changed_file(audio, tmp_path):
    path = copy_fixture(audio, "flac", "genre", tmp_path)
    st = path.stat()
    seen = (st.st_size, st.st_mtime_ns)
    write_genres(path, ["Rock"], prov_for(["Rock"]), expect=seen)  # unchanged: fine
    after = path.read_bytes()
    with pytest.raises(FileChangedError, match="file changed since it was analysed; left alone") as err:
        write_genres(path, ["Pop"], prov_for(["Pop"]), expect=seen)
    assert isinstance(err.value, TagWriteError) and err.value.kind == "changed"
    assert path.read_bytes() == after


def test_write_follows_symlinks(audio, tmp_path):
    target = copy_fixture(audio, "ogg", "genre", tmp_path)
    link = tmp_path / "link.ogg"
    link.symlink_to(target.name)
    write_genres(link, ["Rock"], prov_for(["Rock"]))
    assert link.is_symlink()
    assert read_tags(target).genres == ("Rock",)


def test_copy_replace_keeps_permissions_and_leaves_no_temp_files(audio, tmp_path):
    path = copy_fixture(audio, "m4a_alac", "genre", tmp_path)
    path.chmod(0o640)
    write_genres(path, ["Rock"], prov_for(["Rock"]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_read_only_file_is_refused(audio):
    with shared_tmpdir() as d:
        path = copy_fixture(audio, "mp3", "genre", d)
        path.chmod(0o444)
        original = path.read_bytes()
        with as_nobody():
            for dry_run in (True, False):
                with pytest.raises(TagWriteError, match="file is read-only"):
                    write_genres(path, ["Rock"], PROV, dry_run=dry_run)
        assert path.read_bytes() == original


def test_read_only_folder_is_respected(audio):
    with shared_tmpdir() as d:
        path = copy_fixture(audio, "flac", "genre", d)
        path.chmod(0o666)
        original = path.read_bytes()
        d.chmod(0o555)
        with as_nobody(), pytest.raises(TagWriteError, match="folder is read-only"):
            write_genres(path, ["Rock"], PROV)
        assert path.read_bytes() == original
        assert os.listdir(d) == [path.name]


@pytest.mark.skipif(not ROOT, reason="needs a file owned by another user")
def test_file_of_another_owner_keeps_its_owner(audio):
    """Replacing would hand the file to the writer: such files are written in place (with a backup)."""
    with shared_tmpdir() as d:
        d.chmod(0o777)
        path = copy_fixture(audio, "ogg", "genre", d)
        path.chmod(0o666)
        inode = path.stat().st_ino
        with as_nobody():
            write_genres(path, ["Rock"], prov_for(["Rock"]))
        st = path.stat()
        assert (st.st_uid, st.st_ino, stat.S_IMODE(st.st_mode)) == (0, inode, 0o666)
        assert read_tags(path).genres == ("Rock",)
        assert os.listdir(d) == [path.name]


def _failing_save(monkeypatch, err: OSError):
    """Make every family's save scribble over its target, then fail like a full disk."""
    for mod, cls in [
        ("id3", "ID3Handler"),
        ("vorbis", "VorbisHandler"),
        ("mp4", "MP4Handler"),
        ("asf", "ASFHandler"),
    ]:
        module = __import__(f"tagger.tags.{mod}", fromlist=[cls])

        def broken(self, target, _err=err):
            with open(target, "r+b") as f:
                f.seek(0)
                f.write(b"\xde\xad" * 64)
                f.truncate(1000)
            raise _err

        monkeypatch.setattr(getattr(module, cls), "save", broken)


@pytest.mark.parametrize("kind", KINDS)
def test_failed_save_leaves_original_byte_identical(audio, tmp_path, kind, monkeypatch):
    path = copy_fixture(audio, kind, "genre", tmp_path)
    original = path.read_bytes()
    _failing_save(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(TagWriteError) as err:
        write_genres(path, ["Rock"], PROV)
    assert err.value.reason == "disk full"
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == [path.name]  # the temporary copy is gone


@pytest.mark.parametrize("kind", ["mp3", "flac", "m4a_aac", "wma"])
def test_hard_linked_file_is_written_in_place(audio, tmp_path, kind):
    path = copy_fixture(audio, kind, "genre", tmp_path)
    other = tmp_path / ("other" + path.suffix)
    os.link(path, other)
    inode = path.stat().st_ino
    write_genres(path, ["Rock", "Pop"], PROV)
    assert path.stat().st_ino == inode and path.stat().st_nlink == 2
    assert read_tags(other).genres == ("Rock", "Pop")
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, other.name])  # backup removed


@pytest.mark.parametrize("kind", ["mp3", "opus", "m4a_alac", "aiff"])
def test_failed_in_place_save_is_restored_from_backup(audio, tmp_path, kind, monkeypatch):
    path = copy_fixture(audio, kind, "genre", tmp_path)
    other = tmp_path / ("other" + path.suffix)
    os.link(path, other)
    original = path.read_bytes()
    _failing_save(monkeypatch, OSError(errno.EDQUOT, "Disk quota exceeded"))
    with pytest.raises(TagWriteError, match="disk quota exceeded"):
        write_genres(path, ["Rock"], PROV)
    assert path.read_bytes() == original and other.read_bytes() == original
    assert path.stat().st_nlink == 2
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, other.name])


def test_verification_failure_is_an_error_and_harmless(audio, tmp_path, monkeypatch):
    from tagger.tags.vorbis import VorbisHandler

    path = copy_fixture(audio, "flac", "genre", tmp_path)
    original = path.read_bytes()
    monkeypatch.setattr(VorbisHandler, "save", lambda self, target: None)  # "saves" nothing
    with pytest.raises(TagWriteError, match="verification failed"):
        write_genres(path, ["Rock"], PROV)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == [path.name]


_FSIZE_SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    from tagger.tags import Provenance, write_genres
    from tagger.errors import TagWriteError
    path, in_place = sys.argv[1], sys.argv[2] == "1"
    genres = [f"Genre number {i} " + "x" * 200 for i in range(60)]  # ~13 KB: more than any padding
    prov = Provenance(model_id="m", genres=genres, scores=(), date="2026-11-22T10:00:00Z")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    import os
    limit = os.path.getsize(path) + 512
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        write_genres(path, genres, prov)
    except TagWriteError as e:
        print("REASON:" + e.reason)
    else:
        print("WROTE")
    """
)


@pytest.mark.parametrize(
    "kind, in_place",
    [("mp3", False), ("flac", False), ("m4a_aac", False), ("wav", True), ("ogg", True), ("wma", False)],
)
def test_file_size_limit_leaves_file_intact(audio, tmp_path, kind, in_place):
    """A real failed write (RLIMIT_FSIZE, the kernel refuses to grow the file) in a subprocess."""
    path = copy_fixture(audio, kind, "genre", tmp_path)
    if in_place:
        os.link(path, tmp_path / ("link" + path.suffix))
    original = path.read_bytes()
    out = subprocess.run(
        [sys.executable, "-c", _FSIZE_SCRIPT, str(path), "1" if in_place else "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "REASON:file size limit exceeded" in out.stdout, out.stdout + out.stderr
    assert path.read_bytes() == original
    expected = {path.name} | ({"link" + path.suffix} if in_place else set())
    assert set(os.listdir(tmp_path)) == expected


# --------------------------------------------------------------------------------------------------
# arguments and error reasons


@pytest.mark.parametrize("genres", ["Rock", [], [""], ["  "], ["Ro\x00ck"], [3]])
def test_bad_genres_are_a_parameter_error(audio, tmp_path, genres):
    path = copy_fixture(audio, "mp3", "genre", tmp_path)
    with pytest.raises(ParameterError):
        write_genres(path, genres, PROV)


def test_genres_are_stripped(audio, tmp_path):
    path = copy_fixture(audio, "flac", "bare", tmp_path)
    write_genres(path, ["  Rock ", "Pop"], prov_for(["Rock", "Pop"]))
    assert read_tags(path).genres == ("Rock", "Pop")


def test_write_to_garbage_is_a_tag_write_error(audio, tmp_path):
    path = copy_fixture(audio, "m4a_aac", "garbage", tmp_path)
    original = path.read_bytes()
    with pytest.raises(TagWriteError, match="not an MP4/M4A file"):
        write_genres(path, ["Rock"], PROV)
    assert path.read_bytes() == original


def test_describe_reasons():
    import struct

    from mutagen.flac import FLACNoHeaderError
    from mutagen.mp3 import error as MP3Error

    assert describe(OSError(errno.ENOSPC, "x")) == "disk full"
    assert describe(PermissionError(errno.EACCES, "x")) == "permission denied"
    assert describe(MP3Error(OSError(errno.EROFS, "x"))) == "read-only file system"  # mutagen wraps IOError
    assert (
        describe(FLACNoHeaderError("'/a/b.flac' is not a valid FLAC file"), fmt="flac", path="/a/b.flac")
        == "not a FLAC file (the file is not a valid FLAC file)"
    )
    assert describe(struct.error("unpack requires a buffer of 4 bytes"), fmt="m4a").startswith(
        "damaged MP4/M4A file"
    )
    assert describe(MemoryError(), fmt="ogg").startswith("damaged Ogg Vorbis file")
    long = describe(ValueError("x" * 1000), fmt="wma")
    assert len(long) <= 200 and "\n" not in long


def test_a_file_changed_during_the_write_is_left_alone(audio, tmp_path, monkeypatch):
    """Another program writes the file while tagger saves its copy: the copy is dropped."""
    from tagger.tags.vorbis import VorbisHandler

    path = copy_fixture(audio, "flac", "genre", tmp_path)
    real_save = VorbisHandler.save

    def save_while_someone_else_writes(self, target):
        real_save(self, target)
        with open(path, "ab") as f:
            f.write(b"someone else")

    monkeypatch.setattr(VorbisHandler, "save", save_while_someone_else_writes)
    with pytest.raises(FileChangedError, match="changed while tagger was writing it"):
        write_genres(path, ["Rock"], PROV)
    assert path.read_bytes().endswith(b"someone else")  # their change survives, ours is dropped
    assert read_tags(path).genres == (PERSON_GENRE,)
    assert os.listdir(tmp_path) == [path.name]


def test_failed_restore_keeps_the_backup_and_says_where(audio, tmp_path, monkeypatch):
    from tagger.tags import _safe

    path = copy_fixture(audio, "mp3", "genre", tmp_path)
    os.link(path, tmp_path / "other.mp3")
    original = path.read_bytes()
    _failing_save(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    monkeypatch.setattr(
        _safe, "_copy_back", lambda backup, real: (_ for _ in ()).throw(OSError(errno.EIO, "x"))
    )
    with pytest.raises(TagWriteError) as err:
        write_genres(path, ["Rock"], PROV)
    reason = err.value.reason
    assert reason.startswith("disk full; putting the original back failed too (input/output error)")
    backup = Path(reason.rsplit("it is kept in ", 1)[1])
    assert backup.parent == tmp_path and backup.read_bytes() == original


def test_ogg_flac_is_handled_as_ogg(tmp_path):
    from tests.make_fixtures import _encode_av, signal

    path = tmp_path / "oggflac.oga"
    _encode_av(
        path,
        container="ogg",
        codec="flac",
        x=signal(rate=22050, channels=1, seed=9),
        rate=22050,
        bit_rate=None,
    )
    samples = audio_samples(path)
    assert read_tags(path) == TagInfo(format="ogg", genres=(), provenance=None)
    change = write_genres(path, ["Rock", "Pop"], PROV)
    assert type(open_plain(path)).__name__ == "OggFLAC"
    assert list(open_plain(path).tags["GENRE"]) == ["Rock", "Pop"]
    assert read_tags(path).tagger_owned
    assert np.array_equal(audio_samples(path), samples)
    restore_fields(path, change.before)
    assert read_tags(path).genres == ()


def test_importing_the_tag_layer_imports_no_mutagen():
    code = "import sys, tagger.tags; print(sorted(m for m in sys.modules if m.split('.')[0] in ('mutagen', 'numpy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
