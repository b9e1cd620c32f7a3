"""tagger: batch music-library genre tagger."""

__version__ = "0.2.0"
