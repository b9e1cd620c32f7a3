"""The config's [learn] table (tagger learn's taxonomy settings) and genre-style in [tag]."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from tagger.config import example_config, format_effective, load_config, resolve
from tagger.taxonomy import DEFAULT_DROP, LearnSettings, learn_settings
from tests.config_helpers import config_error, write_config

pytestmark = pytest.mark.pure


_write = write_config


def _error(tmp_path: Path, text: str) -> str:
    msg = config_error(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'config.toml'}: "), msg  # [learn] errors name the file first
    return msg


GOOD = """
[tag]
top-k = 2
[learn]
merge = {"Alt Rock" = "Alternative", "alt. metal" = "Metal"}
rename = {hiphop = "Hip-Hop"}
drop = ["Other", "Unknown", "Christmas"]
min-tracks = 10
min_albums = 2
"""


def test_a_good_table_becomes_learn_settings_and_leaves_tag_options_alone(tmp_path):
    values, p = load_config(_write(tmp_path, GOOD), explicit=True)
    assert values["learn"] == {"merge": {"Alt Rock": "Alternative", "alt. metal": "Metal"},
                               "rename": {"hiphop": "Hip-Hop"}, "drop": ("Other", "Unknown", "Christmas"),
                               "min_tracks": 10, "min_albums": 2}
    s = learn_settings(values)
    assert s == LearnSettings(merge={"Alt Rock": "Alternative", "alt. metal": "Metal"}, rename={"hiphop": "Hip-Hop"},
                              drop=frozenset({"Other", "Unknown", "Christmas"}), min_tracks=10, min_albums=2)
    options, sources = resolve({}, set(), values, p)
    assert options.top_k == 2 and "learn" not in sources


def test_no_table_or_a_partial_table_gives_the_defaults(tmp_path):
    values, _ = load_config(_write(tmp_path, "[tag]\ntop-k = 1\n"), explicit=True)
    assert "learn" not in values and learn_settings(values) == LearnSettings()
    values, _ = load_config(_write(tmp_path, "[learn]\nmin-tracks = 5\n"), explicit=True)
    s = learn_settings(values)
    assert (s.min_tracks, s.min_albums, s.drop, s.merge) == (5, 3, DEFAULT_DROP, {})
    values, _ = load_config(_write(tmp_path, "[learn]\ndrop = []\n"), explicit=True)
    assert learn_settings(values).drop == frozenset()  # learn even the placeholders


def test_sub_tables_are_the_same_as_inline_tables(tmp_path):
    a, _ = load_config(_write(tmp_path, '[learn]\nmerge = {"Alt Rock" = "Alternative"}\n', "a.toml"), explicit=True)
    b, _ = load_config(_write(tmp_path, '[learn.merge]\n"Alt Rock" = "Alternative"\n', "b.toml"), explicit=True)
    assert a == b


@pytest.mark.parametrize("text, words", [
    ("learn = 3\n", ["'learn' must be a table"]),
    ("[learn]\nmin-track = 5\n", ["[learn] unknown key 'min-track'", "did you mean 'min-tracks'"]),
    ("[learn]\ncolour = 'blue'\n", ["[learn] unknown key 'colour'", "tagger config --example"]),
    ("[learn]\nmin-tracks = 0\n", ["[learn] min-tracks", "at least 1"]),
    ("[learn]\nmin-tracks = '20'\n", ["[learn] min-tracks", "a string ('20')"]),
    ("[learn]\nmin-albums = true\n", ["[learn] min-albums", "a boolean"]),
    ("[learn]\nmin-albums = 2.5\n", ["[learn] min-albums", "an integer"]),
    ("[learn]\nmin-tracks = 3\nmin_tracks = 4\n", ["'min_tracks' and 'min-tracks' set the same setting"]),
    ("[learn]\ndrop = 'Other'\n", ["[learn] drop", "array of genre names"]),
    ("[learn]\ndrop = ['']\n", ["[learn] drop", "array of genre names"]),
    ("[learn]\ndrop = [\"Oth\\ner\"]\n", ["[learn] drop", "newline"]),
    ("[learn]\nmerge = 'a'\n", ["[learn] merge", "table of genre names"]),
    ("[learn]\nmerge = {a = 3}\n", ["[learn] merge: a", "a non-empty string", "an integer"]),
    ("[learn]\nmerge = {a = ' '}\n", ["[learn] merge: a", "non-empty"]),
    ("[learn]\nrename = {rock = \"Ro\\tck\"}\n", ["[learn] rename: rock", "a tab"]),
    ("[learn]\nrename = {\"hip\\nhop\" = \"Hip-Hop\"}\n", ["[learn] rename: 'hip\\nhop'", "newline"]),
    ("[learn]\nmerge = {a = 'b', b = 'a'}\n", ["[learn] merge 'a'", "circle", "a -> b -> a"]),
    ("[learn]\nmerge = {\"Alt Rock\" = \"alt-rock\"}\n", ["into itself"]),
    ("[learn]\nmerge = {\"Alt Rock\" = \"X\"}\ndrop = [\"alt rock\"]\n", ["also dropped", "choose one"]),
    ("[learn]\nmerge = {\"Alt Rock\" = \"X\"}\nrename = {\"ALT ROCK\" = \"Y\"}\n", ["rename 'ALT ROCK'", "'X'"]),
    ("[learn]\nmerge = {\"--\" = \"X\"}\n", ["merge '--'", "not a genre name"]),
    ("[train]\nepochs = 3\n", ["unknown table 'train'", "[learn]"]),
])
def test_bad_tables_are_one_line_naming_the_key(tmp_path, text, words):
    msg = _error(tmp_path, text)
    for w in words:
        assert w in msg, msg


def test_tagger_config_shows_the_table_with_sources_and_round_trips(tmp_path):
    p = _write(tmp_path, GOOD)
    r = CliRunner().invoke(__import__("tagger.cli", fromlist=["main"]).main, ["config", "--config", str(p)])
    assert r.exit_code == 0, r.output
    text = r.output
    data = tomllib.loads(text)
    assert data["learn"] == {"merge": {"Alt Rock": "Alternative", "alt. metal": "Metal"},
                             "rename": {"hiphop": "Hip-Hop"}, "drop": ["Other", "Unknown", "Christmas"],
                             "min-tracks": 10, "min-albums": 2}
    assert re.search(rf"^min-tracks = 10  # from {re.escape(str(p))}$", text, re.M)
    saved = _write(tmp_path, text, "saved.toml")
    again, _ = load_config(saved, explicit=True)
    assert learn_settings(again) == learn_settings(load_config(p, explicit=True)[0])


def test_defaults_are_shown_when_there_is_no_table(tmp_path):
    values, p = load_config(_write(tmp_path, "[tag]\ntop-k = 1\n"), explicit=True)
    options, sources = resolve({}, set(), values, p)
    text = format_effective(options, sources, values.get("learn"), p)
    data = tomllib.loads(text)
    assert data["learn"] == {"merge": {}, "rename": {}, "drop": ["Other", "Unknown"], "min-tracks": 20,
                             "min-albums": 3}
    assert "min-tracks = 20  # default" in text
    assert learn_settings(load_config(_write(tmp_path, text, "saved.toml"), explicit=True)[0]) == LearnSettings()


def test_example_learn_table_uncommented_is_valid(tmp_path):
    text = example_config()
    block = text[text.index("# [learn]"):]
    block = block[: block.find("# [", 3)] if "# [" in block[3:] else block  # up to the next table
    body = "\n".join(ln[2:] for ln in block.splitlines() if re.match(r"# (\[learn\]$|[a-z-]+ = )", ln))
    values, _ = load_config(_write(tmp_path, body), explicit=True)
    assert learn_settings(values) == LearnSettings(merge={"Alt Rock": "Alternative"}, rename={"hiphop": "Hip-Hop"})


def test_genre_style_in_tag_table(tmp_path):
    values, p = load_config(_write(tmp_path, '[tag]\ngenre-style = "beets"\n'), explicit=True)
    options, sources = resolve({}, set(), values, p)
    assert options.genre_style == "beets" and sources["genre_style"] == str(p)
    options, _ = resolve({"genre_style": "lower"}, {"genre_style"}, values, p)
    assert options.genre_style == "lower"
    msg = _error(tmp_path, '[tag]\ngenre-style = "Beets"\n')
    assert "[tag] genre-style" in msg and "'as-is', 'beets', 'id3v1', 'lower'" in msg
