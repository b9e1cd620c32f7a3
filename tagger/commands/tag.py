"""``tagger tag PATHS``: analyse, decide, write, report (the run itself is tagger.pipeline.Tagger).

The command turns its options and the config file into one TagOptions, takes the run lock,
opens the state database and drives the run; the reports are written even when the run ends
early. Heavy imports (Ray, TensorFlow) stay inside the pipeline.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from tagger.commands.common import EXIT_CODES_HELP, check_inputs, echo, fail, setup_logging, verbosity
from tagger.commands.options import (
    ALBUM_DISSENT,
    ALBUMS,
    ANALYSIS_SECONDS,
    CONFIG,
    GENRE_STYLE,
    MIN_CONFIDENCE,
    MODEL,
    ON_EXISTING,
    TOP_K,
    VOCABULARY,
    option_help,
    resolve_tag_options,
)
from tagger.commands.progress import make_progress
from tagger.errors import EXIT_FATAL, FatalError, StateError, TaggerError
from tagger.model import CPU_BATCH, GPU_BATCH  # numpy, no TensorFlow: the help text says the defaults

log = logging.getLogger("tagger")

TAG_HELP = f"""Analyse PATHS (files or folders) and write predicted genres into the files.

Run with --dry-run first: it computes everything and writes nothing. Files whose genre a person
wrote are left alone unless --on-existing says otherwise. Settings may also come from the config
file (see `tagger config`); the command line wins.

