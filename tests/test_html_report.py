"""The HTML report: data, album agreement, charts, self-containedness, size at 100,000 rows, and a
real headless Chromium rendering it (counts, charts, filtering, sorting, albums; screenshot in
artifacts/)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from tagger.report import Report, Row
from tagger.report import html_report as hr
from tests.browser_helpers import Browser, find_chromium
from tests.report_helpers import synthetic_report

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"

pytestmark = [pytest.mark.tf, pytest.mark.ray, pytest.mark.browser]


def embedded_data(page: str) -> dict:
    m = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)
    assert m, "no embedded data"
    return json.loads(m.group(1))


def decode_rows(data: dict) -> list[dict]:
    """The page's rows back as plain dicts (what its script shows)."""
    out = []
    for r in data["rows"]:
        pred = r[5]
        out.append({
            "path": data["folders"][r[0]] + data["sep"] + r[1], "action": data["actions"][r[2]],
            "reason": data["reasons"][r[3]], "existing": [data["genres"][g] for g in r[4]],
            "predicted": [(data["genres"][pred[k]], pred[k + 1] / 1000) for k in range(0, len(pred), 2)],
            "written": [data["genres"][g] for g in r[6]], "error_kind": r[7], "explain": r[8], "format": r[9],
        })
    return out


def row(path, action="would tag", top=("Rock", 0.8), reason="no genre before", **kw) -> Row:
    predicted = [{"genre": top[0], "label": top[0].lower(), "score": top[1]}] if top else []
    return Row(path, "mp3", action, reason, predicted=predicted, **kw)


# ---------------------------------------------------------------------------------------------
# data and albums
# ---------------------------------------------------------------------------------------------

def test_embedded_rows_round_trip_with_failures_first():
    report = synthetic_report(600, seed=1)
    page = hr.render(report)
    rows = decode_rows(embedded_data(page))
    assert len(rows) == len(report.rows)
    by_path = {r.path: r for r in report.rows}
    for got in rows:
        want = by_path[got["path"]]
        assert got["action"] == want.action and got["reason"] == want.reason
        assert got["existing"] == want.existing and got["written"] == want.written
        assert got["predicted"] == [(p["genre"], pytest.approx(p["score"], abs=1.001e-3)) for p in want.predicted]
    order = [hr.ORDER.index(r["action"]) for r in rows]
    assert order == sorted(order) and rows[0]["action"] == "failed"
    assert Counter(r["action"] for r in rows) == Counter({k: v for k, v in report.counts.items() if v})


def test_albums_majority_agreement_and_flags():
    report = Report(dry_run=True, options={"min_confidence": 0.4})
    for i in range(4):
        report.add(row(f"/m/A/{i}.mp3", top=("Rock", 0.9)))
    for i, g in enumerate(["Rock", "Rock", "Jazz", "Metal"]):
        report.add(row(f"/m/B/{i}.mp3", top=(g, 0.7)))
    report.add(row("/m/C/0.mp3", top=("Pop", 0.6)))
    report.add(row("/m/C/1.mp3", action="failed", top=None, reason="cannot decode audio"))
    report.add(row("/m/D/0.mp3", action="skipped", top=None, reason="has a genre", existing=["Blues"]))
    albums = {a.folder: a for a in hr.albums(report.rows)}
    a, b, c, d = albums["/m/A"], albums["/m/B"], albums["/m/C"], albums["/m/D"]
    assert (a.majority, a.agreement, a.flagged) == ("Rock", 1.0, False)
    assert (b.majority, b.agree, b.analysed, b.flagged) == ("Rock", 2, 4, True)
    assert b.genres == (("Rock", 2), ("Jazz", 1), ("Metal", 1))
    assert (c.tracks, c.analysed, c.flagged) == (2, 1, False)  # one analysed track cannot disagree
    assert (d.majority, d.agreement, d.existing) == ("", None, "Blues")
    assert hr.albums(report.rows)[0].folder == "/m/B"  # disagreeing albums first
    assert 0.5 < hr.AGREEMENT_FLAG <= 0.75 + 1e-9  # 3 of 4 agreeing is fine, 2 of 4 is not


# ---------------------------------------------------------------------------------------------
# charts
# ---------------------------------------------------------------------------------------------

def _svg(fragment: str) -> ET.Element:
    return ET.fromstring(fragment)


