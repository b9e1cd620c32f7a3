"""Vorbis comments: FLAC, Ogg Vorbis, Ogg Opus (and Ogg FLAC).

Genres are repeated ``GENRE`` fields, one value each (how Picard, beets and every Vorbis player
store several values); provenance is one ``TAGGER_PROVENANCE`` field. Field names are
case-insensitive; the new fields take the place of the first old field of the same name, so the
order of the other comments is kept. Snapshots keep the stored spelling of each name.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any

from tagger.errors import TagReadError
from tagger.tags._base import Handler

if TYPE_CHECKING:
    from mutagen import FileType

GENRE = "GENRE"
PROVENANCE = "TAGGER_PROVENANCE"
_FIELDS = (GENRE, PROVENANCE)


class VorbisHandler(Handler):
    def _load(self, path: str):
        cls: type[FileType]
        if self.kind == "flac":
            from mutagen.flac import FLAC as cls
        elif self.kind == "ogg":
            from mutagen.oggvorbis import OggVorbis as cls
        elif self.kind == "opus":
            from mutagen.oggopus import OggOpus as cls
        else:
            from mutagen.oggflac import OggFLAC as cls
        f = cls(path)
        if self.kind != "flac":
            links = ogg_links(path)
            if links > 1:
                # mutagen reads and writes the first stream's comments only; libsndfile decodes the
                # first stream only, FFmpeg all of them when their codecs agree. A genre written for
                # part of the file, beside other streams' own tags: not safe, so left alone.
                raise TagReadError(path, f"chained Ogg stream ({links} logical streams one after another): "
                                         "not supported; left alone")
        self._had_tags = f.tags is not None
        self._delete_tags = False
        return f

    def _pairs(self, name: str) -> list[tuple[str, str]]:
        tags = self.file.tags
        if tags is None:
            return []
        return [(k, v) for k, v in list(tags) if k.upper() == name]

    def genres(self) -> tuple[str, ...]:
        return tuple(v for _, v in self._pairs(GENRE) if v)

    def album_fields(self) -> dict[str, Any]:
        from tagger.tags._base import first_text, flag

        def get(name: str) -> str:
            return first_text(v for _, v in self._pairs(name))

        return {"album": get("ALBUM"), "artist": get("ARTIST"),
                "albumartist": get("ALBUMARTIST") or get("ALBUM ARTIST"),
                "compilation": flag(get("COMPILATION"))}

    def provenance_text(self) -> str | None:
        pairs = self._pairs(PROVENANCE)
        return pairs[0][1] if pairs else None

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "_format": self.fmt,
            "_tags": self.file.tags is not None and not self._delete_tags,
        }
        for name in _FIELDS:
            pairs = self._pairs(name)
            snap[name] = [[k, v] for k, v in pairs] if pairs else None
        return snap

    def _replace(self, name: str, new_pairs: list[tuple[str, str]]) -> None:
        """Replace every ``name`` comment by ``new_pairs``, where the first one was (else at the end)."""
        tags = self.file.tags
        out: list[tuple[str, str]] = []
        placed = False
        for k, v in list(tags):
            if k.upper() == name:
                if not placed:
                    out.extend(new_pairs)
                    placed = True
                continue
            out.append((k, v))
        if not placed:
            out.extend(new_pairs)
        tags.clear()
        tags.extend(out)

    def set_fields(self, genres: tuple[str, ...], provenance: str, *, id3v23: bool) -> None:
        if self.file.tags is None:
            self.file.add_tags()
        self._replace(GENRE, [(GENRE, g) for g in genres])
        self._replace(PROVENANCE, [(PROVENANCE, provenance)])

    def apply_snapshot(self, snap: dict[str, Any]) -> None:
        if self.file.tags is None:
            self.file.add_tags()
        for name in _FIELDS:
            pairs = snap.get(name) or []
            self._replace(name, [(str(k), str(v)) for k, v in pairs])
        # FLAC without a comment block before, and nothing left in it: remove the block again.
        self._delete_tags = self.kind == "flac" and snap.get("_tags") is False and len(self.file.tags) == 0

    def save(self, target: str) -> None:
        if self._delete_tags:
            self.file.delete(target)
        else:
            self.file.save(target)


_PAGE = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, crc, segments


def ogg_links(path: str) -> int:
    """How many chained links (logical streams, or groups of multiplexed ones, one after
    another) an Ogg file holds: 1 for an ordinary file.

    Reads the page headers only (27 bytes and the segment table of each page, skipping the
    bodies). A link starts with a beginning-of-stream page after pages of data; several such
    pages at the very start are one link (multiplexed streams, e.g. Skeleton with Vorbis).
    Stops at the first thing that is not a page (a truncated end, junk): what came before counts.
    """
    links, data_seen = 0, True
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        while pos + _PAGE.size <= size:
            f.seek(pos)
            head = f.read(_PAGE.size)
            if len(head) < _PAGE.size:
                break
            capture, _version, flags, _granule, _serial, _seq, _crc, nseg = _PAGE.unpack(head)
            if capture != b"OggS":
                break
            table = f.read(nseg)
            if len(table) < nseg:
                break
            if flags & 0x02:  # beginning of a stream
                if data_seen:
                    links += 1
                data_seen = False
            else:
                data_seen = True
            pos += _PAGE.size + nseg + sum(table)
    return max(links, 1)
