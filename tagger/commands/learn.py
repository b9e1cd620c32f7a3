"""``tagger learn LIBRARY... --out MODEL_DIR``: learn the owner's genres from the genres a person
wrote in their files, measure honestly how well they are learnt, and export a model ``tagger tag``
uses.

The driver: options and config; the library's tags (:func:`tagger.library.read_tracks`) and the
owner's taxonomy, printed (``--dry-run`` stops there); the analyses
(:func:`tagger.library.collect`: a dry run of the tag pipeline, analysing only what the store of
analyses lacks); the head, its grouped cross-validation and thresholds (:mod:`tagger.learn`, pure);
the export (:func:`tagger.heads.build_head_bundle`), the report (``MODEL_DIR/learn.json``, ``--report``)
and pictures; ``--as-default``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from tagger.commands import options as opts
from tagger.commands.common import check_inputs, echo, fail, setup_logging, verbosity
from tagger.errors import EXIT_FILES_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, FatalError, TaggerError

log = logging.getLogger(__name__)

LEARN_HELP = """Learn your library's own genres from the genres you wrote, and export a model.

\b
Reads every file's genres in PATHS; only genres a person wrote are labels (not the ones tagger
wrote itself: their provenance says so). Spelling variants are one genre ("Hip Hop", "hip-hop"),
values holding several are split ("Rock; Pop"), ID3v1 numbers named ("(17)"), the config's
[learn] table merges, renames or drops genres, and genres with fewer than --min-tracks tracks or
--min-albums albums are left out. The taxonomy is printed first; --dry-run stops there (it reads
tags only: nothing is analysed).

\b
Then each file is analysed on Ray as `tagger tag --dry-run` would (only what the store of
analyses lacks; nothing is written to any audio file), a head is trained on the backbone
model's stored embeddings, and its accuracy is measured by cross-validation grouped by album
and artist (no album, and no artist, on both sides of a split). Per genre a threshold is chosen
to reach --target-precision; the report compares with what the backbone model (--model) would
have written on the same tracks. The model goes to --out: use it with `tagger tag --model DIR`,
or --as-default to make it the model `tagger tag` uses.