def test_charts_count_every_analysed_file():
    report = synthetic_report(400, seed=2)
    analysed = [r for r in report.rows if r.predicted]
    genre = _svg(hr.genre_chart(report))
    bars = genre.findall("{*}g[@class='bar']") or genre.findall("g[@class='bar']")
    got = {b.get("data-genre"): int(b.get("data-count")) for b in bars}
    assert got == dict(Counter(r.predicted[0]["genre"] for r in analysed))
    for b in bars:  # stacked segments add up to the bar
        assert sum(int(s.get("data-count")) for s in b.iter() if s.get("class") == "seg") == int(b.get("data-count"))
    hist = _svg(hr.confidence_chart(report))
    bins = [e for e in hist.iter() if e.get("class") == "bin"]
    assert len(bins) == hr.CONFIDENCE_BINS
    assert sum(int(b.get("data-count")) for b in bins) == len(analysed)
    uncertain_bins = {b.get("data-lo") for b in bins
                      for s in b.iter() if s.get("data-action") == "uncertain"}
    assert all(float(lo) < 0.4 for lo in uncertain_bins)  # uncertain files sit left of the threshold
    thr = [e for e in hist.iter() if e.get("id") == "threshold"]
    assert thr and thr[0].get("data-value") == "0.40"


def test_many_genres_are_folded_into_other():
    report = Report(dry_run=True)
    for i in range(40):
        for k in range(i % 3 + 1):
            report.add(row(f"/m/{i}/{k}.mp3", top=(f"Genre{i:02d}", 0.9)))
    bars = [e for e in _svg(hr.genre_chart(report)).iter() if e.get("class") == "bar"]
    assert len(bars) == hr.CHART_GENRES + 1
    assert bars[-1].get("data-genre") == f"{40 - hr.CHART_GENRES} other genres"
    assert sum(int(b.get("data-count")) for b in bars) == len(report.rows)


def test_headline_says_what_happened():
    dry = synthetic_report(200, seed=7)
    c = dry.counts
    assert hr.headline(dry).startswith("Dry run — nothing was written. 200 files: ")
    assert f"{c['would tag']} files would be tagged" in hr.headline(dry) and f"{c['failed']} failed" in hr.headline(dry)
    real = synthetic_report(200, seed=7, dry_run=False)
    assert "Dry run" not in hr.headline(real) and f"{real.counts['tagged']} files tagged" in hr.headline(real)
    page = hr.render(real)
    assert 'id="count-tagged"' in page and 'id="count-would-tag"' not in page


def test_empty_report_renders():
    page = hr.render(Report(dry_run=True))
    assert "No file was analysed" in page and embedded_data(page)["rows"] == []


# ---------------------------------------------------------------------------------------------
# self-contained, safe, light
# ---------------------------------------------------------------------------------------------

