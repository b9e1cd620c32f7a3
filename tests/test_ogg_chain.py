"""Chained Ogg files (issue 15, item 6): several logical streams one after another, as
``cat a.ogg b.ogg > ab.ogg`` makes (a valid chained Ogg stream).

What the libraries do with one (measured with this project's versions): libsndfile decodes the
first stream only (and some versions report the length as 2**63 - 1 frames, which made the
analysis fail with "Python int too large to convert to C long"); FFmpeg decodes every stream
while their codecs agree and stops with "Invalid argument" where they do not; mutagen reads and
writes the first stream's comments only. A genre written into the first stream, for audio the
analysis only partly heard, beside the other streams' own tags (a genre a person wrote there
among them, which tagger would not even see), is not safe: tagger leaves the file alone with
one clear line, before decoding anything.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tagger import tags
from tagger.analyse import analyse_file
from tagger.errors import TagReadError, TagWriteError
from tagger.features import FeatureParams
from tests.conftest import TINY_FEATURES

PARAMS = FeatureParams(**TINY_FEATURES).to_dict()
POLICY = {"model_id": "0123456789abcdef", "on_existing": "skip", "analysis_seconds": None, "max_seconds": 900.0}
EXT = {"ogg": ".ogg", "opus": ".opus"}

pytestmark = pytest.mark.pure


def reserial(data: bytes, serial: int) -> bytes:
    """The same Ogg stream with another serial number (a real chain's links have distinct ones)."""
    from mutagen.ogg import OggPage

    f, out = io.BytesIO(data), []
    while True:
        try:
            page = OggPage(f)
        except EOFError:
            break
        page.serial = serial
        out.append(page.write())
    return b"".join(out)


def chain(fixture_dir: Path, dest: Path, kind: str, *, distinct: bool, links: int = 2) -> Path:
    """``links`` fixture files of ``kind`` one after another: the first untagged, the next with a
    person's genre (serial numbers distinct, or all the same as the fixtures have)."""
    first = (fixture_dir / f"{kind}-bare{EXT[kind]}").read_bytes()
    other = (fixture_dir / f"{kind}-genre{EXT[kind]}").read_bytes()
    parts = [first] + [reserial(other, 4242 + i) if distinct else other for i in range(links - 1)]
    path = dest / f"chained-{links}-{'distinct' if distinct else 'same'}{EXT[kind]}"
    path.write_bytes(b"".join(parts))
    return path


@pytest.mark.parametrize("distinct", [True, False], ids=["distinct-serials", "same-serial"])
@pytest.mark.parametrize("kind", ["ogg", "opus"])
def test_chained_ogg_is_left_alone_with_one_clear_line(fixture_dir, tmp_path, kind, distinct):
    path = chain(fixture_dir, tmp_path, kind, distinct=distinct)
    before = path.read_bytes()
    reason = "chained Ogg stream (2 logical streams one after another): not supported; left alone"

    with pytest.raises(TagReadError) as read:
        tags.read_tags(path)
    assert read.value.reason == reason

    out = analyse_file(str(path), params=PARAMS, policy=POLICY)  # what the worker reports
    assert out.error == ("tag-read", reason) and out.features is None

    prov = tags.Provenance(model_id="0123456789abcdef", genres=("Rock",), scores=(0.9,), date="2026-01-01T00:00:00Z")
    for dry_run in (True, False):
        with pytest.raises(TagWriteError) as write:
            tags.write_genres(path, ["Rock"], prov, dry_run=dry_run)
        assert write.value.reason == reason
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_ogg_links_counts_links_not_pages(fixture_dir, tmp_path):
    from tagger.tags.vorbis import ogg_links

    for kind in ("ogg", "opus"):
        single = fixture_dir / f"{kind}-bare{EXT[kind]}"
        assert ogg_links(str(single)) == 1
        cut = tmp_path / f"cut{EXT[kind]}"
        data = single.read_bytes()
        cut.write_bytes(data[: len(data) * 3 // 4])  # ends inside a page
        assert ogg_links(str(cut)) == 1
        assert ogg_links(str(chain(fixture_dir, tmp_path, kind, distinct=True, links=3))) == 3
        # a chain cut inside its second link's first page still has two links
        two = chain(fixture_dir, tmp_path, kind, distinct=True).read_bytes()
        cut.write_bytes(two[: len(data) + 40])
        assert ogg_links(str(cut)) == 2


def test_unknown_length_from_libsndfile_is_not_a_length(fixture_dir, tmp_path, monkeypatch):
    """libsndfile reports 2**63 - 1 frames for some Ogg files (no end-of-stream page, chained
    files; libsndfile issues #525, #809, #989). Taken as a length, the analysis planned
    stretches trillions of seconds in and failed with "Python int too large to convert to C
    long"; it is an unknown length, and FFmpeg is asked instead."""
    import soundfile as sf

    path = tmp_path / "one.ogg"
    shutil.copyfile(fixture_dir / "ogg-bare.ogg", path)
    real = sf.info

    def info(p, *args, **kwargs):
        i = real(p, *args, **kwargs)
        return SimpleNamespace(frames=2**63 - 1, samplerate=i.samplerate, channels=i.channels, format=i.format,
                               duration=(2**63 - 1) / i.samplerate)

    monkeypatch.setattr(sf, "info", info)
    out = analyse_file(str(path), params=PARAMS, policy=POLICY)
    assert out.error is None, out.error
    assert out.duration == pytest.approx(1.5, abs=0.05)
    assert out.features is not None and out.heard == pytest.approx(1.5, abs=0.05)
