"""The picture of an explanation (``tagger explain FILE``, ``tagger tag --explain-uncertain``).

One figure (matplotlib, Agg) of a :class:`tagger.explain.Explanation`: a header (the file, the
model, the decision and why), the waveform as decoded (the analysed stretches shaded), the
log-mel spectrogram the model saw, the taggram (genre probabilities per analysis chunk over
time; for a ``logit-mean`` model the sigmoid of each chunk's logits, while the track score is the
sigmoid of their mean) and the track scores against the threshold (each genre's own, where the
model has them) with the chosen genres marked. Drawing only: the numbers all come from the
explanation. Matplotlib is imported when a picture is drawn.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tagger.palette import ACTION_COLOURS, THRESHOLD

if TYPE_CHECKING:
    from tagger.explain import Explanation

#: Drawing resolution: a 10-minute track stays legible and quick to draw.
MAX_WAVE_COLUMNS = 2000
MAX_SPEC_COLUMNS = 1600
MAX_TAGGRAM_COLUMNS = 300
MAX_TAGGRAM_ROWS = 12

_COLOURS = ACTION_COLOURS  # tagger.palette: the HTML report's colours


def render_png(expl: Explanation, out: str | os.PathLike, *, dpi: int = 100) -> Path:
    """Draw the explanation into a PNG at ``out`` (written atomically); returns the path."""
    fig = draw(expl)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        fig.savefig(tmp, dpi=dpi, format="png", facecolor="white")
        os.replace(tmp, out)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
    return out


def draw(expl: Explanation):
    """The figure (matplotlib, Agg): header, waveform, log-mel, taggram and track scores."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    rows = _taggram_rows(expl)
    tag_h = max(1.7, 0.3 * len(rows) + 0.7)
    heights = [1.05, 1.2, 2.2, tag_h]
    width = 13.0
    longest = max(len(expl.genres[i]) for i in rows)
    left = max(0.075, (0.08 * longest + 0.3) / width)
    fig = plt.figure(figsize=(width, sum(heights) + 0.9))
    gs = GridSpec(4, 2, figure=fig, height_ratios=heights, width_ratios=[5.0, 1.45],
                  left=left, right=0.975, top=0.985, bottom=0.055, hspace=0.5, wspace=0.05)
    end = max(expl.duration, max((e for _, e in expl.segments), default=0.0))
    head = fig.add_subplot(gs[0, :])
    ax_w = fig.add_subplot(gs[1, 0])
    ax_s = fig.add_subplot(gs[2, 0], sharex=ax_w)
    ax_t = fig.add_subplot(gs[3, 0], sharex=ax_w)
    side_w = fig.add_subplot(gs[1, 1])
    side_s = fig.add_subplot(gs[2, 1])
    ax_b = fig.add_subplot(gs[3, 1], sharey=ax_t)

    _draw_header(head, expl)
    _draw_waveform(ax_w, expl, end)
    _draw_spectrogram(ax_s, expl)
    mesh = _draw_taggram(ax_t, expl, rows)
    _draw_scores(ax_b, expl, rows)
    _draw_facts(side_w, side_s, expl, mesh, fig)
    for ax in (ax_w, ax_s):
        plt.setp(ax.get_xticklabels(), visible=False)
    ax_w.set_xlim(0, end if end > 0 else 1)
    fmt, locator, unit = _time_format(end)
    ax_t.xaxis.set_major_locator(locator)
    ax_t.xaxis.set_major_formatter(fmt)
    ax_t.set_xlabel(f"time in the track ({unit})")
    return fig


