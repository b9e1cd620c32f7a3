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

The page's style sheet and script are files of their own, ``tagger/assets/report.css`` and
``report.js`` (package data), inlined into every page.

The summary is rendered here and reads without JavaScript. The rows travel as compact JSON
(folder names, reasons and genres interned; scores in thousandths) and the table is drawn by a
small script one page at a time, so 100,000 rows stay a few megabytes and open in a second.
"""

from __future__ import annotations

import functools
import html
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from tagger.names import visible, visible_tree
from tagger.palette import ACTION_COLOURS, OTHER
from tagger.report.common import ACTIONS, iso_utc, tool_name
from tagger.report.model_card import metric_lines, per_class

if TYPE_CHECKING:
    from tagger.report.model import Report, Row

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

COLOURS = ACTION_COLOURS  # tagger.palette, shared with the explain pictures
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
        group = ("album", r.album) if r.album else ("folder", os.path.dirname(r.path))
        groups.setdefault(group, []).append(r)
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
    explain, format, heard]`` where folder/action/reason index their tables, existing and written
    are lists of genre indices, predicted is flat ``[genre, floor(score*1000), ...]`` best first
    and heard is ``[seconds analysed (None: not analysed), sampling, rechecked]`` (the JSON
    report's duration, sampling and rechecked).
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
            r.format, [None if r.duration is None else round(float(r.duration)), r.sampling, r.rechecked],
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
    x: float = label_w
    for a in stack:  # legend
        out.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{COLOURS[a]}"/>'
                   f'<text x="{x + 14}" y="13" class="legend">{_e(a)}</text>')
        x += 14 + 7 * len(a) + 18
    for i, (genre, c) in enumerate(bars):
        y = pad + i * row_h
        total = sum(c.values())
        out.append(f'<g class="bar" data-genre="{_e(genre)}" data-count="{total}">'
                   f'<title>{_e(genre)}: {_files(total)} ('
                   + ", ".join(f"{c[a]} {a}" for a in stack if c[a])
                   + ")</title>"
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
    bins: list[Counter[str]] = [Counter() for _ in range(CONFIDENCE_BINS)]
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
    x: float = left
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
        add("thresholds", " ".join(f'<span class="chip">{_e(lab)} {float(v):.2f}</span>'
                                   for lab, v in per_label.items()))
    by_genre = per_class(m.get("metrics") or {})
    extra = ""
    if by_genre:
        body = "".join(
            f"<tr><td>{_e(lab)}</td><td>{_fmt(v.get('precision'))}</td><td>{_fmt(v.get('recall'))}</td>"
            f"<td>{_fmt(v.get('f1'))}</td><td>{_e(v.get('support', ''))}</td></tr>"
            for lab, v in by_genre.items() if isinstance(v, dict))
        extra = ('<details><summary>scores per genre</summary><table class="kv small"><tr><th>genre</th>'
                 f'<th>precision</th><th>recall</th><th>F1</th><th>tracks</th></tr>{body}</table></details>')
    return f'<table class="kv" id="model-table">{"".join(rows)}</table>{extra}'


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else _e(v if v is not None else "")


def _tiles(report: Report) -> str:
    out = []
    for a, n in report.counts.items():
        out.append(f'<button type="button" class="tile" id="count-{a.replace(" ", "-")}" data-action="{_e(a)}" '
                   f'data-count="{n}" style="--c:{COLOURS.get(a, OTHER)}"><span class="n">{n:,}</span>'
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


@functools.cache
def asset(name: str) -> str:
    """The text of ``tagger/assets/NAME`` (the page's CSS and JS), read once; ``__ACTION_COLOURS__``
    in it becomes :data:`tagger.palette.ACTION_COLOURS` as a JSON object."""
    text = resources.files("tagger").joinpath("assets", name).read_text(encoding="utf-8")
    return text.replace("__ACTION_COLOURS__", json.dumps(ACTION_COLOURS, separators=(",", ":")))


def render(report: Report) -> str:
    """The whole page as one string."""
    return visible(page(report))  # page shows names visibly already; this is the safety net


def page(report: Report) -> str:
    """The page: the summary drawn here, the rows as JSON for the script, the assets inlined."""
    title = f"tagger {'dry-run plan' if report.dry_run else 'run report'}"
    when = iso_utc(report.started) or ""
    meta_bits = [f"{_e(tool_name())}", f"started {_e(when)}"]
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
    action_filter = "".join(f'<label class="af" style="--c:{COLOURS.get(a, OTHER)}">'
                            f'<input type="checkbox" data-action="{_e(a)}" checked> {_e(a)}</label>'
                            for a in report.counts)
    mode = "dry" if report.dry_run else "real"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'; img-src 'self' data: file:;">
<title>{_e(title)}</title>
<style>
{asset("report.css")}</style></head>
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
<span id="action-filter">{action_filter}</span>
<label id="flag-filter" class="af" hidden><input type="checkbox" id="only-flagged"> only disagreeing albums</label>
</div>
<p id="status" class="status"></p>
<noscript><p class="empty">The file table needs JavaScript; the JSON or CSV report has the same rows.</p></noscript>
<div class="scroll"><table id="files-table" class="rows"><thead><tr>
<th data-sort="path">File</th><th data-sort="existing">Existing</th><th data-sort="score">Predicted (score)</th>
<th data-sort="action">Action</th><th data-sort="reason">Reason</th></tr></thead><tbody></tbody></table>
<table id="albums-table" class="rows" hidden><thead><tr>
<th data-sort="folder">Album / folder</th><th data-sort="tracks">Tracks</th>\
<th data-sort="majority">Album decision · majority</th>
<th data-sort="agreement">Agreement</th><th>Top genre of its tracks</th><th data-sort="existing">Existing</th>
</tr></thead><tbody></tbody></table></div>
<div class="pager"><button type="button" id="first">«</button><button type="button" id="prev">‹ previous</button>
<span id="page"></span><button type="button" id="next">next ›</button><button type="button" id="last">»</button></div>
</section>
{_explain_gallery(report)}
</main>
<footer class="wrap">Written by {_e(tool_name())}. This page is self-contained: \
no network access is needed or made.</footer>
<script id="data" type="application/json">{data}</script>
<script>
{asset("report.js")}</script>
</body></html>
"""
