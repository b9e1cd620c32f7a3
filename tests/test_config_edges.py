"""tagger.config edges: control characters in [genres], the example file and --help saying the same."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from tagger.cli import main
from tagger.config import HELP, example_config, load_config, resolve
from tagger.errors import EXIT_FATAL, FatalError
from tagger.options import option_names

pytestmark = pytest.mark.pure


def _write(tmp_path, text: str):
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("value, what", [
    ('"Rock\\nRoll"', "a newline (U+000A)"),
    ('"Rock\\tRoll"', "a tab (U+0009)"),
    ('"Ro\\u0000ck"', "a NUL (U+0000)"),
    ('"Ro\\u0007ck"', "a control character (U+0007)"),
    ('"Rock\\u007f"', "a control character (U+007F)"),
    ('"""\nRock\nRoll"""', "a newline (U+000A)"),
])
def test_genres_with_control_characters_are_refused_on_load(tmp_path, value, what):
    p = _write(tmp_path, f"[genres]\nrock = {value}\n")
    with pytest.raises(FatalError) as e:
        load_config(p, explicit=True)
    msg = str(e.value)
    assert msg.startswith(f"{p}: [genres] rock: the genre ") and what in msg, msg
    assert "\n" not in msg and "\t" not in msg and "\x00" not in msg  # one printable line
    assert e.value.exit_code == EXIT_FATAL


def test_genre_label_with_a_control_character_is_refused(tmp_path):
    p = _write(tmp_path, '[genres]\n"hip\\nhop" = "Hip-Hop"\n')
    with pytest.raises(FatalError, match=r"\[genres\] 'hip\\nhop': a label never holds control characters"):
        load_config(p, explicit=True)


def test_tagger_config_refuses_a_genre_with_a_newline(tmp_path):
    """`tagger config` used to print it as valid; the run died later, at the first write."""
    p = _write(tmp_path, '[genres]\nrock = "Rock\\nRoll"\n')
    r = CliRunner().invoke(main, ["config", "--config", str(p)])
    assert r.exit_code == 1, r.output
    [line] = r.output.splitlines()
    assert line.startswith("tagger: error: ") and "[genres] rock" in line and "newline" in line


def test_genre_map_given_in_code_is_checked_too():
    with pytest.raises(FatalError, match="rock: contains a newline"):
        resolve({}, set(), {"genre_map": {"rock": "Rock\nRoll"}}, None)


def test_genres_with_other_characters_still_load(tmp_path):
    p = _write(tmp_path, '[genres]\nrock = "Rock & Roll | Live; 100%"\nhiphop = "Hip‑Hop ✓"\n')
    values, _ = load_config(p, explicit=True)
    assert values["genre_map"] == {"rock": "Rock & Roll | Live; 100%", "hiphop": "Hip‑Hop ✓"}


def test_example_config_saved_as_is_changes_nothing(tmp_path):
    values, _ = load_config(_write(tmp_path, example_config()), explicit=True)
    assert values == {}
    assert not [ln for ln in example_config().splitlines() if ln and not ln.startswith("#") and ln != "[tag]"]


def _tag_help() -> dict[str, str]:
    from tagger.commands.tag import tag_cmd

    return {p.name: " ".join(p.help.split()) for p in tag_cmd.params if getattr(p, "help", None)}


def test_example_config_and_tag_help_say_the_same():
    """Each option's text in `tagger config --example` is its `tagger tag --help` text."""
    helps = _tag_help()
    example = " ".join(ln[2:] for ln in example_config().splitlines() if ln.startswith("# "))
    rename = {"reports": "report"}
    for name in option_names():
        if name == "genre_map":
            continue
        text = " ".join(HELP[name].split())
        assert text in example, name
        cli = rename.get(name, name)
        if cli in helps:
            assert helps[cli].startswith(text), (name, helps[cli], text)
    # the facts the issue found wrong
    assert "sampled across" in HELP["analysis_seconds"] and "middle" not in HELP["analysis_seconds"]
    assert "WAV" in HELP["id3v23"] and "AIFF" in HELP["id3v23"]
    assert "capital first letter" in example and "written as they are" not in example


def test_every_tag_option_has_its_text_in_help():
    helps = _tag_help()
    cli_only = {"paths", "config_path", "help"}
    for name in helps:
        if name in cli_only:
            continue
        field = {"report": "reports"}.get(name, name)
        assert field in HELP, name


def test_help_texts_are_one_line_sentences():
    for name, text in HELP.items():
        assert "\n" not in text and text[0].isupper() and text.endswith("."), name
        assert not re.search(r"\s{2,}", text), name
