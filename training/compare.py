"""Every system on the same track-level folds, one table; and the leakage demonstration.

``tagger train compare WORK --out DIR`` cross-validates each chosen architecture on the folds the
work directory was prepared with (:func:`training.evaluate.cross_validate`: every track tested
once, never on two sides of a split), then writes::

    DIR/<arch>/...                 each system's cross-validation (fold runs, metrics, confusion.png)
    DIR/compare.json               the table as data, with how and where it was measured
    DIR/compare.md                 the table (Markdown)
    DIR/compare.png                pooled track accuracy per system with its 95% interval
    DIR/confusions.png             every system's confusion matrix, side by side
    DIR/feature_correlation.png    correlations of the hand-crafted descriptor statistics

A system whose cross-validation is already in ``DIR/<arch>`` on exactly these folds and seed is
not trained again (an interrupted comparison resumes; ``--fresh`` retrains).

``tagger train leakage WORK --out DIR`` trains one system twice per fold: on a track-level split
(the work directory's folds) and on a chunk-level random split, where chunks of one track land on
both sides — how several published GTZAN figures were obtained — and reports both accuracies.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluate import _write_json, save_figure

log = logging.getLogger(__name__)

COMPARE_FILE = "compare.json"
LEAKAGE_FILE = "leakage.json"


# ---------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------

def reusable(sys_dir: Path, work: Any, *, arch: str, seed: int) -> dict[str, Any] | None:
    """The metrics of an earlier cross-validation in ``sys_dir`` when it ran ``arch`` with ``seed``
    on exactly ``work``'s folds (every fold's train/valid/test tracks), else None."""
    f = sys_dir / "metrics.json"
    if not f.is_file():
        return None
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if m.get("arch") != arch or m.get("k") != work.n_folds or m.get("seed") != seed:
        return None
    if sorted(fm["fold"] for fm in m.get("folds", [])) != list(range(work.n_folds)):
        return None
    for k in range(work.n_folds):
        try:
            run = json.loads((sys_dir / f"fold-{k}" / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        dropped = set(run.get("dropped", []))
        want = work.split(k)
        if any(sorted(run["split"][side]) != sorted(t for t in want[side] if t not in dropped)
               for side in ("train", "valid", "test")):
            return None
    return m


def measure_speed(work: Any, run_dir: Path, *, tracks: Sequence[str], repeats: int = 3) -> dict[str, Any]:
    """Per-track cost of the system as ``tagger tag`` pays it, on ``tracks`` (a test fold):

    - ``features_ms``: :func:`tagger.features.extract` on the decoded audio (decoding, the same
      for every system, is not counted), median over tracks;
    - ``model_ms``: the exported model's ``predict`` on one track's chunks (float32, CPU, after a
      warm-up), median over tracks of the best of ``repeats``.
    """
    from tagger.decode import decode
    from tagger.features import extract
    from tagger.model import GenreModel

    model = GenreModel.load(run_dir)
    params = model.meta.features
    feat_ms, model_ms, chunks = [], [], []
    for t in tracks:
        y = decode(work.path_of(t), sample_rate=params.sample_rate)
        t0 = time.perf_counter()
        x = extract(y, params=params)
        feat_ms.append((time.perf_counter() - t0) * 1e3)
        model.predict(x)  # warm-up (first call traces; later shapes are cached)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.predict(x)
            best = min(best, time.perf_counter() - t0)
        model_ms.append(best * 1e3)
        chunks.append(x.shape[0])
    return {"features_ms": round(float(np.median(feat_ms)), 2), "model_ms": round(float(np.median(model_ms)), 2),
            "chunks_per_track": float(np.median(chunks)), "speed_tracks": len(tracks)}


def compare(work_dir: str | Path, *, out: str | Path, archs: Sequence[str] | None = None, seed: int = 0,
            fresh: bool = False, epochs: int | None = None, patience: int = 8, ray_address: str | None = None,
            workers: int | None = None, command: str = "") -> dict[str, Any]:
    """Cross-validate every architecture in ``archs`` (default: all registered) on ``work_dir``'s
    folds with its default options; write the table and pictures. Returns the compare record."""
    from training import architectures
    from training.datasets import DatasetError, load_work
    from training.evaluate import cross_validate

    t0 = time.perf_counter()
    work = load_work(work_dir)
    if not work.n_folds:
        raise DatasetError(f"{work.dir}: prepared without folds; run prepare with --folds K")
    archs = list(dict.fromkeys(archs or architectures.names()))
    specs = [architectures.get(a) for a in archs]  # unknown names fail before any training
    _setup_tensorflow_first(specs, seed)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in specs:
        sys_dir = out / spec.name
        m = None if fresh else reusable(sys_dir, work, arch=spec.name, seed=seed)
        reused = m is not None
        t_sys = time.perf_counter()
        if m is None:
            if sys_dir.exists():
                shutil.rmtree(sys_dir)
            log.info("=== %s: %d-fold cross-validation", spec.name, work.n_folds)
            m = cross_validate(work.dir, out=sys_dir, arch=spec.name, seed=seed, epochs=epochs, patience=patience,
                               ray_address=ray_address, workers=workers, command=command)
        else:
            log.info("=== %s: cross-validation found in %s (same folds and seed); not retrained", spec.name, sys_dir)
        speed = measure_speed(work, sys_dir / "fold-0", tracks=work.split(0)["test"])
        rows.append({
            "arch": spec.name,
            "description": spec.description,
            "features": spec.features.kind,
            "accuracy": m["accuracy"],
            "accuracy_ci95": m["accuracy_ci95"],
            "correct": m["correct"],
            "tracks": m["tracks"],
            "fold_accuracy_mean": m["fold_accuracy_mean"],
            "fold_accuracy_ci95": m["fold_accuracy_ci95"],
            "macro_f1": m["macro_f1"],
            "train_s": m["timings"]["fit_s"],
            "cv_wall_s": m["timings"]["total_s"],
            **speed,
            "reused": reused,
            "confusion": m["confusion"],
            "labels": m["labels"],
            "wall_s": round(time.perf_counter() - t_sys, 1),
        })
    rows.sort(key=lambda r: (-r["accuracy"], r["arch"]))
    record = {
        "dataset": work.data["name"],
        "tracks": len(work.label_of),
        "k": work.n_folds,
        "split_seed": work.data["folds"]["seed"],
        "seed": seed,
        "level": "track",
        "interval": "Wilson score, 95%, on the pooled out-of-fold predictions",
        "systems": rows,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "wall_s": round(time.perf_counter() - t0, 1),
        "command": command,
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    _write_json(out / COMPARE_FILE, record)
    (out / "compare.md").write_text(table_markdown(record) + "\n", encoding="utf-8")
    plot_compare(record, out / "compare.png")
    plot_confusions(record, out / "confusions.png")
    try:
        plot_feature_correlation(work, out / "feature_correlation.png", ray_address=ray_address, workers=workers)
    except DatasetError as exc:
        log.warning("no feature correlation picture: %s", exc)
    return record


def _setup_tensorflow_first(specs: Sequence[Any], seed: int) -> None:
    """Configure TensorFlow for training (one inter-op thread, determinism) before anything else
    starts it: measuring a model's speed loads TensorFlow, and after that the threads are fixed."""
    if any(s.trainer == "keras" for s in specs):
        from training.train import setup_device

        setup_device(seed=seed)


