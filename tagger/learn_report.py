"""``tagger learn``'s report: JSON (everything: ``MODEL_DIR/learn.json`` always) and HTML (one
self-contained page in the tag report's style: its CSS and helpers from
:mod:`tagger.report.html_report`, the pictures inline).

Strings in, strings out: :func:`write` is the only function that touches the disk (atomically,
as the tag report does).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tagger.names import json_text, visible
from tagger.report import atomic_write_text
from tagger.report.html_report import _e, asset

#: The tag report's stylesheet (tagger/assets/report.css), so the page looks like it.
REPORT_CSS = asset("report.css")

SUFFIXES = (".json", ".html", ".htm")


def to_json(report: Mapping[str, Any]) -> str:
    return json_text(dict(report), indent=1) + "\n"


def write(report: Mapping[str, Any], path: str | Path, *, images: Mapping[str, bytes] | None = None) -> Path:
    """Write the report in the format its suffix names (``images``: name -> PNG bytes, inlined in HTML)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".json":
        text = to_json(report)
    elif ext in (".html", ".htm"):
        text = visible(render(report, images=images or {}))
    else:
        raise ValueError(f"{path}: a learn report must end in .json or .html")
    atomic_write_text(path, text)
    return path


# -- text helpers (the console and the page say the same) -----------------------------------------


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def with_ci(v: float | None, ci: Any) -> str:
    if v is None:
        return "–"
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"{v:.0%} ({ci[0]:.0%}–{ci[1]:.0%})"
    return f"{v:.0%}"


def threshold_text(g: Mapping[str, Any]) -> str:
    if g.get("reachable"):
        return f"{g['threshold']:.3f}"
    best = g.get("best_precision")
    return "never" + (f" (best {best:.0%})" if isinstance(best, (int, float)) else "")