\b
Exit codes:
  0    learnt (or, with --dry-run, the taxonomy printed)
  1    nothing to learn (no genre a person wrote, only one genre, only tagger's own genres), a bad
       model or config file, Ray cannot start
  2    learnt, but some files failed (each has its reason in the output and the report)
  64   usage error: unknown option, bad option value, missing argument or --out (nothing ran)
  75   another tagger run holds the lock on the state database
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM
"""

REPORT_JSON = "learn.json"
CONFUSION_PNG = "confusion.png"
CURVES_PNG = "precision-coverage.png"


def _check_report(ctx, param, value):
    from tagger.learn_report import SUFFIXES

    if value is not None and not value.lower().endswith(SUFFIXES):
        raise click.BadParameter(f"{value!r}: a learn report name must end in .html or .json")
    return value


@click.command("learn", help=LEARN_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", "out", metavar="DIR", default=None,
              help="Folder for the learnt model (model.keras, model.json), learn.json and its pictures "
                   "(required unless --dry-run).")
@click.option("--dry-run", "-n", is_flag=True, help="Print the taxonomy it would learn, then stop (reads tags only).")
@click.option("--min-tracks", type=click.IntRange(min=1), default=None, metavar="N",
              help="Leave out genres with fewer tracks [default: [learn] min-tracks, else 20].")
@click.option("--min-albums", type=click.IntRange(min=1), default=None, metavar="N",
              help="Leave out genres on fewer albums [default: [learn] min-albums, else 3].")
@click.option("--target-precision", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True,
              metavar="P", help="Per genre, the lowest threshold whose cross-validated precision reaches P.")
@click.option("--folds", type=click.IntRange(2, 50), default=5, show_default=True, metavar="K",
              help="Cross-validation folds.")
@click.option("--group-by", type=click.Choice(["album+artist", "album"]), default="album+artist", show_default=True,
              help="Keep albums and artists (or albums only) on one side of every split.")
@click.option("--model", metavar="PATH", default=None,
              help="The backbone model whose embeddings are learnt from (and compared with) "
                   "[default: the shipped gtzan model].")
@opts.WORKERS
@opts.RAY_ADDRESS
@opts.STORE_DB
@click.option("--report", "report_path", metavar="FILE", default=None, callback=_check_report,
              help="Also write the learn report here (.html or .json); DIR/learn.json is always written.")
@click.option("--as-default", is_flag=True,
              help="Make the learnt model the one `tagger tag` uses: model = \"DIR\" in the config file's [tag] table.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Orders tied albums into folds (the fit itself has no randomness).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars; the taxonomy and the figures only.")
@click.option("--config", "config_path", metavar="FILE", default=None,
              help="Config file (its [learn] table; [tag] for the analysis settings) [default: config.toml in the "
                   "user config directory].")
@click.pass_context
def learn_cmd(ctx: click.Context, paths, out, dry_run, min_tracks, min_albums, target_precision, folds, group_by,
              model, workers, ray_address, state_db, report_path, as_default, seed, quiet, config_path) -> None:
    from tagger.config import load_config

    if out is None and not dry_run:
        raise click.UsageError("--out DIR is required (where the learnt model goes), unless --dry-run")
    try:
        file_values, cfg_path = load_config(Path(config_path) if config_path else None, explicit=bool(config_path))
        options = _options(file_values, cfg_path, model=model, workers=workers, ray_address=ray_address,
                           state_db=state_db, quiet=quiet)
        settings = _settings(file_values, min_tracks=min_tracks, min_albums=min_albums)
    except (TaggerError, ValueError) as exc:
        fail(ctx, exc if isinstance(exc, TaggerError) else FatalError(str(exc)))
        return
    setup_logging(verbose=verbosity(ctx), quiet=quiet)
    check_inputs(ctx, paths, [report_path] if report_path else [])
    config_file = Path(config_path).expanduser() if config_path else None
    try:
        code = run_learn(list(paths), options, settings, out=out, dry_run=dry_run, target=target_precision,
                         folds=folds, group_by=group_by, report_path=report_path, as_default=as_default, seed=seed,
                         config_file=config_file)
    except TaggerError as exc:
        fail(ctx, exc)
        return
    ctx.exit(code)


def _options(file_values: dict[str, Any], cfg_path, *, model, workers, ray_address, state_db, quiet):
    """TagOptions for the analysis: the config's [tag] settings (exclude, sampling, workers...),
    but the backbone model is --model or the shipped gtzan one, never [tag] model (which may be
    a model learnt here: --as-default)."""
    from tagger.config import resolve

    values = {k: v for k, v in file_values.items() if k not in ("model", "vocabulary")}
    cli = {"model": model, "workers": workers, "ray_address": ray_address, "state_db": state_db,
           "quiet": True if quiet else None}
    explicit = {k for k, v in cli.items() if v is not None}
    options, _ = resolve(cli, explicit, values, cfg_path)
    return options


def _settings(file_values: dict[str, Any], *, min_tracks: int | None, min_albums: int | None):
    from tagger.taxonomy import learn_settings

    s = learn_settings(file_values)
    if min_tracks is not None:
        s = dataclasses.replace(s, min_tracks=min_tracks)
    if min_albums is not None:
        s = dataclasses.replace(s, min_albums=min_albums)
    return s


def _say(text: str = "") -> None:
    echo(text)


# -- the run ---------------------------------------------------------------------------------------


def run_learn(paths: list[str], options, settings, *, out: str | None, dry_run: bool, target: float, folds: int,
              group_by: str, report_path: str | None, as_default: bool, seed: int,
              config_file: Path | None = None) -> int:
    from tagger import learn as L
    from tagger.library import collect, read_tracks
    from tagger.taxonomy import build_taxonomy

    started = time.time()
    timing: dict[str, float] = {}
    t = time.perf_counter()
    progress = not options.quiet and sys.stderr.isatty()
    tracks, unreadable = read_tracks(paths, exclude=options.exclude, progress=progress)
    taxonomy = build_taxonomy([(tr.genres, tr.album) for tr in L.person_tracks(tracks)], settings)
    timing["read_tags"] = time.perf_counter() - t
    for line in taxonomy.describe():
        _say(line)
    owned = sum(1 for tr in tracks if tr.genres and tr.tagger_owned)
    if owned:
        _say(f"{owned} file(s) carry tagger's own genres: analysed, but not labels")
    L.check_labels(tracks, taxonomy)
    if dry_run:
        for path, why in unreadable:  # a real run's analysis reports them (once)
            log.warning("%s: %s", path, why)
        _say(f"dry run: {len(taxonomy.genres)} genres would be learnt from {taxonomy.tracks_labelled} tracks")
        return EXIT_OK
    assert out is not None
    out_dir = Path(out).expanduser().resolve()
    _check_out(out_dir)

    t = time.perf_counter()
    collected = collect(paths, options, progress=progress)
    timing["analyse"] = time.perf_counter() - t
    if collected.interrupted:
        _say(f"interrupted by {collected.interrupted}: nothing learnt (what was analysed is stored for next time)")
        return EXIT_SIGTERM if collected.interrupted == "SIGTERM" else EXIT_SIGINT
    analysed_tracks = [tr for tr in collected.tracks if tr.analysis is not None]
    again = build_taxonomy([(tr.genres, tr.album) for tr in L.person_tracks(analysed_tracks)], settings)
    if again.describe() != taxonomy.describe():
        _say("After analysis (some labelled files could not be analysed), the taxonomy is:")
        for line in again.describe():
            _say(line)
    taxonomy = again
    L.check_labels(analysed_tracks, taxonomy)
    data = L.labelled(analysed_tracks, taxonomy)
    _say(f"analysis: {collected.analysed} file(s) analysed now, {collected.stored} from the store of analyses"
         + (f", {len(collected.failed)} failed" if collected.failed else ""))

    t = time.perf_counter()
    plan = L.plan_folds(data.albums, data.artists, data.y, folds=folds, group_by=group_by, seed=seed)
    for note in plan.notes:
        _say(f"note: {note}")
    bar = _bar(L.fits_needed(plan), progress)
    choice = L.choose_l2(data.x, data.y, data.albums, data.artists, grouping=plan.grouping, seed=seed,
                         tick=bar.update)
    cv = L.cross_validate(data, plan, l2=choice.l2, target=target, top_k=options.top_k, tick=bar.update)
    final = L.fit_head(data.x, data.y, l2=choice.l2)
    bar.update()
    bar.close()
    thresholds = L.choose_thresholds(cv.oof, data.y, target)
    timing["train"] = time.perf_counter() - t
    meta = collected.meta
    mapping = L.map_labels(meta.labels, data.keys, key_of=taxonomy.key_of, display_names=meta.display_names,
                           user_map=options.genre_map)
    from tagger.aggregate import thresholds_for

    base_thresholds = thresholds_for(meta, options)
    base_pred, base_wrote = L.base_decisions(data.base_scores, mapping, len(data.keys), top_k=options.top_k,
                                             thresholds=base_thresholds.array(meta.labels))
    ev = L.evaluation(data, cv, thresholds, base_labels=meta.labels, mapping=mapping, base_predicted=base_pred,
                      base_wrote=base_wrote)

    from tagger import learn_report

    report = _report(paths, tracks, unreadable, collected, taxonomy, data, plan, choice, ev, target=target,
                     options=options, started=started, seed=seed)
    if not any(g["reachable"] for g in ev["genres"]):
        for line in learn_report.genre_table(report):
            _say(line)
        learn_report_path = out_dir / REPORT_JSON
        out_dir.mkdir(parents=True, exist_ok=True)
        learn_report.write(report, learn_report_path)
        raise L.LearnError(f"no genre reaches {target:.0%} precision: nothing to write (see {learn_report_path}); "
                           "lower --target-precision")
    t = time.perf_counter()
    files = _export(out_dir, collected, data, final, ev, report, plan=plan, target=target, options=options)
    timing["export"] = time.perf_counter() - t
    report["model"] = {"dir": str(out_dir), "files": [str(files.weights), str(files.meta)],
                       "model_id": _model_id(files), "as_default": False}
    images = _pictures(out_dir, ev, plan=plan, target=target)
    if as_default:
        report["model"]["as_default"] = True
        report["model"]["config"] = str(_set_default(out_dir, config_file))
    report["timing"] = {k: round(v, 3) for k, v in timing.items()}
    learn_report.write(report, out_dir / REPORT_JSON)
    if report_path:
        learn_report.write(report, report_path, images=images)

    _say(f"cross-validation: {plan.k} folds grouped by {plan.grouping} ({plan.groups} groups, "
         f"{len(data.paths)} tracks), L2 {choice.l2:g}; thresholds for {target:.0%} precision")
    for line in learn_report.genre_table(report):
        _say(line)
    for g in ev["genres"]:
        if not g["reachable"]:
            _say(f"note: {g['name']} cannot reach {target:.0%} precision (best {g['best_precision']:.0%}): left out "
                 "of the model, never written; lower --target-precision to have it written")
    for line in learn_report.summary_lines(report):
        _say(line)
    if collected.failed:
        _say(f"{len(collected.failed)} file(s) failed (their reasons: above, and in {out_dir / REPORT_JSON})")
    _say(f"model: {out_dir} (id {report['model']['model_id']}); report: {out_dir / REPORT_JSON}"
         + (f", {report_path}" if report_path else ""))
    if as_default:
        _say(f"the learnt model is now the default: model = \"{out_dir}\" in {report['model']['config']}")
    else:
        _say(f"use it: tagger tag {' '.join(paths)} --model {out_dir}   (or learn with --as-default)")
    return EXIT_FILES_FAILED if collected.failed else EXIT_OK


def _check_out(out_dir: Path) -> None:
    """--out must be a folder tagger can write and that holds no other model (a model folder
    holds exactly one: ``tagger tag --model DIR`` picks it)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FatalError(f"{out_dir}: --out exists and is not a folder")
    if out_dir.is_dir():
        others = [p.name for p in out_dir.iterdir() if p.suffix in (".keras", ".npz") and p.stem != "model"]
        if others:
            raise FatalError(f"{out_dir}: holds another model ({', '.join(sorted(others))}); choose an empty folder")
    parent = out_dir if out_dir.is_dir() else out_dir.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise FatalError(f"{out_dir}: cannot create or write the folder")


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


def _bar(total: int, progress: bool):
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="fit", desc="training", file=sys.stderr, dynamic_ncols=True, leave=False)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _report(paths, tracks, unreadable, collected, taxonomy, data, plan, choice, ev, *, target, options, started,
            seed) -> dict[str, Any]:
    from tagger.report import tool_name

    meta = collected.meta
    failed = dict(unreadable)
    failed.update(dict(collected.failed))
    person = [t for t in tracks if t.genres and not t.tagger_owned]
    mapping = {g["base_label"]: g["name"] for g in ev["genres"] if g.get("base_label")}
    return {
        "tool": tool_name(), "command": "learn", "created": _now(),
        "library": {
            "paths": [os.path.abspath(os.path.expanduser(p)) for p in paths],
            "files": len(tracks) + len(unreadable), "person_tagged": len(person),
            "tagger_owned": sum(1 for t in tracks if t.genres and t.tagger_owned),
            "without_genre": sum(1 for t in tracks if not t.genres),
            "labelled_tracks": len(data.paths), "analysed": collected.analysed, "from_store": collected.stored,
            "failed": [{"path": p, "reason": why} for p, why in failed.items()],
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        },
        "taxonomy": _taxonomy_dict(taxonomy),
        "base_model": {"name": meta.name or meta.model_id, "model_id": meta.model_id, "backbone": collected.backbone,
                       "top_k": options.top_k, "min_confidence": _base_threshold(meta, options),
                       "mapping": mapping},
        "embedding_size": int(data.x.shape[1]),
        "cv": {**plan.to_dict(), "l2": choice.l2,
               "l2_losses": {f"{k:g}": round(v, 5) for k, v in choice.losses.items()},
               "l2_folds": choice.folds, "target_precision": target, "top_k": options.top_k, "seed": seed,
               "thresholds": "per genre, the lowest reaching the target on out-of-fold scores; each fold decided "
                             "at thresholds chosen on the other folds"},
        **ev,
    }


