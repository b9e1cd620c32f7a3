"""``tagger explain FILE``: why a track gets the genre it gets, as a picture or as JSON.

Everything comes from the code ``tagger tag`` runs, never a copy of it:
:func:`tagger.analyse.analyse_file` (``tags.read_tags`` -> ``plan_segments`` -> ``decode.decode``
-> ``features.extract_segments``, asked to keep the decoded audio), :class:`tagger.model.GenreModel`,
and :func:`tagger.aggregate.track_scores` / :func:`~tagger.aggregate.decide` with the options of
``tagger tag`` (command line > config file > defaults). Nothing here writes tags, and Ray is not
used: one file is analysed in this process.

The picture (matplotlib, Agg) shows the waveform, the log-mel spectrogram the model saw, the
taggram (genre probabilities per analysis chunk over time), the final track scores against the
threshold with the chosen genres marked, the model id and the file's existing genre.

``tagger tag --explain-uncertain --report plan.html`` calls :func:`attach_to_report`, which draws
the picture of each uncertain file into a folder beside the HTML report and links it from there.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import AudioError, DecodeError, FileError, TagReadError

log = logging.getLogger(__name__)

#: At most this many pictures per report (each costs a decode, a prediction and a drawing,
#: about a second or two on one CPU core); the report notes how many more there were.
EXPLAIN_LIMIT = 200
#: Drawing resolution: a 10-minute track stays legible and quick to draw.
MAX_WAVE_COLUMNS = 2000
MAX_SPEC_COLUMNS = 1600
MAX_TAGGRAM_COLUMNS = 300
MAX_TAGGRAM_ROWS = 12

_ACTION = {"tag": "would tag", "skipped": "skipped", "uncertain": "uncertain"}
_ERRORS = {"decode": DecodeError, "audio": AudioError, "tag-read": TagReadError}
_COLOURS = {"would tag": "#2e7d32", "skipped": "#546e7a", "uncertain": "#c77700", "failed": "#c62828"}


@dataclass
class Explanation:
    """One file, analysed and decided exactly as ``tagger tag`` would."""

    path: str
    format: str
    existing: tuple[str, ...]
    tagger_owned: bool
    provenance: str | None
    meta: Any  # tagger.modelmeta.ModelMeta
    options: Any  # tagger.options.TagOptions
    duration: float  # the whole file, seconds
    segments: list[tuple[float, float]]  # analysed stretches (start, end), seconds
    audio: list[np.ndarray]  # the decoded stretches, mono at meta.features.sample_rate
    features: np.ndarray  # (n_chunks, *input_shape), what the model saw
    spans: np.ndarray  # (n_chunks, 2) start, end of each chunk in seconds
    probs: np.ndarray  # (n_chunks, n_labels)
    scores: np.ndarray  # (n_labels,) track scores
    decision: Any  # tagger.aggregate.Decision
    #: ``tagger tag`` leaves this file alone without even decoding it (its policy on existing
    #: genres); explain analyses it anyway to show what the model hears.
    before_analysis: bool = False
    #: the album decision behind ``decision`` (``album_context``), None when not decided as part
    #: of an album (per-track mode, a loose single, no state database)
    album: dict[str, Any] | None = None

    @property
    def action(self) -> str:
        """``would tag``, ``uncertain`` or ``skipped`` (explain never writes)."""
        return _ACTION[self.decision.action]

    @property
    def analysed(self) -> float:
        return float(sum(e - s for s, e in self.segments))

    @property
    def genres(self) -> list[str]:
        """Display names of the model's labels, in label order."""
        by_label = {r.label: r.genre for r in self.decision.ranked}
        return [by_label[lab] for lab in self.meta.labels]

    def existing_owner(self) -> str | None:
        if not self.existing:
            return None
        return "tagger" if self.tagger_owned else "a person"

    def to_json(self) -> dict[str, Any]:
        """The numbers behind the picture (plain JSON types)."""
        from tagger import __version__

        meta, o, d = self.meta, self.options, self.decision
        fp = meta.features
        return {
            "tool": f"tagger {__version__}",
            "path": self.path,
            "format": self.format,
            "existing": list(self.existing),
            "existing_written_by": self.existing_owner(),
            "provenance": self.provenance,
            "model": {
                "model_id": meta.model_id, "name": meta.name, "architecture": meta.architecture,
                "output_activation": meta.output_activation, "aggregation": meta.aggregation,
            },
            "features": {"kind": fp.kind, "sample_rate": fp.sample_rate,
                         "chunk_seconds": round(fp.chunk_seconds, 4),
                         "chunk_hop_seconds": round(fp.chunk_hop_seconds, 4)},
            "duration": round(self.duration, 3),
            "analysed_seconds": round(self.analysed, 3),
            "segments": [{"start": round(s, 3), "end": round(e, 3)} for s, e in self.segments],
            "labels": list(meta.labels),
            "genres": self.genres,
            "chunks": [
                {"start": round(float(s), 3), "end": round(float(e), 3), "probs": [round(float(p), 6) for p in row]}
                for (s, e), row in zip(self.spans, self.probs)
            ],
            "track_scores": [{"label": r.label, "genre": r.genre, "score": round(r.score, 6)} for r in d.ranked],
            "decision": {
                "action": self.action,
                "genres": list(d.genres),
                "chosen": [{"label": r.label, "genre": r.genre, "score": round(r.score, 6)} for r in d.chosen],
                "reason": d.reason,
                "before_analysis": self.before_analysis,
                "threshold": o.min_confidence,
                "top_k": o.top_k,
                "on_existing": o.on_existing,
            },
            "album": self.album,
        }


