"""``tagger evaluate LIBRARY...``: how a model's decisions agree with the genres a person already
wrote, writing nothing to any audio file.

The driver: options and config, :func:`tagger.library.collect` (a dry run of the tag pipeline that
analyses only what the store of analyses lacks), :func:`tagger.evaluate.build_evaluation` (pure),
then the console summary, the reports and the confusion matrix picture.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from tagger.commands import options as opts
from tagger.commands.common import check_inputs, echo, fail, setup_logging, verbosity
from tagger.errors import EXIT_FILES_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, FatalError, TaggerError

EVALUATE_HELP = """How the model's decisions agree with the genres a person already wrote in PATHS.

\b
Reads every file's genres (genres tagger wrote itself do not count) and the model's analysis of
it (only what the store of analyses lacks is analysed, as `tagger tag --dry-run` would; nothing
is written to any file). Model labels are mapped to your library's genres: by name (hiphop ->
Hip-Hop), else by co-occurrence under a rule the output states, else not at all; the config's
[evaluate] map table fixes pairs (map = {disco = "Dance"}). Then, on the files a person tagged,
what `tagger tag --on-existing replace --no-albums` would write is compared with their genres:
top-1 agreement, precision at the thresholds and coverage, per-genre precision and recall with
95% intervals, the confusion matrix, and the files where the model disagrees most confidently.

\b
--report FILE (.json, .csv or .html, repeatable) writes the details; a report also gets the
confusion matrix as FILE's name + -confusion.png beside it.