def _draw_header(ax, expl: Explanation) -> None:
    ax.axis("off")
    d, meta, o = expl.decision, expl.meta, expl.options
    name = os.path.basename(expl.path)
    folder = os.path.dirname(expl.path)
    ax.text(0, 1.0, name, fontsize=15, fontweight="bold", va="top", transform=ax.transAxes)
    fp = meta.features
    n = expl.probs.shape[0]
    sampled = "" if expl.analysed >= expl.duration - 0.05 else f" (sampled {len(expl.segments)} stretches)"
    ax.text(0, 0.66, f"{folder}   ·   {expl.format or '?'}   ·   {_clock(expl.duration)} long   ·   "
            f"{expl.analysed:.1f} s analysed{sampled} in {n} chunk{'s' * (n != 1)} of {fp.chunk_seconds:.2f} s",
            fontsize=9, color="#555555", va="top", transform=ax.transAxes)
    owner = expl.existing_owner()
    existing = f"{'; '.join(expl.existing)} (written by {owner})" if expl.existing else "none"
    ax.text(0, 0.38, f"model {meta.name or meta.architecture}  id {meta.model_id}   ·   existing genre: {existing}"
            f"   ·   top-k {o.top_k}, {_threshold_text(expl)}, on-existing {o.on_existing}",
            fontsize=9.5, va="top", transform=ax.transAxes)
    colour = _COLOURS[expl.action]
    what = expl.action + (f" {'; '.join(d.genres)}" if d.genres else "")
    first = ax.text(0, 0.08, f"decision: {what}", fontsize=12, fontweight="bold", color=colour, va="top",
                    transform=ax.transAxes)
    fig = ax.figure
    box = first.get_window_extent(renderer=fig.canvas.get_renderer())
    x = ax.transAxes.inverted().transform((box.x1, box.y0))[0]
    why = d.reason + ("  (tag does not decode it; shown anyway)" if expl.before_analysis else "")
    ax.text(x + 0.01, 0.07, f"— {why}", fontsize=10.5, color=colour, va="top", transform=ax.transAxes)


def _draw_waveform(ax, expl: Explanation, end: float) -> None:
    sr = expl.meta.features.sample_rate
    total = sum(a.shape[0] for a in expl.audio) or 1
    peak = 1e-9
    for (start, _), y in zip(expl.segments, expl.audio):
        cols = max(1, min(y.shape[0], round(MAX_WAVE_COLUMNS * y.shape[0] / total)))
        per = y.shape[0] // cols
        blocks = y[: per * cols].reshape(cols, per)
        lo, hi = blocks.min(axis=1), blocks.max(axis=1)
        t = start + (np.arange(cols) + 0.5) * per / sr
        ax.fill_between(t, lo, hi, color="#3b6ea5", linewidth=0.4, edgecolor="#3b6ea5")
        peak = max(peak, float(np.abs(y).max()))
    sampled = expl.analysed < expl.duration - 0.05
    if sampled:
        for s, e in expl.segments:
            ax.axvspan(s, e, color="#3b6ea5", alpha=0.08, linewidth=0)
    ax.set_ylim(-peak * 1.05, peak * 1.05)
    ax.set_yticks([])
    ax.set_ylabel("waveform", fontsize=9)
    title = f"waveform as decoded (mono, {int(sr)} Hz)"
    if sampled:
        title += f": only the shaded stretches are analysed ({expl.analysed:.0f} s of {expl.duration:.0f} s)"
    ax.set_title(title, fontsize=9.5, loc="left")
    ax.spines[["top", "right", "left"]].set_visible(False)


