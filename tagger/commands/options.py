"""Options more than one command takes, each with its one help text.

The text of a setting is ``tagger.config.HELP`` (shared with the config file and ``tagger
config --example``); :func:`option_help` adds the default as Click shows it. ``tagger tag`` and
``tagger explain`` decide the same way, so they take the same decision options, and
:func:`resolve_tag_options` merges them with the config file for both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from tagger.config import HELP
from tagger.options import GENRE_STYLES

F = TypeVar("F", bound=Callable[..., Any])


def option_help(name: str, default: str = "") -> str:
    """An option's help: its one text in tagger.config.HELP (shared with the config file), plus
    the default as Click shows it."""
    return f"{HELP[name]} {default}".strip()


MODEL = click.option("--model", metavar="PATH",
                     help=option_help("model", "[default: the shipped model of --vocabulary]"))
VOCABULARY = click.option("--vocabulary", type=click.Choice(["gtzan", "msd"]), default=None,
                          help=option_help("vocabulary", "[default: gtzan]"))
TOP_K = click.option("--top-k", type=click.IntRange(1, 10), default=None, metavar="K",
                     help=option_help("top_k", "[default: 1]"))
MIN_CONFIDENCE = click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
                              help=option_help("min_confidence",
                                               "[default: the model's per-genre thresholds, else 0.4]"))
ON_EXISTING = click.option("--on-existing", type=click.Choice(["skip", "replace", "merge"]), default=None,
                           help=option_help("on_existing", "[default: skip]"))
ALBUMS = click.option("--albums/--no-albums", default=None, help=option_help("albums", "[default: --albums]"))
ALBUM_DISSENT = click.option("--album-dissent", type=click.FloatRange(0, 1), default=None, metavar="SCORE",
                             help=option_help("album_dissent", "[default: 0.8]"))
GENRE_STYLE = click.option("--genre-style", type=click.Choice(list(GENRE_STYLES)), default=None,
                           help=option_help("genre_style", "[default: as-is]"))
ANALYSIS_SECONDS = click.option("--analysis-seconds", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
                                help=option_help("analysis_seconds"))
CONFIG = click.option("--config", "config_path", metavar="FILE", default=None,
                      help="Config file [default: config.toml in the user config directory].")
#: ``runs`` and ``undo``: the database whose runs they list or undo
STATE_DB = click.option("--state-db", metavar="FILE", default=None,
                        help="State database [default: in the user state directory].")

#: ``learn`` and ``evaluate``: they analyse a library (writing nothing to it) like ``tag`` does
WORKERS = click.option("--workers", type=click.IntRange(1, 4096), default=None,
                       help="Decode tasks in parallel [default: the CPUs Ray sees].")
RAY_ADDRESS = click.option("--ray-address", metavar="ADDR", default=None,
                           help="Join this Ray cluster (as for `tagger tag`) [default: a private local Ray instance].")
STORE_DB = click.option("--state-db", metavar="FILE", default=None,
                        help="State database whose store of analyses is used and filled "
                             "[default: in the user state directory].")


def apply(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Several option decorators as one, in the order given (the order of ``--help``)."""
    def deco(f: F) -> F:
        for o in reversed(options):
            f = o(f)
        return f

    return deco


#: The options that choose the model and the decision, in ``--help`` order.
MODEL_OPTIONS = apply(MODEL, VOCABULARY)
DECISION_OPTIONS = apply(TOP_K, MIN_CONFIDENCE, ON_EXISTING, ALBUMS, ALBUM_DISSENT, GENRE_STYLE)


def resolve_tag_options(ctx: click.Context, cli: Mapping[str, Any], config_path: str | None, *,
                        rename: Mapping[str, str] | None = None):
    """The :class:`~tagger.options.TagOptions` of a command line: the options given on it (not
    their defaults) over the config file (``--config``, else the default one if present) over
    the defaults. ``cli`` maps parameter names to values; ``rename`` maps a parameter name to its
    TagOptions field where they differ. Raises :class:`~tagger.errors.TaggerError` (a bad config
    file: 1; a value only tagger can judge: 64) or ValueError."""
    from tagger.config import load_config, resolve

    rename = rename or {}
    file_values, cfg_path = load_config(Path(config_path) if config_path else None, explicit=bool(config_path))
    explicit = {
        rename.get(k, k) for k in cli
        if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE and cli[k] not in (None, ())
    }
    values = {rename.get(k, k): (tuple(v) if isinstance(v, tuple) else v) for k, v in cli.items()}
    options, _sources = resolve(values, explicit, file_values, cfg_path)
    return options
