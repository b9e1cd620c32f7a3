"""``tagger evaluate``'s reports: JSON (everything), CSV (a row per file) and HTML (one
self-contained page in the tag report's style: its CSS and helpers from
:mod:`tagger.report.html_report`, the confusion matrix as a table and as the PNG inline).

Strings in, strings out: :func:`write` is the only function that touches the disk (atomically,
as the tag report does).
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path
from typing import Any

from tagger.evaluate import EVALUATED, FAILED, NO_GENRE, NO_PERSON, ROW_FIELDS, Evaluation, Figure
from tagger.names import json_text, visible
from tagger.report import atomic_write_text, plural, tool_name
from tagger.report.html_report import _e, asset
from tagger.report.model_card import metric_lines

#: The tag report's stylesheet (tagger/assets/report.css), so the page looks like it.
REPORT_CSS = asset("report.css")

SUFFIXES = (".json", ".csv", ".html", ".htm")


def to_json(ev: Evaluation) -> str:
    return json_text({"tool": tool_name(), "command": "evaluate", **ev.to_dict()}, indent=1) + "\n"


def to_csv(ev: Evaluation) -> str:
    """One row per file (:data:`tagger.evaluate.ROW_FIELDS`); lists joined with ``; ``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ROW_FIELDS)
    for row in ev.rows:
        w.writerow([_cell(row[k]) for k in ROW_FIELDS])
    return visible(buf.getvalue())


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, (list, tuple)):
        return "; ".join("" if x is None else str(x) for x in v)
    return str(v)


