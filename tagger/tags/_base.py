"""Shared machinery of the tag layer: the one mutagen funnel, container detection, the handler base.

Every call into mutagen (and every file-system call around it) goes through :func:`guard`, which
turns *any* exception into a :class:`~tagger.errors.TagReadError` / :class:`~tagger.errors.TagWriteError`
carrying the path and a one-line reason. Containers are recognised by their content
(:func:`detect_format`), never by the extension alone, so a FLAC file named ``.mp3`` is handled by
the FLAC code.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import Any

from tagger.errors import FileError, TagReadError, TagWriteError
from tagger.formats import EXTENSIONS

#: Human names of the formats, for messages.
LABELS = {
    "mp3": "MP3",
    "flac": "FLAC",
    "ogg": "Ogg Vorbis",
    "opus": "Ogg Opus",
    "m4a": "MP4/M4A",
    "wav": "WAV",
    "aiff": "AIFF",
    "wma": "WMA/ASF",
}

_AN = {"mp3", "m4a", "aiff", "ogg", "opus"}


def a_label(fmt: str | None) -> str:
    """``"a FLAC"``, ``"an MP3"``: the label with its article."""
    label = LABELS.get(fmt or "", fmt or "audio")
    return ("an " if (fmt in _AN or label[:1].lower() in "aeiou") else "a ") + label


#: Extension -> format name (lower-case extensions, with the dot): the one table, tagger.formats.
SUPPORTED: dict[str, str] = EXTENSIONS

_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_MAX_REASON = 200

_ERRNO_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file size limit exceeded",
    errno.ENOENT: "file not found",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a parent of the path is not a folder",
    errno.EIO: "input/output error",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EXDEV: "cross-device rename",
    errno.ETXTBSY: "file is busy",
}


# --------------------------------------------------------------------------------------------------
# errors


def _find_oserror(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: itself, an argument (mutagen re-raises ``error(IOError)``),
    or its cause/context chain."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)
    return None


def _message(exc: BaseException, path: str | None) -> str:
    text = str(exc)
    if path:
        for variant in (repr(path), repr(os.path.basename(path)), path):
            text = text.replace(variant, "the file")
    text = " ".join(text.split())
    return text


def describe(exc: BaseException, *, fmt: str | None = None, path: str | None = None) -> str:
    """A one-line, human reason for ``exc`` (``"disk full"``, ``"not a FLAC file"``, ...)."""
    if isinstance(exc, FileError):
        return exc.reason
    oserr = _find_oserror(exc)
    if oserr is not None:
        if oserr.errno is None:
            return (oserr.strerror or "I/O error").lower()
        return _ERRNO_REASONS.get(oserr.errno) or (os.strerror(oserr.errno) or "I/O error").lower()
    label = LABELS.get(fmt or "", fmt or "audio")
    msg = _message(exc, path)
    if isinstance(exc, MemoryError):
        reason = f"damaged {label} file (a size field asks for more memory than there is)"
    elif _is_header_error(exc):
        reason = f"not {a_label(fmt)} file" + (f" ({msg})" if msg else "")
    elif _is_mutagen_error(exc):
        reason = f"damaged {label} tags: {msg}" if msg else f"damaged {label} tags"
    else:
        reason = f"damaged {label} file: {type(exc).__name__}" + (f": {msg}" if msg else "")
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 3] + "..."
    return reason


def _is_mutagen_error(exc: BaseException) -> bool:
    from mutagen import MutagenError

    return isinstance(exc, MutagenError)


def _is_header_error(exc: BaseException) -> bool:
    from mutagen.asf import ASFHeaderError
    from mutagen.flac import FLACNoHeaderError
    from mutagen.mp3 import HeaderNotFoundError
    from mutagen.oggflac import OggFLACHeaderError
    from mutagen.oggopus import OggOpusHeaderError
    from mutagen.oggvorbis import OggVorbisHeaderError

    return isinstance(
        exc,
        (
            HeaderNotFoundError,
            FLACNoHeaderError,
            OggVorbisHeaderError,
            OggOpusHeaderError,
            OggFLACHeaderError,
            ASFHeaderError,
        ),
    )


@contextlib.contextmanager
def guard(path: str, error: type[FileError], *, fmt: str | None = None, prefix: str = "") -> Iterator[None]:
    """Run the body; turn any exception into ``error(path, reason)``.

    This is the one funnel every mutagen and file-system call of the tag layer goes through
    (mediafile's ``mutagen_call`` idea). ``FileError`` subclasses pass through unchanged when they
    already are of the requested class; a ``TagReadError`` raised while writing becomes a
    ``TagWriteError`` with the same reason.
    """
    try:
        yield
    except FileError as exc:
        if isinstance(exc, error):
            if exc.path == str(path):
                raise
            raise type(exc)(path, exc.reason) from exc  # name the file as the caller did
        raise error(path, prefix + exc.reason) from exc
    except Exception as exc:
        raise error(path, prefix + describe(exc, fmt=fmt, path=path)) from exc


def call(path: str, error: type[FileError], fn, *args, fmt: str | None = None, **kwargs) -> Any:
    """``fn(*args, **kwargs)`` through :func:`guard`."""
    with guard(path, error, fmt=fmt):
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------------------------------
# container detection


def _skip_id3v2(f) -> int:
    """Offset of the first byte after any ID3v2 tags at the start of the file (0 if none)."""
    offset = 0
    for _ in range(8):  # a few stacked tags at most
        f.seek(offset)
        head = f.read(10)
        if len(head) < 10 or head[:3] != b"ID3":
            break
        flags = head[5]
        raw = head[6:10]
        if any(b & 0x80 for b in raw):
            break  # not a syncsafe size: not an ID3 header after all
        size = (raw[0] << 21) | (raw[1] << 14) | (raw[2] << 7) | raw[3]
        offset += 10 + size + (10 if flags & 0x10 else 0)
    return offset


def _ogg_codec(first_page: bytes) -> str | None:
    if len(first_page) < 27:
        return None
    start = 27 + first_page[26]
    packet = first_page[start : start + 16]
    if packet.startswith(b"\x01vorbis"):
        return "ogg"
    if packet.startswith(b"OpusHead"):
        return "opus"
    if packet.startswith(b"\x7fFLAC"):
        return "oggflac"
    if packet.startswith(b"Speex   "):
        return "speex"
    if packet.startswith(b"\x80theora"):
        return "theora"
    return "unknown-ogg"


def _is_mpeg_sync(b: bytes) -> bool:
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return False
    version = (b[1] >> 3) & 0x03
    layer = (b[1] >> 1) & 0x03
    bitrate = b[2] >> 4
    rate = (b[2] >> 2) & 0x03
    return version != 1 and layer != 0 and bitrate != 0x0F and rate != 0x03


def sniff(path: str) -> str:
    """The container kind found in the file's first bytes.

    One of ``mp3 flac ogg opus oggflac m4a wav aiff wma``, or a string starting with
    ``unsupported:`` / ``unknown`` when nothing tagger handles was recognised. Raises OSError.
    """
    with open(path, "rb") as f:
        head = f.read(64)
        after_id3 = _skip_id3v2(f)
        f.seek(after_id3)
        body = f.read(4096)
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] in (b"RF64", b"BW64"):
        return "unsupported:RF64/BW64 WAV"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:16] == _ASF_GUID:
        return "wma"
    if head[:4] == b"OggS":
        with open(path, "rb") as f:
            first_page = f.read(27 + 255 + 16)
        codec = _ogg_codec(first_page)
        if codec in ("ogg", "opus", "oggflac"):
            return codec
        if codec is None or codec == "unknown-ogg":
            return "unsupported:Ogg stream that is not Vorbis, Opus or FLAC"
        return f"unsupported:Ogg {codec.capitalize()}"
    if body[:4] == b"fLaC":
        return "flac"
    if after_id3 > 0:
        return "mp3"  # an ID3v2 tag followed by anything but FLAC: MP3 (mutagen checks the frames)
    if _is_mpeg_sync(body):
        return "mp3"
    if body[:4] == b"MAC ":
        return "unsupported:Monkey's Audio"
    if body[:4] == b"wvpk":
        return "unsupported:WavPack"
    return "unknown"


def detect_format(path: str, error: type[FileError] = TagReadError) -> tuple[str, str]:
    """``(format, kind)`` of the file by content.

    ``format`` is tagger's name (``SUPPORTED`` values); ``kind`` selects the mutagen class
    (``oggflac`` is an Ogg FLAC file, format ``ogg``). Raises ``error`` for anything else.
    """
    kind = call(path, error, sniff, path)
    ext = os.path.splitext(path)[1].lower()
    expected = SUPPORTED.get(ext)
    if kind == "unknown" and expected == "mp3":
        # MP3 files may start with junk before the first frame; mutagen searches for it.
        kind = "mp3"
    if kind == "unknown":
        if expected:
            raise error(path, f"not {a_label(expected)} file (content not recognised)")
        raise error(path, "unrecognised audio format")
    if kind.startswith("unsupported:"):
        raise error(path, f"unsupported format: {kind.split(':', 1)[1]}")
    fmt = "ogg" if kind == "oggflac" else kind
    return fmt, kind


# --------------------------------------------------------------------------------------------------
# handler base


class Handler:
    """Reads and changes tagger's two fields in one loaded file of one tag family.

    Life cycle: ``h = Handler(path, fmt, kind)`` loads with mutagen (read only);
    ``h.genres()`` / ``h.provenance_text()`` read; ``h.snapshot()`` gives the exact,
    JSON-serialisable state of the touched fields; ``h.set_fields(...)`` or ``h.apply_snapshot(...)``
    change the in-memory tags; ``h.save(target)`` writes them into ``target`` (the file itself or a
    byte copy of it). Errors are left to the caller's :func:`guard`.
    """

    def __init__(self, path: str, fmt: str, kind: str):
        self.path = path
        self.fmt = fmt
        self.kind = kind
        self.file = self._load(path)

    # subclasses implement
    def _load(self, path: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def genres(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def provenance_text(self) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def album_fields(self) -> dict[str, Any]:
        """The album grouping tags, read only (never written): ``album``, ``artist``,
        ``albumartist`` (first values, stripped; "" when absent) and ``compilation`` (bool)."""
        return {}

    def set_fields(
        self, genres: tuple[str, ...], provenance: str, *, id3v23: bool
    ) -> None:  # pragma: no cover
        raise NotImplementedError

    def apply_snapshot(self, snap: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, target: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def comparable(snap: dict[str, Any]) -> dict[str, Any]:
        """The part of a snapshot that must read back identically after a save."""
        return snap


def flag(value: Any) -> bool:
    """A compilation flag's value (``1``, ``"1"``, ``True``, ``"true"``) as a bool."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return str(value).strip().casefold() in ("1", "true", "yes")


def first_text(values: Any) -> str:
    """The first non-empty value of a tag field as one stripped line ("" for none)."""
    if values is None:
        return ""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        values = [values]
    for v in values:
        text = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        text = " ".join(text.split())
        if text:
            return text
    return ""


def first_line(text: str) -> str:
    return " ".join(str(text).split())


def pack_bytes(data: bytes) -> dict[str, str]:
    """JSON form of raw bytes: text when it is UTF-8, base64 otherwise."""
    import base64

    try:
        return {"utf8": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(data).decode("ascii")}


def unpack_bytes(obj: dict[str, str]) -> bytes:
    import base64

    if "utf8" in obj:
        return obj["utf8"].encode("utf-8")
    return base64.b64decode(obj["b64"])


__all__ = [
    "LABELS",
    "SUPPORTED",
    "Handler",
    "TagReadError",
    "TagWriteError",
    "call",
    "describe",
    "detect_format",
    "guard",
    "sniff",
]
