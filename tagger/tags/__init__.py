"""The tag layer: read genres and provenance, write them without ever damaging a file, undo.

Families (one module each): :mod:`~tagger.tags.id3` (MP3, WAV, AIFF), :mod:`~tagger.tags.vorbis`
(FLAC, Ogg Vorbis, Opus), :mod:`~tagger.tags.mp4` (M4A AAC/ALAC), :mod:`~tagger.tags.asf` (WMA).
Containers are recognised by content, every mutagen call goes through one error funnel
(:func:`tagger.tags._base.guard`), and saves go through :mod:`tagger.tags._safe`.

Only two fields are ever written: the genre field(s) and ``TAGGER_PROVENANCE``. Reading imports
nothing heavy and never opens a file for writing (it runs in Ray workers).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tagger import __version__
from tagger.errors import ParameterError, TagReadError, TagWriteError
from tagger.tags._base import LABELS, SUPPORTED, detect_format, guard
from tagger.tags._safe import FileChangedError

log = logging.getLogger(__name__)

PROVENANCE_KEY = "TAGGER_PROVENANCE"
DEFAULT_TOOL = f"tagger {__version__}"

__all__ = [
    "DEFAULT_TOOL",
    "LABELS",
    "PROVENANCE_KEY",
    "SUPPORTED",
    "FieldChange",
    "FileChangedError",
    "Provenance",
    "TagInfo",
    "detect_format",
    "fields_match",
    "format_for",
    "read_tags",
    "restore_fields",
    "snapshot_fields",
    "write_genres",
]


# --------------------------------------------------------------------------------------------------
# provenance

_SPECIAL = "\\|;"


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def _split(text: str, sep: str) -> list[str]:
    """Split on unescaped ``sep``; escapes stay in the parts."""
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _valid_date(date: str) -> bool:
    try:
        datetime.fromisoformat(date)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Provenance:
    """What tagger wrote, stored beside the genre in ``TAGGER_PROVENANCE``.

    ``genres`` are the genres tagger wrote (stripped of surrounding whitespace); ``scores`` are the
    model's scores for them where it has them (rounded to 4 decimals, the precision stored);
    ``date`` is ISO-8601 (UTC, ``...Z``). ``|``, ``;`` and ``\\`` inside values are escaped with a
    backslash, so any genre round-trips.
    """

    model_id: str
    genres: tuple[str, ...]
    scores: tuple[float, ...]
    date: str
    tool: str = DEFAULT_TOOL

    def __post_init__(self) -> None:
        if isinstance(self.genres, str):
            raise ParameterError("Provenance.genres must be a sequence of genres, not one string")
        genres = tuple(str(g).strip() for g in self.genres)
        if any(not g for g in genres):
            raise ParameterError("Provenance.genres must not contain empty genres")
        scores = tuple(round(float(s), 4) for s in self.scores)
        if not all(math.isfinite(s) for s in scores):
            raise ParameterError("Provenance.scores must be finite numbers")
        if not str(self.model_id).strip():
            raise ParameterError("Provenance.model_id must not be empty")
        if not _valid_date(self.date):
            raise ParameterError(f"Provenance.date is not an ISO-8601 date: {self.date!r}")
        object.__setattr__(self, "model_id", str(self.model_id).strip())
        object.__setattr__(self, "genres", genres)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "tool", str(self.tool).strip())

    @classmethod
    def now(
        cls, *, model_id: str, genres: Sequence[str], scores: Sequence[float], tool: str = DEFAULT_TOOL
    ) -> Provenance:
        """A provenance dated now (UTC, seconds)."""
        date = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(model_id=model_id, genres=tuple(genres), scores=tuple(scores), date=date, tool=tool)

    def to_string(self) -> str:
        """``model=<id>; genres=Rock|Pop; scores=0.83|0.12; date=...Z; tool=tagger 0.1.0``."""
        return "; ".join(
            [
                f"model={_escape(self.model_id)}",
                "genres=" + "|".join(_escape(g) for g in self.genres),
                "scores=" + "|".join(repr(s) for s in self.scores),
                f"date={_escape(self.date)}",
                f"tool={_escape(self.tool)}",
            ]
        )

    @classmethod
    def parse(cls, text: str) -> Provenance | None:
        """The provenance in ``text``, or None for anything unparseable (never raises).

        Unknown keys are ignored (a later version may add some); ``model``, ``genres`` and a valid
        ``date`` are required, ``scores`` and ``tool`` may be missing.
        """
        try:
            if not isinstance(text, str) or not text.strip():
                return None
            values: dict[str, str] = {}
            for raw in _split(text, ";"):
                if not raw.strip():
                    continue
                key, eq, value = raw.partition("=")
                key = key.strip().lower()
                if not eq or not key or key in values:
                    return None
                values[key] = value
            if not {"model", "genres", "date"} <= values.keys():
                return None
            genres = tuple(g for g in (_unescape(p).strip() for p in _split(values["genres"], "|")) if g)
            score_text = _unescape(values.get("scores", "")).strip()
            scores = tuple(float(s) for s in score_text.split("|")) if score_text else ()
            if not all(math.isfinite(s) for s in scores):
                return None
            return cls(
                model_id=_unescape(values["model"]).strip(),
                genres=genres,
                scores=scores,
                date=_unescape(values["date"]).strip(),
                tool=_unescape(values.get("tool", "")).strip(),
            )
        except Exception:
            return None


# --------------------------------------------------------------------------------------------------
# results


def _fold(genres: Sequence[str]) -> tuple[str, ...]:
    return tuple(g.strip().casefold() for g in genres)


@dataclass(frozen=True)
class TagInfo:
    """What a file carries now."""

    format: str  # container found by content (mp3 flac ogg opus m4a wav aiff wma), not the extension
    genres: tuple[str, ...]  # current genre values, several where the file has several
    provenance: Provenance | None
    #: the album grouping tags (read only; tagger never writes them): album, artist,
    #: albumartist ("" when absent) and compilation (bool)
    album: str = field(default="", compare=False)
    artist: str = field(default="", compare=False)
    albumartist: str = field(default="", compare=False)
    compilation: bool = field(default=False, compare=False)

    def album_tags(self) -> dict[str, Any]:
        return {"album": self.album, "artist": self.artist, "albumartist": self.albumartist,
                "compilation": self.compilation}

    @property
    def tagger_owned(self) -> bool:
        """The genres are tagger's own: provenance present and its genres equal the file's
        (same order, compared case-insensitively). Otherwise a person wrote or edited them."""
        return self.provenance is not None and _fold(self.provenance.genres) == _fold(self.genres)


@dataclass(frozen=True)
class FieldChange:
    """Exact, JSON-serialisable snapshots of the touched fields, before and after a write.

    Keys are the native field names of the format (``TCON``, ``TXXX:TAGGER_PROVENANCE``,
    ``GENRE``, ``\\xa9gen``, ``WM/Genre``...; None = absent) plus ``_``-prefixed bookkeeping
    (``_format``, the ID3 version ``_id3``, whether a tag block existed ``_tags``).
    :func:`restore_fields` puts ``before`` back.
    """

    before: dict[str, Any]
    after: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# the API


def format_for(path: str | os.PathLike) -> str | None:
    """The format an extension promises (``SUPPORTED``), or None. The content decides in the end."""
    return SUPPORTED.get(os.path.splitext(os.fspath(path))[1].lower())


def _handler_cls(kind: str):
    if kind in ("mp3", "wav", "aiff"):
        from tagger.tags.id3 import ID3Handler

        return ID3Handler
    if kind in ("flac", "ogg", "opus", "oggflac"):
        from tagger.tags.vorbis import VorbisHandler

        return VorbisHandler
    if kind == "m4a":
        from tagger.tags.mp4 import MP4Handler

        return MP4Handler
    if kind == "wma":
        from tagger.tags.asf import ASFHandler

        return ASFHandler
    raise AssertionError(f"no tag handler for {kind!r}")  # detect_format returns only the kinds above


def _open(path: str, error: type[TagReadError | TagWriteError], shown: str | None = None):
    shown = shown or path
    fmt, kind = detect_format(path, error)
    cls = _handler_cls(kind)
    with guard(shown, error, fmt=fmt):
        return cls(path, fmt, kind)


def read_tags(path: str | os.PathLike) -> TagInfo:
    """The file's container, genres, provenance and album grouping tags. Read only.

    Raises :class:`~tagger.errors.TagReadError` (path, one-line reason) for anything unreadable.
    """
    path = os.fspath(path)
    h = _open(path, TagReadError)
    with guard(path, TagReadError, fmt=h.fmt):
        genres = tuple(h.genres())
        text = h.provenance_text()
    try:
        with guard(path, TagReadError, fmt=h.fmt):
            a = h.album_fields()
    except TagReadError:  # the album tags are a hint: unreadable ones never stop the file
        a = {}
    return TagInfo(format=h.fmt, genres=genres, provenance=Provenance.parse(text) if text else None,
                   album=a.get("album") or "", artist=a.get("artist") or "",
                   albumartist=a.get("albumartist") or "", compilation=bool(a.get("compilation")))


def snapshot_fields(path: str | os.PathLike) -> dict[str, Any]:
    """The current, exact values of the fields tagger touches (the shape of ``FieldChange.before``).

    Raises :class:`~tagger.errors.TagReadError`.
    """
    path = os.fspath(path)
    h = _open(path, TagReadError)
    with guard(path, TagReadError, fmt=h.fmt):
        return h.snapshot()


def _clean_genres(genres: Sequence[str]) -> tuple[str, ...]:
    if isinstance(genres, str) or not isinstance(genres, Sequence):
        raise ParameterError("genres must be a sequence of strings")
    out = []
    for g in genres:
        if not isinstance(g, str):
            raise ParameterError(f"genre {g!r} is not a string")
        g = g.strip()
        if not g:
            raise ParameterError("genres must not be empty strings")
        if any(ord(c) < 0x20 for c in g):
            raise ParameterError(f"genre {g!r} contains control characters")
        out.append(g)
    if not out:
        raise ParameterError("at least one genre is needed")
    return tuple(out)


def write_genres(
    path: str | os.PathLike,
    genres: Sequence[str],
    provenance: Provenance,
    *,
    id3v23: bool = False,
    dry_run: bool = False,
    expect: tuple[int, int] | None = None,
    before_save: Callable[[FieldChange, os.stat_result], None] | None = None,
) -> FieldChange:
    """Write the genre field(s) and the provenance field, nothing else.

    ``genres`` are written in order (whitespace around each stripped). ``id3v23``: write ID3v2.3
    (MP3, WAV, AIFF). ``dry_run``: compute and return the change, never save (the file is read,
    and a file a real run could not write still raises). ``expect``: ``(size, mtime_ns)`` seen when
    the file was analysed; if it differs now, :class:`FileChangedError` (a ``TagWriteError``) is
    raised and the file is left alone. ``before_save(change, stat)``: called with the planned
    change (``after`` = the fields intended) and the file's stat once everything is checked,
    just before the file is saved (the write-ahead journal); if it raises, nothing is saved.

    Saves go to a copy in the same folder that is verified and then atomically replaces the file
    (in place with a byte backup for hard-linked files). Raises
    :class:`~tagger.errors.TagWriteError` for every failure; the file is then byte-identical.
    """
    from tagger.tags import _safe

    genres = _clean_genres(genres)
    if not isinstance(provenance, Provenance):
        raise ParameterError("provenance must be a tagger.tags.Provenance")
    shown = os.fspath(path)
    real, st = _safe.stat_target(shown, shown)
    if expect is not None and (st.st_size, st.st_mtime_ns) != (int(expect[0]), int(expect[1])):
        raise FileChangedError(shown, "file changed since it was analysed; left alone")
    h = _open(real, TagWriteError, shown)
    with guard(shown, TagWriteError, fmt=h.fmt):
        before = h.snapshot()
        h.set_fields(genres, provenance.to_string(), id3v23=id3v23)
        planned = h.snapshot()
    _safe.check_writable(real, st, shown)
    if dry_run:
        return FieldChange(before=before, after=planned)
    if before_save is not None:
        before_save(FieldChange(before=before, after=planned), st)
    after = _safe.save_safely(real, st, h, expected=planned, genres=genres, shown=shown)
    log.debug("%s: genres %s written (%s)", shown, list(genres), h.fmt)
    return FieldChange(before=before, after=after)


def _fields(snap: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snap.items() if not k.startswith("_")}


def fields_match(path: str | os.PathLike, snapshot: dict[str, Any]) -> bool:
    """Whether the file carries exactly the fields of ``snapshot`` now (a ``FieldChange``
    side), compared as the verification after a write compares them. Raises TagReadError."""
    path = os.fspath(path)
    h = _open(path, TagReadError)
    if snapshot.get("_format") not in (None, h.fmt):
        return False
    with guard(path, TagReadError, fmt=h.fmt):
        now = h.snapshot()
    cmp = type(h).comparable
    return _fields(cmp(now)) == _fields(cmp(snapshot))


def restore_fields(
    path: str | os.PathLike,
    before: dict[str, Any],
    *,
    before_save: Callable[[FieldChange, os.stat_result], None] | None = None,
) -> None:
    """Put the fields of a :class:`FieldChange` ``before`` back exactly (undo).

    Values come back identical; a field absent before is removed (and a tag block tagger created
    is removed again when nothing else is in it). The save is as safe as :func:`write_genres`;
    ``before_save`` as there (``change.before`` is the fields now, ``change.after`` ``before``).
    Raises :class:`~tagger.errors.TagWriteError`.
    """
    from tagger.tags import _safe

    shown = os.fspath(path)
    if not isinstance(before, dict) or "_format" not in before:
        raise ParameterError("before must be a FieldChange.before snapshot")
    real, st = _safe.stat_target(shown, shown)
    h = _open(real, TagWriteError, shown)
    if before["_format"] != h.fmt:
        raise TagWriteError(
            shown, f"the snapshot is for a {before['_format']} file, this is {h.fmt}; left alone"
        )
    _safe.check_writable(real, st, shown)
    with guard(shown, TagWriteError, fmt=h.fmt):
        current = h.snapshot()
        h.apply_snapshot(before)
        planned = h.snapshot()
    if _fields(type(h).comparable(planned)) != _fields(type(h).comparable(before)):
        raise TagWriteError(shown, "the snapshot cannot be put back in this file")
    if before_save is not None:
        before_save(FieldChange(before=current, after=before), st)
    _safe.save_safely(real, st, h, expected=planned, genres=None, shown=shown)
    log.debug("%s: tag fields restored", shown)
