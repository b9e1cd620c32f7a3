"""The config file: ``[tag]`` defaults for ``tagger tag``, a ``[genres]`` map, ``[learn]`` and
``tagger evaluate``'s ``[evaluate] map``, in TOML.

Default location: ``platformdirs.user_config_dir("tagger")/config.toml`` (``~/.config/tagger/
config.toml`` on Linux); ``--config PATH`` names another. Example::

    [tag]
    top-k = 2
    min-confidence = 0.5
    on-existing = "merge"
    exclude = ["Podcasts/*", "*.tmp"]
    reports = ["~/tagger-reports/last.html"]

    [genres]            # label the model predicts -> genre written into the file
    hiphop = "Hip-Hop"

    [learn]             # how `tagger learn` reads the library's genres (tagger.taxonomy)
    merge = {"Alt Rock" = "Alternative"}
    rename = {hiphop = "Hip-Hop"}
    drop = ["Other", "Unknown"]
    min-tracks = 20
    min-albums = 3

Keys of ``[tag]`` are the fields of :class:`tagger.options.TagOptions`, spelled with ``-`` or
``_`` (``top-k`` = ``top_k``). A setting that TOML cannot express as "unset" (``batch-size``
chosen by device, no ``model``) is simply left out. Relative paths (``model``, ``state-db``,
``log-file``, ``reports``) are relative to the config file's folder; ``~`` is expanded.

Precedence: options given on the command line > the config file > built-in defaults
(:func:`resolve`). ``tagger config`` prints the result with :func:`format_effective`, one line
per setting and a comment saying where each value came from; that output is itself a valid
config file.

Any unknown table or key, wrong type or bad value is a :class:`tagger.errors.FatalError`
naming the file, the key and what is expected; a config problem never silently falls back to
defaults. Standard library + tomli_w only: no numpy, TensorFlow or Ray.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger.errors import CommandLineError, FatalError
from tagger.options import GENRE_STYLES, ON_EXISTING, TagOptions, option_names

#: Source label of options given on the command line (see :func:`resolve`).
FROM_CLI = "command line"
#: Source label of built-in defaults.
FROM_DEFAULT = "default"

#: Fields holding file-system paths (resolved against the config file's folder).
PATH_FIELDS = frozenset({"model", "state_db", "log_file", "reports"})

#: One line of help per option, the single source of every option's text: ``tagger tag --help``
#: (tagger.cli adds the defaults), the example config, ``tagger config`` and error messages.
HELP: dict[str, str] = {
    "model": "A model: NAME.keras or NAME.npz with NAME.json beside it, or its folder.",
    "vocabulary": "Shipped model to use when no model is given: gtzan (the 10 GTZAN genres) or msd "
                  "(the broader MSD genre tags).",
    "top_k": "Write up to K genres per file.",
    "min_confidence": "Only genres scoring at least this (0 to 1); if none does, the file is 'uncertain' "
                      "and left alone. Given, it overrides a model's own per-genre thresholds.",
    "on_existing": "What to do with a genre a person wrote: skip, replace or merge.",
    "id3v23": "Write ID3v2.3 instead of v2.4 to MP3, WAV and AIFF files (for old players); a tag that "
              "is already v2.3 stays v2.3 either way.",
    "dry_run": "Compute everything, write nothing.",
    "reports": "Write a report: a path ending in .json, .csv or .html (repeatable).",
    "exclude": "Skip paths matching GLOB, relative to each folder given, and file or folder names "
               "matching it (repeatable).",
    "batch_size": "Chunks per inference batch.",
    "workers": "Decode tasks in parallel.",
    "ray_address": "Join this Ray cluster: HOST:PORT, ray://HOST:10001, or auto (the cluster `ray start` "
                   "runs on this machine); also RAY_ADDRESS. Without it tagger starts a private local "
                   "Ray instance and never joins a cluster.",
    "analysis_seconds": "Analyse about this many seconds per track, sampled across it (seeking), and "
                        "decide from them alone (no re-check).",
    "whole_track": "Analyse every track whole (up to max-analysis-seconds) instead of adaptively (a "
                   "30 s sample first, more of the track only where the decision is a close call).",
    "max_analysis_seconds": "Never analyse more than this many seconds of one track (config file only).",
    "state_db": "State database: which files are done, the runs, the undo journal.",
    "force": "Re-analyse files even if unchanged since the last run.",
    "max_files": "Handle at most N files this run; the rest next time.",
    "time_budget": "Stop starting new files after this many seconds; the rest next time.",
    "quiet": "No progress and no summary unless files failed (for cron).",
    "log_file": "Append a log of the run to FILE.",
    "file_timeout": "Give up on a file whose analysis takes longer than this many seconds.",
    "explain_uncertain": "Add explain pictures of uncertain files to the HTML report.",
    "albums": "Decide the tracks of an album together: every track gets the album's genres, except "
              "one that strongly disagrees (--album-dissent); --no-albums decides each track alone. "
              "Compilations and loose singles are always decided per track.",
    "album_dissent": "A track of an album keeps its own genre when the model gives it at least this "
                     "score on its own (0 to 1; 1: never).",
    "genre_map": "The [genres] table: label the model predicts = genre written.",
    "genre_style": "How written genre names are spelled: as-is (as the model or [genres] names them), beets "
                   "(Hip Hop, Drum and Bass, R&B), id3v1 (the ID3v1 list's spelling: Hip-Hop, Rock & Roll) or "
                   "lower (MusicBrainz: hip hop).",
}

#: The [learn] table (``tagger learn``; tagger.taxonomy.LearnSettings): key -> one line of help.
LEARN_HELP: dict[str, str] = {
    "merge": "Fold genres into others: \"source\" = \"target\" (compared by key: case, spacing and "
             "punctuation do not matter).",
    "rename": "The name written for a genre: \"genre\" = \"Written Name\" (default: the library's most "
              "common spelling).",
    "drop": "Genres never learnt; a list here replaces the default (Other and Unknown, ID3v1's "
            "placeholders).",
    "min_tracks": "Leave out genres with fewer tracks than this.",
    "min_albums": "Leave out genres on fewer albums than this.",
}
_LEARN_KINDS = {"merge": "map", "rename": "map", "drop": "list", "min_tracks": "int", "min_albums": "int"}
#: Top-level tables besides [tag] that load_config returns under their own name (not TagOptions fields).
OTHER_TABLES = ("learn", "evaluate")

#: What a label not in [genres] becomes (aggregate.display_name), for the example and `tagger config`.
GENRES_DEFAULT = ("labels not listed are written as the model's metadata or tagger's defaults name "
                  "them (hiphop -> Hip-Hop, rnb -> R&B), else with a capital first letter (rock -> Rock)")

#: What an unset (None) option means, for ``tagger config``.
UNSET: dict[str, str] = {
    "model": "the shipped model of the vocabulary",
    "batch_size": "chosen by device (CPU or GPU)",
    "workers": "every CPU of the Ray cluster",
    "ray_address": "RAY_ADDRESS, else a private local Ray instance (never a running cluster)",
    "analysis_seconds": "adaptive: a 30 s sample, more of the track where the decision is close",
    "min_confidence": "the model's per-genre thresholds where it has them, else 0.4",
    "state_db": "the user state folder",
    "max_files": "no limit",
    "time_budget": "no limit",
    "log_file": "no log file",
}

_POSITIVE = frozenset(
    {"batch_size", "workers", "max_files", "analysis_seconds", "max_analysis_seconds", "time_budget",
     "file_timeout"}
)


def default_config_path() -> Path:
    """``platformdirs.user_config_dir("tagger") / "config.toml"``."""
    import platformdirs

    return Path(platformdirs.user_config_dir("tagger")) / "config.toml"


def toml_key(name: str) -> str:
    """How a field is spelled in the config file and by ``tagger config``: ``top_k`` -> ``top-k``."""
    return name.replace("_", "-")


# -- option types, derived from TagOptions' annotations -----------------------------------------


@dataclass(frozen=True)
class _Kind:
    base: str  # str | int | float | bool | list | map
    optional: bool

    def expected(self) -> str:
        return {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "list": "an array of strings",
            "map": "a table of strings",
        }[self.base]


_ANNOTATIONS = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "tuple[str, ...]": "list",
    "dict[str, str]": "map",
}


def _kinds() -> dict[str, _Kind]:
    kinds = {}
    for f in dataclasses.fields(TagOptions):
        ann = str(f.type).replace(" ", "")
        optional = ann.endswith("|None")
        ann = ann.removesuffix("|None")
        base = _ANNOTATIONS.get(ann.replace(",", ", "))
        if base is None:
            raise TypeError(f"tagger.config cannot read TagOptions.{f.name}: {f.type}")
        kinds[f.name] = _Kind(base, optional)
    return kinds


KINDS: dict[str, _Kind] = _kinds()


class _Bad(Exception):
    """A value problem: the message says what is expected."""


def check_value(name: str, value: Any) -> Any:
    """Validate (and normalise) one option value; raise ValueError saying what is expected.

    Lists become tuples, integers given for numbers become floats.
    """
    try:
        return _check(name, value)
    except _Bad as exc:
        raise ValueError(str(exc)) from None


def _check(name: str, value: Any) -> Any:
    kind = KINDS[name]
    if value is None:
        if kind.optional:
            return None
        raise _Bad(f"expected {kind.expected()}")
    if kind.base == "bool":
        if not isinstance(value, bool):
            raise _Bad(f"expected true or false, got {_show(value)}")
        return value
    if kind.base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"expected an integer, got {_show(value)}")
    elif kind.base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(f"expected a number, got {_show(value)}")
        value = float(value)
        if value != value:
            raise _Bad("expected a number, got nan")
    elif kind.base == "str":
        if not isinstance(value, str):
            raise _Bad(f"expected a string, got {_show(value)}")
        if not value.strip():
            raise _Bad("expected a non-empty string")
    elif kind.base == "list":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
            raise _Bad(f"expected an array of non-empty strings, e.g. [\"a\", \"b\"], got {_show(value)}")
        value = tuple(value)
    elif kind.base == "map":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v.strip() for k, v in value.items()
        ):
            raise _Bad(f"expected label = \"Genre\" pairs of non-empty strings, got {_show(value)}")
        for k, v in value.items():
            why = control_characters(k) or control_characters(v)
            if why:
                raise _Bad(f"{_label(k)}: {why}")
        value = dict(value)
    # value constraints
    if name == "genre_style" and value not in GENRE_STYLES:
        raise _Bad(f"expected one of {', '.join(repr(c) for c in GENRE_STYLES)}, got {value!r}")
    if name == "on_existing" and value not in ON_EXISTING:
        raise _Bad(f"expected one of {', '.join(repr(c) for c in ON_EXISTING)}, got {value!r}")
    if name == "top_k" and value < 1:
        raise _Bad(f"expected an integer of at least 1, got {value}")
    if name in ("min_confidence", "album_dissent") and not 0.0 <= value <= 1.0:
        raise _Bad(f"expected a number from 0 to 1, got {value:g}")
    if name in _POSITIVE and not value > 0:
        raise _Bad(f"expected a number greater than 0, got {value:g}")
    if name == "reports":
        from tagger.report.write import REPORT_SUFFIXES, report_format  # the one table of formats

        for r in value:
            if report_format(r) is None:
                raise _Bad(f"expected paths ending in {', '.join(REPORT_SUFFIXES)}, got {r!r}")
    if name == "vocabulary":
        from tagger.modelmeta import SHIPPED  # lazy: modelmeta imports numpy via tagger.features

        if value not in SHIPPED:
            raise _Bad(f"expected one of {', '.join(repr(v) for v in SHIPPED)}, got {value!r}")
    return value


def _show(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} ({text})"


# -- reading -------------------------------------------------------------------------------------


def load_config(path: str | Path | None, *, explicit: bool) -> tuple[dict[str, Any], Path | None]:
    """Read a config file: ``({field name: value}, path read)``.

    ``path=None`` reads :func:`default_config_path`. ``explicit=True`` means the user named the
    file (``--config``): then a missing file is an error; a missing default file just means no
    settings (``({}, None)``). Values are validated and normalised (tuples, floats, absolute
    paths); ``[genres]`` becomes ``genre_map``, ``[learn]`` ``learn`` (a dict of the keys given,
    spelled with ``_``; :func:`tagger.taxonomy.learn_settings` makes LearnSettings of it). Every
    problem raises FatalError naming the file, the key and what is expected.
    """
    p = Path(path).expanduser() if path is not None else default_config_path()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise FatalError(f"config file {p} not found") from None
        return {}, None
    except IsADirectoryError:
        raise FatalError(f"config file {p} is a directory, not a TOML file") from None
    except OSError as exc:
        raise FatalError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise FatalError(f"config file {p} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise FatalError(f"config file {p} is not valid TOML: {exc}") from None
    return _parse(data, p), p


def _parse(data: dict[str, Any], p: Path) -> dict[str, Any]:
    for table in data:
        if table not in ("tag", "genres", *OTHER_TABLES):
            raise FatalError(f"{p}: unknown {'table' if isinstance(data[table], dict) else 'key'} "
                             f"{table!r} at the top level: expected the tables [tag] and [genres] "
                             f"(and [learn] for `tagger learn`, [evaluate] for `tagger evaluate`)")
    out: dict[str, Any] = {}
    tag = data.get("tag", {})
    if not isinstance(tag, dict):
        raise FatalError(f"{p}: 'tag' must be a table ([tag]), got {_show(tag)}")
    names = set(option_names())
    seen: dict[str, str] = {}
    for key, value in tag.items():
        name = key.replace("-", "_")
        if name == "genre_map":
            raise FatalError(f"{p}: [tag] {key}: put the genre map in its own [genres] table "
                             f"(label = \"Genre\")")
        if name not in names:
            raise FatalError(f"{p}: [tag] unknown key {key!r}{_did_you_mean(name, names)}")
        if name in seen:
            raise FatalError(f"{p}: [tag] {key!r} and {seen[name]!r} set the same option; keep one")
        seen[name] = key
        try:
            value = _check(name, value)
        except _Bad as exc:
            raise FatalError(f"{p}: [tag] {key}: {exc} ({HELP[name]})") from None
        out[name] = _resolve_paths(name, value, p.parent)
    genres = data.get("genres")
    if genres is not None:
        if not isinstance(genres, dict):
            raise FatalError(f"{p}: 'genres' must be a table ([genres]), got {_show(genres)}")
        for label, genre in genres.items():
            if control_characters(label):
                raise FatalError(f"{p}: [genres] {_label(label)}: a label never holds control characters "
                                 f"({control_characters(label)}); use the model's label, e.g. hiphop")
            if not isinstance(genre, str) or not genre.strip():
                raise FatalError(f"{p}: [genres] {_label(label)}: expected the genre to write as a non-empty "
                                 f"string, e.g. {_toml_key(label) if label else 'hiphop'} = \"Hip-Hop\", "
                                 f"got {_show(genre)}")
            why = control_characters(genre)
            if why:
                raise FatalError(f"{p}: [genres] {_label(label)}: the genre {genre.strip()!r} {why}: "
                                 "tags cannot hold it; write the genre on one line, e.g. "
                                 f"{_toml_key(label) or 'hiphop'} = \"Hip-Hop\"")
        out["genre_map"] = {str(k): v.strip() for k, v in genres.items()}
    if "evaluate" in data:
        out["evaluate"] = {"map": _evaluate_map(data["evaluate"], p)}
    if "learn" in data:
        out["learn"] = _parse_learn(data["learn"], p)
    return out


def _parse_learn(table: Any, p: Path) -> dict[str, Any]:
    """The [learn] table, checked: types, values, control characters, and merges, renames and
    drops that contradict each other (tagger.taxonomy.settings_problem)."""
    if not isinstance(table, dict):
        raise FatalError(f"{p}: 'learn' must be a table ([learn]), got {_show(table)}")
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in LEARN_HELP:
            raise FatalError(f"{p}: [learn] unknown key {key!r}{_did_you_mean(name, set(LEARN_HELP))}")
        if name in seen:
            raise FatalError(f"{p}: [learn] {key!r} and {seen[name]!r} set the same setting; keep one")
        seen[name] = key
        kind = _LEARN_KINDS[name]
        where = f"{p}: [learn] {key}"
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FatalError(f"{where}: expected an integer of at least 1, got {_show(value)} "
                                 f"({LEARN_HELP[name]})")
        elif kind == "list":
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise FatalError(f"{where}: expected an array of genre names, e.g. [\"Other\"], got "
                                 f"{_show(value)}")
            for v in value:
                if control_characters(v):
                    raise FatalError(f"{where}: the genre {v.strip()!r} {control_characters(v)}")
            value = tuple(v.strip() for v in value)
        else:
            if not isinstance(value, dict):
                raise FatalError(f"{where}: expected a table of genre names, e.g. {key} = "
                                 f"{{\"Alt Rock\" = \"Alternative\"}}, got {_show(value)}")
            for k, v in value.items():
                why = control_characters(k) or (control_characters(v) if isinstance(v, str) else "")
                if why:
                    raise FatalError(f"{where}: {_label(k)}: {why}")
                if not isinstance(v, str) or not v.strip():
                    raise FatalError(f"{where}: {_label(k)}: expected a genre name (a non-empty string), "
                                     f"got {_show(v)}")
            value = {k.strip(): v.strip() for k, v in value.items()}
        out[name] = value
    from tagger.taxonomy import DEFAULT_DROP, DEFAULT_MIN_ALBUMS, DEFAULT_MIN_TRACKS, settings_problem

    why = settings_problem(out.get("merge", {}), out.get("rename", {}), out.get("drop", DEFAULT_DROP),
                           out.get("min_tracks", DEFAULT_MIN_TRACKS), out.get("min_albums", DEFAULT_MIN_ALBUMS))
    if why:
        raise FatalError(f"{p}: [learn] {why}")
    return out


def _evaluate_map(table: Any, p: Path) -> dict[str, str]:
    """The ``[evaluate]`` table: ``map = {"label" = "Library Genre"}``, model labels to the
    library's genres for ``tagger evaluate`` (the pairs it would otherwise derive)."""
    example = 'map = {disco = "Dance", "hip-hop" = "Rap"}'
    if not isinstance(table, dict):
        raise FatalError(f"{p}: 'evaluate' must be a table ([evaluate]), got {_show(table)}")
    for key in table:
        if key != "map":
            raise FatalError(f"{p}: [evaluate] unknown key {key!r}: the table holds one key, e.g. {example}")
    mapping = table.get("map", {})
    if not isinstance(mapping, dict):
        raise FatalError(f"{p}: [evaluate] map: expected a table of label = \"Library Genre\" pairs, e.g. "
                         f"{example}, got {_show(mapping)}")
    for label, genre in mapping.items():
        why = control_characters(label)
        if why or not label.strip():
            raise FatalError(f"{p}: [evaluate] map: the label {label!r} {why or 'is empty'}; use the model's "
                             f"label, e.g. {example}")
        if not isinstance(genre, str) or not genre.strip():
            raise FatalError(f"{p}: [evaluate] map: {_label(label)}: expected the library genre as a non-empty "
                             f"string, e.g. {example}, got {_show(genre)}")
        why = control_characters(genre)
        if why:
            raise FatalError(f"{p}: [evaluate] map: {_label(label)}: the genre {genre.strip()!r} {why}; write "
                             f"it on one line, e.g. {example}")
    return {str(k): v.strip() for k, v in mapping.items()}


