"""Config-file test helpers shared by test_config*.py: write a file, expect a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagger.config import load_config
from tagger.errors import EXIT_FATAL, FatalError


def write_config(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def config_error(tmp_path: Path, text: str) -> str:
    """The error loading ``text`` as a config file gives: one line naming the file, exit 1."""
    p = write_config(tmp_path, text)
    with pytest.raises(FatalError) as exc:
        load_config(p, explicit=True)
    msg = str(exc.value)
    assert str(p) in msg and "\n" not in msg
    assert exc.value.exit_code == EXIT_FATAL
    return msg
