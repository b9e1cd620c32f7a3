"""The audio files tagger handles: one table, extension -> format name, read by the walk
(:mod:`tagger.discover`, which files to look at) and by the tag layer (``tagger.tags.SUPPORTED``,
which format an extension promises; the content decides in the end). Standard library only.
"""

from __future__ import annotations

#: Extension (lower case, with the dot) -> tagger's format name (the report's ``format``).
EXTENSIONS: dict[str, str] = {
    ".mp3": "mp3",
    ".flac": "flac",
    ".ogg": "ogg",
    ".oga": "ogg",
    ".opus": "opus",
    ".m4a": "m4a",
    ".m4b": "m4a",
    ".mp4": "m4a",
    ".wav": "wav",
    ".aif": "aiff",
    ".aiff": "aiff",
    ".aifc": "aiff",
    ".wma": "wma",
}