# ---------------------------------------------------------------------------------------------
# analysis: the pipeline's own functions
# ---------------------------------------------------------------------------------------------

def explain_file(path: str | os.PathLike, *, options, model=None) -> Explanation:
    """Analyse one file and decide as ``tagger tag`` would, keeping every intermediate.

    ``options`` is a :class:`tagger.options.TagOptions`; ``model`` a loaded
    :class:`tagger.model.GenreModel` (loaded from the options when None).
    Raises a :class:`~tagger.errors.FileError` (one-line reason) for a file that cannot be
    analysed and :class:`~tagger.errors.ModelError` for an unusable model.
    """
    from tagger.aggregate import SKIP, Decision, decide_for, needs_analysis, track_scores
    from tagger.analyse import analyse_file, chunk_spans

    if model is None:
        from tagger.model import GenreModel

        model = GenreModel.load(options.model, vocabulary=options.vocabulary)
    meta = model.meta
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    policy = {
        "model_id": meta.model_id, "on_existing": options.on_existing, "analyse_all": True,
        "analysis_seconds": options.analysis_seconds, "max_seconds": options.max_analysis_seconds,
        "float16": False, "keep_audio": True,
    }
    res = analyse_file(path, params=meta.features.to_dict(), policy=policy)
    if res["error"]:
        kind, reason = res["error"]
        raise _file_error(path, kind, reason)
    fp = meta.features
    audio = res["audio"]
    features = res["features"]
    segments = [(float(o), float(o) + a.shape[0] / fp.sample_rate) for (o, _), a in zip(res["segments"], audio)]
    spans = chunk_spans([a.shape[0] for a in audio], [s for s, _ in segments], params=fp)
    if spans.shape[0] != features.shape[0]:  # never expected: chunk_spans mirrors extract_segments
        log.warning("%s: chunk times unknown (%d spans for %d chunks); drawing chunks end to end",
                    path, spans.shape[0], features.shape[0])
        starts = np.arange(features.shape[0]) * fp.chunk_hop_seconds
        spans = np.stack([starts, starts + fp.chunk_seconds], axis=1)
    probs = model.predict(features)
    scores = track_scores(probs)
    d = decide_for(scores, res=res, meta=meta, options=options)
    # tagger tag never decodes a file this policy leaves alone: its decision is that skip
    early = needs_analysis(existing=tuple(res["existing"]), tagger_owned=res["tagger_owned"],
                           owner_model_id=res["owner_model"], model_id=meta.model_id,
                           on_existing=options.on_existing)
    if early:
        d = Decision(SKIP, early, chosen=d.chosen, ranked=d.ranked)
    return Explanation(
        path=path, format=res["format"] or "", existing=tuple(res["existing"]), tagger_owned=res["tagger_owned"],
        provenance=res["provenance"], meta=meta, options=options, duration=float(res["duration"] or 0.0),
        segments=segments, audio=audio, features=features, spans=spans, probs=probs, scores=scores, decision=d,
        before_analysis=bool(early),
    )


