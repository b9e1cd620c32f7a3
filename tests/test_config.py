"""tagger.config: reading, validation messages, precedence, and the printable effective config."""

from __future__ import annotations

import re
import tomllib

import pytest

from tagger.config import (
    FROM_CLI,
    FROM_DEFAULT,
    HELP,
    default_config_path,
    evaluate_map,
    example_config,
    format_effective,
    load_config,
    resolve,
    toml_key,
)
from tagger.errors import FatalError
from tagger.options import TagOptions, option_names
from tests.config_helpers import config_error, write_config

pytestmark = pytest.mark.pure


_write = write_config
_error = config_error


# -- locating and reading ----------------------------------------------------------------------------


def test_default_path_is_in_the_user_config_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert default_config_path() == tmp_path / "cfg" / "tagger" / "config.toml"


def test_missing_default_file_means_no_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert load_config(None, explicit=False) == ({}, None)


def test_missing_explicit_file_is_an_error(tmp_path):
    p = tmp_path / "nope.toml"
    with pytest.raises(FatalError, match=f"config file {p} not found"):
        load_config(p, explicit=True)


def test_default_file_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    p = default_config_path()
    p.parent.mkdir(parents=True)
    p.write_text("[tag]\ntop-k = 3\n")
    assert load_config(None, explicit=False) == ({"top_k": 3}, p)


def test_values_keys_and_genres(tmp_path):
    p = _write(tmp_path, """
[tag]
top-k = 2
min_confidence = 1            # an integer is a fine number
on-existing = "merge"
id3v23 = true
exclude = ["Podcasts/*", "*.tmp"]
batch-size = 64
time-budget = 3600
ray-address = "ray://head:10001"

[genres]
hiphop = "Hip-Hop"
"r&b" = " R&B "
""")
    values, used = load_config(p, explicit=True)
    assert used == p
    assert values == {
        "top_k": 2, "min_confidence": 1.0, "on_existing": "merge", "id3v23": True,
        "exclude": ("Podcasts/*", "*.tmp"), "batch_size": 64, "time_budget": 3600.0,
        "ray_address": "ray://head:10001", "genre_map": {"hiphop": "Hip-Hop", "r&b": "R&B"},
    }
    assert isinstance(values["min_confidence"], float)


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    p = _write(tmp_path, """
[tag]
model = "models/mine.keras"
state-db = "~/state/tagger.db"
log-file = "/var/log/tagger.log"
reports = ["reports/last.html", "~/r.json"]
""")
    values, _ = load_config(p, explicit=True)
    assert values["model"] == str(tmp_path / "models" / "mine.keras")
    assert values["state_db"] == str(tmp_path / "home" / "state" / "tagger.db")
    assert values["log_file"] == "/var/log/tagger.log"
    assert values["reports"] == (str(tmp_path / "reports" / "last.html"), str(tmp_path / "home" / "r.json"))


def test_empty_file_is_fine(tmp_path):
    assert load_config(_write(tmp_path, ""), explicit=True)[0] == {}