def evaluate_map(values: dict[str, Any]) -> dict[str, str]:
    """The ``[evaluate] map`` of :func:`load_config`'s dict ({} when the file has none)."""
    return dict((values.get("evaluate") or {}).get("map") or {})


def control_characters(text: str) -> str:
    """Why ``text`` cannot be a genre or label: ``"contains a newline (U+000A)"``, or ``""``.

    Control characters (Unicode category Cc: tab, newline, NUL, DEL, ...) cannot be written
    into a genre tag (tagger.tags refuses them when the file is written, which would end a run
    after its analysis); they are refused when the config file is read instead."""
    import unicodedata

    for c in text:
        if unicodedata.category(c) == "Cc":
            name = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL"}.get(
                c, "a control character")
            return f"contains {name} (U+{ord(c):04X})"
    return ""


def _label(key: str) -> str:
    """A [genres] key as the config file would spell it (quoted when it is not a bare key)."""
    return key if _BARE_KEY.match(key) else repr(key)


def _resolve_paths(name: str, value: Any, base: Path) -> Any:
    if name not in PATH_FIELDS or value is None:
        return value

    def one(v: str) -> str:
        q = Path(v).expanduser()
        return str(q if q.is_absolute() else (base / q))

    if isinstance(value, tuple):
        return tuple(one(v) for v in value)
    return one(value)