def test_page_is_self_contained_and_escapes_everything():
    report = synthetic_report(50, seed=3)
    evil = '/m/</script><script>alert(1)</script>/"<img src=x onerror=alert(2)>.mp3'
    report.add(row(evil, top=("<b>Rock</b>", 0.9), reason="a </script> reason & more"))
    report.notes.append("<script>alert(3)</script>")
    page = hr.render(report)
    assert page.count("<script") == 2  # the data and the page's own script, nothing injected
    assert "<img src=x" not in page and "<b>Rock</b>" not in page
    data = embedded_data(page)
    assert evil in [r["path"] for r in decode_rows(data)]
    # nothing fetched from anywhere: no external URLs, stylesheets, scripts, fonts or images
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert not re.search(r"<link\b|@import|url\(", page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


@pytest.mark.slow
def test_hundred_thousand_rows_stay_light(tmp_path):
    report = synthetic_report(100_000, seed=4)
    path = report.write(tmp_path / "big.html")
    size = path.stat().st_size
    assert size < 15_000_000, f"{size / 1e6:.1f} MB for 100,000 rows"
    assert size / 100_000 < 150  # bytes per row
    data = embedded_data(path.read_text(encoding="utf-8"))
    assert len(data["rows"]) == 100_000 and len(data["albums"]) == 10_000
    assert len(data["folders"]) == 10_000  # interned, not repeated per row


# ---------------------------------------------------------------------------------------------
# in a real browser
# ---------------------------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="chromium not installed (apt-get install chromium); .ci/run installs it")


def _rows_in_table(b) -> list[dict]:
    return b.js("""[...document.querySelectorAll('#files-table tbody tr')].map(tr => ({
        path: tr.querySelector('.dir').textContent + tr.querySelector('.name').textContent,
        action: tr.querySelector('.badge').textContent,
        score: tr.querySelector('.pred .v') ? parseFloat(tr.querySelector('.pred .v').textContent) : -1}))""")


def _status(b) -> tuple[int, int]:
    return tuple(b.js("[+document.getElementById('status').dataset.shown, +document.getElementById('status').dataset.total]"))


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_report_in_headless_chromium(tmp_path):
    report = synthetic_report(1200, seed=5)
    page = report.write(tmp_path / "plan.html")
    counts = report.counts
    analysed = [r for r in report.rows if r.predicted]
    by_genre = Counter(r.predicted[0]["genre"] for r in analysed)
    album_list = hr.albums(report.rows)
    ARTIFACTS.mkdir(exist_ok=True)
    with Browser(find_chromium(), tmp_path / "profile", width=1280, height=1000) as b:
        b.open(page.as_uri())
        b.wait_for("document.body.dataset.ready === '1'")
        # summary tiles and charts, through the DOM
        tiles = b.js("Object.fromEntries([...document.querySelectorAll('.tile')].map(t => [t.dataset.action, +t.dataset.count]))")
        assert tiles == counts
        bars = b.js("Object.fromEntries([...document.querySelectorAll('#genre-chart g.bar')].map(g => [g.dataset.genre, +g.dataset.count]))")
        assert bars == dict(by_genre)
        heights = b.js("[...document.querySelectorAll('#genre-chart rect.seg')].map(r => r.getBBox().width)")
        assert heights and min(heights) > 0
        bins = b.js("[...document.querySelectorAll('#confidence-chart g.bin')].map(g => +g.dataset.count)")
        assert len(bins) == hr.CONFIDENCE_BINS and sum(bins) == len(analysed)
        assert b.js("document.getElementById('threshold').getBBox().height") > 100
        # the table: first page, failures first
        assert _status(b) == (len(report.rows), len(report.rows))
        first = _rows_in_table(b)
        assert len(first) == 100 and first[0]["action"] == "failed"
        b.screenshot(ARTIFACTS / "html-report.png")

        # filter by text, as typed
        folder = "/music/Artist 03/Album 00003/"
        b.type_text("#q", folder)
        want = sum(r.path.startswith(folder) for r in report.rows)
        b.wait_for(f"+document.getElementById('status').dataset.shown === {want}")
        assert {r["path"][: len(folder)] for r in _rows_in_table(b)} == {folder}
        assert len(_rows_in_table(b)) == want
        b.js("document.getElementById('q').select()")
        b.call("Input.insertText", {"text": "track 000123."})  # replaces the selection
        b.wait_for("+document.getElementById('status').dataset.shown === 1")
        b.js("const q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input'))")
        b.wait_for(f"+document.getElementById('status').dataset.shown === {len(report.rows)}")

        # filter by action: untick everything but "uncertain"
        for a in counts:
            if a != "uncertain":
                b.click(f'#action-filter input[data-action="{a}"]')
        b.wait_for(f"+document.getElementById('status').dataset.shown === {counts['uncertain']}")
        assert {r["action"] for r in _rows_in_table(b)} == {"uncertain"}
        # sort by score (click the header): best first
        b.click('#files-table th[data-sort="score"]')
        scores = [r["score"] for r in _rows_in_table(b)]
        assert scores == sorted(scores, reverse=True) and scores[0] < 0.4
        # the failed tile shows exactly the failures
        b.click("#count-failed")
        b.wait_for(f"+document.getElementById('status').dataset.shown === {counts['failed']}")
        assert {r["action"] for r in _rows_in_table(b)} == {"failed"}
        # paging
        b.click("#count-would-tag")
        b.wait_for(f"+document.getElementById('status').dataset.shown === {counts['would tag']}")
        b.click("#next")
        assert b.js("document.getElementById('page').textContent").startswith("page 2 of ")

        # albums: one row per folder, disagreeing ones flagged and first
        b.click("#tab-albums")
        b.wait_for("!document.getElementById('albums-table').hidden")
        assert _status(b) == (len(album_list), len(album_list))
        flagged = [a for a in album_list if a.flagged]
        first_rows = b.js("[...document.querySelectorAll('#albums-table tbody tr')].slice(0, 3).map(tr => [tr.querySelector('a.folder').textContent, tr.classList.contains('flagged')])")
        assert first_rows == [[a.folder, True] for a in flagged[:3]]
        b.click("#only-flagged")
        b.wait_for(f"+document.getElementById('status').dataset.shown === {len(flagged)}")
        b.js("window.scrollTo(0, document.getElementById('files').offsetTop)")
        b.screenshot(ARTIFACTS / "html-report-albums.png", full_page=False)
        # a folder link opens its files
        b.click("#albums-table a.folder")
        b.wait_for("!document.getElementById('files-table').hidden")
        n = sum(r.path.startswith(flagged[0].folder + "/") for r in report.rows)
        b.wait_for(f"+document.getElementById('status').dataset.shown === {n}")

        # nothing but the page itself was loaded
        assert [u for u in b.requests() if not u.startswith(("file:", "data:", "about:"))] == []


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_filter_state_in_the_address_opens_the_same_view(tmp_path):
    report = synthetic_report(300, seed=6)
    page = report.write(tmp_path / "plan.html")
    with Browser(find_chromium(), tmp_path / "profile") as b:
        b.open(page.as_uri() + "#q=flac&action=uncertain,failed")
        b.wait_for("document.body.dataset.ready === '1'")
        want = sum(r.action in ("uncertain", "failed") and "flac" in r.path for r in report.rows)
        assert _status(b)[0] == want
        assert b.js("document.getElementById('q').value") == "flac"


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
@pytest.mark.usefixtures("ray_session")
def test_report_of_a_real_dry_run_in_chromium(tmp_path, fixture_dir, tiny_model):
    """`tagger tag --dry-run --explain-uncertain` on every fixture format: the page shows what the
    JSON report says, and the explain pictures beside it load."""
    from click.testing import CliRunner

    from tagger.cli import main

    config = tmp_path / "config.toml"
    config.write_text("")
    html, js = tmp_path / "plan.html", tmp_path / "plan.json"
    r = CliRunner().invoke(main, [
        "tag", str(fixture_dir), "--dry-run", "--model", str(tiny_model.weights), "--state-db", str(tmp_path / "s.db"),
        "--config", str(config), "--min-confidence", "1", "--explain-uncertain", "--report", str(html),
        "--report", str(js)], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    data = json.loads(js.read_text())
    with Browser(find_chromium(), tmp_path / "profile") as b:
        b.open(html.as_uri())
        b.wait_for("document.body.dataset.ready === '1'")
        tiles = b.js("Object.fromEntries([...document.querySelectorAll('.tile')].map(t => [t.dataset.action, +t.dataset.count]))")
        assert tiles == data["counts"] and tiles["failed"] == 9 and tiles["uncertain"] == 9
        assert b.js("document.querySelectorAll('#failures li').length") == 9
        assert _status(b) == (len(data["files"]), len(data["files"]))
        b.js("document.getElementById('explain').scrollIntoView()")  # the pictures load lazily
        b.wait_for("[...document.querySelectorAll('#explain img')].every(i => i.complete)")
        sizes = b.js("[...document.querySelectorAll('#explain img')].map(i => i.naturalWidth)")
        assert len(sizes) == 9 and min(sizes) > 500  # every picture found and decoded
        assert b.js("document.querySelectorAll('#files-table a[href$=\".png\"]').length") == 9
        ARTIFACTS.mkdir(exist_ok=True)
        b.screenshot(ARTIFACTS / "html-report-dry-run.png")
        assert [u for u in b.requests() if not u.startswith(("file:", "data:", "about:"))] == []


def test_style_and_script_are_the_asset_files_inlined():
    """tagger/assets/report.css and report.js, read as package data, are the page's only style
    and script (besides the rows' JSON), inlined whole; the script's action colours are
    tagger.palette's, and the style sheet draws the threshold in the palette's colour."""
    from importlib import resources

    from tagger import palette

    report = synthetic_report(20, seed=3)
    page = hr.render(report)
    assets = resources.files("tagger").joinpath("assets")
    css = assets.joinpath("report.css").read_text(encoding="utf-8")
    js = assets.joinpath("report.js").read_text(encoding="utf-8")
    assert css.startswith(":root{") and "function(){" in js
    assert page.count("<style>") == 1 and f"<style>\n{css}</style>" in page
    assert "const COLOUR = __ACTION_COLOURS__;" in js
    colours = json.dumps(palette.ACTION_COLOURS, separators=(",", ":"))
    assert page.count("<script>") == 1
    assert f"<script>\n{js.replace('__ACTION_COLOURS__', colours)}</script>" in page
    assert f"const COLOUR = {colours};" in page and "__ACTION_COLOURS__" not in page
    assert f".chart .threshold{{stroke:{palette.THRESHOLD};" in css
    for action in report.counts:  # the tiles
        assert f'data-action="{action}" data-count="{report.counts[action]}" ' \
               f'style="--c:{palette.ACTION_COLOURS[action]}"' in page, action