def table_markdown(record: dict[str, Any]) -> str:
    """The comparison as a Markdown table, best first.

    "training" is the time in the training loops (``model.fit``, or boosting); "CV wall" is the
    whole cross-validation: features, a frozen backbone's outputs, training and evaluation."""
    lines = [
        f"{record['k']}-fold track-level cross-validation on {record['dataset']} ({record['tracks']} tracks); "
        f"accuracy pooled over the out-of-fold predictions, {record['interval'].split(',')[0]} 95% interval; "
        f"fold mean with a Student-t interval.",
        "",
        f"| system | accuracy | 95% interval | fold mean [t 95%] | macro-F1 | training ({record['k']} folds) "
        "| CV wall | features ms/track | model ms/track |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record["systems"]:
        lo, hi = r["accuracy_ci95"]
        flo, fhi = max(0.0, r["fold_accuracy_ci95"][0]), min(1.0, r["fold_accuracy_ci95"][1])
        lines.append(
            f"| {r['arch']} | {r['accuracy']:.1%} ({r['correct']}/{r['tracks']}) | {lo:.1%} – {hi:.1%} "
            f"| {r['fold_accuracy_mean']:.1%} [{flo:.1%}, {fhi:.1%}] | {r['macro_f1']:.3f} | {r['train_s']:.0f} s "
            f"| {r['cv_wall_s']:.0f} s | {r['features_ms']:.0f} | {r['model_ms']:.1f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# pictures
# ---------------------------------------------------------------------------------------

def plot_compare(record: dict[str, Any], path: str | Path) -> Path:
    """Horizontal bars: pooled track accuracy per system, 95% interval as error bars."""
    from training.evaluate import _pyplot

    plt = _pyplot()
    rows = list(reversed(record["systems"]))  # best at the top
    n = len(rows)
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * n + 1.6), dpi=120)
    acc = np.array([r["accuracy"] for r in rows])
    lo = acc - np.array([r["accuracy_ci95"][0] for r in rows])
    hi = np.array([r["accuracy_ci95"][1] for r in rows]) - acc
    ax.barh(range(n), acc, xerr=[lo, hi], color="#4C72B0", capsize=4, height=0.6)
    for i, r in enumerate(rows):
        ax.text(0.01, i, f"{r['accuracy']:.1%}", va="center", ha="left", color="white", fontsize=9,
                fontweight="bold")
    ax.set_yticks(range(n), labels=[r["arch"] for r in rows])
    ax.set_xlim(0, 1)
    chance = 1.0 / max(1, len(rows[0]["labels"])) if rows else 0.1
    ax.axvline(chance, color="grey", ls=":", lw=1, label=f"chance ({chance:.0%})")
    ax.set_xlabel("track accuracy (pooled out-of-fold), 95% Wilson interval")
    ax.set_title(f"{record['k']}-fold track-level CV on {record['dataset']} (n={record['tracks']} tracks)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_confusions(record: dict[str, Any], path: str | Path) -> Path:
    """Every system's confusion matrix (counts, rows = true genre) in one picture."""
    from training.evaluate import _pyplot

    plt = _pyplot()
    rows = record["systems"]
    cols = min(4, max(1, len(rows)))
    nrows = int(np.ceil(len(rows) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 4.2 * nrows), dpi=110, squeeze=False)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for ax, r in zip(axes.flat, rows):
        cm = np.asarray(r["confusion"])
        labels = r["labels"]
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, int(cm.sum(axis=1).max())))
        ax.set_xticks(range(len(labels)), labels=labels, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels=labels, fontsize=7)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > cm.sum(axis=1).max() / 2 else "black")
        ax.set_title(f"{r['arch']}: {r['accuracy']:.1%}", fontsize=9)
    fig.supxlabel("predicted genre", fontsize=9)
    fig.supylabel("true genre", fontsize=9)
    return save_figure(fig, path)


