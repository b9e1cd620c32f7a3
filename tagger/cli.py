"""The ``tagger`` command line. Heavy imports live inside the command bodies so ``--help`` is instant."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from tagger import __version__
from tagger.errors import (
    EXIT_FATAL,
    EXIT_FILES_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    FatalError,
    StateError,
    TaggerError,
)

log = logging.getLogger("tagger")

EXIT_CODES_HELP = """\b
Exit codes:
  0    all well
  1    fatal error (bad model or config file, Ray cannot start, corrupt state database)
  2    finished, but some files failed (see the report / log)
  64   usage error: unknown option, bad option value, missing argument (nothing ran)
  75   another tagger run holds the lock (cron may simply retry later)
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM
"""


class UsageExit:
    """Mixin for Click groups: a usage error of the group or of any command below it (unknown
    option, bad value, missing argument, ``ctx.fail``) exits :data:`~tagger.errors.EXIT_USAGE`
    (64, EX_USAGE) instead of Click's 2, which tagger documents as "the run finished, some files
    failed" and which cron and systemd units treat as success. Click raises these errors while
    parsing (``make_context``) and inside sub-commands (``invoke``); both pass through here."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE
            raise


class UsageExitGroup(UsageExit, click.Group):
    """A plain Click group with :class:`UsageExit` (``tagger train`` uses it)."""


class Context:
    def __init__(self, verbose: int):
        self.verbose = verbose


class VisibleFormatter(logging.Formatter):
    """Log lines as valid UTF-8: a file name that is not valid UTF-8 shows its odd bytes as
    ``\\xNN`` (:func:`tagger.names.visible`) instead of making the handler fail (a UTF-8 stream
    refuses the surrogates ``os.fsdecode`` puts there, and logging then drops the line)."""

    def format(self, record: logging.LogRecord) -> str:
        from tagger.names import visible

        return visible(super().format(record))


def echo(message: str, **kwargs) -> None:
    """``click.echo`` of a line that may hold file names that are not valid UTF-8."""
    from tagger.names import visible

    click.echo(visible(message), **kwargs)