def _base_threshold(meta, options) -> float | dict[str, float]:
    from tagger.aggregate import thresholds_for

    t = thresholds_for(meta, options)
    return t.default if t.uniform else {label: t.of_label(label) for label in meta.labels}


def _taxonomy_dict(taxonomy) -> dict[str, Any]:
    def g(x) -> dict[str, Any]:
        return {"key": x.key, "name": x.name, "tracks": x.tracks, "albums": x.albums,
                "variants": [list(v) for v in x.variants]}

    return {"genres": [g(x) for x in taxonomy.genres],
            "left_out": [{**g(x), "reason": why} for x, why in taxonomy.left_out],
            "tracks_labelled": taxonomy.tracks_labelled, "tracks_unlabelled": taxonomy.tracks_unlabelled,
            "table": taxonomy.describe()}


def _export(out_dir: Path, collected, data, final, ev, report, *, plan, target, options):
    from tagger import learn as L
    from tagger.heads import build_head_bundle
    from tagger.modelmeta import locate

    backbone = locate(options.model, vocabulary=options.vocabulary)
    lib = report["library"]
    # a genre that cannot reach the target precision is not in the model: never written (a
    # threshold of 1 could still be met by a score that float32 rounds to 1)
    keep = [j for j, g in enumerate(ev["genres"]) if g["reachable"]]
    unreached = [g for g in ev["genres"] if not g["reachable"]]
    taxonomy = {k: v for k, v in report["taxonomy"].items() if k != "table"}
    taxonomy["left_out"] = list(taxonomy["left_out"]) + [
        {"key": g["key"], "name": g["name"], "tracks": g["tracks"],
         "reason": f"cannot reach {target:.0%} precision (best {g['best_precision']:.0%})"} for g in unreached]
    training: dict[str, Any] = {
        "description": f"a head for {len(data.keys)} genres a person wrote, learnt by `tagger learn` on the "
                       f"embeddings of {collected.meta.name or collected.meta.model_id}",
        # "path" as `tagger info` reads it (learnt from: ...), "paths" as the learn report has it
        "library": {"paths": lib["paths"], "path": lib["paths"], "files": lib["files"],
                    "labelled_tracks": lib["labelled_tracks"], "date": lib["date"]},
        "taxonomy": taxonomy,
        "cv": {k: report["cv"][k] for k in ("folds", "grouping", "groups", "notes", "l2", "target_precision", "top_k",
                                            "seed")},
        "head": {"kind": "one-vs-rest logistic regression", "l2": final.l2, "class_weight": "balanced per genre",
                 "standardisation": "folded into the weights", "embedding_size": int(data.x.shape[1])},
        "backbone_model": {"model_id": collected.meta.model_id, "name": collected.meta.name,
                           "backbone": collected.backbone},
        "command": ["tagger", *sys.argv[1:]],
    }
    labels = [data.keys[j] for j in keep]
    thresholds = {g["key"]: float(g["threshold"]) for g in ev["genres"] if g["reachable"]}
    metrics = L.model_metrics(ev, target=target, plan=plan, tracks=len(data.paths))
    out_dir.mkdir(parents=True, exist_ok=True)
    return build_head_bundle(backbone, weights=final.weights[:, keep], bias=final.bias[keep], labels=labels,
                             display_names={data.keys[j]: data.names[j] for j in keep}, thresholds=thresholds,
                             out_dir=out_dir, model_name=f"learnt-{len(labels)}-genres", training=training,
                             metrics=metrics, name="model")


