"""``tagger explain FILE``: why a track gets the genre it gets, as a picture or as JSON.

The analysis is :mod:`tagger.explain` (the code ``tagger tag`` runs, on one file, in this
process), the picture :mod:`tagger.explain_picture`; this module only reads the command line
and prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from tagger.commands.common import fail, setup_logging, verbosity
from tagger.commands.options import (
    ALBUM_DISSENT,
    ALBUMS,
    ANALYSIS_SECONDS,
    CONFIG,
    GENRE_STYLE,
    MIN_CONFIDENCE,
    MODEL_OPTIONS,
    ON_EXISTING,
    TOP_K,
    resolve_tag_options,
)
from tagger.errors import FatalError, TaggerError

EXPLAIN_HELP = """Show why FILE gets the genre `tagger tag` would give it.

Draws one picture (--out, PNG): the waveform, the log-mel spectrogram the model saw, the genre
probabilities of every analysis chunk over time, and the track scores against the threshold,
with the chosen genre(s), the model id and the file's existing genre. --json prints the same
numbers instead. Uses the same decoding, features, model and decision as `tagger tag` (and its
options and config file); never writes tags.

Exit codes: 0 explained; 1 the file cannot be analysed (the reason is printed) or a bad model.
"""



@click.command("explain", help=EXPLAIN_HELP, short_help="Show why a track got its genre (picture or JSON).")
@click.argument("file", type=click.Path(path_type=str))
@click.option("--out", "-o", metavar="PNG", default=None,
              help="Where to write the picture [default: FILE's name + .explain.png in the current folder; "
                   "none with --json unless given].")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers (per-chunk probabilities, scores, decision) as JSON.")
@MODEL_OPTIONS
@TOP_K
@MIN_CONFIDENCE
@ON_EXISTING
@ANALYSIS_SECONDS
@ALBUMS
@ALBUM_DISSENT
@GENRE_STYLE
@click.option("--state-db", metavar="FILE", default=None,
              help="The state database whose stored analyses give the album's other tracks [default: as `tag`].")
@CONFIG
@click.pass_context
def explain_cmd(ctx: click.Context, file: str, out: str | None, as_json: bool, config_path: str | None, **cli) -> None:
    from tagger.explain import album_context, explain_file
    from tagger.explain_picture import render_png, safe_name

    setup_logging(verbose=verbosity(ctx))
    try:
        options = resolve_tag_options(ctx, cli, config_path)
    except (TaggerError, ValueError) as exc:
        fail(ctx, exc if isinstance(exc, TaggerError) else FatalError(str(exc)))
        return
    if not os.path.lexists(file):
        fail(ctx, FatalError(f"{file}: no such file or folder"))
    if os.path.isdir(file):
        fail(ctx, FatalError(f"{file}: is a folder; explain takes one file (use `tagger tag --dry-run --report` for folders)"))
    try:
        expl = explain_file(file, options=options)
        from tagger.state import default_state_path

        album_context(expl, state_db=options.state_db or default_state_path())
        picture = None
        if out or not as_json:
            picture = render_png(expl, out or f"{safe_name(Path(file).stem)}.explain.png")
    except TaggerError as exc:
        fail(ctx, exc)
        return
    except OSError as exc:
        fail(ctx, FatalError(f"cannot write the picture: {exc.strerror or exc}"))
        return
    if as_json:
        data = expl.to_json()
        if picture is not None:
            data["picture"] = str(picture)
        click.echo(json.dumps(data, indent=1, ensure_ascii=False))
        return
    d = expl.decision
    best = ", ".join(f"{r.genre} {r.score:.2f}" for r in d.ranked[:3])
    click.echo(f"{expl.path}: {expl.action}{' ' + '; '.join(d.genres) if d.genres else ''} ({d.reason})")
    n = expl.probs.shape[0]
    click.echo(f"  model {expl.meta.model_id}; top scores: {best}; {n} chunk{'s' * (n != 1)}")
    a = expl.album
    if a and a.get("album"):
        how = ("the album overruled the track" if a["overruled"] else
               "kept its own genre against the album" if a["dissent"] else "")
        genres = "; ".join(a["album_genres"]) or "decided per track"
        click.echo(f"  album {a['album']} ({a['tracks']} tracks, {a['analysed']} with stored analyses counted): "
                   f"{genres}{'; ' + how if how else ''}{' (' + a['note'] + ')' if a['note'] else ''}")
    elif a:
        click.echo(f"  {a['note']}")
    click.echo(f"  picture: {picture}")