def _spectrogram_runs(expl: Explanation) -> tuple[list[tuple[float, float, np.ndarray]], int, str]:
    """Stretches of log-mel frames (t0, t1, (frames, mels)) and the number of mel bands.

    For log-mel models: the chunks the model saw, laid back end to end (an overlapping chunk
    contributes the frames up to the next chunk). Other feature kinds: a log-mel computed for
    display with the model's sample rate and FFT settings.
    """
    fp = expl.meta.features
    if fp.kind != "logmel":
        from tagger.features import FeatureParams, log_mel

        shown = FeatureParams(sample_rate=fp.sample_rate, n_fft=fp.n_fft, hop_length=fp.hop_length,
                              n_mels=min(fp.n_mels, 128), fmin=fp.fmin, fmax=fp.fmax)
        shown_runs = [(s, e, log_mel(y, params=shown)) for (s, e), y in zip(expl.segments, expl.audio)]
        return shown_runs, shown.n_mels, f"log-mel spectrogram (for display: this model reads {fp.kind} features)"
    dt = fp.samples_per_frame / fp.sample_rate
    runs: list[list[Any]] = []
    n = expl.features.shape[0]
    for j in range(n):
        s, e = expl.spans[j]
        nxt = expl.spans[j + 1][0] if j + 1 < n else None
        if nxt is not None and s < nxt <= e + 1e-6:
            w = int(round((nxt - s) / dt))
        else:
            w = int(round((e - s) / dt))
        w = max(1, min(fp.chunk_frames, w))
        piece = expl.features[j, :w]
        if runs and abs(runs[-1][1] - s) < dt:
            runs[-1][1] = s + w * dt
            runs[-1][2].append(piece)
        else:
            runs.append([s, s + w * dt, [piece]])
    return [(a, b, np.concatenate(p)) for a, b, p in runs], fp.n_mels, "log-mel spectrogram the model saw"


def _draw_spectrogram(ax, expl: Explanation) -> None:
    runs, n_mels, title = _spectrogram_runs(expl)
    frames = sum(m.shape[0] for _, _, m in runs) or 1
    step = max(1, math.ceil(frames / MAX_SPEC_COLUMNS))
    allv = np.concatenate([m.ravel() for _, _, m in runs])
    vmin, vmax = np.percentile(allv, [1, 99.7]) if allv.size else (0, 1)
    if vmax <= vmin:
        vmax = vmin + 1
    for t0, t1, m in runs:
        if step > 1:
            k = math.ceil(m.shape[0] / step)
            pad = k * step - m.shape[0]
            mm = np.concatenate([m, np.repeat(m[-1:], pad, axis=0)]) if pad else m
            m = mm.reshape(k, step, m.shape[1]).mean(axis=1)
        ax.imshow(m.T, origin="lower", aspect="auto", extent=(t0, t1, 0, n_mels), cmap="magma",
                  vmin=vmin, vmax=vmax, interpolation="nearest" if m.shape[0] < 400 else "antialiased")
    ax.set_ylim(0, n_mels)
    ticks, labels = _mel_ticks(expl, n_mels)
    ax.set_yticks(ticks, labels)
    ax.set_ylabel("frequency (Hz, mel scale)", fontsize=9)
    ax.set_title(title, fontsize=9.5, loc="left")
    ax.set_facecolor("#eeeeee")
    n = expl.spans.shape[0]
    if 1 < n <= 80:
        for s in expl.spans[1:, 0]:
            ax.axvline(s, color="white", alpha=0.35, linewidth=0.6)


def _mel_ticks(expl: Explanation, n_mels: int) -> tuple[list[float], list[str]]:
    import librosa

    fp = expl.meta.features
    fmax = fp.fmax or fp.sample_rate / 2
    centres = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=fp.fmin, fmax=fmax, htk=fp.htk)[1:-1]
    ticks: list[float] = []
    labels: list[str] = []
    for f in (16000, 8000, 4000, 2000, 1000, 500, 250, 100):
        if centres[0] <= f <= centres[-1]:
            pos = float(np.interp(f, centres, np.arange(n_mels))) + 0.5
            if ticks and ticks[-1] - pos < n_mels / 9:  # keep labels apart
                continue
            ticks.append(pos)
            labels.append(f"{f // 1000}k" if f >= 1000 else str(f))
    return ticks[::-1], labels[::-1]


def _taggram_rows(expl: Explanation) -> list[int]:
    """Label indices to show, best track score first (every label, up to MAX_TAGGRAM_ROWS)."""
    order = list(np.argsort(-expl.scores, kind="stable"))
    return [int(i) for i in order[:MAX_TAGGRAM_ROWS]]