def setup_logging(*, verbose: int = 0, quiet: bool = False, log_file: str | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tagger", False):
            root.removeHandler(h)
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING
    if quiet:
        level = logging.ERROR
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(VisibleFormatter("tagger: %(message)s"))
    console._tagger = True  # type: ignore[attr-defined]
    root.addHandler(console)
    if log_file:
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setLevel(logging.INFO)
        fh.setFormatter(VisibleFormatter("%(asctime)s %(levelname)s %(message)s"))
        fh._tagger = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    for noisy in ("ray", "absl", "tensorflow", "numba", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.INFO)


def fail(ctx: click.Context, exc: BaseException) -> None:
    """One clear line for known errors; a traceback only with -v."""
    obj = ctx.find_root().obj
    if obj is not None and obj.verbose:
        import traceback

        traceback.print_exception(exc)
    msg = str(exc) if isinstance(exc, TaggerError) else f"{type(exc).__name__}: {exc}"
    echo(f"tagger: error: {msg}", err=True)
    ctx.exit(getattr(exc, "exit_code", EXIT_FATAL))


class LazyGroup(UsageExit, click.Group):
    """Sub-commands from other modules, imported only when used (keeps --help and tag fast)."""

    lazy = {
        "train": ("training.cli", "train", "Build, evaluate and export models (GTZAN or your own folders)."),
        "explain": ("tagger.explain", "explain_cmd", "Show why a track got its genre (picture or JSON)."),
        "learn": ("tagger.commands.learn", "learn_cmd", "Learn your library's own genres from the genres you wrote."),
        "evaluate": ("tagger.commands.evaluate", "evaluate_cmd",
                     "How the model agrees with the genres you wrote; writes nothing."),
    }

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is not None or name not in self.lazy:
            return cmd
        module, attr, _ = self.lazy[name]
        import importlib

        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                return None  # that part is not installed
            raise
        return getattr(mod, attr)

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                import importlib.util

                try:
                    if importlib.util.find_spec(self.lazy[name][0]) is None:
                        continue
                except ModuleNotFoundError:
                    continue
                rows.append((name, self.lazy[name][2]))
            else:
                cmd = self.commands[name]
                rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagger")
@click.option("-v", "--verbose", count=True, help="More log output; -v shows tracebacks of errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """tagger: predict music genres with a CNN and write them into your files' tags."""
    ctx.obj = Context(verbose)
    from tagger import dirs

    dirs.isolate()  # Keras and Matplotlib files under tagger's cache folder, not ~/.keras, ~/.config
    if verbose >= 2:
        os.environ["TAGGER_TF_VERBOSE"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


# --------------------------------------------------------------------------------------------
# tag
# --------------------------------------------------------------------------------------------

TAG_HELP = f"""Analyse PATHS (files or folders) and write predicted genres into the files.

Run with --dry-run first: it computes everything and writes nothing. Files whose genre a person
wrote are left alone unless --on-existing says otherwise. Settings may also come from the config
file (see `tagger config`); the command line wins.

{EXIT_CODES_HELP}"""

def _h(name: str, default: str = "") -> str:
    """An option's help: its one text in tagger.config.HELP (shared with the config file), plus
    the default as Click shows it."""
    from tagger.config import HELP

    return f"{HELP[name]} {default}".strip()


def _check_report_suffix(ctx, param, value):
    """A report name tagger cannot write is a usage error (64), found before any work."""
    for r in value:
        if not r.lower().endswith((".json", ".csv", ".html", ".htm")):
            raise click.BadParameter(f"{r!r}: a report name must end in .json, .csv or .html")
    return value


# CLI parameter name -> TagOptions field (identical unless listed)
_RENAME = {"report": "reports"}


@main.command("tag", help=TAG_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--dry-run", "-n", is_flag=True, default=None, help=_h("dry_run"))
@click.option("--report", multiple=True, metavar="FILE", callback=_check_report_suffix, help=_h("reports"))
@click.option("--model", metavar="PATH", help=_h("model", "[default: the shipped model of --vocabulary]"))
@click.option("--vocabulary", type=click.Choice(["gtzan", "msd"]), default=None, help=_h("vocabulary", "[default: gtzan]"))
@click.option("--top-k", type=click.IntRange(1, 10), default=None, metavar="K", help=_h("top_k", "[default: 1]"))
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None, help=_h("min_confidence", "[default: the model's per-genre thresholds, else 0.4]"))
@click.option("--on-existing", type=click.Choice(["skip", "replace", "merge"]), default=None,
              help=_h("on_existing", "[default: skip]"))
@click.option("--albums/--no-albums", default=None, help=_h("albums", "[default: --albums]"))
@click.option("--album-dissent", type=click.FloatRange(0, 1), default=None, metavar="SCORE",
              help=_h("album_dissent", "[default: 0.8]"))
@click.option("--genre-style", type=click.Choice(["as-is", "beets", "id3v1", "lower"]), default=None,
              help=_h("genre_style", "[default: as-is]"))
@click.option("--id3v23", is_flag=True, default=None, help=_h("id3v23"))
@click.option("--exclude", multiple=True, metavar="GLOB", help=_h("exclude"))
@click.option("--batch-size", type=click.IntRange(1, 65536), default=None,
              help=_h("batch_size", "[default: 64 on CPU, 512 per GPU]"))
@click.option("--workers", type=click.IntRange(1, 4096), default=None, help=_h("workers", "[default: the CPUs Ray sees]"))
@click.option("--ray-address", metavar="ADDR", default=None, help=_h("ray_address"))
@click.option("--analysis-seconds", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help=_h("analysis_seconds"))
@click.option("--whole-track", is_flag=True, default=None, help=_h("whole_track"))
@click.option("--state-db", metavar="FILE", default=None, help=_h("state_db", "[default: in the user state directory]"))
@click.option("--force", is_flag=True, default=None, help=_h("force"))
@click.option("--max-files", type=click.IntRange(min=1), default=None, metavar="N", help=_h("max_files"))
@click.option("--time-budget", type=click.FloatRange(min=1), default=None, metavar="SECONDS", help=_h("time_budget"))
@click.option("--file-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help=_h("file_timeout", "[default: 300]"))
@click.option("--quiet", "-q", is_flag=True, default=None, help=_h("quiet"))
@click.option("--log-file", metavar="FILE", default=None, help=_h("log_file"))
@click.option("--explain-uncertain", is_flag=True, default=None, help=_h("explain_uncertain"))
@click.option("--config", "config_path", metavar="FILE", default=None, help="Config file [default: config.toml in the user config directory].")
@click.pass_context
def tag_cmd(ctx: click.Context, paths, config_path, **cli) -> None:
    from tagger.config import load_config, resolve

    try:
        file_values, cfg_path = load_config(Path(config_path) if config_path else None, explicit=bool(config_path))
        explicit = {
            _RENAME.get(k, k) for k in cli
            if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE and cli[k] not in (None, ())
        }
        values = {_RENAME.get(k, k): (tuple(v) if isinstance(v, tuple) else v) for k, v in cli.items()}
        options, _sources = resolve(values, explicit, file_values, cfg_path)
    except (FatalError, ValueError) as exc:
        fail(ctx, exc if isinstance(exc, TaggerError) else FatalError(str(exc)))
        return
    setup_logging(verbose=ctx.find_root().obj.verbose, quiet=options.quiet, log_file=options.log_file)
    code = run_tag(ctx, list(paths), options)
    ctx.exit(code)


def run_tag(ctx: click.Context, paths: list[str], options) -> int:
    from tagger.lock import RunLock
    from tagger.pipeline import StopFlag, Tagger
    from tagger.report import check_report_path
    from tagger.state import StateDB, default_state_path, new_run_id

    for r in options.reports:
        try:
            check_report_path(r)
        except ValueError as exc:
            fail(ctx, FatalError(str(exc)))
    for p in paths:
        if not os.path.lexists(p):
            fail(ctx, FatalError(f"{p}: no such file or folder"))

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
            progress = _make_progress(options)
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
            if tagger._explain and any(r.lower().endswith((".html", ".htm")) for r in options.reports):
                _attach_explanations(tagger, options)
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
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback with -v
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
        except Exception as err:  # noqa: BLE001 - the error that ended the run is the one to show
            log.warning("cannot write the report %s: %s", r, err)


def _attach_explanations(tagger, options) -> None:
    try:
        from tagger.explain import attach_to_report
    except ImportError:
        return
    attach_to_report(tagger, options)


class _TqdmProgress:
    """The bar on a terminal. While start-up runs (Ray, TensorFlow, the model: up to a minute on a
    busy machine) the bar names the stage instead of sitting at 0 with no word; its clock (rate,
    ETA) starts again with the first file analysed after start-up, so that the first ETA is not
    the start-up spread over a handful of files."""

    def __init__(self):
        self.bar = None
        self._restart = False

    def start(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr)

    def stage(self, text: str) -> None:
        if self.bar is None:
            return
        if text:
            self.bar.set_description_str(f"{text}…")
        else:  # files flow: the clock restarts with the first one done
            self.bar.set_description_str("")
            self._restart = True

    def advance(self, n: int = 1) -> None:
        if self.bar is None:
            return
        if self._restart:
            self._restart = False
            done = self.bar.n + n
            self.bar.reset(total=self.bar.total)  # a new start time and rate estimate
            self.bar.n = self.bar.last_print_n = self.bar.initial = done
            self.bar.refresh()
            return
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _make_progress(options):
    from tagger.pipeline import Progress

    if options.quiet or not sys.stdout.isatty():
        return Progress()
    return _TqdmProgress()


# --------------------------------------------------------------------------------------------
# info, runs, undo, config
# --------------------------------------------------------------------------------------------

@main.command("info")
@click.option("--model", metavar="PATH", default=None, help="Describe this model instead of the shipped one.")
@click.option("--vocabulary", type=click.Choice(["gtzan", "msd"]), default=None)
@click.option("--ray/--no-ray", "use_ray", default=True, help="Also start Ray and show the compute it sees.")
@click.option("--ray-address", metavar="ADDR", default=None)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def info_cmd(ctx, model, vocabulary, use_ray, ray_address, as_json) -> None:
    """Show the model in use, versions, and the compute Ray sees."""
    import json
    import platform

    from tagger.modelmeta import load_meta, locate

    try:
        files = locate(model, vocabulary=vocabulary)
        meta = load_meta(files)
    except TaggerError as exc:
        fail(ctx, exc)
        return
    out = {
        "tagger": __version__,
        "python": platform.python_version(),
        "model": {
            "path": str(files.weights), "model_id": meta.model_id, "name": meta.name,
            "architecture": meta.architecture, "labels": list(meta.labels),
            "output_activation": meta.output_activation, "aggregation": meta.aggregation,
            "thresholds": dict(meta.thresholds), "features": meta.features.to_dict(),
            "metrics": meta.metrics, "training": meta.training, "licence": meta.licence, "credits": meta.credits,
        },
        "versions": _versions(),
    }
    if use_ray:
        from tagger import ray_backend as rb

        try:
            handle = rb.connect(ray_address)
        except TaggerError as exc:
            fail(ctx, exc)
            return
        try:
            import ray

            res = handle.resources
            out["compute"] = {
                "address": handle.address, "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
                "cpus": res.get("CPU", 0), "gpus": res.get("GPU", 0),
                "inference": rb.plan_inference(res, backend=meta.backend).__dict__,
            }
        finally:
            handle.shutdown()
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    m = out["model"]
    click.echo(f"tagger {__version__} (Python {out['python']})")
    click.echo(f"model:        {m['name'] or '(unnamed)'}  id {m['model_id']}  [{m['architecture']}]")
    click.echo(f"  file:       {m['path']}")
    click.echo(f"  labels:     {', '.join(m['labels'])}")
    if meta.aggregation != "mean":
        click.echo(f"  scores:     {meta.aggregation}: sigmoid of the mean of the chunks' logits")
    for line in _threshold_lines(meta):
        click.echo(f"  {line}")
    for line in _library_lines(meta.training):
        click.echo(f"  {line}")
    f = meta.features
    click.echo(f"  features:   {f.kind}, {f.sample_rate} Hz, n_fft {f.n_fft}, hop {f.hop_length}, {f.n_mels} mels, "
               f"log {f.log}, chunks {f.chunk_seconds:.2f} s every {f.chunk_hop_seconds:.2f} s")
    for line in _metric_lines(meta.metrics):
        click.echo(f"  {line}")
    if meta.credits:
        click.echo(f"  credits:    {meta.credits}")
    click.echo("versions:     " + ", ".join(f"{k} {v}" for k, v in out["versions"].items()))
    if "compute" in out:
        c = out["compute"]
        click.echo(f"compute:      Ray {c['address']}: {c['nodes']} node(s), {c['cpus']:g} CPUs, {c['gpus']:g} GPUs; "
                   f"inference on {c['inference']['where']} (batch {c['inference']['batch_size']})")


def _threshold_lines(meta) -> list[str]:
    """``thresholds: Rock 0.52, Jazz 0.61, ...`` (display names) for a model with its own."""
    if not meta.thresholds:
        return []
    from tagger.aggregate import DEFAULT_MIN_CONFIDENCE, display_name

    shown = ", ".join(f"{display_name(lab, model_names=meta.display_names)} {meta.thresholds[lab]:.3f}"
                      for lab in meta.labels if lab in meta.thresholds)
    rest = len(meta.labels) - len(meta.thresholds)
    tail = f"; the other {rest} genre(s) {DEFAULT_MIN_CONFIDENCE}" if rest else ""
    return [f"thresholds: {shown}{tail} (--min-confidence overrides them)"]


def _library_lines(training: dict) -> list[str]:
    """``learnt from: PATH (N files, DATE)`` where the model's training has a ``library`` block."""
    lib = training.get("library") if isinstance(training, dict) else None
    if not isinstance(lib, dict):
        return []
    path = lib.get("path")
    where = "; ".join(str(p) for p in path) if isinstance(path, (list, tuple)) else str(path or "?")
    bits = [f"{lib['files']} files" if isinstance(lib.get("files"), int) else "",
            str(lib.get("date") or "")]
    extra = ", ".join(b for b in bits if b)
    return [f"learnt from: {where}" + (f" ({extra})" if extra else "")]


def _metric_lines(metrics: dict) -> list[str]:
    lines = []
    for key, val in metrics.items():
        if isinstance(val, dict) and "accuracy" in val:
            ci = val.get("ci95") or val.get("accuracy_ci95")
            extra = f" (95% CI {ci[0]:.1%}–{ci[1]:.1%})" if isinstance(ci, (list, tuple)) and len(ci) == 2 else ""
            lines.append(f"{key}: accuracy {val['accuracy']:.1%}{extra}")
        elif isinstance(val, (int, float, str)):
            lines.append(f"{key}: {val}")
    return lines


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("tensorflow", "keras", "ray", "librosa", "mutagen", "numpy", "soundfile", "av"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


#: Width `tagger runs` keeps its lines within (the folder list is shortened to fit).
RUNS_WIDTH = 120
#: Order of the counts in `tagger runs` (others follow, alphabetically).
_COUNT_ORDER = ("tagged", "would tag", "skipped", "uncertain", "failed", "restored", "already_restored",
                "modified", "missing")


def _shown(path: str) -> str:
    """A path for the terminal: bytes that are not UTF-8 as ``\\xNN`` escapes (never a crash)."""
    from tagger.names import visible

    return visible(path)


def run_folders(run) -> list[str] | None:
    """The PATHS a ``tagger tag`` run covered: recorded (``options["paths"]``, absolute) or, for
    runs recorded before that, parsed from its argv (as typed: relative ones stay relative).
    None when unknown (an undo run, or an argv that is not a `tagger tag` command line)."""
    if run.undo_of:
        return None
    if run.paths is not None:
        return run.paths
    argv = [a for a in run.argv if isinstance(a, str)]
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # the group's own options (-v)
        i += 1
    if i >= len(argv) or argv[i] != "tag":
        return None
    try:
        with tag_cmd.make_context("tag", argv[i + 1:], resilient_parsing=True) as ctx:
            found = list(ctx.params.get("paths") or ())
    except (click.ClickException, click.exceptions.Exit, ValueError, TypeError):
        return None
    return found or None


def _fit_list(items: list[str], width: int) -> str:
    """``a, b, c`` within ``width`` characters: as many as fit, then ``… +N more``; one item too
    long on its own keeps its end (the folder's own name), cut at the start with ``…``."""
    full = ", ".join(items)
    if len(full) <= width:
        return full
    for k in range(len(items) - 1, 0, -1):
        text = ", ".join(items[:k]) + f" … +{len(items) - k} more"
        if len(text) <= width:
            return text
    more = f" … +{len(items) - 1} more" if len(items) > 1 else ""
    room = max(width - len(more) - 1, 8)
    tail = items[0][-room:]
    cut = tail.find("/", 1)
    if 0 < cut < len(tail) - 1:
        tail = tail[cut:]  # start at a folder boundary: …/lib/album0, not …3/lib/album0
    return "…" + tail + more


def _fit_folders(folders: list[str], width: int) -> str:
    """Folders within ``width``: all of them; else, when they share a parent, that parent once
    (``/music/{Jazz, Rock}``, shell brace style); else as many as fit (:func:`_fit_list`)."""
    full = ", ".join(folders)
    if len(full) <= width or len(folders) < 2:
        return _fit_list(folders, width)
    try:
        common = os.path.commonpath(folders)
    except ValueError:  # relative and absolute mixed
        common = ""
    rel = [os.path.relpath(f, common) for f in folders] if common not in ("", os.sep) else []
    if rel and all(r != os.curdir and not r.startswith(os.pardir) for r in rel):
        head = os.path.join(common, "{")
        inner = _fit_list(rel, width - len(head) - 1) if width - len(head) - 1 >= len(rel[0]) else ""
        if inner and not inner.startswith("…"):  # at least one whole name in the braces
            return head + inner + "}"
    return _fit_list(folders, width)


def _covered(run, width: int) -> str:
    """What a run covered, for one line: its folders, or for an undo the run it undid."""
    if run.undo_of:
        return f"undid {run.undo_of}"
    folders = run_folders(run)
    if not folders:
        return "?"
    return _fit_folders([_shown(f) for f in folders], width)


def _counts_text(counts: dict) -> str:
    keys = [k for k in _COUNT_ORDER if k in counts] + sorted(k for k in counts if k not in _COUNT_ORDER)
    text = ", ".join(f"{counts[k]} {k.replace('_', ' ')}" for k in keys if counts[k])
    return text or "nothing"


def _mode(run) -> str:
    return "dry run" if run.dry_run else "real"


def _started(run, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """The start in local time, to the minute (the run id says it in UTC, to the second)."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(str(run.started).replace("Z", "+00:00")).astimezone().strftime(fmt)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(run.started)[:16].replace("T", " ")


def run_json(run) -> dict:
    """One run for `tagger runs --json`: every field of RunInfo, then undo_of and folders."""
    import dataclasses

    out = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
    out["undo_of"] = run.undo_of
    out["folders"] = run_folders(run)
    return out


def _json_default(obj):
    if isinstance(obj, (bytes, bytearray)):
        return os.fsdecode(bytes(obj))
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


RUNS_HELP = """List recent runs (newest first) with their ids, for `tagger undo`.

\b
One line per run:
  run id         give it (or a unique start of it) to `tagger undo`
  started        month-day hour:minute, local time (the run id: the start in UTC)
  status         finished, interrupted, failed, running; undo for `tagger undo`
  mode           real, or dry run (wrote nothing)
  changed        files whose tags the run wrote (what undo can restore)
  counts         what happened to the files
  covered        the folders the run covered; for an undo, the run it undid

Long folder lists are shortened (siblings as /music/{Jazz, Rock}, then … +N more); --json
has them all. Names that are not valid UTF-8 show their odd bytes as \\xNN; in --json they are
strings with \\udcNN escapes (Python's os.fsdecode: os.fsencode gives the bytes back).
"""


@main.command("runs", help=RUNS_HELP)
@click.option("--state-db", metavar="FILE", default=None,
              help="State database [default: in the user state directory].")
@click.option("--limit", type=click.IntRange(min=0), default=30, show_default=True,
              help="Show at most N runs (0: all).")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list of the runs, newest first: every recorded field and the folders.")
@click.pass_context
def runs_cmd(ctx, state_db, limit, as_json) -> None:
    import json

    from tagger.state import StateDB, default_state_path

    path = Path(state_db).expanduser() if state_db else default_state_path()
    if not path.exists():
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"no runs yet (no state database at {path})")
        return
    try:
        with StateDB(path) as db:
            runs = db.runs(limit=limit or None)
    except TaggerError as exc:
        fail(ctx, exc)
        return
    if as_json:
        click.echo(json.dumps([run_json(r) for r in runs], indent=2, default=_json_default))
        return
    if not runs:
        click.echo("no runs yet")
        return
    # fixed columns, the counts (aligned while short), then what the run covered in the rest
    counts = [_counts_text(r.counts) for r in runs]
    cw = min(max(len("counts"), *map(len, counts)), 28)
    click.echo(f"{'run id':<20} {'started':<11} {'status':<11} {'mode':<7} {'changed':>7}  "
               f"{'counts':<{cw}}  covered")
    for r, c in zip(runs, counts):
        line = (f"{r.run_id:<20} {_started(r, '%m-%d %H:%M'):<11} {r.status:<11} {_mode(r):<7} "
                f"{r.files_changed:>7}  {c:<{cw}}  ")
        click.echo(line + _covered(r, max(RUNS_WIDTH - len(line), 16)))


def _complete_run_ids(ctx: click.Context, param, incomplete: str):
    """Shell completion of RUN_ID: the runs of the state database (the --state-db given
    earlier on the line, or the default), newest first, each with a short help. Never raises,
    never creates or changes a state database: a missing or broken one completes nothing."""
    from click.shell_completion import CompletionItem

    try:
        from tagger import state as st

        given = ctx.params.get("state_db")
        path = Path(given).expanduser() if given else st.default_state_path()
        items = []
        for r in st.peek_runs(path, limit=500):
            if not r.run_id.startswith(incomplete):
                continue
            what = f"undid {r.undo_of}" if r.undo_of else _covered(r, 44)
            items.append(CompletionItem(r.run_id, help=f"{_started(r)} {_mode(r)}, {what}"))
        return items
    except Exception:  # noqa: BLE001 - completion must never fail in the user's shell
        return []


@main.command("undo")
@click.argument("run_id", shell_complete=_complete_run_ids)
@click.option("--state-db", metavar="FILE", default=None,
              help="State database [default: in the user state directory].")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be restored.")
@click.option("--keep", is_flag=True,
              help="Do not re-analyse restored files on the next run (default: they are analysed again).")
@click.pass_context
def undo_cmd(ctx, run_id, state_db, dry_run, keep) -> None:
    """Restore the tag fields run RUN_ID changed, exactly as they were.

    RUN_ID comes from `tagger runs` (a unique start of it is enough; shell completion offers
    them, see the README). Files modified since that run are reported and left alone; files an
    earlier undo already put back are reported as already restored. Undoing an undo puts the
    run's tags back.
    """
    from tagger.lock import RunLock
    from tagger.state import StateDB, default_state_path
    from tagger.undo import undo_run

    setup_logging(verbose=ctx.find_root().obj.verbose)
    path = Path(state_db).expanduser() if state_db else default_state_path()
    if not path.exists():
        fail(ctx, FatalError(f"no state database at {path}: nothing to undo"))
    lock = RunLock(path)
    try:
        lock.acquire()
        with StateDB(path) as db:
            res = undo_run(db, run_id, dry_run=dry_run, retag=not keep, argv=sys.argv[1:])
    except TaggerError as exc:
        fail(ctx, exc)
        return
    finally:
        lock.release()
    verb = "would restore" if dry_run else "restored"
    for p in res.restored:
        echo(f"{verb}: {p}")
    for p, who in res.already_restored:
        echo(f"already restored: {p} (by {who})")
    for p, why in res.skipped_modified:
        echo(f"left alone (modified since that run): {p}: {why}", err=True)
    for p in res.missing:
        echo(f"missing (skipped): {p}", err=True)
    for p, why in res.failed:
        echo(f"failed: {p}: {why}", err=True)
    already = f"{len(res.already_restored)} already restored"
    if res.already_restored:
        already += f" (by {', '.join(dict.fromkeys(who for _, who in res.already_restored))})"
    click.echo(f"undo {res.run_id or run_id}: {len(res.restored)} {verb}, {already}, "
               f"{len(res.skipped_modified)} modified since, {len(res.missing)} missing, "
               f"{len(res.failed)} failed")
    ctx.exit(EXIT_FILES_FAILED if res.failed else EXIT_OK)


@main.command("config")
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
    click.echo(format_effective(options, sources, values.get("learn"), path))


def entry() -> None:
    main()
