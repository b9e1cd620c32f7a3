"""ID3v2 tags: MP3 (tag at the start of the file), WAV (``id3 `` chunk), AIFF (``ID3 `` chunk).

Genres are one ``TCON`` frame with several values. ID3v2.4 separates them with NUL (the standard);
ID3v2.3 has no standard for several values, and tagger joins them with NUL too
(``v23_sep="\\x00"``): mutagen splits NUL-separated v2.3 text on load, so beets/mediafile
(``MediaFile.genres`` is mutagen's ``TCON.text``), Picard, Quod Libet and jaudiotagger-based tools read
the list back, and a genre that contains ``/`` ("Hip-Hop/Rap") stays one genre. mutagen's default
``"/"`` would make all of those read the single value ``"Rock/Pop"``.

Version policy: ``id3v23=True`` writes ID3v2.3 (what the user asked for). Otherwise an existing v2.3
tag stays v2.3 — rewriting a library's tags to v2.4 unasked would rewrite date frames and drop
v2.3-only frames — and every other tag (none, v2.2, v2.4) is written as v2.4.

Provenance is ``TXXX:TAGGER_PROVENANCE``.
"""

from __future__ import annotations

from typing import Any

from tagger.errors import TagWriteError
from tagger.tags._base import Handler

PROVENANCE_DESC = "TAGGER_PROVENANCE"
PROVENANCE_HASH = "TXXX:" + PROVENANCE_DESC
V23_SEP = "\x00"

_UTF8 = 3
_UTF16 = 1


def _version_name(tags) -> str | None:
    if tags is None:
        return None
    major, minor = tags.version[0], tags.version[1]
    if major != 2:
        return None  # ID3v1 only: no ID3v2 tag on disk
    return f"2.{minor}"


class ID3Handler(Handler):
    def _load(self, path: str):
        # translate=False: the snapshot sees the frames as stored (a raw "(17)" genre, a v2.3
        # TYER); set_fields / apply_snapshot translate before saving, as mutagen requires.
        if self.kind == "mp3":
            from mutagen.mp3 import MP3 as cls
        elif self.kind == "wav":
            from mutagen.wave import WAVE as cls
        else:
            from mutagen.aiff import AIFF as cls
        f = cls(path, translate=False)
        self._had_tag = f.tags is not None and _version_name(f.tags) is not None
        self._orig_version = _version_name(f.tags) if f.tags is not None else None
        self._save_version = 4
        self._delete_tag = False
        return f

    # -- read -----------------------------------------------------------------------------------
    def _frame(self, key: str):
        tags = self.file.tags
        if tags is None:
            return None
        return tags.get(key)

    def genres(self) -> tuple[str, ...]:
        frame = self._frame("TCON")
        if frame is None:
            return ()
        return tuple(g for g in frame.genres if g)

    def provenance_text(self) -> str | None:
        frame = self._frame(PROVENANCE_HASH)
        if frame is None or not frame.text:
            return None
        return str(frame.text[0])

    def snapshot(self) -> dict[str, Any]:
        tcon = self._frame("TCON")
        txxx = self._frame(PROVENANCE_HASH)
        return {
            "_format": self.fmt,
            "_id3": self._current_version(),
            "TCON": None
            if tcon is None
            else {"encoding": self._enc(tcon), "text": [str(t) for t in tcon.text]},
            PROVENANCE_HASH: None
            if txxx is None
            else {"encoding": self._enc(txxx), "text": [str(t) for t in txxx.text]},
        }

    def _current_version(self) -> str | None:
        if self._delete_tag:
            return None
        if self._dirty:
            return f"2.{self._save_version}"
        return self._orig_version

    _dirty = False

    def _enc(self, frame) -> int:
        enc = int(frame.encoding)
        if self._dirty and self._save_version == 3 and enc in (2, 3):
            return _UTF16  # what mutagen writes for UTF-8/UTF-16BE text in a v2.3 tag
        return enc

    # -- change ---------------------------------------------------------------------------------
    def _prepare(self, version: int) -> None:
        if self.file.tags is None:
            self.file.add_tags()
        tags = self.file.tags
        if version == 3:
            tags.update_to_v23()
        else:
            tags.update_to_v24()
        self._save_version = version
        self._dirty = True

    def set_fields(self, genres: tuple[str, ...], provenance: str, *, id3v23: bool) -> None:
        from mutagen.id3 import TCON, TXXX

        for g in genres:
            if (g.isdecimal() and int(g) < 256) or g in ("RX", "CR"):
                raise TagWriteError(
                    self.path, f"genre {g!r} cannot be stored in ID3: it reads as an ID3v1 genre code"
                )
        version = 3 if (id3v23 or self._orig_version == "2.3") else 4
        self._prepare(version)
        tags = self.file.tags
        # A genre starting with "(" is escaped as "((" (ID3v2 TCON rule; mutagen unescapes on read).
        text = ["(" + g if g.startswith("(") else g for g in genres]
        tags.setall("TCON", [TCON(encoding=_UTF8, text=text)])
        tags.setall(PROVENANCE_HASH, [TXXX(encoding=_UTF8, desc=PROVENANCE_DESC, text=[provenance])])

    def apply_snapshot(self, snap: dict[str, Any]) -> None:
        from mutagen.id3 import TCON, TXXX

        want = snap.get("_id3")
        version = {"2.3": 3, "2.4": 4}.get(want or "", None)
        if version is None:
            version = 3 if self._orig_version == "2.3" else 4
        self._prepare(version)
        tags = self.file.tags
        tcon = snap.get("TCON")
        if tcon is None:
            tags.delall("TCON")
        else:
            tags.setall("TCON", [TCON(encoding=int(tcon["encoding"]), text=list(tcon["text"]))])
        txxx = snap.get(PROVENANCE_HASH)
        if txxx is None:
            tags.delall(PROVENANCE_HASH)
        else:
            tags.setall(
                PROVENANCE_HASH,
                [TXXX(encoding=int(txxx["encoding"]), desc=PROVENANCE_DESC, text=list(txxx["text"]))],
            )
        # No ID3v2 tag before and nothing left in it: remove the tag itself.
        self._delete_tag = want is None and len(tags) == 0

    def save(self, target: str) -> None:
        if self._delete_tag:
            if self.kind == "mp3":
                self.file.tags.delete(target, delete_v1=False, delete_v2=True)
            else:
                self.file.delete(target)
            return
        kwargs: dict[str, Any] = {"v2_version": self._save_version, "v23_sep": V23_SEP}
        if self.kind in ("mp3", "wav"):
            kwargs["v1"] = 1  # update an ID3v1 tag that exists, never add one
        self.file.save(target, **kwargs)

    @staticmethod
    def comparable(snap: dict[str, Any]) -> dict[str, Any]:
        # Text encodings are representation (mutagen writes UTF-16 in v2.3); values must match.
        out = dict(snap)
        for key in ("TCON", PROVENANCE_HASH):
            if out.get(key) is not None:
                out[key] = {"text": out[key]["text"]}
        return out