def _taggram_columns(expl: Explanation, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Time edges and a (len(rows), n_columns) matrix: chunks, averaged in groups of
    consecutive chunks when there are more than MAX_TAGGRAM_COLUMNS; NaN over gaps."""
    spans, probs = expl.spans, expl.probs[:, rows]
    n = spans.shape[0]
    step = max(1, math.ceil(n / MAX_TAGGRAM_COLUMNS))
    groups: list[tuple[float, float, np.ndarray]] = []
    j = 0
    while j < n:
        k = j + 1
        while k < n and k - j < step and spans[k, 0] <= spans[k - 1, 1] + 1e-6:
            k += 1
        groups.append((float(spans[j, 0]), float(spans[k - 1, 1]), probs[j:k].mean(axis=0)))
        j = k
    edges = [groups[0][0]]
    cols = []
    gap = np.full(len(rows), np.nan)
    for i, (s, e, p) in enumerate(groups):
        if s > edges[-1] + 1e-6:
            cols.append(gap)
            edges.append(s)
        if i + 1 < len(groups) and groups[i + 1][0] < e:
            e = groups[i + 1][0]
        cols.append(p)
        edges.append(max(e, edges[-1] + 1e-3))
    return np.asarray(edges), np.stack(cols, axis=1)


def _draw_taggram(ax, expl: Explanation, rows: list[int]):
    edges, grid = _taggram_columns(expl, rows)
    names = expl.genres
    cmap = _cmap("YlGnBu")
    mesh = ax.pcolormesh(edges, np.arange(len(rows) + 1), np.ma.masked_invalid(grid), cmap=cmap,
                         vmin=0.0, vmax=1.0, shading="flat")
    ax.set_facecolor("#f3f3f3")
    ax.set_ylim(len(rows), 0)
    ax.set_yticks(np.arange(len(rows)) + 0.5, [names[i] for i in rows])
    chosen = {r.label for r in expl.decision.chosen}
    colour = _COLOURS[expl.action]
    for tick, i in zip(ax.get_yticklabels(), rows):
        if expl.meta.labels[i] in chosen:
            tick.set_fontweight("bold")
            tick.set_color(colour)
    n = expl.probs.shape[0]
    per = math.ceil(n / MAX_TAGGRAM_COLUMNS)
    title = "taggram: genre probability per chunk"
    if per > 1:
        title += f" (each column averages up to {per} chunks)"
    if len(expl.meta.labels) > len(rows):
        title += f"; top {len(rows)} of {len(expl.meta.labels)} genres"
    ax.set_title(title, fontsize=9.5, loc="left")
    return mesh


def _draw_scores(ax, expl: Explanation, rows: list[int]) -> None:
    chosen = {r.label for r in expl.decision.chosen}
    labels = expl.meta.labels
    colour = _COLOURS[expl.action]
    y = np.arange(len(rows)) + 0.5
    vals = [float(expl.scores[i]) for i in rows]
    colours = [colour if labels[i] in chosen else "#b0bec5" for i in rows]
    ax.barh(y, vals, height=0.7, color=colours)
    t = expl.thresholds
    if t.uniform:
        ax.axvline(t.default, color=THRESHOLD, linestyle="--", linewidth=1.2)
    else:  # each genre's own threshold, across its bar
        for yy, i in zip(y, rows, strict=True):
            x = expl.threshold_of(i)
            ax.plot([x, x], [yy - 0.45, yy + 0.45], color=THRESHOLD, linestyle="--", linewidth=1.2)
    for yy, v, i in zip(y, vals, rows):
        mark = "  chosen" if labels[i] in chosen else ""
        text = f"{v:.2f}{mark}"
        if v > 0.55:  # a long bar: the label inside it, so that it is never cut at the right edge
            ax.text(v - 0.02, yy, text, va="center", ha="right", fontsize=8.5,
                    fontweight="bold" if mark else "normal", color="white")
        else:
            ax.text(v + 0.02, yy, text, va="center", fontsize=8.5,
                    fontweight="bold" if mark else "normal", color=colour if mark else "#333333")
    ax.set_xlim(0, 1.0)
    ax.set_xticks([0, 0.5, 1.0])
    for tick in ax.get_yticklabels():
        tick.set_visible(False)
    ax.tick_params(axis="y", length=0)
    ax.set_title(f"track score; {_threshold_text(expl)} (dashed)", fontsize=9.5, loc="left")
    ax.spines[["top", "right"]].set_visible(False)


def _draw_facts(ax_top, ax_mid, expl: Explanation, mesh, fig) -> None:
    ax_top.axis("off")
    ax_mid.axis("off")
    d, fp = expl.decision, expl.meta.features
    lines = [f"best: {d.ranked[0].genre} {d.ranked[0].score:.2f}"]
    if len(d.ranked) > 1:
        lines.append(f"next: {d.ranked[1].genre} {d.ranked[1].score:.2f}")
    lines.append(f"{len(expl.meta.labels)} genres, {expl.meta.output_activation} outputs")
    ax_top.text(0.06, 0.95, "\n".join(lines), va="top", fontsize=9, linespacing=1.6, transform=ax_top.transAxes)
    what = [f"{fp.kind} features, {fp.sample_rate} Hz"]
    if fp.kind != "waveform":
        what.append(f"FFT {fp.n_fft}, hop {fp.hop_length}" + (f", {fp.n_mels} mel bands" if fp.kind == "logmel" else ""))
    what.append(f"chunk {fp.chunk_seconds:.2f} s every {fp.chunk_hop_seconds:.2f} s")
    if expl.meta.aggregation == "logit-mean":
        what.append("track score = sigmoid of the chunks' mean logit")
    else:
        what.append(f"track score = {expl.meta.aggregation} of the chunks")
    ax_mid.text(0.06, 0.95, "\n".join(what), va="top", fontsize=8.5, linespacing=1.6, color="#444444",
                transform=ax_mid.transAxes)
    # the taggram's colour scale, small, above its top-right corner
    cax = mesh.axes.inset_axes([0.80, 1.05, 0.20, 0.045])
    cb = fig.colorbar(mesh, cax=cax, orientation="horizontal", ticks=[0, 0.5, 1])
    cb.ax.tick_params(labelsize=7, length=2, pad=1)
    cb.ax.xaxis.set_ticks_position("top")
    cax.text(-0.03, 0.5, "probability", fontsize=7.5, ha="right", va="center", transform=cax.transAxes)


def _threshold_text(expl: Explanation) -> str:
    """``threshold 0.40``, or for per-genre thresholds ``per-genre thresholds 0.31–0.74``."""
    t = expl.thresholds
    if t.uniform:
        return f"threshold {t.default:.2f}"
    vals = [expl.threshold_of(i) for i in range(len(expl.meta.labels))]
    lo, hi = min(vals), max(vals)
    return f"per-genre thresholds {lo:.2f}–{hi:.2f}" if hi > lo else f"per-genre thresholds {lo:.2f}"


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="#f3f3f3")


def _time_format(end: float):
    """Tick formatter and locator for a time axis of ``end`` seconds (m:ss from two minutes on)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

    if end >= 120:
        step = next((s for s in (15, 30, 60, 120, 300, 600, 1200) if end / s <= 12), 1800)
        return FuncFormatter(lambda v, _pos: _clock(v)), MultipleLocator(step), "m:ss"
    return FuncFormatter(lambda v, _pos: f"{v:g}"), MaxNLocator(nbins=12, steps=[1, 2, 5, 10]), "seconds"


def _clock(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 60}:{s % 60:02d}"



def safe_name(stem: str) -> str:
    """A file name's stem as a picture's name: letters, digits and ``-_.`` only, at most 60."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return keep.strip("._")[:60] or "track"