def _did_you_mean(name: str, names: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    if close:
        return f": did you mean {toml_key(close[0])!r}?"
    return ": see `tagger config --example` for the keys"


# -- merging -------------------------------------------------------------------------------------


def resolve(
    cli_values: dict[str, Any],
    cli_explicit: set[str],
    file_values: dict[str, Any],
    config_path: Path | None,
) -> tuple[TagOptions, dict[str, str]]:
    """Merge: command line (only options in ``cli_explicit``) > config file > defaults.

    ``cli_values`` maps TagOptions field names to the CLI's values (defaults included; only the
    names in ``cli_explicit`` count). ``file_values`` is :func:`load_config`'s dict. Returns the
    options and, per field, where its value came from: ``"command line"``, the config file's
    path, or ``"default"``. A bad value raises FatalError naming its source.
    """
    names = option_names()
    file_values = {k: v for k, v in file_values.items() if k not in OTHER_TABLES}
    unknown = (set(cli_explicit) | set(file_values)) - set(names)
    if unknown:
        raise ValueError(f"not TagOptions fields: {', '.join(sorted(unknown))}")
    missing = set(cli_explicit) - set(cli_values)
    if missing:
        raise ValueError(f"cli_explicit names options without a value: {', '.join(sorted(missing))}")
    defaults = TagOptions()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in names:
        if name in cli_explicit:
            try:
                values[name] = check_value(name, cli_values[name])
            except ValueError as exc:  # a bad command line: exit 64, like Click's own checks
                raise CommandLineError(f"--{toml_key(name)}: {exc}") from None
            sources[name] = FROM_CLI
        elif name in file_values:
            try:
                values[name] = check_value(name, file_values[name])
            except ValueError as exc:
                raise FatalError(f"{config_path}: [tag] {toml_key(name)}: {exc}") from None
            sources[name] = str(config_path) if config_path is not None else "config file"
        else:
            values[name] = getattr(defaults, name)
            sources[name] = FROM_DEFAULT
    # one way of choosing the audio: the command line's choice overrides the config file's other one
    if values.get("whole_track") and values.get("analysis_seconds") is not None:
        if sources["whole_track"] == FROM_CLI and sources["analysis_seconds"] != FROM_CLI:
            values["analysis_seconds"], sources["analysis_seconds"] = None, FROM_CLI
        elif sources["analysis_seconds"] == FROM_CLI and sources["whole_track"] != FROM_CLI:
            values["whole_track"], sources["whole_track"] = False, FROM_CLI
        elif sources["whole_track"] == FROM_CLI:
            raise CommandLineError("--whole-track and --analysis-seconds exclude each other: choose one")
    try:
        options = TagOptions(**values)
    except (TypeError, ValueError) as exc:  # a constraint check_value does not know about
        raise FatalError(f"invalid options: {exc}") from None
    return options, sources


# -- writing -------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    if _BARE_KEY.match(key):
        return key
    import tomli_w

    return tomli_w.dumps({key: 0}).rsplit(" = ", 1)[0]


def _toml_value(value: Any) -> str:
    import tomli_w

    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).strip()[len("v = "):]


