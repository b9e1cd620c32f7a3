"""``tagger config``: the effective settings of ``tagger tag`` and where each came from."""

from __future__ import annotations

from pathlib import Path

import click

from tagger.commands.common import fail
from tagger.errors import TaggerError


@click.command("config")
@click.option("--config", "config_path", metavar="FILE", default=None)
@click.option("--example", is_flag=True, help="Print a commented example config file.")
@click.pass_context
def config_cmd(ctx, config_path, example) -> None:
    """Print the effective settings for `tagger tag` and where each came from."""
    from tagger.config import default_config_path, example_config, format_effective, load_config, resolve

    if example:
        click.echo(example_config())
        return
    try:
        values, path = load_config(Path(config_path) if config_path else None, explicit=bool(config_path))
        options, sources = resolve({}, set(), values, path)
    except TaggerError as exc:
        fail(ctx, exc)
        return
    click.echo(f"# config file: {path if path else str(default_config_path()) + ' (not present)'}")
    click.echo(format_effective(options, sources, values.get("learn"), path, values.get("evaluate")))