# -- error messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        ("[tag]\ntop-k = '2'\n", ["[tag] top-k", "expected an integer", "a string ('2')"]),
        ("[tag]\ntop-k = true\n", ["[tag] top-k", "expected an integer", "a boolean"]),
        ("[tag]\ntop-k = 2.5\n", ["[tag] top-k", "expected an integer"]),
        ("[tag]\ntop-k = 0\n", ["[tag] top-k", "at least 1"]),
        ("[tag]\nmin-confidence = 1.5\n", ["[tag] min-confidence", "from 0 to 1"]),
        ("[tag]\nmin-confidence = 'high'\n", ["[tag] min-confidence", "expected a number"]),
        ("[tag]\non-existing = 'always'\n", ["[tag] on-existing", "'skip', 'replace', 'merge'", "'always'"]),
        ("[tag]\nid3v23 = 'yes'\n", ["[tag] id3v23", "true or false"]),
        ("[tag]\nexclude = '*.tmp'\n", ["[tag] exclude", "array of non-empty strings"]),
        ("[tag]\nexclude = [1, 2]\n", ["[tag] exclude", "array of non-empty strings"]),
        ("[tag]\nreports = ['out.txt']\n", ["[tag] reports", ".json, .csv, .html", "'out.txt'"]),
        ("[tag]\nworkers = -1\n", ["[tag] workers", "greater than 0"]),
        ("[tag]\nfile-timeout = 0\n", ["[tag] file-timeout", "greater than 0"]),
        ("[tag]\nmodel = ''\n", ["[tag] model", "non-empty string"]),
        ("[tag]\nvocabulary = 'spotify'\n", ["[tag] vocabulary", "'gtzan'", "'spotify'"]),
        ("[tag]\ntopk = 2\n", ["[tag] unknown key 'topk'", "did you mean 'top-k'"]),
        ("[tag]\ncolour = 'blue'\n", ["[tag] unknown key 'colour'", "tagger config --example"]),
        ("[tag]\ntop-k = 1\ntop_k = 2\n", ["'top_k' and 'top-k' set the same option"]),
        ("[tag]\ngenre-map = {a = 'b'}\n", ["[tag] genre-map", "[genres] table"]),
        ("[train]\nepochs = 3\n", ["unknown table 'train'", "[tag] and [genres]"]),
        ("top-k = 2\n", ["unknown key 'top-k' at the top level", "[tag] and [genres]"]),
        ("tag = 3\n", ["'tag' must be a table"]),
        ("[genres]\nhiphop = 3\n", ["[genres] hiphop", "non-empty string", "an integer"]),
        ("[genres]\nhiphop = ''\n", ["[genres] hiphop", "non-empty string"]),
        ("[tag\ntop-k = 2\n", ["not valid TOML", "line 1"]),
    ],
)
def test_bad_config_messages(tmp_path, text, words):
    msg = _error(tmp_path, text)
    for w in words:
        assert w in msg, (w, msg)


def test_help_is_named_in_type_errors(tmp_path):
    msg = _error(tmp_path, "[tag]\non-existing = 3\n")
    assert HELP["on_existing"] in msg


def test_not_utf8_and_directory(tmp_path):
    p = tmp_path / "latin1.toml"
    p.write_bytes("[genres]\nmetal = \"Métal\"\n".encode("latin-1"))
    with pytest.raises(FatalError, match="not UTF-8"):
        load_config(p, explicit=True)
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(FatalError, match="is a directory"):
        load_config(d, explicit=True)


# -- precedence ------------------------------------------------------------------------------------


def _cli_defaults() -> dict:
    """What a click command hands over: every option, explicit or not."""
    d = TagOptions()
    return {n: getattr(d, n) for n in option_names()}


def test_precedence_cli_over_file_over_defaults(tmp_path):
    p = _write(tmp_path, "[tag]\ntop-k = 2\nmin-confidence = 0.6\non-existing = 'merge'\n"
                         "[genres]\nhiphop = 'Hip-Hop'\n")
    file_values, used = load_config(p, explicit=True)
    cli = _cli_defaults() | {"top_k": 4, "min_confidence": 0.4, "dry_run": True}
    # The user typed --top-k 4 and --dry-run; min_confidence 0.4 is only click's default.
    options, sources = resolve(cli, {"top_k", "dry_run"}, file_values, used)
    assert options.top_k == 4 and sources["top_k"] == FROM_CLI
    assert options.dry_run is True and sources["dry_run"] == FROM_CLI
    assert options.min_confidence == 0.6 and sources["min_confidence"] == str(p)
    assert options.on_existing == "merge" and sources["on_existing"] == str(p)
    assert options.genre_map == {"hiphop": "Hip-Hop"} and sources["genre_map"] == str(p)
    assert options.quiet is False and sources["quiet"] == FROM_DEFAULT
    assert set(sources) == set(option_names())


def test_no_config_file_gives_defaults():
    options, sources = resolve({}, set(), {}, None)
    assert options == TagOptions()
    assert set(sources.values()) == {FROM_DEFAULT}


def test_cli_lists_become_tuples():
    options, _ = resolve({"exclude": ["a/*", "*.b"]}, {"exclude"}, {}, None)
    assert options.exclude == ("a/*", "*.b")