def plot_feature_correlation(work: Any, path: str | Path, *, ray_address: str | None = None,
                             workers: int | None = None) -> Path:
    """Pearson correlations between the hand-crafted descriptor statistics (mean and standard
    deviation of MFCCs, chroma, contrast, roll-off, ZCR, centroid, RMS per 3-s chunk) over every
    chunk of every track."""
    from tagger.features import handcrafted_names
    from training.architectures import HANDCRAFTED_FEATURES, get
    from training.cache import load_chunks
    from training.evaluate import _pyplot
    from training.train import features_for

    spec = get("features-dense")  # its features are HANDCRAFTED_FEATURES
    tracks = sorted(work.label_of)
    cache, sha_of, _ = features_for(work, spec, tracks, ray_address=ray_address, workers=workers)
    x, _ = load_chunks(cache, [sha_of[t] for t in tracks if t in sha_of])
    x = np.asarray(x, np.float64)
    keep = x.std(axis=0) > 0
    names = [n for n, k in zip(handcrafted_names(HANDCRAFTED_FEATURES), keep) if k]
    corr = np.corrcoef(x[:, keep], rowvar=False)
    plt = _pyplot()
    n = len(names)
    fig, ax = plt.subplots(figsize=(0.16 * n + 3, 0.16 * n + 2), dpi=110)
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="Pearson correlation")
    ax.set_xticks(range(n), labels=names, rotation=90, fontsize=5)
    ax.set_yticks(range(n), labels=names, fontsize=5)
    ax.set_title(f"hand-crafted features: correlations over {x.shape[0]} chunks of {len(sha_of)} tracks "
                 f"({work.data['name']})", fontsize=9)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------