def write(ev: Evaluation, path: str | Path, *, png: bytes | None = None) -> Path:
    """Write the report in the format its suffix names; ``png``: the confusion matrix picture
    for the HTML page (inlined)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".json":
        text = to_json(ev)
    elif ext == ".csv":
        text = to_csv(ev)
    elif ext in (".html", ".htm"):
        text = visible(render(ev, png=png))
    else:
        raise ValueError(f"{path}: report format must be .json, .csv or .html")
    atomic_write_text(path, text)
    return path


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

CSS = REPORT_CSS + asset("tables.css") + asset("evaluate.css")

_TILE = "#1f5fa8"


def _pct(f: Figure) -> str:
    return "—" if f.value is None else f"{f.value:.0%}"


def _fig(f: Figure) -> str:
    if not f.n:
        return '<span class="ci">no files</span>'
    return (f"{f.value:.1%} <span class=\"ci\">({f.hits:,}/{f.n:,}; 95% CI {f.low:.0%}–{f.high:.0%})</span>")


def _ci(v: Any, ci: Any) -> str:
    if v is None:
        return '<span class="ci">—</span>'
    lo, hi = (ci or (0.0, 1.0))[:2]
    return f"{float(v):.2f} <span class=\"ci\">{float(lo):.2f}–{float(hi):.2f}</span>"


def headline(ev: Evaluation) -> str:
    a = ev.agreement
    if not a.files:
        return "No file with a person's genre could be analysed: nothing to compare."
    return (f"On {a.files:,} files a person tagged, the model's best genre agrees with theirs on {_pct(a.top1)}. "
            f"tagger tag would write a genre on {_pct(a.coverage)} of them, and {_pct(a.precision)} of what it "
            f"would write agrees.")


def _tiles(ev: Evaluation) -> str:
    a, lib = ev.agreement, ev.library
    tiles = [("files compared", f"{a.files:,}", _TILE), ("top-1 agreement", _pct(a.top1), _TILE),
             ("precision at the thresholds", _pct(a.precision), "#2e7d32"),
             ("coverage (would get a genre)", _pct(a.coverage), "#2e7d32"),
             ("without a person's genre", f"{lib.get('no_person', 0):,}", "#78909c"),
             ("failed", f"{lib.get('failed', 0):,}", "#c62828")]
    return "".join(f'<div class="tile" style="--c:{c}"><span class="n">{_e(v)}</span>'
                   f'<span class="a">{_e(k)}</span></div>'
                   for k, v, c in tiles)


def _figures(ev: Evaluation) -> str:
    a, o = ev.agreement, ev.options
    thr = o.get("thresholds_text") or f"min-confidence {o.get('min_confidence')}"
    rows = [
        ("top-1 agreement", _fig(a.top1), "the model's best label maps to one of the person's genres"),
        ("…on genres it knows", _fig(a.top1_reachable), "the same, on files with a genre some label maps to"),
        ("precision", _fig(a.precision), f"genres tag would write ({thr}, top-k {o.get('top_k')}) that are "
                                         "among the person's"),
        ("precision per file", _fig(a.file_precision), "files tag would write on whose first genre is the person's"),
        ("coverage", _fig(a.coverage), "files tag would write a genre on (the rest: uncertain)"),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td><td class=\"ci\">{_e(h)}</td></tr>" for k, v, h in rows)
    return f'<table class="kv" id="figures">{body}</table><p class="hint">{_e(o.get("decided", ""))}.</p>'


def _mapping(ev: Evaluation) -> str:
    a = ev.agreement
    body = []
    for p in a.mapping.pairs:
        how = p.how or "unmapped"
        genre = _e(a.names.get(p.genre, p.genre)) if p.genre else "—"
        body.append(f'<tr data-label="{_e(p.label)}"><td><code>{_e(p.label)}</code></td><td>{_e(p.written)}</td>'
                    f'<td><b>{genre}</b></td><td><span class="how {_e(how)}">{_e(how)}</span></td>'
                    f'<td class="n">{p.top1_files:,}</td><td>{_e(p.detail)}</td></tr>')
    unreached = [a.names[k] for k in a.mapping.unreached(a.genres)]
    extra = (f'<p class="hint">Library genres no label maps to (the model can never agree on them): '
             f'{", ".join(f"<span class=chip>{_e(g)}</span>" for g in unreached)}</p>') if unreached else ""
    return (f'<table class="grid" id="mapping-table"><tr><th>label</th><th>tag writes</th><th>library genre</th>'
            f'<th>how</th><th>top-1 of</th><th>why</th></tr>{"".join(body)}</table>'
            f'<p class="hint">Rule for pairs by co-occurrence: {_e(a.mapping.rule.describe())}.</p>{extra}')


def _f1(v: Any) -> str:
    return "—" if v is None else f"{float(v):.2f}"


def _per_genre(ev: Evaluation) -> str:
    a = ev.agreement
    tracks = {g: (t, al) for g, t, al in ev.taxonomy}
    body = []
    for name, m in a.per_genre.items():
        body.append(f'<tr data-genre="{_e(name)}"><td>{_e(name)}</td><td class="n">{m.get("support", 0):,}</td>'
                    f'<td class="n">{tracks.get(name, (0, 0))[1]:,}</td><td class="n">{m.get("predicted", 0):,}</td>'
                    f'<td>{_ci(m.get("precision"), m.get("precision_ci95"))}</td>'
                    f'<td>{_ci(m.get("recall"), m.get("recall_ci95"))}</td>'
                    f'<td>{_f1(m.get("f1"))}</td></tr>')
    return (f'<table class="grid" id="genre-table"><tr><th>library genre</th><th>files</th><th>albums</th>'
            f'<th>tag would write it</th><th>precision (95% CI)</th><th>recall (95% CI)</th><th>F1</th></tr>'
            f'{"".join(body)}</table><p class="hint">Precision: of the files tag would give the genre, the share '
            f'whose person gave it too. Recall: of the files the person gave it, the share tag would give it.</p>')


def _confusion(ev: Evaluation, png: bytes | None) -> str:
    a = ev.agreement
    if not a.single_genre_files:
        return '<p class="empty">No file carries exactly one genre, so there is no confusion matrix.</p>'
    cm, names = a.confusion, a.confusion_names
    keep_rows = [i for i in range(len(names)) if cm[i].sum()]
    keep_cols = [j for j in range(len(names)) if cm[:, j].sum() or j in keep_rows]
    top = max(int(cm.max()), 1)
    head = "".join(f'<th class="col">{_e(names[j])}</th>' for j in keep_cols)
    rows = []
    for i in keep_rows:
        cells = []
        for j in keep_cols:
            v = int(cm[i, j])
            shade = f"background:rgba(31,95,168,{0.08 + 0.6 * v / top:.2f})" if v else ""
            cells.append(f'<td class="{"diag" if i == j else ""}" style="{shade}">{v or ""}</td>')
        rows.append(f"<tr><th>{_e(names[i])}</th>{''.join(cells)}<td class=\"n ci\">{int(cm[i].sum())}</td></tr>")
    img = (f'<img class="cm" alt="confusion matrix" '
           f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
           if png else "")
    return (f'<table class="grid cm" id="confusion-table"><tr><th>person ↓ · model →</th>{head}<th>files</th></tr>'
            f'{"".join(rows)}</table><p class="hint">{a.single_genre_files:,} files with exactly one genre; rows: '
            f'the person\'s genre, columns: the model\'s best label mapped to a library genre '
            f'(<i>{_e(NO_GENRE)}</i>: a label that maps to none). Empty rows and columns are left out.</p>{img}')


def _disagreements(ev: Evaluation) -> str:
    ds = ev.agreement.disagreements
    if not ds:
        return '<p class="empty">The model\'s best genre agrees with the person on every file.</p>'
    body = []
    for d in ds:
        scores = ", ".join(f"{g} {s:.2f}" for g, s in d.ranked)
        mine = "—" if d.person_score is None else f"{d.person_score:.2f}"
        body.append(f'<tr><td><code>{_e(d.path)}</code></td><td>{_e("; ".join(d.person))}</td>'
                    f'<td><b>{_e(d.top_written)}</b> {d.top_score:.2f}'
                    f'{"" if d.top_genre else " <span class=ci>(no library genre)</span>"}</td>'
                    f'<td class="n">{mine}</td><td>{_e("; ".join(d.would_write) or "nothing (uncertain)")}</td>'
                    f'<td class="ci">{_e(scores)}</td></tr>')
    return (f'<table class="grid" id="disagreements-table"><tr><th>file</th><th>person\'s genres</th>'
            f'<th>model\'s best</th><th>score of the person\'s genre</th><th>tag would write</th>'
            f'<th>best scores</th></tr>'
            f'{"".join(body)}</table><p class="hint">Files whose best label maps to none of the person\'s genres, '
            f'the most confident first: mislabelled files, or where the model is wrong.</p>')


def _unlabelled(ev: Evaluation) -> str:
    u = ev.unlabelled
    if not u.files:
        return '<p class="empty">Every analysed file carries a person\'s genre.</p>'
    chips = " ".join(f'<span class="chip">{_e(g)} {n:,}</span>' for g, n in u.would_write)
    owned = f" ({u.tagger_owned:,} of them with tagger's own genres)" if u.tagger_owned else ""
    return (f'<p id="unlabelled">{_e(plural(u.files, "file"))} without a person\'s genre{_e(owned)}: tag would write '
            f'{chips or "nothing"}; {u.uncertain:,} uncertain (left alone).</p>')


def _failures(ev: Evaluation) -> str:
    if not ev.failed:
        return ""
    items = "".join(f'<li><code>{_e(p)}</code> <span class="why">— {_e(r)}</span></li>' for p, r in ev.failed[:200])
    more = f"<p>and {len(ev.failed) - 200:,} more (see the JSON or CSV report).</p>" if len(ev.failed) > 200 else ""
    return (f'<section id="failures" class="card bad"><h2>{len(ev.failed):,} '
            f'{"file" if len(ev.failed) == 1 else "files"} failed</h2><p class="hint">Not analysed, so not '
            f'counted. Nothing was written to them (nor to any file).</p><ul class="failures">{items}</ul>'
            f'{more}</section>')


def _model(ev: Evaluation) -> str:
    m = ev.model
    rows = [("model", f"<b>{_e(m.get('name') or '(unnamed)')}</b> <code>{_e(m.get('model_id', ''))}</code>"
                      + (f" · {_e(m['architecture'])}" if m.get("architecture") else "")),
            (f"labels ({len(m.get('labels', []))})", " ".join(f'<span class="chip">{_e(x)}</span>'
                                                             for x in m.get("labels", [])))]
    rows += [(k, _e(v)) for k, v in metric_lines(m.get("metrics") or {})]
    genres = " ".join(f'<span class="chip">{_e(g)} {t:,}</span>' for g, t, _ in ev.taxonomy)
    rows.append((f"library genres ({len(ev.taxonomy)})", genres))
    return '<table class="kv" id="model-table">' + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>"
                                                            for k, v in rows) + "</table>"


def render(ev: Evaluation, *, png: bytes | None = None) -> str:
    """The whole page as one string (no network: everything inline)."""
    notes = "".join(f"<li>{_e(n)}</li>" for n in ev.notes)
    counts = ev.library
    paths = ", ".join(counts.get("paths") or [])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:;">
<title>tagger evaluate</title>
<style>{CSS}</style></head>
<body class="dry">
<header><div class="wrap">
<h1>tagger evaluate: how the model agrees with your genres</h1>
<p id="headline" class="headline">{_e(headline(ev))}</p>
<p class="meta">{_e(tool_name())} · {_e(paths)} · {counts.get('files', 0):,} files \
({counts.get('evaluated', 0):,} compared,
{counts.get('no_person', 0):,} without a person's genre, {counts.get('failed', 0):,} failed) \
· nothing was written to any file</p>
</div></header>
<main class="wrap">
<section id="summary" class="tiles">{_tiles(ev)}</section>
{f'<ul class="notes">{notes}</ul>' if notes else ''}
{_failures(ev)}
<section id="figures-card" class="card"><h2>Agreement</h2>{_figures(ev)}</section>
<section id="mapping" class="card"><h2>Model labels and your genres</h2>{_mapping(ev)}</section>
<section id="per-genre" class="card"><h2>Per genre</h2>{_per_genre(ev)}</section>
<section id="confusion" class="card"><h2>Confusion matrix</h2>{_confusion(ev, png)}</section>
<section id="disagreements" class="card"><h2>Where the model disagrees most confidently</h2>\
{_disagreements(ev)}</section>
<section id="no-person" class="card"><h2>Files without a person's genre</h2>{_unlabelled(ev)}</section>
<section id="model" class="card"><h2>Model</h2>{_model(ev)}</section>
<p class="hint">Every file, with its scores and whether it agrees: the JSON or CSV report.</p>
</main>
<footer class="wrap">Written by {_e(tool_name())}. This page is self-contained: \
no network access is needed or made.</footer>
</body></html>
"""


__all__ = ["EVALUATED", "FAILED", "NO_PERSON", "SUFFIXES", "render", "to_csv", "to_json", "write"]
