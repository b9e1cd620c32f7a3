"""``tagger info``: the model in use, the versions of what tagger runs on, and the compute Ray sees."""

from __future__ import annotations

from typing import Any

import click

from tagger import __version__
from tagger.commands.common import fail
from tagger.errors import TaggerError


@click.command("info")
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
    from tagger.report.model_card import metric_lines

    try:
        files = locate(model, vocabulary=vocabulary)
        meta = load_meta(files)
    except TaggerError as exc:
        fail(ctx, exc)
        return
    out: dict[str, Any] = {
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
    for label, text in metric_lines(meta.metrics):  # the figures the HTML report's model card shows
        click.echo(f"  {label}: {text}")
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


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("tensorflow", "keras", "ray", "librosa", "mutagen", "numpy", "soundfile", "av"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out

