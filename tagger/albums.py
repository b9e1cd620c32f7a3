"""Pure album logic (issue 18): which tracks form an album, the album's scores, and what each
track of an album gets. No file access; ``tagger tag`` and ``tagger explain`` both call these.

**Albums.** Tracks are one album when they share the album tag and the album artist (the
``albumartist`` tag; without one, the album tag within the track's *folder scope*: the folder,
or for disc folders such as ``CD1``/``Disc 2`` their parent, so that a multi-disc album is one).
Files without an album tag fall back to their folder scope, but only when they share one
(non-empty) artist and there are at least two of them: a folder of loose singles, or of files
without any tags, is not an album, and its tracks are decided one by one.

**Compilations** are decided per track: the compilation flag (TCMP, COMPILATION, cpil,
WM/IsCompilation), an album artist (or, without one, every track's artist) such as "Various
Artists", or, without an album artist, many distinct artists (at least 3, and at least half as
many as the album has tracks; "A feat. B" counts as A).

**The album decision.** The album's scores are the mean of its tracks' scores weighted by the
tracks' lengths, up to ``--max-analysis-seconds`` (what a whole-track analysis hears: a 40-second
interlude weighs less than a 9-minute track, however much of each a sampled or adaptive
analysis heard, so that adaptive analysis weighs an album as ``--whole-track`` does); top-k and
the threshold are applied to them as to a track. Every track gets the album's genres, except a
*dissenter*: a track whose own best genre is not among the album's and which the model is sure
of on its own (best score at least ``dissent``, ``--album-dissent``); it keeps its own genres.
(Under adaptive analysis a sampled track whose dissent could change within its sampling bound,
:func:`dissent_close`, is heard further before its album is decided: tagger.pipeline.)
An album that reaches no threshold is decided per track (as without ``--albums``).

**A person's genres** (item 3): under ``--on-existing skip`` a person's genre on some tracks of an
album is evidence about the album. The untagged tracks get the album's genres only when every
person-tagged track's genres include one of them (case-insensitively); otherwise the album genre
would contradict the person, and the untagged tracks are decided per track. Under ``replace``
and ``merge`` the policy already allows overriding (or adding to) the person's genre, so every
track gets the album's genres through that policy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tagger.aggregate import (
    DEFAULT_MIN_CONFIDENCE,
    SKIP,
    TAG,
    UNCERTAIN,
    Decision,
    decide,
    rank,
    weighted_scores,
)
from tagger.options import TagOptions

#: Default of ``--album-dissent``: a track keeps its own genre when the model gives it at least
#: this score on its own (and it is not among the album's genres). See docs/DESIGN.md for the
#: measurement behind it.
DEFAULT_DISSENT = TagOptions.album_dissent

#: Folder names of the discs of a multi-disc album (the album's scope is their parent).
_DISC = re.compile(r"^(cd|dis[ck]|disque|disco|side|vol(ume)?\.?)[\s._-]*\d{1,2}\b", re.IGNORECASE)
_VARIOUS = frozenset({"various artists", "various", "va", "v.a.", "v/a", "varios artistas", "artistes divers",
                      "verschiedene interpreten", "diverse", "compilation"})
_FEAT = re.compile(r"\s+(feat\.?|ft\.?|featuring|with|&|x|vs\.?)\s+.*$", re.IGNORECASE)

GENRE_FROM_ALBUM = "album"
GENRE_FROM_TRACK = "track"


def _genre(name: str) -> str:
    """A genre as compared with a person's: its key (tagger.taxonomy.genre_key), as in aggregate."""
    from tagger.taxonomy import genre_key

    return genre_key(name) or name.strip().casefold()


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def scope_of(path: str) -> str:
    """The folder an album's tracks are looked for in: the file's folder, or for a disc folder
    (``CD1``, ``Disc 2``, ``Disk 1``...) its parent."""
    folder = os.path.dirname(path)
    if _DISC.match(os.path.basename(folder)):
        return os.path.dirname(folder)
    return folder


def is_various(name: str) -> bool:
    return _norm(name) in _VARIOUS


