"""tagger: batch music-library genre tagger."""

__version__ = "0.3.1"