def _model_id(files) -> str:
    import json

    return str(json.loads(Path(files.meta).read_text(encoding="utf-8")).get("model_id", ""))


def _pictures(out_dir: Path, ev, *, plan, target) -> dict[str, bytes]:
    import numpy as np

    from tagger.metrics import plot_confusion, plot_precision_coverage

    t = ev["top1"]
    acc = f"{t['accuracy']:.0%}" if t["accuracy"] is not None else "–"
    cm = plot_confusion(np.asarray(t["confusion"]), t["names"], out_dir / CONFUSION_PNG,
                        title=f"learnt, {plan.k}-fold CV by {plan.grouping}: best genre right on {t['right']}/"
                              f"{t['tracks']} single-genre tracks ({acc})")
    pc = plot_precision_coverage(ev["curves"], out_dir / CURVES_PNG, target=target,
                                 title=f"learnt, {plan.k}-fold CV by {plan.grouping}: precision against coverage")
    return {"confusion": cm.read_bytes(), "precision_coverage": pc.read_bytes()}


def _set_default(out_dir: Path, config_file: Path | None) -> Path:
    """``model = "OUT_DIR"`` into the config file's [tag] table (the file created if missing),
    every other byte kept; written atomically."""
    from tagger.config import default_config_path
    from tagger.learn import with_default_model

    path = config_file or default_config_path()
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        new = with_default_model(text, str(out_dir))
    except ValueError as exc:
        raise FatalError(f"{path}: cannot set the default model ({exc}); the model is in {out_dir}: put "
                         f"model = \"{out_dir}\" in its [tag] table by hand") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(new)
        f.flush()
        os.fsync(f.fileno())
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path