def primary_artist(name: str) -> str:
    """``"A feat. B"`` -> ``"a"`` (normalised), for counting distinct artists."""
    return _norm(_FEAT.sub("", " ".join(str(name).split())))


@dataclass(frozen=True)
class TrackTags:
    """The album tags of one track (``tagger.tags.TagInfo.album_tags()``) and its path."""

    path: str
    album: str = ""
    artist: str = ""
    albumartist: str = ""
    compilation: bool = False

    @classmethod
    def of(cls, path: str, tags: dict | None) -> TrackTags:
        t = tags or {}
        return cls(path, " ".join(str(t.get("album") or "").split()), " ".join(str(t.get("artist") or "").split()),
                   " ".join(str(t.get("albumartist") or "").split()), bool(t.get("compilation")))


@dataclass
class Album:
    """One album: ``key`` (grouping, normalised), ``name`` (shown), its tracks' paths, and
    ``compilation`` (a reason, or "": decided per track)."""

    key: str
    name: str
    paths: list[str] = field(default_factory=list)
    compilation: str = ""


def _tag_key(t: TrackTags) -> tuple[str, str] | None:
    if not t.album:
        return None
    if t.albumartist:
        return f"aa\x1f{_norm(t.albumartist)}\x1f{_norm(t.album)}", f"{t.albumartist} — {t.album}"
    return f"sc\x1f{scope_of(t.path)}\x1f{_norm(t.album)}", t.album


def group(tracks: Iterable[TrackTags]) -> tuple[list[Album], list[str]]:
    """Sort tracks into albums. Returns (albums of at least one track, paths decided alone:
    loose singles and files without album tags that do not form a folder album)."""
    albums: dict[str, Album] = {}
    tags_of: dict[str, TrackTags] = {}
    untagged: dict[str, list[TrackTags]] = {}
    for t in tracks:
        tags_of[t.path] = t
        k = _tag_key(t)
        if k is None:
            untagged.setdefault(scope_of(t.path), []).append(t)
            continue
        a = albums.setdefault(k[0], Album(k[0], k[1]))
        a.paths.append(t.path)
    alone: list[str] = []
    for scope, ts in untagged.items():
        artists = {primary_artist(t.artist) for t in ts}
        if len(ts) >= 2 and len(artists) == 1 and "" not in artists:
            key = f"fo\x1f{scope}"
            albums[key] = Album(key, f"{ts[0].artist} — {os.path.basename(scope) or scope} (folder)",
                                [t.path for t in ts])
        else:
            alone.extend(t.path for t in ts)
    for a in albums.values():
        a.compilation = compilation_reason([tags_of[p] for p in a.paths])
    return sorted(albums.values(), key=lambda a: a.key), sorted(alone)


def compilation_reason(tracks: Sequence[TrackTags]) -> str:
    """Why these tracks are a compilation (decided per track), or ""."""
    if any(t.compilation for t in tracks):
        return "a compilation (compilation flag)"
    aa = {t.albumartist for t in tracks if t.albumartist}
    if any(is_various(a) for a in aa):
        return f"a compilation (album artist {sorted(aa)[0]!r})"
    if not aa:
        artists = [primary_artist(t.artist) for t in tracks if t.artist]
        if artists and all(is_various(a) for a in artists):
            return "a compilation (artist 'Various Artists')"
        distinct = len(set(artists))
        if distinct >= 3 and 2 * distinct >= len(tracks):
            return f"a compilation ({distinct} different artists, no album artist)"
    return ""


def album_scores(scores: Sequence[np.ndarray], weights: Sequence[float], aggregation: str = "mean") -> np.ndarray:
    """The album's score per label: the tracks' scores averaged, weighted by ``weights`` (seconds:
    the tracks' lengths up to the cap; a weight of 0 or less counts as 1 s: every analysed track counts), the way
    the model aggregates chunks (``logit-mean``: the weighted mean of the tracks' logits, through
    the sigmoid), so that the album scores as its tracks' audio heard as one."""
    return weighted_scores(list(scores), [max(float(x), 1.0) for x in weights], aggregation)