{EXIT_CODES_HELP}"""


def _check_report_suffix(ctx, param, value):
    """A report name tagger cannot write is a usage error (64), found before any work."""
    from tagger.report.write import SUFFIXES_TEXT, report_format

    for r in value:
        if report_format(r) is None:
            raise click.BadParameter(f"{r!r}: a report name must end in {SUFFIXES_TEXT}")
    return value


# CLI parameter name -> TagOptions field (identical unless listed)
_RENAME = {"report": "reports"}


@click.command("tag", help=TAG_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--dry-run", "-n", is_flag=True, default=None, help=option_help("dry_run"))
@click.option("--report", multiple=True, metavar="FILE", callback=_check_report_suffix, help=option_help("reports"))
@MODEL
@VOCABULARY
@TOP_K
@MIN_CONFIDENCE
@ON_EXISTING
@ALBUMS
@ALBUM_DISSENT
@GENRE_STYLE
@click.option("--id3v23", is_flag=True, default=None, help=option_help("id3v23"))
@click.option("--exclude", multiple=True, metavar="GLOB", help=option_help("exclude"))
@click.option("--batch-size", type=click.IntRange(1, 65536), default=None,
              help=option_help("batch_size", f"[default: {CPU_BATCH} on CPU, {GPU_BATCH} per GPU]"))
@click.option("--workers", type=click.IntRange(1, 4096), default=None,
              help=option_help("workers", "[default: the CPUs Ray sees]"))
@click.option("--ray-address", metavar="ADDR", default=None, help=option_help("ray_address"))
@ANALYSIS_SECONDS
@click.option("--whole-track", is_flag=True, default=None, help=option_help("whole_track"))
@click.option("--state-db", metavar="FILE", default=None,
              help=option_help("state_db", "[default: in the user state directory]"))
@click.option("--force", is_flag=True, default=None, help=option_help("force"))
@click.option("--max-files", type=click.IntRange(min=1), default=None, metavar="N", help=option_help("max_files"))
@click.option("--time-budget", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help=option_help("time_budget"))
@click.option("--file-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help=option_help("file_timeout", "[default: 300]"))
@click.option("--quiet", "-q", is_flag=True, default=None, help=option_help("quiet"))
@click.option("--log-file", metavar="FILE", default=None, help=option_help("log_file"))
@click.option("--explain-uncertain", is_flag=True, default=None, help=option_help("explain_uncertain"))
@CONFIG
@click.pass_context
def tag_cmd(ctx: click.Context, paths, config_path, **cli) -> None:
    try:
        options = resolve_tag_options(ctx, cli, config_path, rename=_RENAME)
    except (TaggerError, ValueError) as exc:
        fail(ctx, exc if isinstance(exc, TaggerError) else FatalError(str(exc)))
        return
    setup_logging(verbose=verbosity(ctx), quiet=options.quiet, log_file=options.log_file)
    code = run_tag(ctx, list(paths), options)
    ctx.exit(code)


def run_tag(ctx: click.Context, paths: list[str], options) -> int:
    from tagger.lock import RunLock
    from tagger.pipeline import StopFlag, Tagger
    from tagger.state import StateDB, default_state_path, new_run_id

    check_inputs(ctx, paths, options.reports)

    state_path = Path(options.state_db).expanduser() if options.state_db else default_state_path()
    stop = StopFlag()
    stop.install()
    lock = RunLock(state_path)
    tagger = None
    reports_written = False
    try:
        lock.acquire()
        with StateDB(state_path) as state:
            from tagger.undo import resolve_pending

            resolve_pending(state)  # writes a killed run may or may not have made: settled from the files
            run_id = new_run_id()
            progress = make_progress(options)
            tagger = Tagger(paths, options, argv=sys.argv[1:], progress=progress, state=state, run_id=run_id, stop=stop)
            # the folders (and files) this run covers, as `tagger runs` shows them
            covered = list(dict.fromkeys(os.path.abspath(os.path.expanduser(p)) for p in paths))
            state.begin_run(run_id, model_id=tagger.meta.model_id, argv=sys.argv[1:], dry_run=options.dry_run,
                            options={**tagger.report.options, "paths": covered})
            status = "failed"
            try:
                report = tagger.run()
                status = "interrupted" if report.interrupted else "finished"
            finally:
                counts = tagger.report.counts
                try:
                    state.finish_run(run_id, status=status, counts=counts)
                except StateError as exc:
                    if status == "failed":  # an error is on its way out already: do not mask it
                        log.warning("%s", exc)
                    else:
                        tagger.state_problem = tagger.state_problem or exc
            _attach_pictures(report, options, tagger.files)
            for r in options.reports:  # before any state problem ends the run: the report is not lost
                report.write(r)
            reports_written = True
            if tagger.state_problem is not None:
                click.echo(report.summary_line())
                raise StateError(f"{tagger.state_problem}; every file written has its undo record, files "
                                 f"not written were left alone (see the report)")
    except TaggerError as exc:
        if not reports_written:
            _write_partial_reports(tagger, options, exc)
        fail(ctx, exc)
        return EXIT_FATAL
    except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
        raise
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        _write_partial_reports(tagger, options, exc)
        fail(ctx, FatalError(f"internal error ({type(exc).__name__}: {exc}); run with -v for the traceback"))
        return EXIT_FATAL
    finally:
        lock.release()
        stop.restore()

    failed = report.counts.get("failed", 0)
    if not options.quiet or failed:
        echo(report.summary_line())
    if report.interrupted:
        return stop.exit_code
    return report.exit_code


def _write_partial_reports(tagger, options, exc: BaseException) -> None:
    """A run that ends with an error mid-way (the Ray cluster gone, ...) still writes its reports
    with the files handled so far (state and journal are saved by the pipeline itself)."""
    if tagger is None or not tagger.report.rows:
        return
    why = str(exc) if isinstance(exc, TaggerError) else f"{type(exc).__name__}: {exc}"
    tagger.report.notes.append(f"the run stopped early: {' '.join(why.split())[:300]}")
    for r in options.reports:
        try:
            tagger.report.write(r)
        except Exception as err:
            log.warning("cannot write the report %s: %s", r, err)


def _attach_pictures(report, options, model_files) -> None:
    """--explain-uncertain: pictures of the report's uncertain rows beside its (first) HTML report."""
    from tagger.report.write import report_format

    html = [r for r in options.reports if report_format(r) == "html"]
    if not options.explain_uncertain or not html:
        return
    from tagger.report.pictures import attach_pictures

    def load_model():
        from tagger.model import GenreModel

        return GenreModel.load(model_files)

    attach_pictures(report, html[0], options=options, load_model=load_model)