def genre_table(report: Mapping[str, Any]) -> list[str]:
    """The per-genre table ``tagger learn`` prints: the learnt model's cross-validated precision
    and recall at its thresholds beside the backbone model's on the same tracks."""
    genres = report.get("genres") or []
    base = (report.get("base_model") or {}).get("name") or "backbone model"
    head = ("genre", "tracks", "threshold", "precision (95% CI)", "recall (95% CI)", f"{base}: precision",
            "recall")
    rows = [head]
    for g in genres:
        learnt, b = g["learnt"], g.get("base")
        rows.append((g["name"], str(g["tracks"]), threshold_text(g),
                     with_ci(learnt["precision"], learnt["precision_ci95"]),
                     with_ci(learnt["recall"], learnt["recall_ci95"]),
                     "not in its labels" if b is None else pct(b["precision"]),
                     "" if b is None else pct(b["recall"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  " + "  ".join(c.ljust(widths[i]) if i != 1 else c.rjust(widths[i]) for i, c in enumerate(r)).rstrip()
            for r in rows]


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """Learnt vs backbone model over the labelled tracks, one line each."""
    s = report.get("summary") or {}
    base = (report.get("base_model") or {}).get("name") or "backbone model"
    out = []
    for who, key in (("learnt model", "learnt"), (base, "base")):
        d = s.get(key)
        if not d:
            continue
        out.append(f"{who}: {d['given']}/{d['tracks']} tracks given a genre, {d['right']} one of theirs "
                   f"({pct(d['right_share'])}, 95% CI {pct(d['right_ci95'][0])}–{pct(d['right_ci95'][1])}), "
                   f"{d['wrong']} only genres not theirs")
    t = report.get("top1") or {}
    if t.get("tracks"):
        out.append(f"best genre right on {t['right']}/{t['tracks']} single-genre tracks "
                   f"({pct(t['accuracy'])}, 95% CI {pct(t['ci95'][0])}–{pct(t['ci95'][1])})")
    return out


# -- HTML ---------------------------------------------------------------------------------------------

CSS = REPORT_CSS + asset("tables.css") + asset("learn.css")


def _kv(rows: list[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _genres_html(report: Mapping[str, Any]) -> str:
    base = (report.get("base_model") or {}).get("name") or "backbone model"
    head = ("<tr><th>genre</th><th>tracks</th><th>threshold</th><th>precision (95% CI)</th><th>recall (95% CI)</th>"
            f"<th>F1</th><th>{_e(base)}: precision</th><th>recall</th></tr>")
    body = []
    for g in report.get("genres") or []:
        learnt, b = g["learnt"], g.get("base")
        never = "" if g.get("reachable") else ' class="never"'
        f1 = "–" if learnt["f1"] is None else f"{learnt['f1']:.2f}"
        body.append(
            f"<tr><td>{_e(g['name'])}</td><td class=\"n\">{g['tracks']}</td><td{never}>{_e(threshold_text(g))}</td>"
            f"<td>{_e(with_ci(learnt['precision'], learnt['precision_ci95']))}</td>"
            f"<td>{_e(with_ci(learnt['recall'], learnt['recall_ci95']))}</td>"
            f"<td class=\"n\">{_e(f1)}</td>"
            + ("<td colspan=\"2\" class=\"empty\">not in its labels</td>" if b is None else
               f"<td>{_e(with_ci(b['precision'], b['precision_ci95']))}</td>"
               f"<td>{_e(with_ci(b['recall'], b['recall_ci95']))}</td>")
            + "</tr>")
    return f'<table class="grid">{head}{"".join(body)}</table>'


def _img(images: Mapping[str, bytes], name: str, alt: str) -> str:
    data = images.get(name)
    if not data:
        return ""
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def render(report: Mapping[str, Any], *, images: Mapping[str, bytes]) -> str:
    """The whole page as one string."""
    lib = report.get("library") or {}
    cv = report.get("cv") or {}
    model = report.get("model") or {}
    tax = report.get("taxonomy") or {}
    title = "tagger learn report"
    headline = (f"{len(report.get('genres') or [])} genres learnt from {lib.get('labelled_tracks', 0):,} tracks "
                f"a person tagged; target precision {cv.get('target_precision', 0):.0%}.")
    lib_rows = [
        ("library", "<br>".join(f"<code>{_e(p)}</code>" for p in lib.get("paths") or [])),
        ("files", _e(f"{lib.get('files', 0):,} found, {lib.get('person_tagged', 0):,} with a person's genre, "
                     f"{lib.get('tagger_owned', 0):,} with tagger's own (not labels), "
                     f"{lib.get('without_genre', 0):,} without a genre, {len(lib.get('failed') or []):,} failed")),
        ("analysis", _e(f"{lib.get('analysed', 0):,} analysed now, {lib.get('from_store', 0):,} from the store of "
                        "analyses")),
        ("date", _e(lib.get("date", ""))),
    ]
    base = report.get("base_model") or {}
    cv_rows = [
        ("folds", _e(f"{cv.get('folds')} folds grouped by {cv.get('grouping')} ({cv.get('groups')} groups); "
                     f"tracks per fold {cv.get('fold_tracks')}")),
        ("head", _e(f"one-vs-rest logistic regression on the {report.get('embedding_size', '?')}-value embedding, "
                    f"L2 {cv.get('l2')}, classes weighted per genre")),
        ("thresholds", _e(f"per genre, the lowest reaching {cv.get('target_precision', 0):.0%} precision; each fold "
                          "decided at thresholds chosen on the other folds (cross-fitted)")),
        ("compared with", _e(f"{base.get('name', '')} ({base.get('model_id', '')}) at its threshold "
                             f"{base.get('min_confidence')}, top {base.get('top_k')}; labels mapped by name: "
                             + (", ".join(f"{k} → {v}" for k, v in (base.get("mapping") or {}).items()) or "none"))),
    ]
    notes = list(cv.get("notes") or []) + list(report.get("notes") or [])
    notes_html = ("<ul class=\"notes\">" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>") if notes else ""
    failed = lib.get("failed") or []
    failed_html = ""
    if failed:
        items = "".join(f'<li><code>{_e(f["path"])}</code> <span class="why">{_e(f["reason"])}</span></li>'
                        for f in failed[:100])
        failed_html = (f'<section class="card bad"><h2>Failed files ({len(failed)})</h2>'
                       f'<ul class="failures">{items}</ul></section>')
    model_rows = [("model", f"<code>{_e(model.get('dir', ''))}</code> <code>{_e(model.get('model_id', ''))}</code>"),
                  ("use it", f"<code>tagger tag LIBRARY --model {_e(model.get('dir', ''))}</code>"
                   + (" (the default model now)" if model.get("as_default") else ""))]
    summary = "".join(f"<li>{_e(line)}</li>" for line in summary_lines(report))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:;">
<title>{_e(title)}</title>
<style>{CSS}</style></head>
<body class="real">
<header><div class="wrap">
<h1>{_e(title)}</h1>
<p id="headline" class="headline">{_e(headline)}</p>
<p class="meta">{_e(report.get("tool", ""))} · {_e(report.get("created", ""))}</p>
</div></header>
<main class="wrap">
{notes_html}
<section class="card" id="summary"><h2>What learning gained (cross-validated, on the tracks a person tagged)</h2>
<ul>{summary}</ul></section>
<section class="card" id="genres"><h2>Per genre</h2>{_genres_html(report)}
<p class="hint">Precision and recall of what <code>tagger tag</code> would write (up to top-k genres at the
thresholds), each track scored by a model that never saw it or its album\
{" or artist" if cv.get("grouping") == "album+artist" else ""}.
The {_e(base.get("name", "backbone"))} columns are the model the embeddings came from, on the same tracks.</p></section>
<div class="pics">
<section class="card"><h2>Confusion (tracks with one genre: true vs best)</h2>\
{_img(images, "confusion", "confusion matrix")}</section>
<section class="card"><h2>Precision against coverage</h2>\
{_img(images, "precision_coverage", "precision-coverage curves")}</section>
</div>
<section class="card" id="taxonomy"><h2>Taxonomy</h2>\
<pre class="table">{_e(chr(10).join(tax.get("table") or []))}</pre></section>
<section class="card" id="cv"><h2>How it was measured</h2>{_kv(cv_rows)}</section>
<section class="card" id="library"><h2>Library</h2>{_kv(lib_rows)}</section>
{failed_html}
<section class="card" id="model"><h2>Model</h2>{_kv(model_rows)}</section>
</main>
<footer class="wrap">Written by {_e(report.get("tool", "tagger"))}. This page is self-contained: \
no network access is needed or made.</footer>
</body></html>
"""