def album_context(expl: Explanation, *, state_db: str | os.PathLike | None) -> None:
    """Decide the explained track's album as ``tagger tag --albums`` would: the other tracks of
    its album folder (tagger.albums.scope_of) read from their tags, their scores from the store
    of analyses in ``state_db`` (tracks without a usable stored analysis do not count), this
    track's scores as just computed. Sets ``expl.album`` and, where the album decides this
    track, ``expl.decision``. Reads only (a missing database is not created)."""
    from tagger import albums as al
    from tagger import discover, tags
    from tagger.pipeline import sampling_spec, usable_analyses

    o, meta = expl.options, expl.meta
    if not o.albums:
        return
    scope = al.scope_of(expl.path)
    found = [f for f in discover.walk([scope], exclude=o.exclude) if al.scope_of(f.path) == scope]
    info: dict[str, Any] = {}
    for f in found:
        if f.path == expl.path:
            continue
        try:
            info[f.path] = tags.read_tags(f.path)
        except FileError:
            continue
    stored: dict[str, Any] = {}
    if state_db is not None and os.path.exists(state_db) and info:
        from tagger.errors import StateError
        from tagger.state import StateDB

        try:
            with StateDB(state_db) as state:
                stored = usable_analyses(state, [f for f in found if f.path in info], meta, sampling_spec(o))
        except StateError as exc:  # the album is a hint here: explain the track without its album's scores
            log.warning("album of %s: stored analyses unavailable (%s)", expl.path, exc)
    me = tags.read_tags(expl.path)
    tracks = [al.TrackTags.of(expl.path, me.album_tags())] + [al.TrackTags.of(p, i.album_tags()) for p, i in info.items()]
    albums, _alone = al.group(tracks)
    album = next((a for a in albums if expl.path in a.paths), None)
    if album is None:
        expl.album = {"album": "", "note": "not part of an album (a loose single): decided per track"}
        return
    members = []
    for p in album.paths:
        if p == expl.path:
            members.append(al.Member(p, np.asarray(expl.scores), expl.analysed, tuple(expl.existing), expl.tagger_owned,
                                     me.provenance.model_id if me.provenance is not None else None))
            continue
        a, i = stored.get(p), info[p]
        members.append(al.Member(p, None if a is None else np.asarray(a.scores), 0.0 if a is None else a.seconds,
                                 tuple(i.genres), i.tagger_owned, i.provenance.model_id if i.provenance else None))
    ad = al.decide_album(members, meta.labels, name=album.name, compilation=album.compilation, top_k=o.top_k,
                         min_confidence=o.min_confidence, on_existing=o.on_existing, model_id=meta.model_id,
                         names=meta.display_names, user_map=o.genre_map, dissent=o.album_dissent)
    outcome = ad.outcomes.get(expl.path)
    expl.album = {
        "album": album.name, "tracks": ad.tracks, "analysed": ad.analysed, "album_genres": list(ad.genres),
        "genre_from": outcome.genre_from if outcome else "", "dissent": bool(outcome and outcome.dissent),
        "overruled": bool(outcome and al.overruled(outcome)), "note": outcome.note if outcome else ad.per_track,
    }
    if outcome is not None and not expl.before_analysis:
        import dataclasses

        d = outcome.decision  # what `tagger tag` writes and reports, reason included
        expl.decision = dataclasses.replace(d, reason=d.reason + (f"; {outcome.note}" if outcome.note else ""))


def _file_error(path: str, kind: str, reason: str) -> FileError:
    cls = _ERRORS.get(kind)
    if cls is not None:
        return cls(path, reason)
    err = FileError(path, reason)
    err.kind = kind
    return err


