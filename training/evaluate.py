"""Track-level evaluation, cross-validation and export.

A track's scores are the mean of its chunk probabilities (:func:`tagger.aggregate.track_scores`,
what ``tagger tag`` does); its prediction is the best-scoring label. Reported per run:

- accuracy with a 95% Wilson score interval (for k-fold: Wilson on all pooled out-of-fold
  tracks, and the mean of the per-fold accuracies with a Student-t interval over folds);
- per-class precision, recall, F1 and support; chunk-level accuracy for reference;
- ``confusion.png`` (counts), ``learning_loss.png`` and ``learning_accuracy.png`` (train vs
  validation per epoch), ``metrics.json`` and ``predictions.json`` (one row per test track).

The model is loaded with :meth:`tagger.model.GenreModel.load`, exactly as ``tagger tag`` loads it,
so an evaluated run is known to load there.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import ParameterError
from tagger.metrics import (  # noqa: F401 - re-exported: training.compare and the tests import them from here
    Z95,
    confusion_matrix,
    per_class,
    plot_confusion,
    save_figure,
    t_interval,
    wilson_interval,
)
from tagger.metrics import pyplot as _pyplot

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.json"


# ---------------------------------------------------------------------------------------
# statistics (pure): one source, tagger.metrics (tagger learn and evaluate use them too)
# ---------------------------------------------------------------------------------------

def summarise(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Track-level accuracy with its Wilson interval, per-class scores, macro F1, confusion."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    n = int(y_true.size)
    correct = int(np.sum(y_true == y_pred))
    lo, hi = wilson_interval(correct, n)
    cm = confusion_matrix(y_true, y_pred, n_classes=len(labels))
    classes = per_class(cm, labels)
    present = [c for c in classes.values() if c["support"]]
    return {
        "accuracy": round(correct / n, 4) if n else None,
        "accuracy_ci95": [round(lo, 4), round(hi, 4)],
        "interval": "Wilson score, 95%",
        "correct": correct,
        "tracks": n,
        "macro_f1": round(float(np.mean([c["f1"] for c in present])), 4) if present else None,
        "per_class": classes,
        "confusion": cm.tolist(),
        "labels": list(labels),
    }


def track_predictions(probs: np.ndarray, owner: np.ndarray, n_tracks: int, aggregation: str = "mean") -> np.ndarray:
    """Chunk outputs -> track scores by :func:`tagger.aggregate.track_scores` (the model's
    ``aggregation``: the mean of chunk probabilities for every model trained here).

    probs : shape (n_chunks, n_labels); owner : shape (n_chunks,), track index of each chunk.
    Returns shape (n_tracks, n_labels), float32.
    """
    from tagger.aggregate import track_scores

    return np.stack([track_scores(probs[owner == i], aggregation) for i in range(n_tracks)])


# ---------------------------------------------------------------------------------------
# pictures (matplotlib, Agg)
# ---------------------------------------------------------------------------------------

def plot_learning_curves(history: dict[str, list[float]], out_dir: str | Path, *, title: str) -> list[Path]:
    """``learning_loss.png`` and ``learning_accuracy.png``: train vs validation per epoch."""
    plt = _pyplot()
    written = []
    for metric, ylabel in (("loss", "cross-entropy loss"), ("accuracy", "chunk accuracy")):
        if metric not in history:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        epochs = np.arange(1, len(history[metric]) + 1)
        ax.plot(epochs, history[metric], marker="o", ms=3, label="training")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker="o", ms=3, label="validation")
            best = int(np.argmin(history["val_loss"])) + 1 if "val_loss" in history else None
            if best:
                ax.axvline(best, color="grey", ls="--", lw=1, label=f"best epoch ({best})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if metric == "accuracy":
            ax.set_ylim(0, 1.02)
        ax.set_title(f"{title}: {metric}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(save_figure(fig, Path(out_dir) / f"learning_{metric}.png"))
    return written


# ---------------------------------------------------------------------------------------
# evaluate one run
# ---------------------------------------------------------------------------------------

def evaluate_run(run_dir: str | Path, *, side: str = "test") -> dict[str, Any]:
    """Evaluate a fitted run on its held-out ``side`` (the test split, or the fold's test fold).

    Writes metrics.json, predictions.json, confusion.png and learning curves into the run; returns
    the metrics.
    """
    from tagger.model import GenreModel
    from training.architectures import get as get_arch
    from training.cache import load_chunks
    from training.datasets import DatasetError, load_work
    from training.train import features_for, load_run, standardise

    t0 = time.perf_counter()
    run_dir = Path(run_dir).expanduser().resolve()
    run = load_run(run_dir)
    tracks = run["split"].get(side) or []
    if not tracks:
        raise DatasetError(
            f"{run_dir}: no {side} tracks (trained on all the data with --all); its accuracy is "
            "the cross-validated one: see `tagger train cv`"
        )
    model = GenreModel.load(run_dir)
    work = load_work(run["work"])
    spec = get_arch(run["arch"])
    cache, sha_of, dropped = features_for(work, spec, tracks)
    tracks = [t for t in tracks if t in sha_of]
    x, owner = load_chunks(cache, [sha_of[t] for t in tracks])
    probs = model.predict(standardise(x, model.meta.features))
    labels = list(model.meta.labels)
    scores = track_predictions(probs, owner, len(tracks), model.meta.aggregation)
    label_of = work.label_of
    index = {lab: i for i, lab in enumerate(labels)}
    y_true = np.array([index[label_of[t]] for t in tracks])
    y_pred = scores.argmax(axis=1)
    metrics = summarise(y_true, y_pred, labels)
    chunk_true = y_true[owner]
    metrics.update(
        level="track",
        aggregation="mean of chunk probabilities",
        evaluated_on=_side_name(run, side),
        chunk_accuracy=round(float(np.mean(probs.argmax(axis=1) == chunk_true)), 4),
        chunks=int(owner.size),
        model_id=model.meta.model_id,
        arch=run["arch"],
        fold=run.get("fold"),
        seed=run.get("seed"),
    )
    metrics["timings"] = {"evaluate_s": round(time.perf_counter() - t0, 2), **run.get("timings", {})}
    predictions = [
        {"track": t, "label": labels[int(y_true[i])], "predicted": labels[int(y_pred[i])],
         "scores": [round(float(s), 5) for s in scores[i]]}
        for i, t in enumerate(tracks)
    ]
    _write_json(run_dir / PREDICTIONS_FILE, {"labels": labels, "tracks": predictions})
    _write_json(run_dir / METRICS_FILE, metrics)
    title = (f"{run['arch']} on {metrics['evaluated_on']}: accuracy {metrics['accuracy']:.1%} "
             f"[{metrics['accuracy_ci95'][0]:.1%}, {metrics['accuracy_ci95'][1]:.1%}], n={metrics['tracks']}")
    plot_confusion(np.array(metrics["confusion"]), labels, run_dir / "confusion.png", title=title)
    plot_learning_curves(run["history"], run_dir, title=f"{run['arch']} {_run_name(run)}")
    log.info("%s: track accuracy %.3f [%.3f, %.3f] on %d %s tracks", run_dir.name, metrics["accuracy"],
             *metrics["accuracy_ci95"], metrics["tracks"], side)
    return metrics


def _run_name(run: dict[str, Any]) -> str:
    if run.get("fold") is not None:
        return f"fold {run['fold']}"
    return "all data" if run.get("final") else "single split"


def _side_name(run: dict[str, Any], side: str) -> str:
    if run.get("fold") is not None:
        return f"test fold {run['fold']}"
    return f"{side} split"


# ---------------------------------------------------------------------------------------
# cross-validation
# ---------------------------------------------------------------------------------------

def cross_validate(work_dir: str | Path, *, out: str | Path, arch: str = "mel-cnn", command: str = "",
                   folds: Sequence[int] | None = None, **fit_options: Any) -> dict[str, Any]:
    """Fit and evaluate every fold (``out/fold-K``), pool the out-of-fold predictions.

    Writes ``out/metrics.json`` (pooled Wilson interval, per-fold accuracies with a t interval,
    per-class scores, wall times) and ``out/confusion.png``; returns the metrics.
    """
    from training.datasets import DatasetError, load_work
    from training.train import fit

    t0 = time.perf_counter()
    work = load_work(work_dir)
    k = work.n_folds
    if not k:
        raise DatasetError(f"{work.dir}: prepared without folds; run prepare with --folds K")
    out = Path(out).expanduser().resolve()
    which = list(range(k)) if folds is None else list(folds)
    fold_metrics, pooled = [], []
    labels = list(work.labels)
    for i in which:
        log.info("fold %d/%d", i + 1, k)
        fold_dir = out / f"fold-{i}"
        run = fit(work.dir, arch=arch, out=fold_dir, fold=i, command=command, **fit_options)
        m = evaluate_run(fold_dir)
        fold_metrics.append({"fold": i, "accuracy": m["accuracy"], "tracks": m["tracks"],
                             "validation_accuracy": run["validation"]["track_accuracy"],
                             "validation_tracks": run["validation"]["tracks"],
                             "validation_loss": run["validation"]["best_val_loss"],
                             "epochs_run": run["options"]["epochs_run"], "best_epoch": run["options"]["best_epoch"],
                             "fit_s": run["timings"]["fit_s"], "evaluate_s": m["timings"]["evaluate_s"],
                             "model_id": m["model_id"]})
        pooled += json.loads((fold_dir / PREDICTIONS_FILE).read_text(encoding="utf-8"))["tracks"]
    index = {lab: i for i, lab in enumerate(labels)}
    y_true = np.array([index[p["label"]] for p in pooled])
    y_pred = np.array([index[p["predicted"]] for p in pooled])
    metrics = summarise(y_true, y_pred, labels)
    accs = [f["accuracy"] for f in fold_metrics]
    mean, lo, hi = t_interval(accs)
    # model selection (augmentation, fine-tuning) looks at these, never at the test folds
    v_correct = sum(round(f["validation_accuracy"] * f["validation_tracks"]) for f in fold_metrics)
    v_total = sum(f["validation_tracks"] for f in fold_metrics)
    validation = {"accuracy": round(v_correct / v_total, 4), "correct": v_correct, "tracks": v_total,
                  "accuracy_ci95": [round(v, 4) for v in wilson_interval(v_correct, v_total)],
                  "mean_best_loss": round(float(np.mean([f["validation_loss"] for f in fold_metrics])), 4)}
    metrics.update(
        level="track",
        aggregation="mean of chunk probabilities",
        evaluated_on=f"{len(which)}-fold cross-validation (out-of-fold predictions of {len(pooled)} tracks, "
                     f"{work.data['name']})",
        dataset=work.data["name"],
        arch=arch,
        folds=fold_metrics,
        fold_accuracy_mean=round(mean, 4),
        fold_accuracy_ci95=[round(lo, 4), round(hi, 4)],
        fold_interval="Student t over folds, 95%",
        validation=validation,
        k=k,
        seed=fit_options.get("seed", 0),
        split_seed=work.data["folds"]["seed"],
        command=command,
        created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    metrics["timings"] = {"total_s": round(time.perf_counter() - t0, 2),
                          "fit_s": round(sum(f["fit_s"] for f in fold_metrics), 2),
                          "evaluate_s": round(sum(f["evaluate_s"] for f in fold_metrics), 2)}
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / METRICS_FILE, metrics)
    _write_json(out / PREDICTIONS_FILE, {"labels": labels, "tracks": pooled})
    title = (f"{arch}, {len(which)}-fold CV on {work.data['name']}: accuracy {metrics['accuracy']:.1%} "
             f"[{metrics['accuracy_ci95'][0]:.1%}, {metrics['accuracy_ci95'][1]:.1%}], n={metrics['tracks']}")
    plot_confusion(np.array(metrics["confusion"]), labels, out / "confusion.png", title=title)
    log.info("%s: pooled track accuracy %.3f [%.3f, %.3f] (n=%d); fold mean %.3f [%.3f, %.3f]; "
             "validation %.3f (n=%d, mean best loss %.3f)", arch, metrics["accuracy"], *metrics["accuracy_ci95"],
             metrics["tracks"], mean, lo, hi, validation["accuracy"], v_total, validation["mean_best_loss"])
    return metrics


# ---------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------

def model_metrics(run_dir: Path, *, cv_dir: str | Path | None = None) -> dict[str, Any]:
    """The metrics an exported model carries.

    Top level: ``accuracy``, ``accuracy_ci95``, ``interval``, ``tracks``, ``evaluated_on``,
    ``level`` from the cross-validation when given (``cv_dir``), else from the run's test
    evaluation. ``cross_validation``/``test``/``validation`` hold the details."""
    out: dict[str, Any] = {}
    run_metrics = run_dir / METRICS_FILE
    if run_metrics.is_file():
        test = json.loads(run_metrics.read_text(encoding="utf-8"))
        out["test"] = {k: test[k] for k in ("accuracy", "accuracy_ci95", "interval", "tracks", "evaluated_on",
                                            "macro_f1", "per_class", "chunk_accuracy") if k in test}
    if cv_dir is not None:
        p = Path(cv_dir).expanduser()
        p = p / METRICS_FILE if p.is_dir() else p
        if not p.is_file():
            raise ParameterError(f"{cv_dir}: no cross-validation metrics ({METRICS_FILE}); run `tagger train cv`")
        cv = json.loads(p.read_text(encoding="utf-8"))
        if "folds" not in cv:
            raise ParameterError(f"{p}: not the metrics of a cross-validation run")
        out["cross_validation"] = {k: cv[k] for k in (
            "accuracy", "accuracy_ci95", "interval", "tracks", "evaluated_on", "macro_f1", "per_class",
            "fold_accuracy_mean", "fold_accuracy_ci95", "fold_interval", "k", "arch", "dataset") if k in cv}
        out["cross_validation"]["fold_accuracies"] = [f["accuracy"] for f in cv["folds"]]
    headline = out.get("cross_validation") or out.get("test")
    if headline:
        for k in ("accuracy", "accuracy_ci95", "interval", "tracks", "evaluated_on"):
            out[k] = headline[k]
        out["level"] = "track"
    return out


def export(run_dir: str | Path, *, out: str | Path | None = None, as_default: bool = False,
           cv_dir: str | Path | None = None, name: str | None = None, command: str = "") -> dict[str, Any]:
    """Write ``model.keras`` + ``model.json`` (default ``RUN/export``) with the run's metrics;
    with ``as_default`` also install it as tagger's shipped default model. Every written model
    is loaded back with :meth:`GenreModel.load` before this returns."""
    from tagger.model import GenreModel
    from tagger.modelmeta import copy_bundle, save_bundle, shipped_dir
    from training.train import MODEL_NAME, ReproducibleSave, load_run

    run_dir = Path(run_dir).expanduser().resolve()
    load_run(run_dir)  # a training run, not any model folder
    model = GenreModel.load(run_dir)
    meta = model.meta.to_dict()
    metrics = {**model_metrics(run_dir, cv_dir=cv_dir), "validation": meta["metrics"].get("validation")}
    if "accuracy" not in metrics:
        log.warning("%s: not evaluated and no --cv given; the model carries validation numbers only", run_dir)
    training = dict(meta["training"])
    if command:
        training["export_command"] = command
    fields = {k: v for k, v in meta.items() if k not in ("schema", "model_id", "input_shape", "created")}
    fields.update(metrics=metrics, training=training)
    if name:
        fields["name"] = name
    dest = Path(out).expanduser().resolve() if out else run_dir / "export"
    net = ReproducibleSave(model.net) if model.meta.backend == "keras" else model.net
    files = save_bundle(net, dest, meta_fields=fields, name=MODEL_NAME)
    GenreModel.load(files)
    result = {"files": [str(files.weights), str(files.meta)],
              "model_id": json.loads(files.meta.read_text(encoding="utf-8"))["model_id"], "metrics": metrics}
    if as_default:
        shipped = copy_bundle(files, shipped_dir(), "default")
        GenreModel.load(shipped)
        result["default"] = [str(shipped.weights), str(shipped.meta)]
        log.info("installed as the default model: %s", shipped.weights)
    return result


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