def _source_comment(source: str) -> str:
    if source in (FROM_CLI, FROM_DEFAULT):
        return source
    return f"from {source}"


def format_effective(options: TagOptions, sources: dict[str, str], learn: dict[str, Any] | None = None,
                     learn_source: Path | str | None = None, evaluate: dict[str, Any] | None = None) -> str:
    """Every setting as valid TOML (``[tag]`` + ``[genres]`` + ``[learn]`` + ``[evaluate.map]``),
    each with a comment saying where its value came from, for ``tagger config``. Unset options
    appear as comments saying what unset means. The output can be saved as a config file.
    ``learn`` and ``evaluate`` are :func:`load_config`'s entries (what the file set), read from
    ``learn_source``."""
    lines = [
        "# tagger settings in effect for `tagger tag`; each comment says where the value comes from.",
        "# Save this as a config file (e.g. " + str(default_config_path()) + ") and edit it.",
        "",
        "[tag]",
    ]
    for name in option_names():
        if name == "genre_map":
            continue
        value = getattr(options, name)
        src = _source_comment(sources.get(name, FROM_DEFAULT))
        key = toml_key(name)
        if value is None:
            meaning = UNSET.get(name, "not set")
            if name == "state_db":
                from tagger.state import default_state_path

                meaning = str(default_state_path())
            lines.append(f"# {key} = ...  # not set: {meaning} ({src})")
        else:
            lines.append(f"{key} = {_toml_value(value)}  # {src}")
    genres_src = _source_comment(sources.get("genre_map", FROM_DEFAULT))
    lines += ["", f"[genres]  # label -> genre written; {genres_src}"]
    if options.genre_map:
        for label, genre in options.genre_map.items():
            lines.append(f"{_toml_key(label)} = {_toml_value(genre)}")
    else:
        lines.append(f"# hiphop = \"Hip-Hop\"  # none set: {GENRES_DEFAULT}")
    lines += ["", "[learn]  # how `tagger learn` reads the library's genres"]
    file_src = _source_comment(str(learn_source)) if learn_source else "config file"
    lines += _learn_lines(learn or {}, file_src)
    mapping = (evaluate or {}).get("map") or {}
    lines += ["", "[evaluate.map]  # model label -> a genre of your library, for `tagger evaluate`"
                  + (f"; {file_src}" if mapping else "")]
    if mapping:
        lines += [f"{_toml_key(label)} = {_toml_value(genre)}" for label, genre in mapping.items()]
    else:
        lines.append('# disco = "Dance"  # none set: derived from the names, then from co-occurrence')
    return "\n".join(lines) + "\n"


