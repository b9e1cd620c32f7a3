"""ASF/WMA: several ``WM/Genre`` attributes (Unicode), one per genre; provenance is the Unicode
attribute ``TAGGER_PROVENANCE``.

Where the values go: mutagen puts the first value of a name in the Extended Content Description
object and every further one in the Metadata Library object, which sits inside the Header
Extension object. Files written by FFmpeg (and Windows Media) place the Header Extension *before*
the Extended Content Description, so readers that walk the objects in order (TagLib/kid3,
exiftool) would list the runner-up genres first. So one genre is written the plain way (Extended
Content Description, what every reader reads), and several genres all go into the Metadata
Library (language 0, stream 0: the whole file), in order: the best genre is then the first
``WM/Genre`` in object order, whatever the layout of the file. (FFmpeg keeps one value per name,
the last it meets: it shows the last genre of several.)

Snapshots keep each value's language and stream (0 included), so undo puts every value back into
the object it came from.
"""

from __future__ import annotations

import base64
from typing import Any

from tagger.tags._base import Handler

GENRE = "WM/Genre"
PROVENANCE = "TAGGER_PROVENANCE"
_FIELDS = (GENRE, PROVENANCE)

_UNICODE, _BYTES, _BOOL, _DWORD, _QWORD, _WORD, _GUID = range(7)


def _pack(attr) -> dict[str, Any]:
    kind = int(attr.TYPE)
    value = attr.value
    if kind in (_BYTES, _GUID):
        packed: Any = base64.b64encode(bytes(value)).decode("ascii")
    elif kind == _BOOL:
        packed = bool(value)
    elif kind in (_DWORD, _QWORD, _WORD):
        packed = int(value)
    else:
        packed = str(value)
    out: dict[str, Any] = {"type": kind, "value": packed}
    if attr.language is not None:
        out["language"] = int(attr.language)
    if attr.stream is not None:
        out["stream"] = int(attr.stream)
    return out


def _unpack(obj: dict[str, Any]):
    from mutagen.asf import ASFValue

    kind = int(obj["type"])
    value = obj["value"]
    if kind in (_BYTES, _GUID):
        value = base64.b64decode(value)
    kwargs = {}
    if obj.get("language") is not None:
        kwargs["language"] = int(obj["language"])
    if obj.get("stream") is not None:
        kwargs["stream"] = int(obj["stream"])
    return ASFValue(value, kind, **kwargs)


class ASFHandler(Handler):
    def _load(self, path: str):
        from mutagen.asf import ASF

        return ASF(path)

    def _values(self, name: str) -> list:
        tags = self.file.tags
        if tags is None:
            return []
        return [v for k, v in list(tags) if k == name]

    def genres(self) -> tuple[str, ...]:
        return tuple(str(v) for v in self._values(GENRE) if str(v))

    def album_fields(self) -> dict[str, Any]:
        from tagger.tags._base import first_text, flag

        def get(name: str) -> str:
            return first_text(v.value if hasattr(v, "value") else v for v in self._values(name))

        return {"album": get("WM/AlbumTitle"), "artist": get("Author"),
                "albumartist": get("WM/AlbumArtist"), "compilation": flag(get("WM/IsCompilation"))}

    def provenance_text(self) -> str | None:
        values = self._values(PROVENANCE)
        if not values:
            return None
        v = values[0]
        if int(v.TYPE) == _BYTES:
            return bytes(v.value).decode("utf-8", errors="replace")
        return str(v.value)

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {"_format": self.fmt}
        for name in _FIELDS:
            values = self._values(name)
            snap[name] = [_pack(v) for v in values] if values else None
        return snap

    def _replace(self, name: str, new_values: list) -> None:
        tags = self.file.tags
        out: list[tuple[str, Any]] = []
        placed = False
        for k, v in list(tags):
            if k == name:
                if not placed:
                    out.extend((name, nv) for nv in new_values)
                    placed = True
                continue
            out.append((k, v))
        if not placed:
            out.extend((name, nv) for nv in new_values)
        del tags[:]
        tags.extend(out)

    def set_fields(self, genres: tuple[str, ...], provenance: str, *, id3v23: bool) -> None:
        from mutagen.asf import ASFUnicodeAttribute

        if self.file.tags is None:
            self.file.add_tags()
        if len(genres) == 1:
            values = [ASFUnicodeAttribute(genres[0])]
        else:  # all in the Metadata Library, in order (see the module's docstring)
            values = [ASFUnicodeAttribute(g, language=0, stream=0) for g in genres]
        self._replace(GENRE, values)
        self._replace(PROVENANCE, [ASFUnicodeAttribute(provenance)])

    def apply_snapshot(self, snap: dict[str, Any]) -> None:
        if self.file.tags is None:
            self.file.add_tags()
        for name in _FIELDS:
            self._replace(name, [_unpack(v) for v in (snap.get(name) or [])])

    def save(self, target: str) -> None:
        self.file.save(target)

    @staticmethod
    def comparable(snap: dict[str, Any]) -> dict[str, Any]:
        # Language and stream 0 are what mutagen writes for "none" in the Metadata Library: a
        # value restored from an older snapshot (which left zeros out) reads back with them.
        out = dict(snap)
        for name in _FIELDS:
            if out.get(name):
                out[name] = [
                    {k: v for k, v in value.items() if not (k in ("language", "stream") and not v)}
                    for value in out[name]
                ]
        return out