# ---------------------------------------------------------------------------------------------
# the picture
# ---------------------------------------------------------------------------------------------

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
            f"   ·   top-k {o.top_k}, threshold {o.min_confidence:.2f}, on-existing {o.on_existing}",
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
    title = "waveform as decoded (mono, %d Hz)" % sr
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
        runs = [(s, e, log_mel(y, params=shown)) for (s, e), y in zip(expl.segments, expl.audio)]
        return runs, shown.n_mels, f"log-mel spectrogram (for display: this model reads {fp.kind} features)"
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
    ticks, labels = [], []
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
    thr = expl.options.min_confidence
    ax.axvline(thr, color="#c77700", linestyle="--", linewidth=1.2)
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
    for t in ax.get_yticklabels():
        t.set_visible(False)
    ax.tick_params(axis="y", length=0)
    ax.set_title(f"track score; threshold {thr:.2f} (dashed)", fontsize=9.5, loc="left")
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
    what.append(f"track score = {expl.meta.aggregation} of the chunks")
    ax_mid.text(0.06, 0.95, "\n".join(what), va="top", fontsize=8.5, linespacing=1.6, color="#444444",
                transform=ax_mid.transAxes)
    # the taggram's colour scale, small, above its top-right corner
    cax = mesh.axes.inset_axes([0.80, 1.05, 0.20, 0.045])
    cb = fig.colorbar(mesh, cax=cax, orientation="horizontal", ticks=[0, 0.5, 1])
    cb.ax.tick_params(labelsize=7, length=2, pad=1)
    cb.ax.xaxis.set_ticks_position("top")
    cax.text(-0.03, 0.5, "probability", fontsize=7.5, ha="right", va="center", transform=cax.transAxes)


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


# ---------------------------------------------------------------------------------------------
# the report hook (tagger tag --explain-uncertain --report x.html)
# ---------------------------------------------------------------------------------------------

def explain_folder(report_path: str | os.PathLike) -> Path:
    """Where the pictures of ``plan.html`` go: ``plan.explain/`` beside it."""
    p = Path(report_path)
    return p.with_name(p.stem + ".explain")


def attach_to_report(tagger, options) -> None:
    """Draw the uncertain files of a finished run beside the (first) HTML report and link them.

    ``tagger._explain`` is a list of ``(path, {"scores": np.ndarray})`` for uncertain files.
    Pictures go to ``<report stem>.explain/NNNN-<name>.png`` (replacing an earlier run's) and
    each row's ``explain`` field gets the path relative to the HTML report's folder, which is how
    the report links it.
    A file that cannot be explained now (moved, changed) is logged and skipped.
    """
    html = [r for r in options.reports if str(r).lower().endswith((".html", ".htm"))]
    if not html or not tagger._explain:
        return
    from tagger.model import GenreModel

    base = Path(html[0]).parent
    folder = explain_folder(html[0])
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("[0-9][0-9][0-9][0-9]-*.png"):  # pictures of an earlier run of this report
        old.unlink()
    model = GenreModel.load(tagger.files)
    rows = {r.path: r for r in tagger.report.rows}
    todo = sorted(tagger._explain, key=lambda item: item[0])
    made = 0
    for i, (path, info) in enumerate(todo[:EXPLAIN_LIMIT]):
        row = rows.get(path)
        try:
            expl = explain_file(path, options=options, model=model)
        except FileError as exc:
            log.warning("explain: %s", exc)
            continue
        want = info.get("scores")
        if want is not None and np.max(np.abs(np.asarray(want) - expl.scores)) > 1e-3:
            log.warning("explain: %s: scores differ from the run's (file changed since?)", path)
        out = folder / f"{i + 1:04d}-{_safe_name(Path(path).stem)}.png"
        render_png(expl, out, dpi=80)
        made += 1
        if row is not None:
            row.explain = os.path.relpath(out, base)
    rest = len(todo) - min(len(todo), EXPLAIN_LIMIT)
    if rest:
        tagger.report.notes.append(
            f"explain pictures for the first {EXPLAIN_LIMIT} uncertain files only; "
            f"run `tagger explain FILE` for the other {rest}")
    log.info("explain: %d pictures in %s", made, folder)


def _safe_name(stem: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return keep.strip("._")[:60] or "track"
