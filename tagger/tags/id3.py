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

**Every other frame is kept byte for byte.** The tag is loaded with ``known_frames={}``, so mutagen
parses no frame and hands back each one's raw bytes (``unknown_frames``, in file order); tagger
parses only ``TCON`` and ``TXXX`` itself. A save in the tag's own version writes those raw frames
back unchanged and in their order, with the new ``TCON`` / ``TXXX:TAGGER_PROVENANCE`` in the place
of the old ones (appended when there were none). This keeps what mutagen's normal load would drop
or rewrite: text frames whose bytes do not decode (``TIT2`` saying UTF-8 and holding ``\\xff``:
mutagen's parser drops it as junk), frames mutagen does not know, and the exact bytes of the rest.
A save that must change the version (a v2.2 tag, or ``id3v23`` asked for on a v2.4 tag) has to
re-encode every frame: it is refused with a one-line reason (``TagWriteError``, file left alone)
when a frame would be lost on the way (one mutagen cannot read or does not know, or one the other
version has no place for); otherwise it converts as mutagen does. A tag mutagen cannot split into
frames completely (empty or nameless frames, a frame cut short) is refused the same way.

**ID3v1 is never written** (MP3): an existing 128-byte v1 tag at the end of the file stays exactly
as it was, a file without one never gains one, and the v1 fields are never copied into the v2 tag
(mutagen's ``load_v1`` merge is off; its save would otherwise rewrite v1 from the v2 frames,
erasing the v1 comment). So after a write the v1 genre byte may disagree with the v2 ``TCON``;
readers prefer v2 when both exist. When there is no v2 ``TCON``, the v1 genre is read as the
file's genre (a person put it there), as mutagen's merge did.
"""

from __future__ import annotations

import struct
from typing import Any

from tagger.errors import TagWriteError
from tagger.tags._base import Handler, pack_bytes, unpack_bytes

PROVENANCE_DESC = "TAGGER_PROVENANCE"
PROVENANCE_HASH = "TXXX:" + PROVENANCE_DESC
V23_SEP = "\x00"

_UTF8 = 3
_UTF16 = 1

#: Frames mutagen's update_to_v2x deletes without a replacement, by target version.
_LOST_CONVERTING = {
    3: ("ASPI", "EQU2", "RVA2", "SEEK", "SIGN", "TDEN", "TDRL", "TDTG", "TMOO", "TPRO",
        "TSOA", "TSOP", "TSOT", "TSST"),
    4: ("RVAD", "EQUA", "TRDA", "TSIZ"),
}


def _version_name(tags) -> str | None:
    if tags is None:
        return None
    major, minor = tags.version[0], tags.version[1]
    if major != 2:
        return None  # ID3v1 only: no ID3v2 tag on disk
    return f"2.{minor}"


def _frame_name(raw: bytes, minor: int) -> str:
    """The frame ID of a raw frame (v2.2: 3 characters; a v2.2 name inside a v2.3/2.4 tag is
    translated as mutagen does)."""
    from mutagen.id3 import Frames_2_2

    if minor == 2:
        return raw[:3].decode("ascii", "replace")
    name = raw[:4].decode("ascii", "replace")
    if name.endswith("\x00") and name[:3] in Frames_2_2:
        return Frames_2_2[name[:3]].__base__.__name__
    return name


def _parse(raw: bytes, header, minor: int, frames: dict):
    """The raw frame parsed with ``frames`` (mutagen's classes), or raise (KeyError: unknown ID)."""
    name = raw[:3].decode("ascii") if minor == 2 else raw[:4].decode("ascii")
    if minor == 2:
        return frames[name]._fromData(header, 0, raw[6:])
    if name.endswith("\x00"):
        from mutagen.id3 import Frames_2_2

        name = Frames_2_2[name[:3]].__base__.__name__
    (flags,) = struct.unpack(">H", raw[8:10])
    return frames[name]._fromData(header, flags, raw[10:])


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 80:
        text = text[:77] + "..."
    return text or type(exc).__name__


class ID3Handler(Handler):
    # The frames of the tag, in file order: raw bytes (kept as they are) or, for TCON and
    # TXXX:TAGGER_PROVENANCE, mutagen Frame objects (written with mutagen's frame writer).
    _frames: list[Any]
    _dirty = False

    def _load(self, path: str):
        f = self._load_with(path, known_frames={})
        tags = f.tags
        self._orig_version = _version_name(tags)
        self._had_tag = self._orig_version is not None
        self._save_version = 4
        self._delete_tag = False
        self._converted = False  # True once every frame was parsed to change the version
        self._frames = []
        # id(frame) -> (frame, its bytes in the file); the frame is held so that its id stays its own
        self._raw_of: dict[int, tuple[Any, bytes]] = {}
        self._tcon_error: str | None = None
        self._split_problem: str | None = None
        self._unsynch24 = False
        if tags is not None:
            self._read_raw(tags)
        self._v1_genre = self._read_v1_genre(f) if self.kind == "mp3" else None
        return f

    def _mutagen_cls(self):
        if self.kind == "mp3":
            from mutagen.mp3 import MP3 as cls
        elif self.kind == "wav":
            from mutagen.wave import WAVE as cls
        else:
            from mutagen.aiff import AIFF as cls
        return cls

    def _load_with(self, path: str, **kwargs):
        # translate=False: the tag as stored; load_v1=False: no ID3v1 fields merged into the v2
        # frames (a save would write them into the v2 tag).
        return self._mutagen_cls()(path, translate=False, load_v1=False, **kwargs)

    def _read_raw(self, tags) -> None:
        from mutagen.id3 import TXXX, Frames, Frames_2_2

        header = tags._header
        minor = tags.version[1]
        ours = Frames_2_2 if minor == 2 else Frames
        raw_frames = list(tags.unknown_frames)
        # Everything between the header and the padding must be in the raw frames: mutagen
        # silently skips empty frames and frames with invalid names, and a save would lose them.
        body = tags.size - 10 - ((4 + len(header._extdata)) if tags.f_extended else 0)
        used = sum(len(r) for r in raw_frames) + tags._padding
        if not (minor == 3 and tags.f_unsynch) and used != body:
            self._split_problem = (
                "its ID3v2 tag has frames mutagen cannot keep (empty, unnamed or damaged)"
            )
        elif raw_frames and not self._complete(raw_frames[-1], minor):
            self._split_problem = "its ID3v2 tag's last frame is cut short"
        # v2.4 tag-wide unsynchronisation: the raw frames only make sense under that flag, which
        # mutagen does not write; such a tag is re-encoded (as a conversion) instead.
        self._unsynch24 = minor == 4 and tags.f_unsynch
        for raw in raw_frames:
            name = _frame_name(raw, minor)
            if name in ("TCON", "TXXX", "TCO", "TXX"):
                try:
                    frame = _parse(raw, header, minor, ours)
                except Exception as exc:
                    if name in ("TCON", "TCO") and self._tcon_error is None:
                        self._tcon_error = _why(exc)
                    self._frames.append(raw)
                    continue
                if isinstance(frame, TXXX) and frame.desc != PROVENANCE_DESC:
                    self._frames.append(raw)
                else:
                    self._frames.append(frame)
                    self._raw_of[id(frame)] = (frame, raw)
            else:
                self._frames.append(raw)

    @staticmethod
    def _complete(raw: bytes, minor: int) -> bool:
        if minor == 2:
            return struct.unpack(">L", b"\x00" + raw[3:6])[0] == len(raw) - 6
        size = struct.unpack(">L", raw[4:8])[0]
        syncsafe = (raw[4] << 21) | (raw[5] << 14) | (raw[6] << 7) | raw[7]
        return len(raw) - 10 in (size, syncsafe)

    @staticmethod
    def _read_v1_genre(f) -> str | None:
        from mutagen.id3._id3v1 import find_id3v1

        with open(f.filename, "rb") as fileobj:
            frames, _offset = find_id3v1(fileobj)
        tcon = (frames or {}).get("TCON")
        if tcon is None:
            return None
        genres = [g for g in tcon.genres if g]
        return genres[0] if genres else None

    # -- read -----------------------------------------------------------------------------------
    def _ours(self, key: str):
        """The TCON (several TCON frames merged, as mutagen does) or provenance TXXX frame."""
        from mutagen.id3 import TCON, TXXX

        if self._converted:
            tags = self.file.tags
            return None if tags is None else tags.get(key)
        if key == "TCON":
            found = [f for f in self._frames if isinstance(f, TCON)]
            if not found:
                return None
            if len(found) == 1:
                return found[0]
            return TCON(encoding=found[0].encoding, text=[t for f in found for t in f.text])
        for f in self._frames:
            if isinstance(f, TXXX):
                return f
        return None

    def genres(self) -> tuple[str, ...]:
        frame = self._ours("TCON")
        if frame is None:
            if self._v1_genre and self._tcon_error is None:
                return (self._v1_genre,)
            return ()
        return tuple(g for g in frame.genres if g)

    def album_fields(self) -> dict[str, Any]:
        """TALB, TPE1, TPE2, TCMP (v2.2: TAL, TP1, TP2, TCP), parsed from their raw bytes; a
        frame that does not parse reads as absent."""
        from mutagen.id3 import Frames, Frames_2_2

        from tagger.tags._base import first_text, flag

        tags = self.file.tags
        if tags is None:
            return {}
        want = {"TALB": "album", "TPE1": "artist", "TPE2": "albumartist", "TCMP": "compilation",
                "TAL": "album", "TP1": "artist", "TP2": "albumartist", "TCP": "compilation"}
        out: dict[str, Any] = {}
        if self._converted:
            for frame_id, key in want.items():
                frame = tags.get(frame_id)
                if frame is not None and key not in out:
                    out[key] = first_text(frame.text)
        else:
            minor = tags.version[1]
            frames = Frames_2_2 if minor == 2 else Frames
            for raw in self._frames:
                if not isinstance(raw, bytes):
                    continue
                name = raw[:3].decode("ascii", "replace") if minor == 2 else raw[:4].decode("ascii", "replace")
                key = want.get(name) or want.get(_frame_name(raw, minor))
                if key is None or key in out:
                    continue
                try:
                    frame = _parse(raw, tags._header, minor, frames)
                    out[key] = first_text(frame.text)
                except Exception:
                    continue
        out["compilation"] = flag(out.get("compilation", ""))
        return out

    def provenance_text(self) -> str | None:
        frame = self._ours(PROVENANCE_HASH)
        if frame is None or not frame.text:
            return None
        return str(frame.text[0])

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"_format": self.fmt, "_id3": self._current_version()}
        for key in ("TCON", PROVENANCE_HASH):
            frame = self._ours(key)
            if frame is None:
                out[key] = None
                continue
            out[key] = {"encoding": self._enc(frame), "text": [str(t) for t in frame.text]}
            raw = self._raw_of.get(id(frame), (None, None))[1]
            if raw is not None and not self._dirty and self._differs(frame, raw):
                # The frame's own bytes, so that undo puts back exactly these: another tool's
                # frame can differ from what mutagen writes for the same text (a trailing NUL).
                out[key]["raw"] = pack_bytes(raw)
        return out

    def _differs(self, frame, raw: bytes) -> bool:
        """Whether mutagen would write other bytes than ``raw`` for ``frame``."""
        from mutagen.id3._tags import save_frame
        from mutagen.id3._util import ID3SaveConfig

        minor = self.file.tags.version[1]
        if minor not in (3, 4):
            return False  # v2.2 is always rewritten as v2.4: its bytes cannot go back
        try:
            return save_frame(frame, config=ID3SaveConfig(minor, V23_SEP)) != raw
        except Exception:
            return True

    def _current_version(self) -> str | None:
        if self._delete_tag:
            return None
        if self._dirty:
            return f"2.{self._save_version}"
        return self._orig_version

    def _enc(self, frame) -> int:
        enc = int(frame.encoding)
        if self._dirty and self._save_version == 3 and enc in (2, 3):
            return _UTF16  # what mutagen writes for UTF-8/UTF-16BE text in a v2.3 tag
        return enc

    # -- change ---------------------------------------------------------------------------------
    def _refuse(self, reason: str) -> None:
        raise TagWriteError(self.path, reason + "; left alone")

    def _prepare(self, version: int) -> None:
        if self._split_problem:
            self._refuse(self._split_problem)
        if self._tcon_error:
            self._refuse(f"its genre frame (TCON) cannot be read ({self._tcon_error})")
        keep_raw = (
            not self._converted
            and self._orig_version in (None, f"2.{version}")
            and not self._unsynch24
        )
        if not keep_raw:
            self._convert(version)
        self._save_version = version
        self._dirty = True

    def _convert(self, version: int) -> None:
        """Parse every frame (mutagen's normal load) to write the tag in another version;
        refuse where a frame would be lost on the way."""
        from mutagen.id3 import Frames, Frames_2_2

        if not self._converted:
            raw_tags = self.file.tags
            minor = raw_tags.version[1]
            header = raw_tags._header
            frames = Frames_2_2 if minor == 2 else Frames
            target = f"ID3v2.{version}" if minor != version else "plain ID3v2.4 frames"
            for raw in raw_tags.unknown_frames:
                name = _frame_name(raw, minor)
                try:
                    frame = _parse(raw, header, minor, frames)
                except KeyError:
                    self._refuse(f"its {name} frame is unknown to mutagen and would be lost writing {target}")
                except Exception as exc:
                    self._refuse(
                        f"its {name} frame cannot be read ({_why(exc)}) and would be lost writing {target}"
                    )
                if frame._upgrade_frame() is None:
                    self._refuse(f"its {name} frame has no ID3v2.4 form and would be lost writing {target}")
            full = self._load_with(self.path)
            self.file.tags = full.tags
            self._converted = True
        tags = self.file.tags
        lost = [k for k in _LOST_CONVERTING[version] if tags.getall(k)]
        if lost:
            self._refuse(f"its {lost[0]} frame has no ID3v2.{version} form and would be lost")
        if version == 3:
            tags.update_to_v23()
        else:
            tags.update_to_v24()

    def _put(self, key: str, frame) -> None:
        """Replace the TCON / provenance frame (None: remove it), keeping its place."""
        from mutagen.id3 import TCON, TXXX

        if self._converted:
            if frame is None:
                self.file.tags.delall(key)
            else:
                self.file.tags.setall(key, [frame])
            return
        cls = TCON if key == "TCON" else TXXX
        out, placed = [], False
        for f in self._frames:
            if isinstance(f, cls):
                if not placed and frame is not None:
                    out.append(frame)
                placed = True
                continue
            out.append(f)
        if not placed and frame is not None:
            out.append(frame)
        self._frames = out

    def set_fields(self, genres: tuple[str, ...], provenance: str, *, id3v23: bool) -> None:
        from mutagen.id3 import TCON, TXXX

        for g in genres:
            if (g.isdecimal() and int(g) < 256) or g in ("RX", "CR"):
                raise TagWriteError(
                    self.path, f"genre {g!r} cannot be stored in ID3: it reads as an ID3v1 genre code"
                )
        version = 3 if (id3v23 or self._orig_version == "2.3") else 4
        self._prepare(version)
        # A genre starting with "(" is escaped as "((" (ID3v2 TCON rule; mutagen unescapes on read).
        text = ["(" + g if g.startswith("(") else g for g in genres]
        self._put("TCON", TCON(encoding=_UTF8, text=text))
        self._put(PROVENANCE_HASH, TXXX(encoding=_UTF8, desc=PROVENANCE_DESC, text=[provenance]))

    def apply_snapshot(self, snap: dict[str, Any]) -> None:
        from mutagen.id3 import TCON, TXXX

        want = snap.get("_id3")
        version = {"2.3": 3, "2.4": 4}.get(want or "")
        if version is None:
            version = 3 if self._orig_version == "2.3" else 4
        self._prepare(version)
        for key in ("TCON", PROVENANCE_HASH):
            value = snap.get(key)
            if value is None:
                self._put(key, None)
                continue
            if key == "TCON":
                frame = TCON(encoding=int(value["encoding"]), text=list(value["text"]))
            else:
                frame = TXXX(encoding=int(value["encoding"]), desc=PROVENANCE_DESC, text=list(value["text"]))
            raw = self._raw_for(value, want, version, frame)
            if raw is not None:
                self._raw_of[id(frame)] = (frame, raw)
            self._put(key, frame)
        # No ID3v2 tag before and nothing left in it: remove the tag itself.
        left = len(self.file.tags) if self._converted else len(self._frames)
        self._delete_tag = want is None and left == 0

    def _raw_for(self, value: dict[str, Any], want: str | None, version: int, frame) -> bytes | None:
        """The snapshot's own frame bytes where they can go back as they are: same tag version,
        kept raw, and they still read as the snapshot's text."""
        if "raw" not in value or self._converted or want != f"2.{version}" or self.file.tags is None:
            return None
        from mutagen.id3 import Frames

        try:
            raw = unpack_bytes(value["raw"])
            again = _parse(raw, self.file.tags._header, version, Frames)
        except Exception:
            return None
        if type(again) is not type(frame) or [str(t) for t in again.text] != [str(t) for t in frame.text]:
            return None
        return raw

    def _bytes_of(self, frame, config) -> bytes:
        from mutagen.id3._tags import save_frame

        raw = self._raw_of.get(id(frame), (None, None))[1]
        return raw if raw is not None else save_frame(frame, config=config)

    def save(self, target: str) -> None:
        if self._delete_tag:
            if self.kind == "mp3":
                from mutagen.id3 import delete

                delete(target, delete_v1=False, delete_v2=True)
            else:
                self.file.delete(target)
            return
        if self.file.tags is None:
            self.file.add_tags()
        tags = self.file.tags
        if not self._converted:
            from mutagen.id3._util import ID3SaveConfig

            config = ID3SaveConfig(self._save_version, V23_SEP)
            # Everything goes out as "unknown" raw frames, in order; mutagen writes those as they
            # are when the tag keeps its version.
            tags.clear()
            tags.unknown_frames = [
                f if isinstance(f, bytes) else self._bytes_of(f, config) for f in self._frames
            ]
            tags._unknown_v2_version = self._save_version
        kwargs: dict[str, Any] = {"v2_version": self._save_version, "v23_sep": V23_SEP}
        if self.kind != "mp3":
            self.file.save(target, **kwargs)
            return
        # ID3v1 stays as it is: mutagen's save can only rewrite (v1=1), create (2) or remove (0)
        # it, so remove it and put the very same bytes back.
        from mutagen.id3._id3v1 import find_id3v1

        with open(target, "rb") as f:
            v1, offset = find_id3v1(f)
            f.seek(offset, 2)
            tail = f.read() if v1 is not None else b""
        self.file.save(target, v1=0, **kwargs)
        if tail:
            with open(target, "r+b") as f:
                f.seek(0, 2)
                f.write(tail)
            with open(target, "rb") as f:
                f.seek(-len(tail), 2)
                if f.read() != tail:
                    raise TagWriteError(self.path, "the ID3v1 tag could not be kept as it was; left alone")

    @staticmethod
    def comparable(snap: dict[str, Any]) -> dict[str, Any]:
        # Text encodings are representation (mutagen writes UTF-16 in v2.3); values must match.
        out = dict(snap)
        for key in ("TCON", PROVENANCE_HASH):
            if out.get(key) is not None:
                out[key] = {"text": out[key]["text"]}
        return out