@dataclass(frozen=True)
class Member:
    """A track of an album as the album decision sees it. ``scores``: its own (None: not
    analysed, e.g. a person's genre under --on-existing skip); ``seconds``: its weight, the track's
    length up to the cap (the audio a whole-track analysis hears; the audio heard where unknown)."""

    path: str
    scores: np.ndarray | None = None
    seconds: float = 0.0
    existing: tuple[str, ...] = ()
    tagger_owned: bool = False
    owner_model: str | None = None

    @property
    def person_genres(self) -> tuple[str, ...]:
        ex = tuple(g for g in self.existing if g.strip())
        return ex if ex and not self.tagger_owned else ()


@dataclass(frozen=True)
class TrackOutcome:
    decision: Decision
    genre_from: str  # "album" | "track"
    dissent: bool = False
    note: str = ""  # what the album did to the track, for the report's reason and explain
    album_genres: tuple[str, ...] = ()  # the album's genres ("" when it was decided per track)


@dataclass
class AlbumDecision:
    name: str
    tracks: int  # tracks of the album (analysed or not)
    analysed: int  # tracks whose scores made the album's (scored ones until the album is decided)
    scores: np.ndarray | None
    decision: Decision | None  # the album's own (no existing genres); None: not decided as an album
    per_track: str = ""  # why the album's tracks were decided per track ("" when they were not)
    outcomes: dict[str, TrackOutcome] = field(default_factory=dict)

    @property
    def genres(self) -> tuple[str, ...]:
        return tuple(self.decision.genres) if self.decision is not None and self.decision.action == TAG else ()

    @property
    def dissenters(self) -> list[str]:
        return sorted(p for p, o in self.outcomes.items() if o.dissent)


def dissent_close(scores: np.ndarray, album_labels: Sequence[int], *, dissent: float, error: float) -> bool:
    """Whether a track's dissent from its album (:func:`dissents`) could change if each of its
    ``scores`` moved by up to ``error`` (a sampled track's bound, tagger.adaptive.sampling_error):
    another label could become its best and the answer differ with it, or its best could cross
    ``dissent``. ``album_labels``: the indices of the album's genres."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0 or error <= 0:
        return False
    album = {int(i) for i in album_labels}
    outcomes = set()
    for i in np.flatnonzero(s > s.max() - 2 * error):  # every label that could be the best
        if int(i) in album:
            outcomes.add(False)
            continue
        if min(s[i] + error, 1.0) >= dissent:  # a score is at most 1
            outcomes.add(True)
        if s[i] - error < dissent:
            outcomes.add(False)
    return len(outcomes) > 1


def dissents(track: Decision, album: Decision, *, dissent: float) -> bool:
    """Whether a track strongly and confidently disagrees with its album: its own best genre is
    not among the album's genres and scores at least ``dissent`` on the track alone."""
    if not track.ranked or not album.chosen:
        return False
    best = track.ranked[0]
    return best.label not in {r.label for r in album.chosen} and best.score >= dissent