def test_bad_cli_value_names_the_option():
    with pytest.raises(FatalError, match=r"^--top-k: expected an integer of at least 1, got 0$"):
        resolve({"top_k": 0}, {"top_k"}, {}, None)
    with pytest.raises(FatalError, match="--on-existing: expected one of"):
        resolve({"on_existing": "always"}, {"on_existing"}, {}, None)


def test_unknown_names_are_programming_errors():
    with pytest.raises(ValueError, match="not TagOptions fields: colour"):
        resolve({"colour": 1}, {"colour"}, {}, None)
    with pytest.raises(ValueError, match="without a value"):
        resolve({}, {"top_k"}, {}, None)


# -- printing ----------------------------------------------------------------------------------------


def test_effective_config_is_valid_toml_with_sources_and_round_trips(tmp_path):
    p = _write(tmp_path, "[tag]\nmin-confidence = 0.55\nexclude = ['Podcasts/*']\nworkers = 3\n"
                         "[genres]\nhiphop = 'Hip-Hop'\n\"r&b\" = 'R&B'\n")
    file_values, used = load_config(p, explicit=True)
    options, sources = resolve(_cli_defaults() | {"top_k": 2}, {"top_k"}, file_values, used)
    text = format_effective(options, sources)
    data = tomllib.loads(text)
    assert data["tag"]["top-k"] == 2 and data["tag"]["min-confidence"] == 0.55
    assert data["genres"] == {"hiphop": "Hip-Hop", "r&b": "R&B"}
    assert "batch-size" not in data["tag"]  # unset: a comment saying what unset means
    assert "# batch-size = ...  # not set: chosen by device" in text
    lines = {line.split(" = ")[0]: line for line in text.splitlines() if " = " in line}
    assert lines["top-k"].endswith("# command line")
    assert lines["min-confidence"].endswith(f"# from {p}")
    assert lines["quiet"].endswith("# default")
    for name in option_names():
        if name != "genre_map":
            assert toml_key(name) in text
    # Saved as a config file, it gives back the same options.
    saved = _write(tmp_path, text, "saved.toml")
    again, used2 = load_config(saved, explicit=True)
    options2, sources2 = resolve({}, set(), again, used2)
    assert options2 == options
    assert sources2["quiet"] == str(saved)  # every set value now comes from the file


def test_example_config_is_valid_and_complete(tmp_path):
    text = example_config()
    p = _write(tmp_path, text)
    values, _ = load_config(p, explicit=True)
    # saved as it is, the example sets nothing (it once set top-k, exclude, ... and a genre)
    assert values == {}
    for name in option_names():
        if name != "genre_map":
            assert f"{toml_key(name)} = " in text, name
    # Every commented-out example line is itself valid when uncommented.
    uncommented = "\n".join(
        line[2:] if re.match(r"# ([a-z0-9-]+ = |\[genres\]$|\[learn\]$|\[evaluate\]$)", line) else line
        for line in text.splitlines()
    )
    values, _ = load_config(_write(tmp_path, uncommented, "all.toml"), explicit=True)
    assert set(values) == set(option_names()) | {"learn", "evaluate"}  # tagger learn's and evaluate's tables
    assert evaluate_map(values) == {"disco": "Dance", "metal": "Heavy Metal"}
    resolve({}, set(), values, p)


def test_effective_config_shows_the_evaluate_map_and_round_trips(tmp_path):
    """`tagger config` prints the [evaluate] map (a [evaluate.map] table), and saved it reads back."""
    p = _write(tmp_path, '[evaluate]\nmap = {disco = "Dance", "hip-hop" = "Rap"}\n')
    values, used = load_config(p, explicit=True)
    options, sources = resolve({}, set(), values, used)
    text = format_effective(options, sources, values.get("learn"), used, values.get("evaluate"))
    assert tomllib.loads(text)["evaluate"] == {"map": {"disco": "Dance", "hip-hop": "Rap"}}
    again, _ = load_config(_write(tmp_path, text, "saved.toml"), explicit=True)
    assert again["evaluate"] == values["evaluate"]
    empty = format_effective(options, sources)  # none set: a comment, and still valid TOML
    assert "[evaluate.map]" in empty and tomllib.loads(empty).get("evaluate", {}).get("map", {}) == {}
