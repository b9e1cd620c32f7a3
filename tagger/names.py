"""File names that are not valid UTF-8, in reports and on the console.

POSIX file names are bytes. Python gives them to tagger as ``str`` with every byte that is not
part of valid UTF-8 turned into a lone surrogate U+DC80..U+DCFF (``os.fsdecode``, PEP 383's
``surrogateescape``), so ``os.fsencode`` gets the exact bytes back. Such a ``str`` cannot be
written as UTF-8, which is why every writer of text goes through one of these:

* :func:`visible` -- a readable form that is valid UTF-8: each undecodable byte becomes the
  four characters ``\\xNN`` (``caf\\xe9.mp3`` for the Latin-1 name ``café.mp3``). For people,
  CSV, HTML, the console and the log. A name that already holds a backslash followed by ``x``
  and two hex digits reads the same, so it is not a way back to the bytes;
* :func:`json_text` -- JSON in which every lone surrogate is the escape ``\\udcNN``: Python's
  ``json`` reads back the very same ``str`` (so ``os.fsencode`` gives the bytes), and other
  readers get valid JSON. :func:`exact_bytes_b64` gives what the JSON report adds for such a
  path (``path_bytes``, base64 of the exact bytes) for readers that lack surrogateescape.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def visible(text: Any) -> str:
    """``text`` (anything; ``str()`` of it) as valid UTF-8 text, undecodable bytes as ``\\xNN``."""
    text = text if isinstance(text, str) else str(text)
    if not has_surrogates(text):
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no byte stands for (U+D800..U+DC7F)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def visible_tree(obj: Any) -> Any:
    """:func:`visible` on every string in nested lists, tuples and dicts (keys too)."""
    if isinstance(obj, str):
        return visible(obj)
    if isinstance(obj, dict):
        return {visible_tree(k): visible_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [visible_tree(v) for v in obj]
    return obj


def exact_bytes_b64(path: str) -> str | None:
    """Base64 of the exact bytes of ``path`` when it is not valid UTF-8, else None."""
    if not has_surrogates(path):
        return None
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:
        return None
    return base64.b64encode(raw).decode("ascii")


def json_text(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(obj, ensure_ascii=False, **kwargs)`` with lone surrogates as ``\\udcNN``
    escapes, so the text encodes as UTF-8 and reads back as the same strings.

    A surrogate can only stand inside a JSON string (keys and values), where the escape means
    the same code point; everything else stays as written (non-ASCII names stay readable).
    """
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