def decide_album(members: Sequence[Member], labels, *, name: str = "", compilation: str = "", top_k: int = 1,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE, thresholds=None, on_existing: str = "skip",
                 model_id: str = "", names=None, user_map=None, dissent: float = DEFAULT_DISSENT,
                 aggregation: str = "mean") -> AlbumDecision:
    """Decide an album: the album's genres, and each analysed member's decision (members
    without scores get no outcome: nothing is decided for them here). ``thresholds``: per-label
    thresholds (the model's), ``min_confidence`` for the other labels, as in
    :func:`tagger.aggregate.decide`; the album's own decision uses the same ones.
    ``aggregation``: the model's (how the tracks' scores combine into the album's)."""

    def own(m: Member, scores: np.ndarray) -> Decision:
        return decide(scores, labels, top_k=top_k, min_confidence=min_confidence, thresholds=thresholds,
                      existing=m.existing, tagger_owned=m.tagger_owned, owner_model_id=m.owner_model,
                      model_id=model_id, on_existing=on_existing, names=names, user_map=user_map)

    def scores_of(m: Member) -> np.ndarray:
        assert m.scores is not None  # only the members in ``scored`` get here
        return m.scores

    scored = [m for m in members if m.scores is not None]
    out = AlbumDecision(name, len(members), len(scored), None, None)

    def per_track(why: str) -> AlbumDecision:
        out.per_track = why
        for m in scored:
            out.outcomes[m.path] = TrackOutcome(own(m, scores_of(m)), GENRE_FROM_TRACK, note=why)
        return out

    if compilation:
        return per_track(f"{compilation}: decided per track")
    if not scored:
        return out
    if len(members) == 1:
        return per_track("")  # an album of one track: the track's own decision
    # under --on-existing skip a person's track is evidence by its genre only (the worker skips
    # it unanalysed; where the store has its scores anyway, they do not count either: the same
    # album decision whichever way the track was seen)
    voters = [m for m in scored if not (on_existing == "skip" and m.person_genres)]
    if not voters:
        return per_track("")
    out.analysed = len(voters)
    out.scores = album_scores([scores_of(m) for m in voters], [m.seconds for m in voters], aggregation)
    out.decision = decide(out.scores, labels, top_k=top_k, min_confidence=min_confidence, thresholds=thresholds,
                          names=names, user_map=user_map)
    if out.decision.action != TAG:
        return per_track(f"the album reaches no threshold ({out.decision.reason}): decided per track")
    album_labels = {r.label for r in out.decision.chosen}
    album_names = {_genre(r.genre) for r in out.decision.chosen}
    shown = "; ".join(out.decision.genres)
    if on_existing == "skip":
        against = [m for m in members if m.person_genres
                   and not ({_genre(g) for g in m.person_genres} & album_names)]
        if against:
            theirs = "; ".join(dict.fromkeys(g for m in against for g in m.person_genres))
            return per_track(f"the album's genre ({shown}) disagrees with the genre a person gave "
                             f"{len(against)} of its tracks ({theirs}): decided per track")
    for m in scored:
        mine = own(m, scores_of(m))
        ranked = rank(scores_of(m), labels, names=names, user_map=user_map)
        if dissents(Decision(mine.action, "", ranked=ranked), out.decision, dissent=dissent):
            best = ranked[0]
            out.outcomes[m.path] = TrackOutcome(
                mine, GENRE_FROM_TRACK, dissent=True, album_genres=out.decision.genres,
                note=(f"keeps its own genre: {best.genre} {best.score:.2f} on its own disagrees strongly with "
                      f"the album's {shown} (--album-dissent {dissent:.2f})"))
            continue
        # the album's scores decide, through this track's own existing genres and the policy
        d = decide(out.scores, labels, top_k=top_k, min_confidence=min_confidence, thresholds=thresholds,
                   existing=m.existing, tagger_owned=m.tagger_owned, owner_model_id=m.owner_model,
                   model_id=model_id, on_existing=on_existing, names=names, user_map=user_map)
        d = Decision(d.action, d.reason, d.genres, d.chosen, ranked)  # ranked: the track's own scores
        overruled = {r.label for r in mine.chosen} != album_labels
        if overruled and mine.chosen:
            note = (f"album genre {shown} ({out.analysed} tracks); on its own "
                    f"{'; '.join(r.genre for r in mine.chosen)} {mine.chosen[0].score:.2f}")
        elif overruled:
            note = f"album genre {shown} ({out.analysed} tracks); uncertain on its own"
        else:
            note = f"album genre {shown} ({out.analysed} tracks), as on its own"
        out.outcomes[m.path] = TrackOutcome(d, GENRE_FROM_ALBUM, note=note, album_genres=out.decision.genres)
    return out


def overruled(outcome: TrackOutcome) -> bool:
    """Whether the album changed what the track would have got alone (for explain and reports)."""
    return outcome.genre_from == GENRE_FROM_ALBUM and not outcome.note.endswith("as on its own")


__all__ = ["DEFAULT_DISSENT", "GENRE_FROM_ALBUM", "GENRE_FROM_TRACK", "SKIP", "UNCERTAIN", "Album",
           "AlbumDecision", "Member", "TrackOutcome", "TrackTags", "album_scores", "compilation_reason",
           "decide_album", "dissent_close", "dissents", "group", "is_various", "overruled", "primary_artist",
           "scope_of"]
