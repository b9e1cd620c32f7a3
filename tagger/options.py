"""Every option of ``tagger tag`` in one frozen object.

The CLI, the config file (``[tag]`` table of config.toml) and the defaults below are merged with
precedence CLI > config file > defaults by :mod:`tagger.config`; library code receives a
``TagOptions`` and never reads click or the environment itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

ON_EXISTING = ("skip", "replace", "merge")
#: Written genre styles (tagger.taxonomy.STYLES, kept in step there; here without importing it).
GENRE_STYLES = ("as-is", "beets", "id3v1", "lower")


@dataclass(frozen=True)
class TagOptions:
    model: str | None = None  # path to NAME.keras / NAME.json / export folder; None = shipped
    vocabulary: str = "gtzan"  # shipped model to use when no --model: gtzan | msd
    top_k: int = 1
    #: None: the model's per-label thresholds, and 0.4 for labels without one; a number (given on
    #: the command line or in the config file): that threshold for every label (tagger.aggregate.Thresholds)
    min_confidence: float | None = None
    on_existing: str = "skip"  # skip | replace | merge
    id3v23: bool = False
    dry_run: bool = False
    reports: tuple[str, ...] = ()  # .json / .csv / .html paths
    exclude: tuple[str, ...] = ()  # glob patterns, matched against the path relative to its root and the name
    batch_size: int | None = None  # None: chosen by device (CPU / GPU)
    workers: int | None = None  # Ray decode tasks in parallel; None: the cluster's CPUs
    ray_address: str | None = None  # None: RAY_ADDRESS or a local instance
    analysis_seconds: float | None = None  # fixed sample, no re-check; None: adaptive (or whole_track)
    whole_track: bool = False  # analyse every track whole (capped by max_analysis_seconds), no sampling
    max_analysis_seconds: float = 900.0
    state_db: str | None = None  # None: platformdirs user state dir
    force: bool = False
    max_files: int | None = None
    time_budget: float | None = None  # seconds
    quiet: bool = False
    log_file: str | None = None
    file_timeout: float = 300.0  # seconds per file in a worker
    explain_uncertain: bool = False
    genre_map: dict[str, str] = field(default_factory=dict)  # label -> genre written ([genres] table)
    albums: bool = True  # decide each album's tracks together (tagger.albums); False: per track
    album_dissent: float = 0.8  # a track keeps its own genre when it scores this on its own (tagger.albums)
    genre_style: str = "as-is"  # how written genre names are spelled (tagger.taxonomy.styled)

    def __post_init__(self) -> None:
        if self.on_existing not in ON_EXISTING:
            raise ValueError(f"on_existing must be one of {', '.join(ON_EXISTING)}")
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("min_confidence must be between 0 and 1")
        if not 0.0 <= self.album_dissent <= 1.0:
            raise ValueError("album_dissent must be between 0 and 1")
        if self.genre_style not in GENRE_STYLES:
            raise ValueError(f"genre_style must be one of {', '.join(GENRE_STYLES)}")
        if self.whole_track and self.analysis_seconds is not None:
            raise ValueError("whole_track and analysis_seconds exclude each other: choose one")

    def replace(self, **changes) -> TagOptions:
        return dataclasses.replace(self, **changes)


def option_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TagOptions)]
