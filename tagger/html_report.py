"""The HTML report: one self-contained file (inline CSS, JS and SVG; nothing fetched) that shows
at a glance what a run did or would do, then lets you drill in.

Layout, top to bottom: a one-sentence headline; a tile per action (would tag / tagged, skipped,
uncertain, failed) that filters the table; the failures with their reasons; two charts drawn
here as SVG (the top predicted genre per file, stacked by action; the distribution of top
scores with the threshold); the model (id, labels, evaluation figures from its metadata); a
Files view (sortable, filterable by text and action, paginated) and an Albums view (one row per
album (tagger.albums; tracks decided alone: per folder): the album's decision and the tracks that
kept their own genre against it, the majority of its tracks' own top genres, how many agree,
disagreeing albums flagged); pictures from
``--explain-uncertain``.

The summary is rendered here and reads without JavaScript. The rows travel as compact JSON
(folder names, reasons and genres interned; scores in thousandths) and the table is drawn by a
small script one page at a time, so 100,000 rows stay a few megabytes and open in a second.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tagger.names import visible, visible_tree
from tagger.report import ACTIONS, Report, Row

#: An album (folder) is flagged when fewer than this share of its analysed tracks have the
#: majority's top genre.
AGREEMENT_FLAG = 0.75
#: Genres drawn in the distribution chart; the rest are summed into one "other" bar.
CHART_GENRES = 15
#: Bins of the confidence histogram (over 0..1).
CONFIDENCE_BINS = 20
#: Failures listed in the page itself (all of them are in the table).
FAILURES_LISTED = 100
#: Predicted genres carried per row.
PREDICTED_PER_ROW = 5

COLOURS = {
    "tagged": "#2e7d32",
    "would tag": "#2e7d32",
    "skipped": "#78909c",
    "uncertain": "#e09100",
    "failed": "#c62828",
}
#: Action order in tables and charts: what needs attention first.
ORDER = ("failed", "uncertain", "would tag", "tagged", "skipped")


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------

class _Interner:
    """Strings to small integers, in order of first use (``items`` is the table)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        return self.index.setdefault(value, len(self.index))

    @property
    def items(self) -> list[str]:
        return list(self.index)


@dataclass(frozen=True)
class Album:
    folder: str
    tracks: int
    analysed: int  # tracks with predictions
    majority: str  # the most common top genre ("" when nothing was analysed)
    agree: int  # analysed tracks whose top genre is the majority
    genres: tuple[tuple[str, int], ...]  # top genre -> tracks, most first
    existing: str  # the most common existing genre ("" when none)
    name: str = ""  # the album's name where its tracks were decided as an album ("" for a folder)
    decided: tuple[str, ...] = ()  # the album's genres (album mode), () when decided per track
    dissenters: tuple[str, ...] = ()  # file names of the tracks that kept their own genre

    @property
    def agreement(self) -> float | None:
        return self.agree / self.analysed if self.analysed else None

    @property
    def flagged(self) -> bool:
        """Its tracks disagree: at least two analysed, and too few share the majority genre."""
        return self.analysed >= 2 and self.agree / self.analysed < AGREEMENT_FLAG


def top_genre(row: Row) -> str | None:
    return row.predicted[0]["genre"] if row.predicted else None


