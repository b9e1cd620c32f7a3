"""Synthetic run reports for the HTML report tests (deterministic, any size)."""

from __future__ import annotations

import numpy as np

from tagger.report import Report, Row

GENRES = ["Blues", "Classical", "Country", "Disco", "Hip-Hop", "Jazz", "Metal", "Pop", "Reggae", "Rock"]
MODEL = {
    "model_id": "0123456789abcdef", "name": "gtzan-test", "architecture": "tiny-test",
    "labels": [g.lower() for g in GENRES], "output_activation": "softmax", "sample_rate": 16000,
    "chunk_seconds": 2.99,
    "metrics": {"accuracy": 0.781, "accuracy_ci95": [0.702, 0.844], "interval": "Wilson score, 95%",
                "tracks": 100, "evaluated_on": "GTZAN fault-filtered test split", "level": "track",
                "test": {"accuracy": 0.781, "accuracy_ci95": [0.702, 0.844], "tracks": 100, "macro_f1": 0.77,
                         "per_class": {g.lower(): {"precision": 0.8, "recall": 0.75, "f1": 0.77, "support": 10}
                                       for g in GENRES}}},
}


def synthetic_report(n: int, *, seed: int = 0, dry_run: bool = True, threshold: float = 0.4,
                     albums: int | None = None) -> Report:
    """``n`` rows across ``albums`` folders (about 10 tracks each): most tracks of an album
    share a genre, some albums are mixed; a few files fail, some have a person's genre."""
    rng = np.random.default_rng(seed)
    albums = albums or max(1, n // 10)
    report = Report(dry_run=dry_run, run_id="20260101-000000-test", model=dict(MODEL),
                    options={"top_k": 1, "min_confidence": threshold, "on_existing": "skip"})
    album_genre = rng.integers(0, len(GENRES), size=albums)
    mixed = rng.random(albums) < 0.2
    for i in range(n):
        a = i % albums
        folder = f"/music/Artist {a % 97:02d}/Album {a:05d}"
        fmt = ("mp3", "flac", "m4a", "ogg")[i % 4]
        path = f"{folder}/{i // albums + 1:02d} Track {i:06d}.{fmt}"
        if rng.random() < 0.02:
            report.add(Row(path, fmt, "failed", "cannot decode audio (invalid data found)", error_kind="decode"))
            continue
        g = int(rng.integers(0, len(GENRES))) if mixed[a] else int(album_genre[a])
        if rng.random() < 0.1:
            g = int(rng.integers(0, len(GENRES)))
        p = rng.dirichlet(np.full(len(GENRES), 0.3))
        p[g] += rng.uniform(0.2, 2.5)
        p /= p.sum()
        order = np.argsort(-p)[:5]
        predicted = [{"genre": GENRES[k], "label": GENRES[k].lower(), "score": round(float(p[k]), 4)} for k in order]
        existing = ["Jazz"] if rng.random() < 0.08 else []
        if existing:
            row = Row(path, fmt, "skipped", "has a genre already (Jazz); --on-existing skip", existing=existing,
                      predicted=predicted)
        elif predicted[0]["score"] < threshold:
            row = Row(path, fmt, "uncertain",
                      f"no genre reaches the threshold {threshold:.2f} (best {predicted[0]['genre']} "
                      f"{predicted[0]['score']:.2f})", predicted=predicted)
        else:
            row = Row(path, fmt, "tagged", "no genre before", predicted=predicted, written=[predicted[0]["genre"]])
        row.duration, row.chunks = 30.0, 10
        report.add(row)
    report.finished = report.started + 12.5
    return report
