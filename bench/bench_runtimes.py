"""Does a faster runtime for the same model pay? (issue 19 item 4)

The shipped model's inference graph (``tagger.model.GenreModel``: the rewritten graph tagger runs,
scores followed by the 200-d embedding) run by other CPU runtimes, side by side with tagger's own
paths, on the features of real audio:

  tf-f32       TensorFlow float32: tagger's path on CPUs without AMX
  tf-bf16      TensorFlow mixed_bfloat16 (``GenreModel.with_precision``): tagger's path on AMX
  ov-f32       OpenVINO, ``INFERENCE_PRECISION_HINT=f32``
  ov-default   OpenVINO as it comes (on AMX it picks bfloat16)
  ort-f32      ONNX Runtime (CPU execution provider), converted with tf2onnx
  litert-f32   LiteRT with its XNNPACK delegate (``ai_edge_litert``), converted with TF's own
               ``tf.lite.TFLiteConverter``

Every runtime gets the same frozen graph (TensorFlow's variables folded to constants). Per thread
count (``--threads``: one child process each, since TensorFlow sets its pools once per process) the
runtimes are timed interleaved (A B C ... A B C ..., ``--repeats`` rounds, the median) on
``--batches`` batches of ``tagger.model.CPU_BATCH`` chunks: chunks per second. On the first thread
count every runtime also predicts every chunk, and is compared with tf-f32 and with tf-bf16: the
largest chunk score and embedding differences, top-1 agreement per chunk, and per clip (the mean
of its chunk scores, as ``tag`` computes it) the top-1 label and the decision (the best label if it
reaches its threshold, 0.4 unless the model has its own; otherwise none), with the float32 re-check
of close calls that tagger does for bfloat16 (``tagger.model.close_call``) applied too.

The optional runtimes are imported lazily; a missing one is reported as "not installed". Nothing
is downloaded. To install them (a separate virtual environment keeps tagger's own untouched):

    python3.11 -m venv /tmp/rtvenv && /tmp/rtvenv/bin/pip install -e . openvino onnxruntime tf2onnx onnx ai-edge-litert
    /tmp/rtvenv/bin/python bench/bench_runtimes.py --library ../shared/data/gtzan_mini/genres --json rt.json

Without ``--library`` the inputs are generated music (``bench/musiclib.py``). Numbers in the docs
come from runs of this script; say which CPU (it records ``lscpu``'s model name and flags).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _p in (ROOT, HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

RUNTIMES = ("tf-f32", "tf-bf16", "ov-f32", "ov-default", "ort-f32", "litert-f32")
#: the Python modules each optional runtime needs, in import order
NEEDS: dict[str, tuple[str, ...]] = {
    "ov-f32": ("openvino",),
    "ov-default": ("openvino",),
    "ort-f32": ("onnx", "tf2onnx", "onnxruntime"),
    "litert-f32": ("ai_edge_litert.interpreter",),
}
AUDIO_EXTS = {".wav", ".au", ".mp3", ".flac", ".ogg", ".opus", ".m4a"}

Predict = Callable[[np.ndarray], np.ndarray]


class NotInstalled(Exception):
    """An optional runtime's module cannot be imported."""


@dataclass
class Runtime:
    name: str
    predict: Predict | None = None  # (n, *input_shape) float32 -> (n, n_labels + embedding) float32
    status: str = "ok"  # "ok", "not installed: MODULE", "failed: ..."
    version: str = ""
    notes: str = ""


# ---------------------------------------------------------------------------------------------
# the machine
# ---------------------------------------------------------------------------------------------

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info() -> dict[str, Any]:
    """The CPU the figures came from: lscpu's model name, the vector/matrix flags that matter."""
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {"model_name": model or platform.processor(), "cpus": os.cpu_count(),
            "flags": {k: k in flags for k in CPU_FLAGS}}


def default_path() -> str:
    """tagger's CPU path for the shipped musicnn models here: bfloat16 on AMX, else float32."""
    from tagger.model import cpu_bfloat16_default

    return "tf-bf16" if cpu_bfloat16_default() else "tf-f32"


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------
# inputs: features of real audio (or generated music)
# ---------------------------------------------------------------------------------------------