def _learn_defaults() -> dict[str, Any]:
    from tagger.taxonomy import DEFAULT_DROP, DEFAULT_MIN_ALBUMS, DEFAULT_MIN_TRACKS

    return {"merge": {}, "rename": {}, "drop": tuple(sorted(DEFAULT_DROP)), "min_tracks": DEFAULT_MIN_TRACKS,
            "min_albums": DEFAULT_MIN_ALBUMS}


def _learn_lines(learn: dict[str, Any], source: str) -> list[str]:
    """The [learn] table's lines for ``tagger config``: every key, with where its value came from."""
    lines = []
    for name, default in _learn_defaults().items():
        value = learn.get(name, default)
        src = source if name in learn else FROM_DEFAULT
        if isinstance(value, dict):
            pairs = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
            lines.append(f"{toml_key(name)} = {{{pairs}}}  # {src}" if pairs or name in learn else
                         f"{toml_key(name)} = {{}}  # {src}: none")
        else:
            lines.append(f"{toml_key(name)} = {_toml_value(value)}  # {src}")
    return lines


def _comment(text: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent="# ", subsequent_indent="# ",
                         break_on_hyphens=False, break_long_words=False)


def example_config() -> str:
    """A commented example config file (README, docs, ``tagger config --example``). Valid TOML.

    Every setting is commented out, so the file saved as it is changes nothing: each line shows
    the default (or, for a setting without one, an example) and uncommenting it sets it. The
    comment above each line is the option's ``--help`` text (:data:`HELP`)."""
    examples = {  # settings without a default value, or whose default says nothing
        "model": "~/models/my-genres.keras",
        "reports": ("~/tagger-reports/last.html",),
        "exclude": ("Podcasts/*", "Audiobooks/*", "*.part"),
        "ray_address": "auto",
        "state_db": "~/.local/state/tagger/state.db",
        "log_file": "~/tagger.log",
        "batch_size": 256,
        "workers": 4,
        "analysis_seconds": 60.0,
        "min_confidence": 0.4,
        "max_files": 5000,
        "time_budget": 3600.0,
    }
    defaults = TagOptions()
    lines = [
        "# tagger config file: defaults for `tagger tag`. Options on the command line override it.",
        "# Every line is commented out: saved as it is, this file changes nothing. Uncomment and edit",
        "# a line to set it. Keys may be spelled with - or _ (top-k = top_k). Relative paths are",
        "# relative to this file. `tagger config` prints the settings in effect and where each comes from.",
        "",
        "[tag]",
    ]
    for name in option_names():
        if name == "genre_map":
            continue
        key = toml_key(name)
        default = getattr(defaults, name)
        lines += _comment(HELP[name])
        if default is None or default == ():
            unset = UNSET.get(name, "not set")
            lines.append(f"# {key} = {_toml_value(examples[name])}  # example; default: "
                         f"{unset if default is None else 'none'}")
        else:
            lines.append(f"# {key} = {_toml_value(default)}  # default")
    lines += [
        "",
        *_comment(f"{HELP['genre_map']} Only the labels listed change; {GENRES_DEFAULT}. Uncomment "
                  "the table and a line to use it, e.g. for the gtzan vocabulary:"),
        "# [genres]",
        '# hiphop = "Hip Hop"',
        '# rock = "Rock & Roll"',
        "",
        "# How `tagger learn` reads the genres of your library (see docs/genres.md). Uncomment the",
        "# table and a line to use it.",
        "# [learn]",
    ]
    examples_learn = {"merge": {"Alt Rock": "Alternative"}, "rename": {"hiphop": "Hip-Hop"}}
    for name, default in _learn_defaults().items():
        lines += _comment(LEARN_HELP[name])
        if name in examples_learn:
            pairs = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in examples_learn[name].items())
            lines.append(f"# {toml_key(name)} = {{{pairs}}}  # example; default: none")
        else:
            lines.append(f"# {toml_key(name)} = {_toml_value(default)}  # default")
    lines += [
        "",
        *_comment("`tagger evaluate`: model labels = the genres of your library they stand for, where "
                  "tagger cannot find the pair itself (by name, or by which genres the files a label wins "
                  "carry). Uncomment the table and the line to use it:"),
        "# [evaluate]",
        '# map = {disco = "Dance", metal = "Heavy Metal"}',
    ]
    return "\n".join(lines) + "\n"