\b
Exit codes:
  0    evaluated
  1    no file carries a genre a person wrote (or only tagger's own); a bad model or config file
  2    evaluated, but some files failed (each has its reason in the log and the reports)
  64   usage error: unknown option, bad option value, missing argument (nothing ran)
  75   another tagger run holds the lock on the state database
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM
"""


def _check_report_suffix(ctx, param, value):
    from tagger.evaluate_report import SUFFIXES

    for r in value:
        if not r.lower().endswith(SUFFIXES):
            raise click.BadParameter(f"{r!r}: a report name must end in .json, .csv or .html")
    return value


@click.command("evaluate", help=EVALUATE_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--report", "reports", multiple=True, metavar="FILE", callback=_check_report_suffix,
              help="Write the evaluation: a path ending in .json, .csv or .html (repeatable).")
@click.option("--model", metavar="PATH", default=None,
              help="A model: NAME.keras or NAME.npz with NAME.json beside it, or its folder "
                   "[default: the shipped model of --vocabulary].")
@click.option("--vocabulary", type=click.Choice(["gtzan", "msd"]), default=None,
              help="Shipped model to use when no model is given [default: gtzan].")
@click.option("--top-k", type=click.IntRange(1, 10), default=None, metavar="K",
              help="tag would write up to K genres per file [default: 1].")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="The threshold of every genre (overrides a model's own thresholds) [default: the model's "
                   "per-genre thresholds, else 0.4].")
@click.option("--disagreements", type=click.IntRange(0, 100000), default=20, show_default=True, metavar="N",
              help="List the N files where the model disagrees most confidently.")
@opts.WORKERS
@opts.RAY_ADDRESS
@opts.STORE_DB
@click.option("--max-files", type=click.IntRange(min=1), default=None, metavar="N",
              help="Evaluate the first N files of the walk only.")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bar; only the figures.")
@click.option("--config", "config_path", metavar="FILE", default=None,
              help="Config file (as for `tagger tag`; its [evaluate] map too) [default: config.toml in the user "
                   "config directory].")
@click.pass_context
def evaluate_cmd(ctx: click.Context, paths, reports, disagreements, config_path, **cli) -> None:
    from tagger.config import evaluate_map, load_config, resolve

    try:
        file_values, cfg_path = load_config(Path(config_path) if config_path else None, explicit=bool(config_path))
        explicit = {k for k in cli
                    if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE and cli[k] is not None}
        options, _sources = resolve(dict(cli), explicit, file_values, cfg_path)
        overrides = evaluate_map(file_values)
        settings = _learn_settings(file_values)
    except (TaggerError, ValueError) as exc:
        fail(ctx, exc if isinstance(exc, TaggerError) else FatalError(str(exc)))
        return
    setup_logging(verbose=verbosity(ctx), quiet=bool(options.quiet))
    check_inputs(ctx, paths, reports)
    try:
        code = run_evaluate(list(paths), options, overrides=overrides, settings=settings,
                            reports=list(reports), disagreements=disagreements)
    except TaggerError as exc:
        fail(ctx, exc)
        return
    ctx.exit(code)


def _learn_settings(file_values):
    """The config's [learn] table (merges, renames, drops) where tagger.taxonomy reads one."""
    from tagger import taxonomy

    return taxonomy.learn_settings(file_values)


def _targets(paths: list[str], options) -> list[str]:
    """``paths``, or the first ``--max-files`` files of their walk (the walk ``tag`` makes)."""
    if not options.max_files:
        return paths
    from tagger import discover

    found = []
    for f in discover.walk(paths, exclude=options.exclude, problems=[]):
        found.append(f.path)
        if len(found) >= options.max_files:
            break
    return found


def some_persons_genre(paths: list[str], options) -> None:
    """Read tags along the walk until a file with a person's genre turns up (at once, in a
    library that has them); raise :class:`tagger.evaluate.NothingToCompare` when none does, so
    that a library without one is told so before anything is analysed."""
    from tagger import discover, tags
    from tagger.errors import FileError
    from tagger.evaluate import nothing_to_compare
    from tagger.library import track_of

    without = owned = unreadable = 0
    for f in discover.walk(paths, exclude=options.exclude, problems=[]):
        try:
            t = track_of(f.path, tags.read_tags(f.path), None)
        except FileError:
            unreadable += 1
            continue
        if t.genres and not t.tagger_owned:
            return
        owned += bool(t.genres)
        without += not t.genres
    raise nothing_to_compare(without=without, owned=owned, failed=unreadable)


def thresholds_in_effect(meta, options) -> tuple[float, dict[str, float], str]:
    """(threshold of the other labels, per-label thresholds, how to say it): the model's own
    thresholds unless a min-confidence was given (command line or config file), as ``tag``
    decides (:func:`tagger.aggregate.thresholds_for`)."""
    from tagger.aggregate import thresholds_for
    from tagger.report import plural

    t = thresholds_for(meta, options)
    if t.per_label:
        return t.default, dict(t.per_label), (f"the model's own thresholds for {plural(len(t.per_label), 'label')}, "
                                              f"{t.default:g} for the rest")
    return t.default, {}, f"min-confidence {t.default:g}"


def run_evaluate(paths: list[str], options, *, overrides, settings, reports: list[str],
                 disagreements: int) -> int:
    from tagger.aggregate import user_names
    from tagger.evaluate import build_evaluation
    from tagger.library import collect

    targets = _targets(paths, options)
    if not targets:
        raise FatalError(f"no audio files in {', '.join(paths)}")
    some_persons_genre(targets, options)  # before any analysis: nothing to compare is said at once
    collected = collect(targets, options, progress=not options.quiet)
    if collected.interrupted:
        echo(f"evaluate: interrupted by {collected.interrupted}; nothing evaluated (what was analysed is stored)",
             err=True)
        return EXIT_SIGINT if collected.interrupted == "SIGINT" else EXIT_SIGTERM
    meta = collected.meta
    min_conf, thresholds, thr_text = thresholds_in_effect(meta, options)
    ev = build_evaluation(collected.tracks, collected.failed, meta=meta, top_k=options.top_k,
                          min_confidence=min_conf, thresholds=thresholds, user_map=user_names(meta, options),
                          overrides=overrides, settings=settings, disagreements=disagreements,
                          paths=[os.path.abspath(os.path.expanduser(p)) for p in paths])
    ev.options["thresholds_text"] = thr_text
    ev.options["analysed_now"] = collected.analysed
    try:
        written = _write_reports(ev, reports)
    except OSError as exc:
        raise FatalError(f"cannot write the report: {exc.strerror or exc}"
                         f"{' (' + exc.filename + ')' if isinstance(exc.filename, str) else ''}") from None
    lines = ev.summary_lines(detail=not options.quiet)
    if not ev.agreement.files:
        lines.append(f"none of the {ev.library['person']} files with a person's genre could be analysed")
    for line in lines:
        echo(line)
    for w in written:
        echo(f"{'confusion matrix' if w.endswith('-confusion.png') else 'report'}: {w}")
    return EXIT_FILES_FAILED if ev.failed else EXIT_OK


def _write_reports(ev, reports: list[str]) -> list[str]:
    """Every report, and beside each (once per name) the confusion matrix PNG; returns what was
    written."""
    from tagger.evaluate_report import write

    if not reports:
        return []
    out: list[str] = []
    png: bytes | None = None
    pictures: dict[Path, Path] = {}
    a = ev.agreement
    if a.single_genre_files:
        for r in reports:
            p = Path(r)
            pictures.setdefault(p.with_name(p.stem + "-confusion.png"), p)
        first = next(iter(pictures))
        _plot(a, first, title=f"{ev.model.get('name') or 'model'}: a person's genre vs the model's top-1 "
                              f"({a.single_genre_files} files)")
        png = first.read_bytes()
        for pic in list(pictures)[1:]:
            pic.write_bytes(png)
        out += [str(p) for p in pictures]
    for r in reports:
        write(ev, r, png=png)
        out.append(r)
    return out


def _plot(a, path: Path, *, title: str) -> None:
    from tagger.metrics import plot_confusion

    keep = [i for i in range(len(a.confusion_names)) if a.confusion[i].sum() or a.confusion[:, i].sum()]
    cm = a.confusion[keep][:, keep]
    plot_confusion(cm, [a.confusion_names[i] for i in keep], path, title=title)