def audio_files(library: Path) -> list[Path]:
    return sorted(p for p in library.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTS)


def clip_inputs(library: Path | None, params: Any, *, files: int, seconds: float = 30.0,
                seed: int = 0) -> tuple[np.ndarray, list[tuple[str, int, int]], str]:
    """Chunks of every clip, and per clip (name, start, end) rows into them.

    ``library``: audio files (decoded and cut into chunks as ``tag`` does); None, or a folder
    with no audio: ``files`` generated tracks of ``seconds`` (bench/musiclib.py)."""
    from tagger.errors import TaggerError
    from tagger.features import extract

    xs: list[np.ndarray] = []
    clips: list[tuple[str, int, int]] = []
    start = 0
    paths = audio_files(library)[:files] if library is not None and library.is_dir() else []
    if paths:
        from tagger.decode import decode

        assert library is not None
        source = f"{len(paths)} files under {library}"
        for p in paths:
            try:
                x = extract(decode(p, sample_rate=params.sample_rate), params=params)
            except (TaggerError, ValueError) as exc:  # a bad file: say so and go on
                print(f"skipped {p}: {exc}", file=sys.stderr)
                continue
            xs.append(x)
            clips.append((str(p.relative_to(library)), start, start + x.shape[0]))
            start += x.shape[0]
    else:
        import musiclib

        source = f"{files} generated tracks of {seconds:g} s (bench/musiclib.py, seed {seed})"
        for i in range(files):
            rng = np.random.default_rng(seed + i)
            y = musiclib.render(musiclib.random_style(rng), seconds, seed=seed + i, sr=params.sample_rate)
            x = extract(y.mean(axis=0).astype(np.float32), params=params)
            xs.append(x)
            clips.append((f"generated-{i:03d}", start, start + x.shape[0]))
            start += x.shape[0]
    if not xs:
        raise SystemExit("no usable audio")
    return np.concatenate(xs).astype(np.float32), clips, source


# ---------------------------------------------------------------------------------------------
# the runtimes
# ---------------------------------------------------------------------------------------------

def import_optional(module: str) -> Any:
    """``module``, or NotInstalled (an ImportError of any kind: missing, or its own imports)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotInstalled(f"not installed: {module.split('.')[0]} ({exc})") from None


def frozen_graph(model: Any) -> tuple[Any, Any, str, str]:
    """The graph tagger runs for ``model`` (``GenreModel``, its rewrites checked), variables folded
    into constants: (concrete function, GraphDef, input tensor name, output tensor name)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    model.predict_full(np.zeros((1, *model.meta.input_shape), np.float32))  # checks the rewrites once
    cf = model._fn.get_concrete_function()  # the graph tagger uses (rewrites and all), not the plain network
    frozen = convert_variables_to_constants_v2(cf)
    return cf, frozen.graph.as_graph_def(), frozen.inputs[0].name, frozen.outputs[0].name


def tf_runtime(model: Any) -> Predict:
    return model.predict_full


def ov_runtime(graph_def: Any, *, threads: int, hint: str | None) -> tuple[Predict, str, str]:
    ov = import_optional("openvino")
    core = ov.Core()
    converted = ov.convert_model(graph_def)
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if hint:
        config["INFERENCE_PRECISION_HINT"] = hint
    compiled = core.compile_model(converted, "CPU", config)
    picked = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    request = compiled.create_infer_request()

    def predict(x: np.ndarray) -> np.ndarray:
        return np.array(request.infer([x])[0], dtype=np.float32, copy=True)

    return predict, str(ov.get_version()), f"inference precision {picked}"


def ort_runtime(graph_def: Any, in_name: str, out_name: str, *, threads: int) -> tuple[Predict, str, str]:
    import_optional("onnx")
    tf2onnx = import_optional("tf2onnx")
    ort = import_optional("onnxruntime")
    proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=[in_name], output_names=[out_name], opset=17)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x})[0], dtype=np.float32)

    return predict, f"onnxruntime {ort.__version__}, tf2onnx {tf2onnx.__version__}", "opset 17"


