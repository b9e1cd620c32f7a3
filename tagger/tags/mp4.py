"""MP4/M4A (AAC, ALAC): the ``©gen`` atom holds several text values; provenance is the freeform
atom ``----:com.apple.iTunes:TAGGER_PROVENANCE`` (UTF-8 data).

A legacy ``gnre`` atom (ID3v1 genre number) is read by mutagen as ``©gen`` and written back as
``©gen`` text when tagger writes the genre.
"""

from __future__ import annotations

from typing import Any

from tagger.tags._base import Handler, pack_bytes, unpack_bytes

GENRE = "\xa9gen"
PROVENANCE = "----:com.apple.iTunes:TAGGER_PROVENANCE"


class MP4Handler(Handler):
    def _load(self, path: str):
        from mutagen.mp4 import MP4

        f = MP4(path)
        self._delete_tags = False
        return f

    def genres(self) -> tuple[str, ...]:
        tags = self.file.tags
        if tags is None:
            return ()
        return tuple(str(v) for v in tags.get(GENRE, []) if str(v))

    def album_fields(self) -> dict[str, Any]:
        from tagger.tags._base import first_text, flag

        tags = self.file.tags
        if tags is None:
            return {}
        return {"album": first_text(tags.get("\xa9alb")), "artist": first_text(tags.get("\xa9ART")),
                "albumartist": first_text(tags.get("aART")), "compilation": flag(tags.get("cpil", False))}

    def provenance_text(self) -> str | None:
        tags = self.file.tags
        if tags is None or not tags.get(PROVENANCE):
            return None
        return bytes(tags[PROVENANCE][0]).decode("utf-8", errors="replace")

    def snapshot(self) -> dict[str, Any]:
        tags = self.file.tags
        snap: dict[str, Any] = {"_format": self.fmt, "_tags": tags is not None and not self._delete_tags}
        gen = None if tags is None else tags.get(GENRE)
        snap[GENRE] = None if gen is None else [str(v) for v in gen]
        prov = None if tags is None else tags.get(PROVENANCE)
        snap[PROVENANCE] = (
            None if prov is None else [dict(pack_bytes(bytes(v)), dataformat=int(v.dataformat)) for v in prov]
        )
        return snap

    def set_fields(self, genres: tuple[str, ...], provenance: str, *, id3v23: bool) -> None:
        from mutagen.mp4 import AtomDataType, MP4FreeForm

        if self.file.tags is None:
            self.file.add_tags()
        self.file.tags[GENRE] = list(genres)
        self.file.tags[PROVENANCE] = [MP4FreeForm(provenance.encode("utf-8"), dataformat=AtomDataType.UTF8)]

    def apply_snapshot(self, snap: dict[str, Any]) -> None:
        from mutagen.mp4 import MP4FreeForm

        if self.file.tags is None:
            self.file.add_tags()
        tags = self.file.tags
        if snap.get(GENRE) is None:
            tags.pop(GENRE, None)
        else:
            tags[GENRE] = [str(v) for v in snap[GENRE]]
        if snap.get(PROVENANCE) is None:
            tags.pop(PROVENANCE, None)
        else:
            tags[PROVENANCE] = [
                MP4FreeForm(unpack_bytes(v), dataformat=int(v.get("dataformat", 1))) for v in snap[PROVENANCE]
            ]
        self._delete_tags = snap.get("_tags") is False and len(tags) == 0

    def save(self, target: str) -> None:
        if self._delete_tags:
            self.file.delete(target)
        else:
            self.file.save(target)