# leakage
# ---------------------------------------------------------------------------------------

def chunk_folds(y: np.ndarray, *, k: int, seed: int) -> np.ndarray:
    """A chunk-level random split: fold index per chunk, stratified by label, ignoring which
    track a chunk came from (the mistake this demonstrates). y : shape (n,), int."""
    rng = np.random.default_rng([seed, 31])
    fold = np.empty(y.shape[0], np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        fold[idx] = np.arange(idx.size) % k
    return fold


def leakage(work_dir: str | Path, *, out: str | Path, arch: str = "features-dense", seed: int = 0,
            epochs: int | None = None, patience: int = 8, valid_fraction: float = 0.1, overlap: bool = True,
            ray_address: str | None = None, workers: int | None = None, command: str = "") -> dict[str, Any]:
    """Train ``arch`` on each of the work directory's k track-level folds and on k chunk-level
    random folds (same chunks, same options); report chunk accuracy on the held-out side of both
    and track accuracy of the track-level one. Writes ``out/leakage.json`` and ``out/leakage.png``.

    ``overlap=False`` keeps only chunks that do not overlap (every other one for a hop of half a
    chunk), as in data sets of fixed 3-s segments: then no test chunk shares audio with a training
    chunk, and what is left of the gap is the track (and artist) leaking alone."""
    from training import architectures
    from training.cache import load_chunks
    from training.datasets import DatasetError, load_work
    from training.evaluate import summarise, wilson_interval
    from training.train import AUDIO_AUGMENTATIONS, Augment, features_for, fit_normalisation, train_arrays

    t0 = time.perf_counter()
    work = load_work(work_dir)
    k = work.n_folds
    if not k:
        raise DatasetError(f"{work.dir}: prepared without folds; run prepare with --folds K")
    spec = architectures.get(arch)
    _setup_tensorflow_first([spec], seed)
    epochs = int(epochs or spec.epochs)
    aug = Augment(kinds=tuple(a for a in spec.augment if a not in AUDIO_AUGMENTATIONS))
    tracks = sorted(work.label_of)
    cache, sha_of, dropped = features_for(work, spec, tracks, ray_address=ray_address, workers=workers)
    tracks = [t for t in tracks if t in sha_of]
    labels = list(work.labels)
    index = {lab: i for i, lab in enumerate(labels)}
    x, owner = load_chunks(cache, [sha_of[t] for t in tracks])
    if not overlap:
        step = int(np.ceil(spec.features.chunk_frames / spec.features.chunk_hop_frames))
        within = np.arange(owner.size) - np.searchsorted(owner, owner)  # chunk number inside its track
        keep = within % step == 0
        x, owner = x[keep], owner[keep]
    y = np.array([index[work.label_of[tracks[i]]] for i in owner], np.int64)
    pos = {t: i for i, t in enumerate(tracks)}

    def train_eval(tr: np.ndarray, va: np.ndarray, te: np.ndarray) -> np.ndarray:
        params = spec.features
        if spec.normalise:
            mean, std = fit_normalisation(x[tr])
            params = dataclasses.replace(params, mean=round(mean, 6), std=round(std, 6))
        trained = train_arrays(spec, params=params, options=dict(spec.options), n_classes=len(labels),
                               x_tr=x[tr], y_tr=y[tr], x_va=x[va], y_va=y[va], epochs=epochs, seed=seed,
                               patience=patience, augment=aug)
        return trained.predict(x[te])

    results: dict[str, Any] = {}
    # 1. track level: the prepared folds
    chunk_hits, n_chunks, track_true, track_pred = 0, 0, [], []
    for i in range(k):
        log.info("track-level fold %d/%d", i + 1, k)
        s = work.split(i)
        side = {name: np.isin(owner, [pos[t] for t in s[name] if t in pos]) for name in ("train", "valid", "test")}
        te = np.flatnonzero(side["test"])
        p = train_eval(np.flatnonzero(side["train"]), np.flatnonzero(side["valid"]), te)
        chunk_hits += int(np.sum(p.argmax(axis=1) == y[te]))
        n_chunks += te.size
        for t in sorted(set(owner[te].tolist())):
            track_true.append(int(y[owner == t][0]))
            track_pred.append(int(p[owner[te] == t].mean(axis=0).argmax()))
    tm = summarise(np.array(track_true), np.array(track_pred), labels)
    results["track_split"] = {
        "chunk_accuracy": round(chunk_hits / n_chunks, 4), "chunks": n_chunks,
        "chunk_accuracy_ci95": [round(v, 4) for v in wilson_interval(chunk_hits, n_chunks)],
        "track_accuracy": tm["accuracy"], "track_accuracy_ci95": tm["accuracy_ci95"], "tracks": tm["tracks"],
    }
    # 2. chunk level: random folds over chunks, tracks ignored
    folds = chunk_folds(y, k=k, seed=seed)
    rng = np.random.default_rng([seed, 37])
    hits, n, shared = 0, 0, 0
    for i in range(k):
        log.info("chunk-level random fold %d/%d", i + 1, k)
        te = np.flatnonzero(folds == i)
        rest = np.flatnonzero(folds != i)
        rest = rest[rng.permutation(rest.size)]
        n_va = max(1, int(round(valid_fraction * rest.size)))
        va, tr = np.sort(rest[:n_va]), np.sort(rest[n_va:])
        p = train_eval(tr, va, te)
        hits += int(np.sum(p.argmax(axis=1) == y[te]))
        n += te.size
        shared += int(np.sum(np.isin(owner[te], owner[tr])))
    results["chunk_split"] = {
        "chunk_accuracy": round(hits / n, 4), "chunks": n,
        "chunk_accuracy_ci95": [round(v, 4) for v in wilson_interval(hits, n)],
        "test_chunks_whose_track_is_in_training": round(shared / n, 4),
    }
    gap = results["chunk_split"]["chunk_accuracy"] - results["track_split"]["chunk_accuracy"]
    record = {
        "arch": spec.name, "dataset": work.data["name"], "k": k, "seed": seed, "tracks": len(tracks),
        "chunk_seconds": round(spec.features.chunk_seconds, 3),
        "chunk_hop_seconds": round(spec.features.chunk_hop_seconds * (1 if overlap else int(np.ceil(
            spec.features.chunk_frames / spec.features.chunk_hop_frames))), 3),
        "overlap": overlap,
        **results,
        "inflation_points": round(100 * gap, 1),
        "note": ("Chunk intervals treat chunks as independent, which they are not (chunks of one track are "
                 "alike); the track-level interval is the honest one."),
        "wall_s": round(time.perf_counter() - t0, 1), "command": command, "dropped": dropped,
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    out = Path(out).expanduser().resolve()
    _write_json(out / LEAKAGE_FILE, record)
    plot_leakage(record, out / "leakage.png")
    return record


def plot_leakage(record: dict[str, Any], path: str | Path) -> Path:
    """Two bars (chunk accuracy on a chunk-level random split vs on a track-level split) with
    intervals, and the track accuracy of the track-level split."""
    from training.evaluate import _pyplot

    plt = _pyplot()
    c, t = record["chunk_split"], record["track_split"]
    bars = [("chunk-level random split\n(chunk accuracy)", c["chunk_accuracy"], c["chunk_accuracy_ci95"], "#C44E52"),
            ("track-level split\n(chunk accuracy)", t["chunk_accuracy"], t["chunk_accuracy_ci95"], "#4C72B0"),
            ("track-level split\n(track accuracy)", t["track_accuracy"], t["track_accuracy_ci95"], "#55A868")]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, (name, v, ci, colour) in enumerate(bars):
        ax.bar(i, v, yerr=[[v - ci[0]], [ci[1] - v]], color=colour, capsize=5, width=0.6)
        ax.text(i, 0.03, f"{v:.1%}", ha="center", color="white", fontweight="bold")
    ax.set_xticks(range(len(bars)), labels=[b[0] for b in bars], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy, 95% Wilson interval")
    ax.set_title(f"{record['arch']} on {record['dataset']}, {record['k']} folds: a chunk-level split inflates "
                 f"accuracy by {record['inflation_points']:+.1f} points", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