def litert_runtime(model: Any, cf: Any, *, threads: int) -> tuple[Predict, str, str]:
    lite = import_optional("ai_edge_litert.interpreter")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([cf], model.net)
    flat = converter.convert()
    interpreters: dict[tuple[int, ...], Any] = {}  # one per batch shape (resizing re-plans XNNPACK)

    def interpreter(shape: tuple[int, ...]) -> Any:
        if shape not in interpreters:
            it = lite.Interpreter(model_content=flat, num_threads=int(threads) if threads else None)
            it.resize_tensor_input(it.get_input_details()[0]["index"], list(shape))
            it.allocate_tensors()
            interpreters[shape] = it
        return interpreters[shape]

    def predict(x: np.ndarray) -> np.ndarray:
        it = interpreter(tuple(x.shape))
        it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(x))
        it.invoke()
        return np.array(it.get_tensor(it.get_output_details()[0]["index"]), dtype=np.float32, copy=True)

    version = getattr(sys.modules.get("ai_edge_litert"), "__version__", "")
    return predict, f"ai-edge-litert {version}".strip(), "XNNPACK delegate (the interpreter's default)"


def build_runtimes(model: Any, names: Sequence[str], *, threads: int) -> list[Runtime]:
    """Every runtime of ``names`` for ``model`` (a float32 ``GenreModel``); one that cannot be
    imported is "not installed", one that fails to convert or compile "failed: ...": never a crash."""
    import tensorflow as tf

    unknown = sorted(set(names) - set(RUNTIMES))
    if unknown:
        raise ValueError(f"unknown runtime(s) {', '.join(unknown)}: of {', '.join(RUNTIMES)}")
    out: list[Runtime] = []
    graph: tuple[Any, Any, str, str] | None = None
    for name in names:
        rt = Runtime(name)
        try:
            for module in NEEDS.get(name, ()):
                import_optional(module)  # NotInstalled, with the import's own reason
            if name == "tf-f32":
                rt.predict, rt.version = tf_runtime(model), f"tensorflow {tf.__version__}"
                rt.notes = "rewrites: " + str(len(model.rewrites))
            elif name == "tf-bf16":
                rt.predict = tf_runtime(model.with_precision("mixed_bfloat16"))
                rt.version = f"tensorflow {tf.__version__}"
            else:
                if graph is None:
                    graph = frozen_graph(model)
                cf, graph_def, in_name, out_name = graph
                if name in ("ov-f32", "ov-default"):
                    rt.predict, rt.version, rt.notes = ov_runtime(graph_def, threads=threads,
                                                                  hint="f32" if name == "ov-f32" else None)
                elif name == "ort-f32":
                    rt.predict, rt.version, rt.notes = ort_runtime(graph_def, in_name, out_name, threads=threads)
                else:  # litert-f32
                    rt.predict, rt.version, rt.notes = litert_runtime(model, cf, threads=threads)
        except NotInstalled as exc:
            rt.status = str(exc)
        except Exception as exc:  # a converter or runtime that cannot take this graph: say so, go on
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            rt.status = f"failed: {type(exc).__name__}: {first[:300]}"
        out.append(rt)
    return out


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------