def albums(rows: list[Row]) -> list[Album]:
    """One :class:`Album` per album (the rows' ``album``) and, for rows of no album, per folder;
    flagged (disagreeing) albums first, then by folder."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        key = ("album", r.album) if r.album else ("folder", os.path.dirname(r.path))
        groups.setdefault(key, []).append(r)
    out = []
    for (kind, key), rs in groups.items():
        if kind == "album":
            dirs = sorted({os.path.dirname(r.path) for r in rs})
            folder = dirs[0] if len(dirs) == 1 else os.path.commonpath(dirs)
        else:
            folder = key
        decided = next((tuple(r.album_genres) for r in rs if r.album_genres), ())
        tops = Counter(g for g in (top_genre(r) for r in rs) if g)
        ranked = sorted(tops.items(), key=lambda kv: (-kv[1], kv[0]))
        existing = Counter(r.existing[0] for r in rs if r.existing)
        ex = sorted(existing.items(), key=lambda kv: (-kv[1], kv[0]))
        out.append(Album(
            folder=folder, tracks=len(rs), analysed=sum(tops.values()),
            majority=ranked[0][0] if ranked else "", agree=ranked[0][1] if ranked else 0,
            genres=tuple(ranked), existing=ex[0][0] if ex else "",
            name=key if kind == "album" else "", decided=decided,
            dissenters=tuple(sorted(os.path.basename(r.path) for r in rs if r.dissent)),
        ))
    out.sort(key=lambda a: (not a.flagged, a.folder, a.name))
    return out


def _order_key(row: Row) -> tuple[int, str]:
    return (ORDER.index(row.action) if row.action in ORDER else len(ORDER), row.path)


def build_data(report: Report) -> dict[str, Any]:
    """The JSON the page's script reads: interned tables and one compact list per row.

    ``rows``: ``[folder, name, action, reason, existing, predicted, written, error_kind,
    explain, format]`` where folder/action/reason index their tables, existing and written
    are lists of genre indices and predicted is flat ``[genre, floor(score*1000), ...]`` best first.
    ``albums``: ``[folder, tracks, analysed, majority genre (-1: none), agree, [[genre,
    n], ...], existing genre (-1: none), album name, [album genre, ...], [dissenting file
    name, ...]]``.
    """
    folders, reasons, genres = _Interner(), _Interner(), _Interner()
    rows = []
    for r in sorted(report.rows, key=_order_key):
        folder, name = os.path.split(r.path)
        pred: list[int] = []
        for p in r.predicted[:PREDICTED_PER_ROW]:
            # thousandths, rounded down: a score just under the threshold never shows as reaching it
            pred += [genres(str(p["genre"])), int(math.floor(float(p["score"]) * 1000 + 1e-6))]
        rows.append([
            folders(folder), name, ACTIONS.index(r.action) if r.action in ACTIONS else 4, reasons(r.reason),
            [genres(g) for g in r.existing], pred, [genres(g) for g in r.written], r.error_kind, r.explain,
            r.format,
        ])
    album_rows = [
        [folders(a.folder), a.tracks, a.analysed, genres(a.majority) if a.majority else -1, a.agree,
         [[genres(g), n] for g, n in a.genres], genres(a.existing) if a.existing else -1,
         a.name, [genres(g) for g in a.decided], list(a.dissenters)]
        for a in albums(report.rows)
    ]
    return {
        "actions": list(ACTIONS),
        "sep": os.sep,
        "flag": AGREEMENT_FLAG,
        "folders": folders.items,
        "reasons": reasons.items,
        "genres": genres.items,
        "rows": rows,
        "albums": album_rows,
    }


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script type="application/json"> ('<' never appears raw); file names
    that are not valid UTF-8 show their odd bytes as ``\\xNN`` (:func:`tagger.names.visible`)."""
    text = json.dumps(visible_tree(data), ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# ---------------------------------------------------------------------------------------------
# SVG charts (drawn here: the summary reads without JavaScript)
# ---------------------------------------------------------------------------------------------

def _e(text: Any) -> str:
    return html.escape(visible(text), quote=True)


def _bar_actions(report: Report) -> list[str]:
    """The actions a chart stacks, in drawing order (left to right / bottom to top)."""
    first = "would tag" if report.dry_run else "tagged"
    return [first, "skipped", "uncertain"]


def genre_chart(report: Report) -> str:
    """Horizontal bars: files per top predicted genre, each split by action."""
    stack = _bar_actions(report)
    per: dict[str, Counter] = {}
    for r in report.rows:
        g = top_genre(r)
        if g is None or r.action not in stack:
            continue
        per.setdefault(g, Counter())[r.action] += 1
    if not per:
        return '<p class="empty" id="genre-chart-empty">No file was analysed, so there are no predictions to chart.</p>'
    ranked = sorted(per.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    bars = ranked[:CHART_GENRES]
    if len(ranked) > CHART_GENRES:
        other: Counter = Counter()
        for _, c in ranked[CHART_GENRES:]:
            other.update(c)
        bars.append((f"{len(ranked) - CHART_GENRES} other genres", other))
    top = max(sum(c.values()) for _, c in bars)
    label_w, bar_w, row_h, pad = 150, 330, 22, 26
    width, height = label_w + bar_w + 70, pad + row_h * len(bars) + 6
    out = [f'<svg id="genre-chart" class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'role="img" aria-label="Files per top predicted genre">']
    x = label_w
    for a in stack:  # legend
        out.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{COLOURS[a]}"/>'
                   f'<text x="{x + 14}" y="13" class="legend">{_e(a)}</text>')
        x += 14 + 7 * len(a) + 18
    for i, (genre, c) in enumerate(bars):
        y = pad + i * row_h
        total = sum(c.values())
        out.append(f'<g class="bar" data-genre="{_e(genre)}" data-count="{total}">'
                   f'<title>{_e(genre)}: {_files(total)} (' + ", ".join(f"{c[a]} {a}" for a in stack if c[a]) + ")</title>"
                   f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="label">{_e(genre)}</text>')
        x = float(label_w)
        for a in stack:
            if not c[a]:
                continue
            w = bar_w * c[a] / top
            out.append(f'<rect class="seg" data-action="{_e(a)}" data-count="{c[a]}" x="{x:.1f}" y="{y + 3}" '
                       f'width="{max(w, 1.0):.1f}" height="{row_h - 6}" fill="{COLOURS[a]}"/>')
            x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + 15}" class="value">{total:,}</text></g>')
    out.append("</svg>")
    return "".join(out)


def confidence_chart(report: Report) -> str:
    """Histogram of each analysed file's top score, stacked by action, with the threshold."""
    stack = _bar_actions(report)
    bins = [Counter() for _ in range(CONFIDENCE_BINS)]
    for r in report.rows:
        if not r.predicted or r.action not in stack:
            continue
        s = min(max(float(r.predicted[0]["score"]), 0.0), 1.0)
        bins[min(int(s * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)][r.action] += 1
    if not any(bins):
        return '<p class="empty" id="confidence-chart-empty">No scores to show.</p>'
    top = max(sum(b.values()) for b in bins)
    left, plot_w, plot_h, top_pad, bottom = 44, 440, 170, 26, 34
    width, height = left + plot_w + 16, top_pad + plot_h + bottom
    bw = plot_w / CONFIDENCE_BINS
    out = [f'<svg id="confidence-chart" class="chart" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="Distribution of the top genre score per file">']
    x = left
    for a in stack:
        out.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{COLOURS[a]}"/>'
                   f'<text x="{x + 14}" y="13" class="legend">{_e(a)}</text>')
        x += 14 + 7 * len(a) + 18
    base = top_pad + plot_h
    for frac in (0.5, 1.0):  # grid lines with counts
        y = base - plot_h * frac
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{round(top * frac):,}</text>')
    for i, b in enumerate(bins):
        lo = i / CONFIDENCE_BINS
        total = sum(b.values())
        out.append(f'<g class="bin" data-lo="{lo:.2f}" data-count="{total}"><title>score {lo:.2f}–'
                   f'{lo + 1 / CONFIDENCE_BINS:.2f}: {_files(total)}</title>')
        y = float(base)
        for a in stack:
            if not b[a]:
                continue
            h = plot_h * b[a] / top
            y -= h
            out.append(f'<rect class="seg" data-action="{_e(a)}" data-count="{b[a]}" x="{left + i * bw + 1:.1f}" '
                       f'y="{y:.1f}" width="{bw - 2:.1f}" height="{max(h, 0.8):.1f}" fill="{COLOURS[a]}"/>')
        out.append("</g>")
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}" class="axis"/>')
    for k in range(0, 11, 2):
        x = left + plot_w * k / 10
        out.append(f'<text x="{x:.1f}" y="{base + 15}" text-anchor="middle" class="tick">{k / 10:.1f}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{base + 30}" text-anchor="middle" class="label">'
               f'score of the best genre</text>')
    thr = report.options.get("min_confidence")
    if thr is None and not (report.model or {}).get("thresholds"):  # the model's, one for every label
        thr = (report.model or {}).get("threshold")
    if isinstance(thr, (int, float)):
        x = left + plot_w * float(thr)
        right = float(thr) <= 0.75  # the label goes where there is room
        out.append(f'<line id="threshold" data-value="{float(thr):.2f}" x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad - 6}" '
                   f'y2="{base}" class="threshold"/><text x="{x + 4 if right else x - 4:.1f}" y="{top_pad + 4}" '
                   f'text-anchor="{"start" if right else "end"}" class="thr">threshold {float(thr):.2f}</text>')
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------

def _threshold_hint(report: Report) -> str:
    if (report.model or {}).get("thresholds") and report.options.get("min_confidence") is None:
        return ("Each genre has its own threshold (the model's, listed with the model below): a file none "
                "of whose genres reaches its threshold is <b>uncertain</b> and is not tagged.")
    return "Files left of the threshold are <b>uncertain</b> and are not tagged."


def headline(report: Report) -> str:
    c = report.counts
    n = len(report.rows)
    verb = "would be tagged" if report.dry_run else "tagged"
    done = c.get("would tag" if report.dry_run else "tagged", 0)
    parts = [f"{done:,} {'file' if done == 1 else 'files'} {verb}"]
    for a, word in (("uncertain", "uncertain (left alone)"), ("skipped", "skipped"), ("failed", "failed")):
        if c.get(a):
            parts.append(f"{c[a]:,} {word}")
    lead = "Dry run — nothing was written. " if report.dry_run else ""
    return f"{lead}{n:,} {'file' if n == 1 else 'files'}: " + ", ".join(parts) + "."


def _model_card(report: Report) -> str:
    m = report.model or {}
    if not m:
        return '<p class="empty">No model information.</p>'
    rows = []

    def add(k, v):
        rows.append(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>")

    add("model", f"<b>{_e(m.get('name') or '(unnamed)')}</b> <code>{_e(m.get('model_id', ''))}</code>"
        + (f" · {_e(m['architecture'])}" if m.get("architecture") else ""))
    labels = m.get("labels") or []
    add(f"labels ({len(labels)})", " ".join(f'<span class="chip">{_e(x)}</span>' for x in labels))
    bits = []
    if m.get("output_activation"):
        bits.append(f"{_e(m['output_activation'])} outputs")
    if m.get("sample_rate"):
        bits.append(f"{_e(m['sample_rate'])} Hz")
    if m.get("chunk_seconds"):
        bits.append(f"chunks of {_e(m['chunk_seconds'])} s")
    inf = m.get("inference") or {}
    if inf:
        bits.append(f"inference on {_e(inf.get('where', '?'))}, batch {_e(inf.get('batch_size', '?'))}")
    if bits:
        add("features", " · ".join(bits))
    for line in metric_lines(m.get("metrics") or {}):
        add(line[0], _e(line[1]))
    o = report.options or {}
    opts = [f"{k.replace('_', '-')} {_e(o[k])}" for k in ("top_k", "min_confidence", "on_existing")
            if o.get(k) is not None]
    if opts:
        add("decision", " · ".join(opts))
    per_label = m.get("thresholds") or {}
    if per_label:  # the model's own thresholds, in effect (no --min-confidence given)
        add("thresholds", " ".join(f'<span class="chip">{_e(lab)} {float(v):.2f}</span>' for lab, v in per_label.items()))
    per_class = _per_class(m.get("metrics") or {})
    extra = ""
    if per_class:
        body = "".join(
            f"<tr><td>{_e(lab)}</td><td>{_fmt(v.get('precision'))}</td><td>{_fmt(v.get('recall'))}</td>"
            f"<td>{_fmt(v.get('f1'))}</td><td>{_e(v.get('support', ''))}</td></tr>"
            for lab, v in per_class.items() if isinstance(v, dict))
        extra = ('<details><summary>scores per genre</summary><table class="kv small"><tr><th>genre</th>'
                 f'<th>precision</th><th>recall</th><th>F1</th><th>tracks</th></tr>{body}</table></details>')
    return f'<table class="kv" id="model-table">{"".join(rows)}</table>{extra}'


def metric_lines(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """Readable evaluation figures: headline accuracy with its interval, then each part."""
    out: list[tuple[str, str]] = []

    def acc(d: dict[str, Any]) -> str:
        text = f"accuracy {d['accuracy']:.1%}"
        ci = d.get("accuracy_ci95")
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            text += f" (95% CI {ci[0]:.1%}–{ci[1]:.1%})"
        if d.get("tracks"):
            text += f" on {d['tracks']} tracks"
        if d.get("macro_f1") is not None:
            text += f", macro F1 {d['macro_f1']:.2f}"
        if d.get("evaluated_on"):
            text += f" — {d['evaluated_on']}"
        return text

    if isinstance(metrics.get("accuracy"), (int, float)):
        out.append(("accuracy", acc(metrics)))
    for key, val in metrics.items():
        if isinstance(val, dict) and isinstance(val.get("accuracy"), (int, float)):
            out.append((key.replace("_", " "), acc(val)))
        elif key not in ("accuracy", "accuracy_ci95", "interval", "tracks", "evaluated_on", "level", "macro_f1") \
                and isinstance(val, (int, float, str)) and not isinstance(val, bool):
            out.append((key.replace("_", " "), f"{val:.4g}" if isinstance(val, float) else str(val)))
    return out


def _per_class(metrics: dict[str, Any]) -> dict[str, Any]:
    for key in ("cross_validation", "test"):
        part = metrics.get(key)
        if isinstance(part, dict) and isinstance(part.get("per_class"), dict):
            return part["per_class"]
    return metrics.get("per_class") if isinstance(metrics.get("per_class"), dict) else {}


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else _e(v if v is not None else "")


def _tiles(report: Report) -> str:
    out = []
    for a, n in report.counts.items():
        out.append(f'<button type="button" class="tile" id="count-{a.replace(" ", "-")}" data-action="{_e(a)}" '
                   f'data-count="{n}" style="--c:{COLOURS.get(a, "#555")}"><span class="n">{n:,}</span>'
                   f'<span class="a">{_e(a)}</span></button>')
    return "".join(out)


def _failures(report: Report) -> str:
    failed = sorted((r for r in report.rows if r.action == "failed"), key=lambda r: r.path)
    if not failed:
        return ""
    items = "".join(
        f'<li><span class="kind">{_e(r.error_kind or "error")}</span><code>{_e(r.path)}</code>'
        f' <span class="why">— {_e(r.reason)}</span></li>'
        for r in failed[:FAILURES_LISTED])
    more = ""
    if len(failed) > FAILURES_LISTED:
        more = (f'<p>and {len(failed) - FAILURES_LISTED:,} more: <a href="#files" class="show-action" '
                f'data-action="failed">show every failure in the table</a>.</p>')
    return (f'<section id="failures" class="card bad"><h2>{len(failed):,} '
            f'{"file" if len(failed) == 1 else "files"} failed</h2>'
            f'<p class="hint">Nothing was changed in these files. The reason is one line per file.</p>'
            f'<ul class="failures">{items}</ul>{more}</section>')


def _explain_gallery(report: Report) -> str:
    shown = sorted((r for r in report.rows if r.explain), key=lambda r: r.path)
    if not shown:
        return ""
    cards = "".join(
        f'<figure class="shot"><a href="{_e(_href(r.explain))}" target="_blank">'
        f'<img loading="lazy" src="{_e(_href(r.explain))}" alt="explain picture of {_e(os.path.basename(r.path))} '
        f'(missing: keep the folder {_e(os.path.dirname(r.explain))} beside this report)"></a>'
        f'<figcaption><b>{_e(os.path.basename(r.path))}</b><br>{_e(r.reason)}</figcaption></figure>'
        for r in shown)
    return (f'<section id="explain" class="card"><h2>Why {len(shown)} uncertain '
            f'{"file is" if len(shown) == 1 else "files are"} uncertain</h2>'
            '<p class="hint">Waveform, the spectrogram the model saw, genre probabilities per chunk and the '
            'track scores against the threshold. Click a picture for full size; '
            '<code>tagger explain FILE</code> draws any other file.</p>'
            f'<div class="gallery">{cards}</div></section>')


def _files(n: int) -> str:
    return f"{n:,} {'file' if n == 1 else 'files'}"


def _href(path: str) -> str:
    from urllib.parse import quote

    return quote(path.replace(os.sep, "/"), errors="surrogateescape")  # odd bytes as %NN


def render(report: Report) -> str:
    """The whole page as one string."""
    from tagger.report import _iso, _tool

    title = f"tagger {'dry-run plan' if report.dry_run else 'run report'}"
    when = _iso(report.started) or ""
    meta_bits = [f"{_e(_tool())}", f"started {_e(when)}"]
    if report.run_id:
        meta_bits.append(f"run <code>{_e(report.run_id)}</code>")
    if report.finished:
        meta_bits.append(f"took {report.finished - report.started:.1f} s")
    notes = list(report.notes)
    if report.interrupted:
        notes.insert(0, f"Interrupted by {report.interrupted}: {_files(report.pending)} left for the next run.")
    elif report.pending:
        notes.insert(0, f"{_files(report.pending)} left for the next run.")
    notes_html = ("<ul class=\"notes\">" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>") if notes else ""
    data = _json_for_script(build_data(report))
    mode = "dry" if report.dry_run else "real"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data: file:;">
<title>{_e(title)}</title>
<style>{CSS}</style></head>
<body class="{mode}">
<header><div class="wrap">
<h1>{_e(title)}</h1>
<p id="headline" class="headline">{_e(headline(report))}</p>
<p class="meta">{" · ".join(meta_bits)}</p>
</div></header>
<main class="wrap">
<section id="summary" class="tiles">{_tiles(report)}</section>
{notes_html}
{_failures(report)}
<div class="grid2">
<section class="card"><h2>Top predicted genre per file</h2>{genre_chart(report)}</section>
<section class="card"><h2>How confident the model is</h2>{confidence_chart(report)}
<p class="hint">{_threshold_hint(report)}</p></section>
</div>
<section id="model" class="card"><h2>Model</h2>{_model_card(report)}</section>
<section id="files" class="card">
<div class="tabs" role="tablist"><button type="button" id="tab-files" class="tab on" data-view="files">Files</button>
<button type="button" id="tab-albums" class="tab" data-view="albums">Albums</button></div>
<div class="controls">
<input id="q" type="search" placeholder="Filter: path, genre or reason…" autocomplete="off" aria-label="filter text">
<span id="action-filter">{"".join(f'<label class="af" style="--c:{COLOURS.get(a, "#555")}"><input type="checkbox" data-action="{_e(a)}" checked> {_e(a)}</label>' for a in report.counts)}</span>
<label id="flag-filter" class="af" hidden><input type="checkbox" id="only-flagged"> only disagreeing albums</label>
</div>
<p id="status" class="status"></p>
<noscript><p class="empty">The file table needs JavaScript; the JSON or CSV report has the same rows.</p></noscript>
<div class="scroll"><table id="files-table" class="rows"><thead><tr>
<th data-sort="path">File</th><th data-sort="existing">Existing</th><th data-sort="score">Predicted (score)</th>
<th data-sort="action">Action</th><th data-sort="reason">Reason</th></tr></thead><tbody></tbody></table>
<table id="albums-table" class="rows" hidden><thead><tr>
<th data-sort="folder">Album / folder</th><th data-sort="tracks">Tracks</th><th data-sort="majority">Album decision · majority</th>
<th data-sort="agreement">Agreement</th><th>Top genre of its tracks</th><th data-sort="existing">Existing</th>
</tr></thead><tbody></tbody></table></div>
<div class="pager"><button type="button" id="first">«</button><button type="button" id="prev">‹ previous</button>
<span id="page"></span><button type="button" id="next">next ›</button><button type="button" id="last">»</button></div>
</section>
{_explain_gallery(report)}
</main>
<footer class="wrap">Written by {_e(_tool())}. This page is self-contained: no network access is needed or made.</footer>
<script id="data" type="application/json">{data}</script>
<script>{JS}</script>
</body></html>
"""


CSS = """
:root{--fg:#1d2329;--dim:#5f6b76;--line:#e3e7eb;--bg:#f6f7f9;--card:#fff;--accent:#1f5fa8}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
.wrap{max-width:1240px;margin:0 auto;padding:0 20px}
header{background:#fff;border-bottom:1px solid var(--line);padding:14px 0 10px}
h1{font-size:20px;margin:0 0 2px}
h2{font-size:15px;margin:0 0 10px}
.headline{font-size:17px;margin:2px 0}
body.dry .headline{color:#174a86}
.meta{color:var(--dim);margin:2px 0 0;font-size:12.5px}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
main.wrap{padding-top:16px}
.tiles{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:14px}
.tile{flex:1 1 150px;display:flex;flex-direction:column;align-items:flex-start;padding:10px 14px;background:#fff;
 border:1px solid var(--line);border-left:6px solid var(--c);border-radius:8px;cursor:pointer;font:inherit;color:inherit;text-align:left}
.tile:hover{box-shadow:0 1px 6px rgba(0,0,0,.08)}
.tile .n{font-size:26px;font-weight:700;color:var(--c);line-height:1.1}
.tile .a{color:var(--dim);font-size:13px}
.notes{margin:0 0 14px;padding:8px 14px 8px 30px;background:#fff8e1;border:1px solid #f3e0a6;border-radius:8px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin-bottom:16px}
.card.bad{border-left:6px solid #c62828}
.bad h2{color:#c62828}
.failures{list-style:none;margin:0;padding:0;max-height:320px;overflow:auto}
.failures li{padding:3px 0;border-top:1px solid var(--line)}
.failures .why{color:#8e1c1c;margin-left:2px}
.kind{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;background:#fdecea;color:#8e1c1c;margin-right:4px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.grid2 .card{margin-bottom:16px;overflow:auto}
.chart text{font-size:12px;fill:#333}
.chart .legend{font-size:11.5px;fill:#555}
.chart .value,.chart .tick{fill:#666;font-size:11px}
.chart .grid{stroke:#eceff1}
.chart .axis{stroke:#90a4ae}
.chart .threshold{stroke:#b26a00;stroke-width:1.5;stroke-dasharray:5 3}
.chart .thr{fill:#b26a00;font-size:11px}
.chart g:hover rect{opacity:.85}
.hint{color:var(--dim);font-size:12.5px;margin:6px 0 0}
.empty{color:var(--dim)}
.kv{border-collapse:collapse}
.kv th{text-align:left;color:var(--dim);font-weight:500;padding:3px 14px 3px 0;vertical-align:top;white-space:nowrap}
.kv td{padding:3px 0}
.kv.small td,.kv.small th{padding:2px 10px 2px 0;font-size:12.5px}
.chip{display:inline-block;background:#eef2f6;border-radius:10px;padding:0 8px;margin:1px 2px;font-size:12.5px}
details{margin-top:8px}
.tabs{display:flex;gap:4px;margin-bottom:10px;border-bottom:1px solid var(--line)}
.tab{border:0;background:none;padding:6px 12px;font:inherit;font-weight:600;color:var(--dim);cursor:pointer;border-bottom:3px solid transparent}
.tab.on{color:var(--accent);border-bottom-color:var(--accent)}
.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center}
#q{flex:1 1 280px;padding:7px 10px;border:1px solid #c9d1d9;border-radius:6px;font:inherit}
.af{display:inline-flex;align-items:center;gap:4px;padding:3px 9px;border:1px solid var(--line);border-left:4px solid var(--c,#888);border-radius:6px;cursor:pointer;user-select:none;font-size:13px;background:#fff}
.status{color:var(--dim);margin:8px 0}
.scroll{overflow-x:auto}
table.rows{width:100%;border-collapse:collapse;table-layout:fixed}
table.rows th{text-align:left;font-size:12.5px;color:var(--dim);border-bottom:2px solid var(--line);padding:6px 8px;cursor:pointer;user-select:none;white-space:nowrap}
table.rows th.asc::after{content:" ▲";font-size:10px}
table.rows th.desc::after{content:" ▼";font-size:10px}
table.rows td{border-bottom:1px solid var(--line);padding:6px 8px;vertical-align:top;overflow-wrap:anywhere}
#files-table th:nth-child(1){width:34%}#files-table th:nth-child(2){width:12%}#files-table th:nth-child(3){width:22%}
#files-table th:nth-child(4){width:10%}
#albums-table th:nth-child(1){width:30%}#albums-table th:nth-child(2){width:10%}#albums-table th:nth-child(3){width:12%}
#albums-table th:nth-child(4){width:16%}#albums-table th:nth-child(6){width:10%}
tr.failed td{background:#fff6f5}
tr.flagged td{background:#fffaf0}
.dir{color:var(--dim);font-size:12px;display:block}
.name{font-weight:600}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;background:var(--c);font-size:12px;white-space:nowrap}
.pred{display:flex;align-items:center;gap:6px;font-size:12.5px;margin:1px 0}
.pred .g{min-width:70px}
.pred .s{display:inline-block;width:60px;height:7px;background:#eceff1;border-radius:4px;overflow:hidden}
.pred .s i{display:block;height:100%;background:#5c8fc7}
.pred .v{color:var(--dim);font-variant-numeric:tabular-nums}
.more{color:var(--dim);font-size:12px}
.pred.w .g{font-weight:700}
.reason{color:#3d4750;font-size:12.5px}
td.failed-reason{color:#8e1c1c}
.agree{display:flex;align-items:center;gap:6px;white-space:nowrap}
.agree .s{display:inline-block;width:70px;height:8px;background:#eceff1;border-radius:4px;overflow:hidden}
.agree .s i{display:block;height:100%}
.flag{color:#b26a00;font-weight:700;font-size:12px}
a.folder{color:inherit;text-decoration:none;border-bottom:1px dotted #999}
.pager{display:flex;gap:6px;align-items:center;justify-content:center;margin-top:10px}
.pager button{padding:4px 10px;border:1px solid #c9d1d9;border-radius:6px;background:#fff;cursor:pointer;font:inherit}
.pager button:disabled{opacity:.4;cursor:default}
#page{color:var(--dim);min-width:120px;text-align:center}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.shot{margin:0;border:1px solid var(--line);border-radius:8px;padding:6px;background:#fff}
.shot img{width:100%;height:auto;display:block;min-height:60px;color:var(--dim);font-size:12px}
.shot figcaption{font-size:12px;color:var(--dim);margin-top:4px}
footer{color:var(--dim);font-size:12px;padding:10px 20px 30px}
"""

JS = r"""
(function(){
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const A = D.actions, F = D.folders, R = D.reasons, G = D.genres, SEP = D.sep;
const ORDER = {"failed":0,"uncertain":1,"would tag":2,"tagged":2,"skipped":3};
const COLOUR = {"tagged":"#2e7d32","would tag":"#2e7d32","skipped":"#78909c","uncertain":"#e09100","failed":"#c62828"};
const PAGE = 100;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const path = (r) => F[r[0]] + SEP + r[1];
const names = (ids) => ids.map((i) => G[i]).join("; ");
const score = (r) => r[5].length ? r[5][1] : -1;
const fmt = (m) => (Math.floor(m / 10) / 100).toFixed(2);  // thousandths -> 2 decimals, rounded down
let hay = null;  // lower-case search text per row, built on first use
function haystack(i){
  if (!hay) hay = new Array(D.rows.length);
  let h = hay[i];
  if (h === undefined){
    const r = D.rows[i];
    const pred = []; for (let k = 0; k < r[5].length; k += 2) pred.push(G[r[5][k]]);
    h = hay[i] = [path(r), names(r[4]), pred.join(" "), names(r[6]), R[r[3]], A[r[2]], r[9], r[7]].join("\u0001").toLowerCase();
  }
  return h;
}
const state = {view:"files", q:"", actions:new Set(A), onlyFlagged:false, page:0,
               sort:{files:{key:null, dir:1}, albums:{key:null, dir:1}}};
let shown = [];

const cmp = (a, b) => a < b ? -1 : a > b ? 1 : 0;
const FILE_KEYS = {
  path: (i) => path(D.rows[i]),
  existing: (i) => names(D.rows[i][4]).toLowerCase(),
  score: (i) => score(D.rows[i]),
  action: (i) => ORDER[A[D.rows[i][2]]],
  reason: (i) => R[D.rows[i][3]].toLowerCase(),
};
const ALBUM_KEYS = {
  folder: (i) => F[D.albums[i][0]],
  tracks: (i) => D.albums[i][1],
  majority: (i) => D.albums[i][3] < 0 ? "\uffff" : G[D.albums[i][3]].toLowerCase(),
  agreement: (i) => agreement(D.albums[i]),
  existing: (i) => D.albums[i][6] < 0 ? "\uffff" : G[D.albums[i][6]].toLowerCase(),
};
function agreement(a){ return a[2] ? a[4] / a[2] : 2; }
function flagged(a){ return a[2] >= 2 && a[4] / a[2] < D.flag; }

function refilter(){
  const q = state.q.trim().toLowerCase();
  const words = q ? q.split(/\s+/) : [];
  shown = [];
  if (state.view === "files"){
    const acts = new Set([...state.actions].map((a) => A.indexOf(a)));
    for (let i = 0; i < D.rows.length; i++){
      if (!acts.has(D.rows[i][2])) continue;
      if (words.length){ const h = haystack(i); if (!words.every((w) => h.includes(w))) continue; }
      shown.push(i);
    }
    const s = state.sort.files;
    if (s.key){ const f = FILE_KEYS[s.key]; const keyed = shown.map((i) => [f(i), i]);
      keyed.sort((x, y) => s.dir * cmp(x[0], y[0]) || x[1] - y[1]); shown = keyed.map((x) => x[1]); }
  } else {
    for (let i = 0; i < D.albums.length; i++){
      const a = D.albums[i];
      if (state.onlyFlagged && !flagged(a)) continue;
      if (words.length){ const h = (F[a[0]] + " " + (a[3] >= 0 ? G[a[3]] : "") + " " + a[5].map((x) => G[x[0]]).join(" ")).toLowerCase();
        if (!words.every((w) => h.includes(w))) continue; }
      shown.push(i);
    }
    const s = state.sort.albums;
    if (s.key){ const f = ALBUM_KEYS[s.key]; const keyed = shown.map((i) => [f(i), i]);
      keyed.sort((x, y) => s.dir * cmp(x[0], y[0]) || x[1] - y[1]); shown = keyed.map((x) => x[1]); }
  }
  state.page = 0;
  draw();
}

function fileRow(i){
  const r = D.rows[i], act = A[r[2]], c = COLOUR[act] || "#555";
  let pred = "";
  const written = new Set(r[6]);
  if (r[5].length){
    const g = r[5][0], m = r[5][1];
    pred = '<div class="pred' + (written.has(g) ? ' w' : '') + '"><span class="g">' + esc(G[g]) + '</span><span class="s"><i style="width:' +
           Math.round(m / 10) + '%"></i></span><span class="v">' + fmt(m) + '</span></div>';
    const rest = [];
    for (let k = 2; k < r[5].length && k < 6; k += 2) rest.push(esc(G[r[5][k]]) + ' ' + fmt(r[5][k + 1]));
    if (rest.length) pred += '<div class="more">' + rest.join(", ") + '</div>';
  }
  let extra = "";
  if (r[6].length && (act === "would tag" || act === "tagged")) extra = '<div class="reason">writes: <b>' + esc(names(r[6])) + '</b></div>';
  if (r[8]) extra += '<div><a href="' + esc(encodeURI(r[8].split(SEP).join("/"))) + '" target="_blank">explain picture</a></div>';
  return '<tr class="' + (act === "failed" ? "failed" : "") + '" data-i="' + i + '"><td><span class="dir">' + esc(F[r[0]]) + SEP +
    '</span><span class="name">' + esc(r[1]) + '</span></td><td>' + esc(names(r[4])) + '</td><td>' + pred + '</td><td><span class="badge" style="--c:' + c + '">' +
    esc(act) + '</span>' + (r[7] ? '<div class="reason">' + esc(r[7]) + '</div>' : '') + '</td><td class="reason' + (act === "failed" ? " failed-reason" : "") + '">' +
    esc(R[r[3]]) + extra + '</td></tr>';
}

function albumRow(i){
  const a = D.albums[i], fl = flagged(a);
  const pct = a[2] ? Math.round(100 * a[4] / a[2]) : null;
  const colour = pct === null ? "#ccc" : fl ? "#e09100" : "#2e7d32";
  const tops = a[5].slice(0, 4).map((x) => '<span class="chip">' + esc(G[x[0]]) + ' ' + x[1] + '</span>').join("") + (a[5].length > 4 ? ' …' : '');
  return '<tr class="' + (fl ? "flagged" : "") + '" data-i="' + i + '"><td><a href="#files" class="folder" data-folder="' + esc(F[a[0]]) + '">' + esc(F[a[0]]) +
    '</a>' + (a[7] ? '<div class="reason">album: ' + esc(a[7]) + '</div>' : '') + '</td><td>' + a[1] + (a[2] !== a[1] ? ' <span class="reason">(' + a[2] + ' analysed)</span>' : '') + '</td><td>' +
    (a[8] && a[8].length ? '<b>' + esc(a[8].map((g) => G[g]).join("; ")) + '</b> <span class="reason">(album decision)</span>' +
      (a[9].length ? '<div class="reason">kept their own genre: ' + esc(a[9].join(", ")) + '</div>' : '') +
      (a[3] >= 0 ? '<div class="reason">majority of its tracks: ' + esc(G[a[3]]) + '</div>' : '')
     : (a[3] >= 0 ? '<b>' + esc(G[a[3]]) + '</b>' : '—')) +
    '</td><td>' + (pct === null ? '—' : '<div class="agree"><span class="s"><i style="width:' + pct + '%;background:' + colour + '"></i></span>' + pct + '%' +
    (fl ? ' <span class="flag">disagree</span>' : '') + '</div>') + '</td><td>' + tops + '</td><td>' + (a[6] >= 0 ? esc(G[a[6]]) : '') + '</td></tr>';
}

function draw(){
  const files = state.view === "files";
  const table = $(files ? "files-table" : "albums-table");
  const total = files ? D.rows.length : D.albums.length;
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  if (state.page >= pages) state.page = pages - 1;
  const start = state.page * PAGE, end = Math.min(shown.length, start + PAGE);
  const out = [];
  for (let k = start; k < end; k++) out.push(files ? fileRow(shown[k]) : albumRow(shown[k]));
  table.tBodies[0].innerHTML = out.join("");
  const st = $("status");
  st.dataset.shown = shown.length; st.dataset.total = total;
  const what = (files ? "file" : "album") + (shown.length === 1 ? "" : "s");
  let text = shown.length ? ("Showing " + (start + 1).toLocaleString() + "–" + end.toLocaleString() + " of " + shown.length.toLocaleString() + " " + what) : ("No " + what + " match");
  if (shown.length !== total) text += " (filtered from " + total.toLocaleString() + ")";
  if (!files){ const nf = D.albums.filter(flagged).length; text += "; " + nf.toLocaleString() + " album" + (nf === 1 ? "" : "s") + " with disagreeing tracks (under " + Math.round(D.flag * 100) + "% share the majority genre)"; }
  st.textContent = text + ".";
  $("page").textContent = "page " + (state.page + 1) + " of " + pages;
  $("first").disabled = $("prev").disabled = state.page === 0;
  $("next").disabled = $("last").disabled = state.page >= pages - 1;
  for (const th of table.tHead.rows[0].cells){
    const s = state.sort[state.view];
    th.classList.toggle("asc", s.key === th.dataset.sort && s.dir > 0);
    th.classList.toggle("desc", s.key === th.dataset.sort && s.dir < 0);
  }
  saveHash();
}

function setView(v){
  state.view = v;
  $("tab-files").classList.toggle("on", v === "files");
  $("tab-albums").classList.toggle("on", v === "albums");
  $("files-table").hidden = v !== "files";
  $("albums-table").hidden = v !== "albums";
  $("action-filter").hidden = v !== "files";
  $("flag-filter").hidden = v !== "albums";
  refilter();
}

function setActions(only){
  state.actions = new Set(only ? [only] : A);
  for (const cb of document.querySelectorAll("#action-filter input")) cb.checked = state.actions.has(cb.dataset.action);
}

function saveHash(){
  const p = new URLSearchParams();
  if (state.view !== "files") p.set("view", state.view);
  if (state.q) p.set("q", state.q);
  const acts = [...state.actions].filter((a) => document.querySelector('#action-filter input[data-action="' + a + '"]'));
  if (acts.length !== document.querySelectorAll("#action-filter input").length) p.set("action", acts.join(","));
  if (state.onlyFlagged) p.set("flagged", "1");
  const h = p.toString();
  if (("#" + h) !== location.hash && !(h === "" && location.hash === "")) history.replaceState(null, "", h ? "#" + h : location.pathname + location.search);
}

function loadHash(){
  const h = location.hash.replace(/^#/, "");
  if (!h || h.indexOf("=") < 0) return false;
  const p = new URLSearchParams(h);
  state.q = p.get("q") || ""; $("q").value = state.q;
  if (p.has("action")){ state.actions = new Set(p.get("action").split(",").filter((a) => A.includes(a)));
    for (const cb of document.querySelectorAll("#action-filter input")) cb.checked = state.actions.has(cb.dataset.action); }
  state.onlyFlagged = p.get("flagged") === "1"; $("only-flagged").checked = state.onlyFlagged;
  state.view = p.get("view") === "albums" ? "albums" : "files";
  return true;
}

let timer = null;
$("q").addEventListener("input", (ev) => { clearTimeout(timer); timer = setTimeout(() => { state.q = ev.target.value; refilter(); }, D.rows.length > 20000 ? 200 : 60); });
$("q").addEventListener("keydown", (ev) => { if (ev.key === "Enter"){ clearTimeout(timer); state.q = ev.target.value; refilter(); } });
for (const cb of document.querySelectorAll("#action-filter input")) cb.addEventListener("change", () => {
  if (cb.checked) state.actions.add(cb.dataset.action); else state.actions.delete(cb.dataset.action); refilter(); });
$("only-flagged").addEventListener("change", (ev) => { state.onlyFlagged = ev.target.checked; refilter(); });
for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => setView(t.dataset.view));
for (const el of document.querySelectorAll(".tile, .show-action")) el.addEventListener("click", (ev) => {
  ev.preventDefault(); setActions(el.dataset.action); state.q = ""; $("q").value = ""; setView("files");
  $("files").scrollIntoView(); });
for (const th of document.querySelectorAll("th[data-sort]")) th.addEventListener("click", () => {
  const s = state.sort[state.view];
  if (s.key === th.dataset.sort) s.dir = -s.dir; else { s.key = th.dataset.sort; s.dir = th.dataset.sort === "score" ? -1 : 1; }
  refilter(); });
$("albums-table").addEventListener("click", (ev) => {
  const a = ev.target.closest("a.folder"); if (!a) return; ev.preventDefault();
  setActions(null); state.q = a.dataset.folder + SEP; $("q").value = state.q; setView("files");
  $("files").scrollIntoView(); });
$("first").addEventListener("click", () => { state.page = 0; draw(); });
$("prev").addEventListener("click", () => { state.page--; draw(); });
$("next").addEventListener("click", () => { state.page++; draw(); });
$("last").addEventListener("click", () => { state.page = 1e9; draw(); });
loadHash();
setView(state.view);
document.body.dataset.ready = "1";
})();
"""
