"""``tagger train``: prepare, fit, evaluate, export, cv, compare, leakage.

A click group; ``tagger`` attaches it as ``tagger train``. Also runnable alone:
``python -m training.cli prepare ...``. Heavy modules are imported inside the commands.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

import click

from tagger.commands.common import UsageExitGroup
from training import architectures

log = logging.getLogger("training")


def _command_line() -> str:
    """The running command with every option spelled out (defaults included), for the record."""
    ctx = click.get_current_context()
    parts = ctx.command_path.split()
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            parts.append(str(value))
            continue
        if value is None or value == () or param.name == "quiet":
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            if value:
                parts.append(flag)
        elif getattr(param, "multiple", False):
            for v in value:
                parts += [flag, str(v)]
        else:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _setup_logging(quiet: bool) -> None:
    root = logging.getLogger()
    level = logging.WARNING if quiet else logging.INFO
    logging.getLogger("training").setLevel(level)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        logging.getLogger("training").addHandler(handler)
        logging.getLogger("training").propagate = False


def _fast_cpu_kernels() -> None:
    """Training on a CPU with oneDNN kernels is about 1.7x faster here than with the portable
    kernels ``tagger tag`` selects (tagger.model.quiet_tensorflow); results agree to float
    round-off. Only possible before TensorFlow starts; TAGGER_TRAIN_ONEDNN=0 opts out."""
    if "tensorflow" not in sys.modules and os.environ.get("TAGGER_TRAIN_ONEDNN", "1") != "0":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"


def _fail(exc: Exception) -> None:
    """Turn the errors a user can fix into one click line (exit 64, EX_USAGE, for data and usage
    errors, as every usage error of tagger; 1 otherwise)."""
    from tagger.errors import FatalError, ParameterError
    from training.datasets import DatasetError
    from training.splits import SplitError

    if isinstance(exc, (DatasetError, SplitError, ParameterError)):
        raise click.UsageError(str(exc)) from None
    if isinstance(exc, FatalError):
        raise click.ClickException(str(exc)) from None
    raise exc


def _run(fn, *args, **kwargs):
    from tagger.errors import TaggerError

    try:
        return fn(*args, **kwargs)
    except TaggerError as exc:
        _fail(exc)


ARCH = click.option("--arch", type=click.Choice(architectures.names()), default="mel-cnn", show_default=True,
                    help="Model architecture (its features are what prepare computes).")
SEED = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
RAY = [
    click.option("--ray-address", default=None, metavar="ADDR",
                 help="Join this Ray cluster (default: RAY_ADDRESS, else a local Ray)."),
    click.option("--workers", type=click.IntRange(min=1), default=None,
                 help="CPUs of a local Ray (default: all)."),
]
FIT = [
    click.option("--epochs", type=click.IntRange(min=1), default=None,
                 help="Most epochs (default: 40; 100 for musicnn-transfer's head); early stopping on "
                      "validation loss usually ends sooner."),
    click.option("--patience", type=click.IntRange(min=1), default=8, show_default=True,
                 help="Epochs without validation improvement before stopping (best weights kept)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=None,
                 help="Chunks per batch (default: 32 on CPU, 256 on a GPU)."),
    click.option("--lr", "learning_rate", type=float, default=None, help="Adam learning rate (default 1e-3)."),
    click.option("--augment", default=None, metavar="LIST",
                 help="Comma list of gain, mask, mixup, pitch, stretch; 'none' for none (default: the architecture's)."),
    click.option("--arch-opt", "arch_opts", multiple=True, metavar="KEY=VALUE",
                 help="Builder option, repeatable (e.g. filters=16,32,64,128 dropout=0.3)."),
]


def _apply(options):
    def deco(f):
        for o in reversed(options):
            f = o(f)
        return f

    return deco


@click.group("train", cls=UsageExitGroup)
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
def train(quiet: bool) -> None:
    """Train, evaluate and export genre models (GTZAN or your own folder per genre).

    \b
      tagger train prepare DATA_DIR --out work/
      tagger train cv work/ --arch mel-cnn --out runs/cv-mel
      tagger train fit work/ --arch mel-cnn --out runs/cnn1
      tagger train evaluate runs/cnn1
      tagger train export runs/cnn1 --cv runs/cv-mel --as-default
      tagger train compare work/ --out runs/compare
      tagger train leakage work/ --out runs/leakage
    """
    _setup_logging(quiet)


@train.command("prepare")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("work"),
              show_default=True, help="Work directory (dataset.json, feature cache).")
@click.option("--split-files", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder with train/valid/test lists (e.g. GTZAN's *_filtered.txt) instead of a random split.")
@click.option("--folds", type=click.IntRange(min=0), default=5, show_default=True,
              help="Stratified cross-validation folds (0: none).")
@SEED
@ARCH
@click.option("--valid-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--max-seconds", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Longer tracks are sampled (evenly spaced stretches adding up to this).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Feature cache (default: OUT/cache); share it between work directories.")
@_apply(RAY)
def prepare_cmd(data_dir, out, split_files, folds, seed, arch, valid_fraction, test_fraction, max_seconds,
                cache_dir, ray_address, workers):
    """Scan DATA_DIR (a folder per genre, or GTZAN's genres/), compute features, make the splits."""
    from training.datasets import prepare

    data = _run(prepare, data_dir, out=out, arch=arch, split_files=split_files, folds=folds, seed=seed,
                valid_fraction=valid_fraction, test_fraction=test_fraction, max_seconds=max_seconds,
                cache_dir=cache_dir, ray_address=ray_address, workers=workers)
    s = data["split"]
    click.echo(f"{data['name']}: {len(data['tracks'])} usable tracks in {len(data['labels'])} genres, "
               f"{len(data['skipped'])} skipped")
    for item in data["skipped"][:20]:
        click.echo(f"  skipped {item['track']}: {item['reason']}")
    if len(data["skipped"]) > 20:
        click.echo(f"  ... and {len(data['skipped']) - 20} more (listed in dataset.json)")
    click.echo(f"split ({s['method']}): train {len(s['train'])}, valid {len(s['valid'])}, test {len(s['test'])}"
               + (f"; {data['folds']['k']} folds for cv" if data["folds"] else ""))
    t = data["timings"]
    click.echo(f"features: {t['features_computed']} computed, {t['features_cached']} cached "
               f"({t['features_s']:.1f} s); written {Path(out) / 'dataset.json'}")


def _fit_kwargs(epochs, patience, batch_size, learning_rate, augment, arch_opts, arch):
    from training.train import parse_augment

    spec = architectures.get(arch)
    return dict(epochs=epochs, patience=patience, batch_size=batch_size, learning_rate=learning_rate,
                augment=parse_augment(augment, default=spec.augment),
                arch_options=architectures.parse_options(arch_opts))


@train.command("fit")
@click.argument("work", type=click.Path(exists=True, file_okay=False, path_type=Path))
@ARCH
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run directory.")
@click.option("--fold", type=click.IntRange(min=0), default=None, help="Train on cross-validation fold K.")
@click.option("--all", "final", is_flag=True,
              help="Train on every track but the validation split (a final model; no test side).")
@SEED
@_apply(FIT)
@_apply(RAY)
def fit_cmd(work, arch, out, fold, final, seed, epochs, patience, batch_size, learning_rate, augment, arch_opts,
            ray_address, workers):
    """Train a model on the prepared WORK directory (the single split, a fold, or --all)."""
    from tagger.errors import TaggerError
    from training.train import fit

    _fast_cpu_kernels()
    try:
        kwargs = _fit_kwargs(epochs, patience, batch_size, learning_rate, augment, arch_opts, arch)
    except TaggerError as exc:
        _fail(exc)
    run = _run(fit, work, arch=arch, out=out, fold=fold, final=final, seed=seed, ray_address=ray_address,
               workers=workers, command=_command_line(), **kwargs)
    v = run["validation"]
    click.echo(f"{arch}: {run['options']['epochs_run']} epochs (best {run['options']['best_epoch']}), "
               f"validation track accuracy {v['track_accuracy']:.3f} on {v['tracks']} tracks, "
               f"{run['timings']['fit_s']:.0f} s; model {run['model_id']} in {out}")


@train.command("evaluate")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
def evaluate_cmd(run):
    """Track-level accuracy (95% Wilson interval), per-class scores and plots on the held-out tracks."""
    from training.evaluate import evaluate_run

    m = _run(evaluate_run, run)
    click.echo(f"{m['evaluated_on']}: accuracy {m['accuracy']:.3f} "
               f"[{m['accuracy_ci95'][0]:.3f}, {m['accuracy_ci95'][1]:.3f}] ({m['correct']}/{m['tracks']} tracks), "
               f"macro F1 {m['macro_f1']:.3f}")
    for lab, c in m["per_class"].items():
        click.echo(f"  {lab:<14} precision {c['precision']:.2f} recall {c['recall']:.2f} f1 {c['f1']:.2f} "
                   f"(n={c['support']})")
    click.echo(f"written {Path(run) / 'metrics.json'}, confusion.png, learning_loss.png, learning_accuracy.png")


@train.command("export")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for model.keras (model.npz for trees) + model.json (default: RUN/export).")
@click.option("--as-default", is_flag=True, help="Also install it as tagger's default model.")
@click.option("--cv", "cv_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="A `tagger train cv` output whose cross-validated accuracy the model should carry.")
@click.option("--name", default=None, help="Model name in the metadata (default: DATASET-ARCH).")
def export_cmd(run, out, as_default, cv_dir, name):
    """Write RUN's model (model.keras, or model.npz for trees) + model.json with its metrics, for
    `tagger tag --model`."""
    from training.evaluate import export

    result = _run(export, run, out=out, as_default=as_default, cv_dir=cv_dir, name=name, command=_command_line())
    m = result["metrics"]
    acc = (f"accuracy {m['accuracy']:.3f} [{m['accuracy_ci95'][0]:.3f}, {m['accuracy_ci95'][1]:.3f}] "
           f"({m['evaluated_on']})") if "accuracy" in m else "not evaluated"
    click.echo(f"model {result['model_id']}: {acc}")
    for f in result["files"]:
        click.echo(f"  {f}")
    if as_default:
        click.echo(f"installed as the default model: {result['default'][0]}")


@train.command("cv")
@click.argument("work", type=click.Path(exists=True, file_okay=False, path_type=Path))
@ARCH
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (fold-K runs, pooled metrics.json, confusion.png).")
@SEED
@_apply(FIT)
@_apply(RAY)
def cv_cmd(work, arch, out, seed, epochs, patience, batch_size, learning_rate, augment, arch_opts, ray_address,
           workers):
    """K-fold cross-validation, track level: every track tested once, pooled and per-fold accuracy."""
    from tagger.errors import TaggerError
    from training.evaluate import cross_validate

    _fast_cpu_kernels()
    try:
        kwargs = _fit_kwargs(epochs, patience, batch_size, learning_rate, augment, arch_opts, arch)
    except TaggerError as exc:
        _fail(exc)
    m = _run(cross_validate, work, out=out, arch=arch, seed=seed, ray_address=ray_address, workers=workers,
             command=_command_line(), **kwargs)
    click.echo(f"{arch}, {m['k']}-fold cross-validation on {m['tracks']} tracks: accuracy {m['accuracy']:.3f} "
               f"[{m['accuracy_ci95'][0]:.3f}, {m['accuracy_ci95'][1]:.3f}] (pooled, Wilson); "
               f"fold mean {m['fold_accuracy_mean']:.3f} "
               f"[{m['fold_accuracy_ci95'][0]:.3f}, {m['fold_accuracy_ci95'][1]:.3f}] (t); "
               f"{m['timings']['total_s']:.0f} s")
    v = m["validation"]
    click.echo(f"validation (for choosing options): accuracy {v['accuracy']:.3f} on {v['tracks']} tracks, "
               f"mean best loss {v['mean_best_loss']:.3f}")
    click.echo(f"written {Path(out) / 'metrics.json'} and confusion.png")


@train.command("compare")
@click.argument("work", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--arch", "archs", multiple=True, type=click.Choice(architectures.names()),
              help="A system to compare, repeatable (default: every architecture).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (a cross-validation per system, compare.md/.json/.png, confusions.png, "
                   "feature_correlation.png).")
@SEED
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Most epochs for every network (default: each architecture's own).")
@click.option("--patience", type=click.IntRange(min=1), default=8, show_default=True,
              help="Epochs without validation improvement before stopping.")
@click.option("--fresh", is_flag=True, help="Retrain systems whose cross-validation is already in OUT.")
@_apply(RAY)
def compare_cmd(work, archs, out, seed, epochs, patience, fresh, ray_address, workers):
    """Cross-validate every system on the same track-level folds: one table, a bar chart with
    95% intervals, the confusion matrices and a feature-correlation picture."""
    from training.compare import compare

    _fast_cpu_kernels()
    rec = _run(compare, work, out=out, archs=archs or None, seed=seed, fresh=fresh, epochs=epochs,
               patience=patience, ray_address=ray_address, workers=workers, command=_command_line())
    from training.compare import table_markdown

    click.echo(table_markdown(rec))
    reused = [r["arch"] for r in rec["systems"] if r["reused"]]
    if reused:
        click.echo(f"(not retrained, found in {out}: {', '.join(reused)}; --fresh retrains)")
    click.echo(f"{rec['wall_s']:.0f} s; written {Path(out) / 'compare.md'}, compare.json, compare.png, "
               "confusions.png, feature_correlation.png")


@train.command("leakage")
@click.argument("work", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--arch", type=click.Choice(architectures.names()), default="features-dense", show_default=True,
              help="The system to train on both kinds of split.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (leakage.json, leakage.png).")
@SEED
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Most epochs (default: the architecture's).")
@click.option("--patience", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--no-overlap", "no_overlap", is_flag=True,
              help="Keep only chunks that do not overlap (like data sets of fixed 3-s segments).")
@_apply(RAY)
def leakage_cmd(work, arch, out, seed, epochs, patience, no_overlap, ray_address, workers):
    """Show how a chunk-level random split (chunks of one track on both sides) inflates accuracy
    compared with a track-level split, same system, same chunks."""
    from training.compare import leakage

    _fast_cpu_kernels()
    r = _run(leakage, work, out=out, arch=arch, seed=seed, epochs=epochs, patience=patience,
             overlap=not no_overlap, ray_address=ray_address, workers=workers, command=_command_line())
    c, t = r["chunk_split"], r["track_split"]
    click.echo(f"{arch}, {r['k']} folds on {r['dataset']} ({r['tracks']} tracks, {r['chunk_seconds']:.1f}-s chunks "
               f"every {r['chunk_hop_seconds']:.1f} s):")
    click.echo(f"  chunk-level random split: chunk accuracy {c['chunk_accuracy']:.1%} "
               f"[{c['chunk_accuracy_ci95'][0]:.1%}, {c['chunk_accuracy_ci95'][1]:.1%}] "
               f"({c['test_chunks_whose_track_is_in_training']:.0%} of test chunks have their track in training)")
    click.echo(f"  track-level split:        chunk accuracy {t['chunk_accuracy']:.1%} "
               f"[{t['chunk_accuracy_ci95'][0]:.1%}, {t['chunk_accuracy_ci95'][1]:.1%}], "
               f"track accuracy {t['track_accuracy']:.1%} "
               f"[{t['track_accuracy_ci95'][0]:.1%}, {t['track_accuracy_ci95'][1]:.1%}]")
    click.echo(f"  the chunk-level split inflates chunk accuracy by {r['inflation_points']:+.1f} points "
               f"({r['wall_s']:.0f} s); written {Path(out) / 'leakage.json'} and leakage.png")


def _add_musicnn_commands() -> None:
    """``convert_musicnn`` from training/musicnn.py, when that module is there."""
    try:
        from training import musicnn
    except Exception as exc:
        if not isinstance(exc, ImportError):
            log.warning("training/musicnn.py cannot be imported: %s", exc)
        return
    cmd = getattr(musicnn, "convert_musicnn", None)
    if isinstance(cmd, click.Command):
        train.add_command(cmd)


_add_musicnn_commands()


def main() -> None:
    train(prog_name="python -m training.cli")


if __name__ == "__main__":
    main()