def predict_all(predict: Predict, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Every chunk, in tagger's batches (full ones, then powers of two: ``model.batch_slices``)."""
    from tagger.model import batch_slices

    parts = [predict(x[s : s + m]) for s, m in batch_slices(x.shape[0], batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def decision(scores: np.ndarray, thresholds: np.ndarray) -> int:
    """What ``tag`` writes with top_k 1: the best label if it reaches its threshold, else -1."""
    best = int(np.argsort(-scores, kind="stable")[0])
    return best if scores[best] >= thresholds[best] else -1


def compare(reference: np.ndarray, candidate: np.ndarray, clips: Sequence[tuple[str, int, int]], *,
            n_labels: int, aggregation: str, thresholds: np.ndarray) -> dict[str, Any]:
    """How ``candidate`` (n, n_labels + embedding) differs from ``reference``: chunk scores,
    embeddings, top-1 per chunk, and per clip the track score, top-1 and decision; "after
    recheck": decisions that differ although ``close_call`` (tagger's bfloat16 bound) did not
    flag the candidate's track as close, i.e. what a run re-checking close calls would still get wrong."""
    from tagger.aggregate import chunk_probabilities, track_scores
    from tagger.model import BF16_ERROR, BF16_ERROR_CHUNK, close_call, top1_agreement

    pa = chunk_probabilities(reference[:, :n_labels], aggregation)
    pb = chunk_probabilities(candidate[:, :n_labels], aggregation)
    emb = (float(np.abs(reference[:, n_labels:] - candidate[:, n_labels:]).max())
           if reference.shape[1] > n_labels else None)
    track_diff = worst = 0.0
    top1_same = same = close = after = 0
    differ: list[str] = []
    for name, s, e in clips:
        sa = track_scores(reference[s:e, :n_labels], aggregation)
        sb = track_scores(candidate[s:e, :n_labels], aggregation)
        d = float(np.abs(sa - sb).max())
        track_diff = max(track_diff, d)
        worst = max(worst, d / (BF16_ERROR + BF16_ERROR_CHUNK / (e - s)))
        top1_same += int(np.argmax(sa) == np.argmax(sb))
        flip = decision(sa, thresholds) != decision(sb, thresholds)
        same += int(not flip)
        is_close = close_call(sb, top_k=1, min_confidence=thresholds, chunks=e - s)
        close += int(is_close)
        after += int(flip and not is_close)
        if flip:
            differ.append(name)
    return {
        "max_chunk_score_difference": float(np.abs(pa - pb).max()),
        "max_embedding_difference": emb,
        "chunk_top1_agreement": top1_agreement(pa, pb),
        "max_track_score_difference": track_diff,
        "track_difference_to_bf16_bound": round(worst, 3),
        "tracks": len(clips), "track_top1_same": top1_same, "decisions_same": same,
        "decisions_differing": differ, "close_calls": close, "decisions_differing_after_recheck": after,
    }


def time_interleaved(runtimes: Sequence[Runtime], x: np.ndarray, *, repeats: int,
                     batch_size: int) -> dict[str, list[float]]:
    """Chunks/s of every usable runtime on ``x``, in rounds A B C ... (``repeats`` rounds),
    one ``predict`` per batch of ``batch_size``."""
    usable = [rt for rt in runtimes if rt.predict is not None]
    for rt in usable:  # warm: first-call compilation, kernels for the batch shape
        assert rt.predict is not None
        rt.predict(x[:batch_size])
    rates: dict[str, list[float]] = {rt.name: [] for rt in usable}
    for _ in range(repeats):
        for rt in usable:
            assert rt.predict is not None
            t = time.perf_counter()
            for s in range(0, x.shape[0], batch_size):
                rt.predict(x[s : s + batch_size])
            rates[rt.name].append(x.shape[0] / (time.perf_counter() - t))
    return rates


def measure(model: Any, x: np.ndarray, clips: Sequence[tuple[str, int, int]], *, names: Sequence[str],
            threads: int, repeats: int, batches: int, accuracy: bool) -> dict[str, Any]:
    """One thread count's figures for ``model`` (a float32 ``GenreModel``) on chunks ``x``.

    ``threads``: what OpenVINO, ONNX Runtime and LiteRT are given (0: their default); TensorFlow's
    pools are the process's (``tagger.model.set_cpu_threads``, done by the caller)."""
    from tagger.aggregate import Thresholds

    t0 = time.perf_counter()
    bs = model.batch_size
    runtimes = build_runtimes(model, names, threads=threads)
    built = time.perf_counter() - t0
    out: dict[str, Any] = {
        "threads": threads, "batch_size": bs, "load_average_start": load_average(), "build_seconds": round(built, 1),
        "runtimes": {rt.name: {"status": rt.status, "version": rt.version, "notes": rt.notes} for rt in runtimes},
    }
    usable = {rt.name: rt for rt in runtimes if rt.predict is not None}
    if accuracy:
        n_labels = len(model.meta.labels)
        thr = Thresholds.of(getattr(model.meta, "thresholds", None), None).array(model.meta.labels)
        preds: dict[str, np.ndarray] = {}
        for name, rt in usable.items():
            assert rt.predict is not None
            t = time.perf_counter()
            preds[name] = predict_all(rt.predict, x, bs)
            out["runtimes"][name]["all_chunks_seconds"] = round(time.perf_counter() - t, 2)
        for ref in ("tf-f32", "tf-bf16"):
            if ref not in preds:
                continue
            for name, p in preds.items():
                out["runtimes"][name][f"vs {ref}"] = compare(preds[ref], p, clips, n_labels=n_labels,
                                                            aggregation=model.meta.aggregation, thresholds=thr)
    if repeats > 0:
        want = max(1, batches) * bs  # whole batches: the real chunks, repeated if there are fewer
        timed = np.resize(x, (want, *x.shape[1:])) if x.shape[0] < want else x[:want]
        rates = time_interleaved(list(usable.values()), timed, repeats=repeats, batch_size=bs)
        for name, r in rates.items():
            info = out["runtimes"][name]
            info.update(chunks_per_s=round(statistics.median(r), 2), chunks_per_s_runs=[round(v, 2) for v in r])
            # ratios within a round (the same moment's load), then their median
            for key, base in (("x_tf_f32", "tf-f32"), ("x_default", default_path())):
                if base in rates:
                    info[key] = round(statistics.median(a / b for a, b in zip(r, rates[base], strict=True)), 3)
        out["timed_chunks"] = int(timed.shape[0])
    out["load_average_end"] = load_average()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


# ---------------------------------------------------------------------------------------------
# the child (one thread count) and the driver
# ---------------------------------------------------------------------------------------------

def tf_pools(threads: int) -> tuple[int, int]:
    """TensorFlow's (intra, inter) pools for ``threads``: tagger's own split where it is all the
    cores (``ray_backend.cpu_split``), otherwise ``threads`` intra-op threads and one inter-op."""
    from tagger.ray_backend import cpu_split

    cpus = os.cpu_count() or 1
    if threads >= cpus:
        split = cpu_split(cpus)
        return split.intra, split.inter
    return threads, 1


def child(args: argparse.Namespace) -> int:
    from tagger.model import GenreModel, import_tensorflow, set_cpu_threads

    import_tensorflow()
    intra, inter = tf_pools(args.threads)
    set_cpu_threads(intra, inter)
    data = np.load(args.inputs, allow_pickle=False)
    x = data["x"]
    clips = [(str(n), int(s), int(e)) for n, s, e in zip(data["names"], data["starts"], data["ends"], strict=True)]
    result: dict[str, Any] = {}
    for i, vocab in enumerate(args.vocabulary):
        model = GenreModel.load(vocabulary=vocab)
        res = measure(model, x, clips, names=args.runtimes, threads=args.threads,
                      repeats=args.repeats if i == 0 else 0, batches=args.batches, accuracy=args.accuracy)
        res.update(tf_pools={"intra": intra, "inter": inter}, model=model.meta.name,
                   model_id=model.meta.model_id)
        result[vocab] = res
    Path(args.child_out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def table(result: dict[str, Any], vocab: str) -> str:
    """Markdown: one row per runtime, chunks/s per thread count, and the decision figures."""
    runs = result["runs"]
    counts = [k for k in runs if vocab in runs[k]]
    if not counts:
        return ""
    first = runs[counts[0]][vocab]["runtimes"]
    default = result["default_path"]
    head = ["runtime"]
    for k in counts:
        head += [f"chunks/s {k} thr", f"x {default}"]
    head += ["max chunk diff", "chunk top-1", "decisions = tf-f32", "after recheck", "decisions = tf-bf16"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, info in first.items():
        row = [name]
        for k in counts:
            r = runs[k][vocab]["runtimes"].get(name, {})
            rate, ratio = r.get("chunks_per_s"), r.get("x_default")
            row += [f"{rate:.1f}" if rate else r.get("status", "")[:40], f"{ratio:.2f}" if ratio else ""]
        v32, v16 = info.get("vs tf-f32"), info.get("vs tf-bf16")
        if v32:
            row += [f"{v32['max_chunk_score_difference']:.2g}", f"{v32['chunk_top1_agreement']:.3f}",
                    f"{v32['decisions_same']}/{v32['tracks']}",
                    f"{v32['tracks'] - v32['decisions_differing_after_recheck']}/{v32['tracks']}"]
        else:
            row += [""] * 4
        row.append(f"{v16['decisions_same']}/{v16['tracks']}" if v16 else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", type=Path, default=None,
                    help="audio files to take features of (default: generated music)")
    ap.add_argument("--files", type=int, default=10_000, help="at most this many files (generated: this many)")
    ap.add_argument("--vocabulary", default="gtzan",
                    help="shipped models, comma-separated (the first is timed; the others only compared)")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma-separated, of {', '.join(RUNTIMES)}")
    ap.add_argument("--threads", default="", help="thread counts, comma-separated (default: all cores, then 1)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds (the median is reported)")
    ap.add_argument("--batches", type=int, default=2, help="batches of CPU_BATCH chunks per timed call")
    ap.add_argument("--no-compare", action="store_true",
                    help="timing only: skip predicting every chunk with every runtime (the decision figures)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    # internal: one thread count in a fresh process
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--inputs", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--accuracy", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown:
        ap.error(f"unknown runtime(s) {', '.join(unknown)}: of {', '.join(RUNTIMES)}")
    if args.child_out:
        args.runtimes, args.vocabulary, args.threads = runtimes, args.vocabulary.split(","), int(args.threads)
        return child(args)

    from tagger.modelmeta import load_meta, locate

    t0 = time.perf_counter()
    vocabs = [v.strip() for v in args.vocabulary.split(",") if v.strip()]
    params = load_meta(locate(None, vocabulary=vocabs[0])).features
    for v in vocabs[1:]:
        if load_meta(locate(None, vocabulary=v)).features != params:
            ap.error(f"the {v} model takes other features than {vocabs[0]}'s: run it on its own")
    cpus = os.cpu_count() or 1
    threads = [int(t) for t in args.threads.split(",") if t.strip()] or sorted({cpus, 1}, reverse=True)
    result: dict[str, Any] = {"cpu": cpu_info(), "python": platform.python_version(),
                              "load_average_start": load_average(), "default_path": default_path(), "runs": {}}
    x, clips, source = clip_inputs(args.library, params, files=args.files)
    result["inputs"] = {"source": source, "clips": len(clips), "chunks": int(x.shape[0]),
                        "feature_seconds": round(time.perf_counter() - t0, 1)}
    print(f"{source}: {x.shape[0]} chunks; cpu {result['cpu']['model_name']}, load {load_average()}",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, x=x, names=np.array([c[0] for c in clips]), starts=np.array([c[1] for c in clips]),
                 ends=np.array([c[2] for c in clips]))
        for i, n in enumerate(threads):
            out = Path(tmp) / f"threads-{n}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child-out", str(out), "--inputs", str(inputs),
                   "--threads", str(n), "--runtimes", ",".join(runtimes), "--repeats", str(args.repeats),
                   "--batches", str(args.batches), "--vocabulary", ",".join(vocabs)]
            if i == 0 and not args.no_compare:
                cmd.append("--accuracy")
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode != 0 or not out.exists():
                print(r.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"the run with {n} thread(s) failed (exit {r.returncode})")
            result["runs"][str(n)] = json.loads(out.read_text())
            print(f"threads {n}: done, load {load_average()}", file=sys.stderr)
    result["load_average_end"] = load_average()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    # reorganise: per thread count, per vocabulary
    for v in vocabs:
        print(f"\n{v} ({result['inputs']['chunks']} chunks, {result['inputs']['clips']} clips):")
        print(table(result, v))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
