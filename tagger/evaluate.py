"""The pure core of ``tagger evaluate``: how a model's decisions agree with the genres a person
already wrote.

No file access, no Ray, no TensorFlow: the command (:mod:`tagger.commands.evaluate`) collects the
library (:func:`tagger.library.collect`), builds its taxonomy (:mod:`tagger.taxonomy`) and hands
this module plain values: per file the library genre keys a person wrote and the model's stored
track scores.

Three steps, each a function of the previous one's value:

1. :func:`derive_mapping`: model labels -> library genres. A ``[evaluate] map`` entry of the
   config wins; then an exact match of genre keys (the label itself, or the name ``tag`` writes
   for it: GTZAN's ``hiphop`` writes ``Hip-Hop``, which is the library's ``Hip Hop``; a model
   learnt from this library has genre keys as labels, so every label matches); then, for the
   labels left, co-occurrence under :class:`CooccurrenceRule` (a clear rule, printed with the
   results).
2. :func:`tag_decision` per file: what ``tagger tag --on-existing replace --no-albums`` would
   write from the stored scores (:func:`tagger.aggregate.decide`, the run's top-k and
   thresholds).
3. :func:`evaluate`: per-genre precision (of what tag would write) and recall with Wilson
   intervals, overall precision at the thresholds and coverage, top-1 agreement, the confusion
   matrix (a person's single genre vs the model's top-1 mapped), unmapped labels and genres,
   the files where the model disagrees most confidently, and what tag would write on the files
   no person tagged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagger.aggregate import TAG, Decision, decide, display_name
from tagger.errors import FatalError
from tagger.report import plural

#: How a label was mapped (``Pair.how``).
BY_CONFIG = "config"
BY_NAME = "name"
BY_COOCCURRENCE = "co-occurrence"
UNMAPPED = ""

#: The column of the confusion matrix for a top-1 label that maps to no library genre.
NO_GENRE = "(no library genre)"
#: Disagreements listed by default.
DISAGREEMENTS = 20
#: Scores shown per disagreement.
RANKED = 3
#: Disagreements the console summary shows (the reports have them all).
SHOWN = 5


@dataclass(frozen=True)
class CooccurrenceRule:
    """When a label that no name matches is mapped by co-occurrence.

    For each such label, the files with a person's genre whose top-1 label it is are counted,
    and the library genre most of them carry is taken, only when: at least ``min_files`` files
    have the label as top-1, at least ``min_share`` of them carry the genre, and that share is at
    least ``min_lift`` times the genre's share of all files with a person's genre (well above
    what chance would give a genre that common). Two genres tied for most map nothing.
    """

    min_files: int = 10
    min_share: float = 0.5
    min_lift: float = 1.5

    def describe(self) -> str:
        return (f"a label whose name matches no library genre is mapped to the genre most often carried by "
                f"the files whose top-1 label it is, when at least {self.min_files} files have it as top-1, "
                f"at least {self.min_share:.0%} of them carry that genre, and that share is at least "
                f"{self.min_lift:g} times the genre's share of all files with a person's genre; a tie maps nothing")

    def to_dict(self) -> dict[str, Any]:
        return {"min_files": self.min_files, "min_share": self.min_share, "min_lift": self.min_lift,
                "text": self.describe()}


@dataclass(frozen=True)
class Pair:
    """One model label and the library genre it stands for (``genre`` None: none)."""

    label: str
    written: str  # the genre name `tag` writes for the label
    genre: str | None  # library genre key
    how: str  # BY_CONFIG | BY_NAME | BY_COOCCURRENCE | UNMAPPED
    detail: str  # one line: how the pair was found, or why the label maps nothing
    top1_files: int = 0  # files with a person's genre whose top-1 label this is
    carrying: int = 0  # of those, how many carry the most common genre (co-occurrence)

    def to_dict(self, names: Mapping[str, str]) -> dict[str, Any]:
        return {"label": self.label, "written": self.written, "genre": names.get(self.genre, self.genre)
                if self.genre else None, "genre_key": self.genre, "how": self.how or "unmapped",
                "detail": self.detail, "top1_files": self.top1_files, "carrying": self.carrying}


@dataclass(frozen=True)
class LabelMapping:
    pairs: tuple[Pair, ...]  # in the model's label order
    rule: CooccurrenceRule
    notes: tuple[str, ...] = ()  # e.g. a config entry for a label the model does not have

    def genre_of(self, label: str) -> str | None:
        for p in self.pairs:
            if p.label == label:
                return p.genre
        return None

    def by_index(self) -> list[str | None]:
        """The library genre key of each label, in label order."""
        return [p.genre for p in self.pairs]

    def unmapped_labels(self) -> list[str]:
        return [p.label for p in self.pairs if p.genre is None]

    def unreached(self, genre_keys: Sequence[str]) -> list[str]:
        """Library genres no label maps to (the model can never agree on them)."""
        reached = {p.genre for p in self.pairs if p.genre}
        return [k for k in genre_keys if k not in reached]


def written_names(labels: Sequence[str], display_names: Mapping[str, str] | None,
                  user_map: Mapping[str, str] | None) -> dict[str, str]:
    """The genre ``tag`` writes for each label (the ``[genres]`` table, the model's names, defaults)."""
    return {lab: display_name(lab, model_names=dict(display_names or {}), user_map=dict(user_map or {}))
            for lab in labels}


def derive_mapping(
    labels: Sequence[str],
    written: Mapping[str, str],
    genre_names: Mapping[str, str],
    top1: Sequence[int],
    truth: Sequence[Sequence[str]],
    *,
    overrides: Mapping[str, str] | None = None,
    rule: CooccurrenceRule | None = None,
    key_of: Callable[[str], str] | None = None,
) -> LabelMapping:
    """Map every model label to a library genre key, or to none.

    ``written``: label -> the genre name tag writes for it (:func:`written_names`).
    ``genre_names``: library genre key -> its name (the taxonomy's). ``top1`` and ``truth``: per
    file with a person's genre (and an analysis), the index of its top-1 label and its library
    genre keys. ``overrides``: the config's ``[evaluate] map`` (label -> library genre name).
    ``key_of``: a genre name's key in this library (:meth:`tagger.taxonomy.Taxonomy.key_of`:
    the ``[learn]`` merges applied; default :func:`tagger.taxonomy.genre_key`).
    """
    from tagger.taxonomy import genre_key

    key_of = key_of or genre_key
    rule = rule or CooccurrenceRule()
    overrides = dict(overrides or {})
    notes = [f"[evaluate] map: the model has no label {lab!r} (its labels: {', '.join(labels)})"
             for lab in overrides if lab not in labels]
    n = len(truth)
    if len(top1) != n:
        raise ValueError(f"top1 has {len(top1)} entries for {n} files")
    base = Counter(k for keys in truth for k in dict.fromkeys(keys))
    per_label: dict[int, list[Sequence[str]]] = {}
    for i, keys in zip(top1, truth, strict=True):
        per_label.setdefault(int(i), []).append(keys)

    pairs = []
    for i, lab in enumerate(labels):
        name = written.get(lab, lab)
        files = per_label.get(i, [])
        if lab in overrides:
            key = key_of(overrides[lab])
            there = "" if key in genre_names else " (no file of this library carries it)"
            pairs.append(Pair(lab, name, key, BY_CONFIG, f"[evaluate] map: {lab} = {overrides[lab]!r}{there}",
                              len(files)))
            continue
        exact = _exact(lab, name, genre_names, key_of)
        if exact is not None:
            key, why = exact
            pairs.append(Pair(lab, name, key, BY_NAME, why, len(files)))
            continue
        pairs.append(_by_cooccurrence(lab, name, files, base, n, genre_names, rule))
    return LabelMapping(tuple(pairs), rule, tuple(notes))


def _exact(label: str, written: str, genre_names: Mapping[str, str],
           key_of: Callable[[str], str]) -> tuple[str, str] | None:
    """The library genre whose key equals the written name's or the label's (written first: it
    is what tag puts in the file)."""
    for what, text in (("the name tag writes for it", written), ("its label", label)):
        key = key_of(text)
        if key and key in genre_names:
            shown = genre_names[key]
            same = "" if shown == text else f" ({text!r} and {shown!r} are one genre)"
            return key, f"{what} is the library genre {shown}{same}"
    return None


def _by_cooccurrence(label: str, written: str, files: list[Sequence[str]], base: Counter, n: int,
                     genre_names: Mapping[str, str], rule: CooccurrenceRule) -> Pair:
    def none(why: str, carrying: int = 0) -> Pair:
        return Pair(label, written, None, UNMAPPED, why, len(files), carrying)

    if not files:
        return none("no name matches a library genre, and no file has it as top-1 label")
    counts = Counter(k for keys in files for k in dict.fromkeys(keys))
    if not counts:
        return none("no name matches a library genre")
    ranked = counts.most_common()
    best, carrying = ranked[0]
    share = carrying / len(files)
    chance = base[best] / n if n else 0.0
    lift = share / chance if chance else float("inf")
    found = (f"{carrying} of the {len(files)} files whose top-1 label it is carry {genre_names.get(best, best)} "
             f"({share:.0%}; {chance:.0%} of all files)")
    if len(files) < rule.min_files:
        return none(f"no name matches; only {len(files)} files have it as top-1 label "
                    f"(the rule needs {rule.min_files})", carrying)
    if len(ranked) > 1 and ranked[1][1] == carrying:
        tied = sorted(genre_names.get(k, k) for k, c in ranked if c == carrying)
        return none(f"no name matches; its top-1 files carry {' and '.join(tied)} equally often "
                    f"({carrying} of {len(files)} each)", carrying)
    if share < rule.min_share:
        return none(f"no name matches; {found}: under {rule.min_share:.0%}", carrying)
    if lift < rule.min_lift:
        return none(f"no name matches; {found}: not {rule.min_lift:g} times its share of the library", carrying)
    return Pair(label, written, best, BY_COOCCURRENCE, found, len(files), carrying)


# ---------------------------------------------------------------------------------------------
# decisions
# ---------------------------------------------------------------------------------------------

def tag_decision(scores: np.ndarray, labels: Sequence[str], *, top_k: int, min_confidence: float,
                 thresholds: Mapping[str, float] | None = None, display_names: Mapping[str, str] | None = None,
                 user_map: Mapping[str, str] | None = None) -> Decision:
    """What ``tag`` would write on a file from its stored scores, whatever genre is there now
    (``--on-existing replace``, decided per track): ``Decision.chosen`` holds the model's
    qualifying labels, best first (empty: uncertain). ``thresholds``: per-label thresholds in
    effect (:class:`tagger.aggregate.Thresholds`), ``min_confidence`` for the other labels."""
    return decide(np.asarray(scores, dtype=np.float32), tuple(labels), top_k=top_k, min_confidence=min_confidence,
                  thresholds=dict(thresholds or {}), existing=(), on_existing="replace",
                  names=dict(display_names or {}), user_map=dict(user_map or {}))


def chosen_indices(decision: Decision, labels: Sequence[str]) -> tuple[int, ...]:
    index = {lab: i for i, lab in enumerate(labels)}
    return tuple(index[r.label] for r in decision.chosen) if decision.action == TAG else ()


# ---------------------------------------------------------------------------------------------
# agreement
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figure:
    """A share with its Wilson 95 % interval."""

    hits: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float | None:
        return self.hits / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "hits": self.hits, "n": self.n, "ci95": [self.low, self.high]}

    def text(self) -> str:
        if not self.n:
            return "n/a (no files)"
        return f"{self.hits / self.n:.1%} ({self.hits}/{self.n}, 95% CI {self.low:.0%}–{self.high:.0%})"


def figure(hits: int, n: int) -> Figure:
    from tagger.metrics import wilson_interval

    lo, hi = wilson_interval(hits, n) if n else (0.0, 1.0)
    return Figure(int(hits), int(n), float(lo), float(hi))


@dataclass(frozen=True)
class Disagreement:
    path: str
    person: tuple[str, ...]  # the person's genres (library names)
    top_label: str
    top_written: str  # the name tag writes for the top-1 label
    top_genre: str | None  # the library genre it maps to (None: none)
    top_score: float
    person_score: float | None  # the best score of a label mapped to one of the person's genres
    would_write: tuple[str, ...]  # what tag would write ("" none: uncertain)
    ranked: tuple[tuple[str, float], ...]  # the first few labels' written names and scores

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "person": list(self.person), "top_label": self.top_label,
                "top_written": self.top_written, "top_genre": self.top_genre, "top_score": self.top_score,
                "person_genre_score": self.person_score, "would_write": list(self.would_write),
                "scores": [{"genre": g, "score": s} for g, s in self.ranked]}


@dataclass(frozen=True)
class FileResult:
    """One file with a person's genre, evaluated."""

    path: str
    truth: tuple[str, ...]  # library genre keys
    top1: int  # label index
    top_score: float
    chosen: tuple[int, ...]  # label indices tag would write


@dataclass(frozen=True)
class Agreement:
    genres: tuple[str, ...]  # library genre keys, most tracks first
    names: dict[str, str]  # key -> name
    labels: tuple[str, ...]
    mapping: LabelMapping
    files: int  # evaluated files (a person's genre and an analysis)
    top1: Figure  # top-1 label maps to one of the person's genres
    top1_reachable: Figure  # the same, on files with a genre some label maps to
    precision: Figure  # written genres that are among the person's
    coverage: Figure  # files tag would write a genre on
    file_precision: Figure  # files tag writes on whose first written genre is among the person's
    per_genre: dict[str, dict[str, Any]]  # tagger.metrics.per_genre, by genre name
    confusion: np.ndarray  # (G + 1, G + 1): rows a person's single genre, columns top-1 mapped; last: NO_GENRE
    confusion_names: tuple[str, ...]
    single_genre_files: int
    disagreements: tuple[Disagreement, ...]
    results: tuple[FileResult, ...] = field(repr=False, default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "top1_agreement": self.top1.to_dict(),
            "top1_agreement_reachable": self.top1_reachable.to_dict(),
            "precision": self.precision.to_dict(),
            "file_precision": self.file_precision.to_dict(),
            "coverage": self.coverage.to_dict(),
            "per_genre": self.per_genre,
            "mapping": [p.to_dict(self.names) for p in self.mapping.pairs],
            "mapping_rule": self.mapping.rule.to_dict(),
            "mapping_notes": list(self.mapping.notes),
            "unmapped_labels": self.mapping.unmapped_labels(),
            "unreached_genres": [self.names[k] for k in self.mapping.unreached(self.genres)],
            "confusion": {"names": list(self.confusion_names), "matrix": self.confusion.astype(int).tolist(),
                          "files": self.single_genre_files,
                          "rows": "a person's genre (files with exactly one)",
                          "columns": "the model's top-1 label, mapped to a library genre"},
            "disagreements": [d.to_dict() for d in self.disagreements],
        }


def evaluate(
    paths: Sequence[str],
    truth: Sequence[Sequence[str]],
    scores: np.ndarray,
    chosen: Sequence[Sequence[int]],
    *,
    labels: Sequence[str],
    written: Mapping[str, str],
    genres: Sequence[str],
    names: Mapping[str, str],
    mapping: LabelMapping,
    disagreements: int = DISAGREEMENTS,
) -> Agreement:
    """Agreement of the model with a person's genres on the files given.

    ``scores``: (n, labels) stored track scores; ``truth``: per file its library genre keys
    (non-empty); ``chosen``: per file the label indices tag would write (:func:`chosen_indices`).
    ``genres``: the library genre keys (the taxonomy's order), ``names`` their names.
    """
    from tagger.metrics import confusion_matrix, per_genre

    scores = np.asarray(scores, dtype=np.float64).reshape(len(paths), len(labels))
    if not (len(truth) == len(chosen) == len(paths)):
        raise ValueError("paths, truth and chosen must have one entry per file")
    genres = tuple(genres)
    g_index = {k: j for j, k in enumerate(genres)}
    to_genre = mapping.by_index()
    n, g = len(paths), len(genres)
    top1 = np.argmax(scores, axis=1) if n else np.zeros(0, dtype=int)

    y_true = np.zeros((n, g), dtype=bool)
    y_pred = np.zeros((n, g), dtype=bool)
    hits = written_total = covered = first_ok = top_ok = 0
    reach_n = reach_ok = 0
    reached = {k for k in to_genre if k}
    results = []
    for i in range(n):
        keys = set(truth[i])
        for k in keys:
            if k in g_index:
                y_true[i, g_index[k]] = True
        picks = tuple(int(c) for c in chosen[i])
        for c in picks:
            mapped = to_genre[c]
            if mapped in g_index:
                y_pred[i, g_index[mapped]] = True
            written_total += 1
            hits += mapped in keys
        if picks:
            covered += 1
            first_ok += to_genre[picks[0]] in keys
        ok = to_genre[int(top1[i])] in keys
        top_ok += ok
        if keys & reached:
            reach_n += 1
            reach_ok += ok
        results.append(FileResult(paths[i], tuple(truth[i]), int(top1[i]), float(scores[i, top1[i]]), picks))

    genre_names = [names.get(k, k) for k in genres]
    table = per_genre(y_true, y_pred, genre_names) if n else {}

    single = [i for i in range(n) if len(set(truth[i])) == 1 and truth[i][0] in g_index]
    if single:
        t_idx = np.array([g_index[truth[i][0]] for i in single])
        p_idx = np.array([g_index.get(to_genre[int(top1[i])] or "", g) for i in single])
        cm = np.asarray(confusion_matrix(t_idx, p_idx, g + 1))
    else:
        cm = np.zeros((g + 1, g + 1), dtype=int)

    return Agreement(
        genres=genres, names=dict(names), labels=tuple(labels), mapping=mapping, files=n,
        top1=figure(top_ok, n), top1_reachable=figure(reach_ok, reach_n), precision=figure(hits, written_total),
        coverage=figure(covered, n), file_precision=figure(first_ok, covered), per_genre=table,
        confusion=cm, confusion_names=(*genre_names, NO_GENRE), single_genre_files=len(single),
        disagreements=tuple(_disagreements(results, scores, labels, written, names, to_genre, disagreements)),
        results=tuple(results),
    )


def _disagreements(results: Sequence[FileResult], scores: np.ndarray, labels: Sequence[str],
                   written: Mapping[str, str], names: Mapping[str, str], to_genre: Sequence[str | None],
                   limit: int) -> list[Disagreement]:
    """Files whose top-1 label maps to none of the person's genres, most confident first (ties:
    by path). ``results[i]`` goes with ``scores[i]``."""
    wrong = [i for i, r in enumerate(results) if to_genre[r.top1] not in set(r.truth)]
    wrong.sort(key=lambda i: (-results[i].top_score, results[i].path))
    out = []
    for i in wrong[:max(limit, 0)]:
        r, row = results[i], scores[i]
        mine = [float(row[j]) for j, k in enumerate(to_genre) if k and k in set(r.truth)]
        order = np.argsort(-row, kind="stable")[:RANKED]
        out.append(Disagreement(
            path=r.path, person=tuple(names.get(k, k) for k in r.truth), top_label=labels[r.top1],
            top_written=written.get(labels[r.top1], labels[r.top1]),
            top_genre=names.get(to_genre[r.top1] or "", to_genre[r.top1]) if to_genre[r.top1] else None,
            top_score=r.top_score, person_score=max(mine) if mine else None,
            would_write=tuple(written.get(labels[c], labels[c]) for c in r.chosen),
            ranked=tuple((written.get(labels[j], labels[j]), float(row[j])) for j in order),
        ))
    return out


# ---------------------------------------------------------------------------------------------
# files no person tagged
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Unlabelled:
    """What tag would write on the files that carry no genre a person wrote."""

    files: int  # analysed files without a person's genre
    tagger_owned: int  # of them, files whose genres are tagger's own
    would_write: tuple[tuple[str, int], ...]  # genre written -> files, most first
    uncertain: int  # files tag would leave alone (no genre reaches its threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "tagger_owned": self.tagger_owned, "uncertain": self.uncertain,
                "would_write": [{"genre": g, "files": n} for g, n in self.would_write]}

    def text(self) -> str:
        if not self.files:
            return "every analysed file carries a person's genre"
        what = ", ".join(f"{g} {n}" for g, n in self.would_write[:8])
        if len(self.would_write) > 8:
            what += f", {len(self.would_write) - 8} more genres"
        owned = f" ({self.tagger_owned} with tagger's own genres)" if self.tagger_owned else ""
        parts = [f"tag would write {what}" if what else "tag would write nothing", f"{self.uncertain} uncertain"]
        return f"{plural(self.files, 'file')} without a person's genre{owned}: " + "; ".join(parts)


def summarise_unlabelled(decisions: Sequence[Decision], tagger_owned: Sequence[bool]) -> Unlabelled:
    """``decisions``: :func:`tag_decision` of each file without a person's genre. A file's
    genres count together ("Rock; Pop" once), best first, as tag would write them."""
    counts: Counter[str] = Counter()
    uncertain = 0
    for d in decisions:
        if d.action == TAG and d.chosen:
            counts["; ".join(r.genre for r in d.chosen)] += 1
        else:
            uncertain += 1
    ranked = tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return Unlabelled(len(decisions), sum(bool(o) for o in tagger_owned), ranked, uncertain)


# ---------------------------------------------------------------------------------------------
# the whole evaluation, as the reports show it
# ---------------------------------------------------------------------------------------------

#: Per-file row fields (JSON ``files`` and the CSV columns, in this order).
ROW_FIELDS = ("path", "status", "reason", "genres", "person_genres", "tagger_owned", "top_label", "top_genre",
              "top_score", "top_maps_to", "top1_agrees", "would_write", "write_maps_to", "write_agrees")

#: ``status`` of a row.
EVALUATED = "evaluated"  # a person's genre and an analysis: counted in the figures
NO_PERSON = "no person's genre"  # untagged, or only tagger's own genres
FAILED = "failed"  # no analysis (unreadable, corrupt, too short...)


@dataclass(frozen=True)
class Evaluation:
    """Everything ``tagger evaluate`` reports (console, JSON, CSV, HTML)."""

    model: dict[str, Any]
    options: dict[str, Any]
    library: dict[str, Any]  # counts: files, evaluated, no person's genre, tagger's own, failed, paths
    taxonomy: tuple[tuple[str, int, int], ...]  # library genres: (name, tracks, albums), most tracks first
    agreement: Agreement
    unlabelled: Unlabelled
    failed: tuple[tuple[str, str], ...]
    rows: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "options": self.options, "library": self.library,
            "genres": [{"genre": g, "tracks": t, "albums": a} for g, t, a in self.taxonomy],
            **self.agreement.to_dict(),
            "no_person_genre": self.unlabelled.to_dict(),
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "notes": list(self.notes),
            "files": list(self.rows),
        }

    def summary_lines(self, *, detail: bool = True) -> list[str]:
        """The console summary: a few lines (``detail``: the mapping and the disagreements too)."""
        a, lib = self.agreement, self.library
        m = self.model
        out = [f"evaluate: {a.files} files with a person's genre against {m.get('name') or 'the model'} "
               f"({m.get('model_id', '')}); {lib.get('no_person', 0)} without one, {lib.get('failed', 0)} failed"]
        pairs = a.mapping.pairs
        by = Counter(p.how for p in pairs if p.genre)
        how = ", ".join(f"{n} by {h}" for h, n in sorted(by.items()))
        out.append(f"mapping: {sum(by.values())} of {len(pairs)} labels mapped to library genres ({how or 'none'})")
        if detail:
            for p in pairs:
                if p.genre:
                    out.append(f"  {p.label} -> {a.names.get(p.genre, p.genre)}  [{p.how}: {p.detail}]")
            if a.mapping.unmapped_labels():
                out.append(f"  unmapped labels: {', '.join(a.mapping.unmapped_labels())}")
            if any(p.how in (BY_COOCCURRENCE, UNMAPPED) for p in pairs):
                out.append(f"  rule for pairs by co-occurrence: {a.mapping.rule.describe()}")
            unreached = [a.names[k] for k in a.mapping.unreached(a.genres)]
            if unreached:
                out.append(f"  library genres no label maps to: {', '.join(unreached)}")
        out.append(f"top-1 agreement {a.top1.text()}")
        thr = self.options.get("thresholds_text") or f"min-confidence {self.options.get('min_confidence')}"
        out.append(f"at the thresholds ({thr}, top-k {self.options.get('top_k')}): precision {a.precision.text()}; "
                   f"coverage {a.coverage.text()}")
        out.append(self.unlabelled.text())
        if detail and a.disagreements:
            out.append("most confident disagreements:")
            for d in a.disagreements[:SHOWN]:
                out.append(f"  {d.path}: person {'; '.join(d.person)}; model {d.top_written} {d.top_score:.2f}")
            if len(a.disagreements) > SHOWN:
                out.append(f"  … {len(a.disagreements) - SHOWN} more in the report (--report)")
        return out


def row_for(path: str, *, status: str, reason: str = "", genres: Sequence[str] = (), person: Sequence[str] = (),
            tagger_owned: bool = False, decision: Decision | None = None, top: tuple[str, str, float] | None = None,
            top_maps_to: str | None = None, write_maps_to: Sequence[str | None] = (),
            top1_agrees: bool | None = None, write_agrees: bool | None = None) -> dict[str, Any]:
    """One per-file row (:data:`ROW_FIELDS`). ``top``: (label, written name, score)."""
    return {
        "path": path, "status": status, "reason": reason, "genres": list(genres), "person_genres": list(person),
        "tagger_owned": bool(tagger_owned), "top_label": top[0] if top else None,
        "top_genre": top[1] if top else None, "top_score": top[2] if top else None, "top_maps_to": top_maps_to,
        "top1_agrees": top1_agrees,
        "would_write": [r.genre for r in decision.chosen] if decision is not None and decision.action == TAG else [],
        "write_maps_to": list(write_maps_to), "write_agrees": write_agrees,
    }


class NothingToCompare(FatalError):
    """The library carries no genre a person wrote: nothing to compare the model with (exit 1)."""


def nothing_to_compare(*, without: int, owned: int, failed: int = 0) -> NothingToCompare:
    """The one line for a library without a person's genre: ``without`` files have no genre,
    ``owned`` only tagger's own, ``failed`` could not be read."""
    total = without + owned + failed
    return NothingToCompare(
        f"no file carries a genre a person wrote ({plural(total, 'file')}: {without} without a genre, {owned} with "
        f"tagger's own genres{f', {failed} unreadable' if failed else ''}): nothing to compare the model with; "
        f"tag some files by hand (or with another tool) first")


def build_evaluation(
    tracks: Sequence[Any],
    failed: Sequence[tuple[str, str]],
    *,
    meta: Any,
    top_k: int,
    min_confidence: float,
    user_map: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    settings: Any = None,
    thresholds: Mapping[str, float] | None = None,
    disagreements: int = DISAGREEMENTS,
    rule: CooccurrenceRule | None = None,
    paths: Sequence[str] = (),
) -> Evaluation:
    """The evaluation of ``tracks`` (:class:`tagger.library.LibraryTrack`: genres as read,
    provenance, album, stored analysis) with the model ``meta`` (:class:`tagger.modelmeta.ModelMeta`).

    ``min_confidence`` and ``thresholds``: the thresholds in effect (per label where
    ``thresholds`` has the label, :func:`tagger.aggregate.thresholds_for`). ``settings``: the
    config's ``[learn]`` table (:class:`tagger.taxonomy.LearnSettings`: its
    merges, renames and drops apply; every genre counts, however few its tracks). Raises
    :class:`NothingToCompare` when no track carries a genre a person wrote.
    """
    import dataclasses

    from tagger.taxonomy import LearnSettings, build_taxonomy

    labels = tuple(meta.labels)
    failed_paths = {p for p, _ in failed}

    def is_person(t: Any) -> bool:
        return bool(t.genres) and not t.tagger_owned

    person = [t for t in tracks if is_person(t)]
    owned = sum(1 for t in tracks if t.genres and t.tagger_owned)
    if not person:
        unread = len(failed_paths - {t.path for t in tracks})
        raise nothing_to_compare(without=len(tracks) - owned, owned=owned, failed=unread)
    base = settings if settings is not None else LearnSettings(merge={}, rename={}, drop=frozenset())
    taxonomy = build_taxonomy(((t.genres, t.album) for t in person),
                              dataclasses.replace(base, min_tracks=1, min_albums=1))
    genres = tuple(g.key for g in taxonomy.genres)
    names = dict(taxonomy.names())
    written = written_names(labels, meta.display_names, user_map)

    def decide_one(scores: Any) -> Decision:
        return tag_decision(np.asarray(scores), labels, top_k=top_k, min_confidence=min_confidence,
                            thresholds=thresholds, display_names=meta.display_names, user_map=user_map)

    evaluated, others, dropped = [], [], 0
    for t in tracks:
        if t.analysis is None:
            continue
        keys = taxonomy.labels_of(t.genres) if is_person(t) else ()
        if keys:
            evaluated.append((t, keys))
        else:
            dropped += is_person(t)  # a person's genres that [learn] drops entirely
            others.append(t)
    scores = np.array([t.analysis.scores for t, _ in evaluated], dtype=np.float64).reshape(len(evaluated), len(labels))
    truth = [keys for _, keys in evaluated]
    decisions = [decide_one(s) for s in scores]
    top1 = [int(np.argmax(s)) for s in scores]
    mapping = derive_mapping(labels, written, names, top1, truth, overrides=overrides, rule=rule,
                             key_of=taxonomy.key_of)
    chosen = [chosen_indices(d, labels) for d in decisions]
    agreement = evaluate([t.path for t, _ in evaluated], truth, scores, chosen, labels=labels, written=written,
                         genres=genres, names=names, mapping=mapping, disagreements=disagreements)
    other_decisions = [decide_one(t.analysis.scores) for t in others]
    unlabelled = summarise_unlabelled(other_decisions, [t.tagger_owned for t in others])

    to_genre = mapping.by_index()
    rows: list[dict[str, Any]] = []
    for (t, keys), d, r in zip(evaluated, decisions, agreement.results, strict=True):
        maps = [to_genre[c] for c in chosen_indices(d, labels)]
        top_key = to_genre[r.top1]
        rows.append(row_for(
            t.path, status=EVALUATED, genres=t.genres, person=[names[k] for k in keys], decision=d,
            top=(labels[r.top1], written[labels[r.top1]], r.top_score),
            top_maps_to=names.get(top_key, top_key) if top_key else None,
            write_maps_to=[names.get(k, k) if k else None for k in maps], top1_agrees=top_key in set(keys),
            write_agrees=(maps[0] in set(keys)) if maps else None))
    for t, d in zip(others, other_decisions, strict=True):
        best = d.ranked[0] if d.ranked else None
        rows.append(row_for(
            t.path, status=NO_PERSON, genres=t.genres, tagger_owned=t.tagger_owned, decision=d,
            reason="its genres are tagger's own" if t.tagger_owned and t.genres else
            "its genres are all dropped by the [learn] table" if t.genres else "no genre",
            top=(best.label, best.genre, best.score) if best else None))
    reasons = dict(failed)
    for t in tracks:
        if t.analysis is None:
            rows.append(row_for(t.path, status=FAILED, reason=reasons.get(t.path, "no analysis"), genres=t.genres,
                                tagger_owned=t.tagger_owned))
    seen = {t.path for t in tracks}
    for p, why in failed:
        if p not in seen:
            rows.append(row_for(p, status=FAILED, reason=why))
    rows.sort(key=lambda row: row["path"])

    notes = []
    if any(p.how == BY_COOCCURRENCE for p in mapping.pairs):
        notes.append("pairs found by co-occurrence were derived from these same files, which flatters their "
                     "figures a little; give them in the config ([evaluate] map) to fix them")
    if dropped:
        notes.append(f"{dropped} files whose genres the config's [learn] table drops entirely are counted as "
                     f"without a person's genre")
    notes.extend(mapping.notes)
    library = {
        "paths": list(paths), "files": len(rows), "evaluated": agreement.files,
        "no_person": len(others), "tagger_owned": owned, "failed": len({r["path"] for r in rows if r["status"] == FAILED}),
        "person": len(person),
    }
    options = {"top_k": top_k, "min_confidence": min_confidence, "thresholds": dict(thresholds or {}),
               "decided": "per track, as `tagger tag --on-existing replace --no-albums` would",
               "disagreements": disagreements}
    model = {"name": meta.name, "model_id": meta.model_id, "architecture": meta.architecture,
             "labels": list(labels), "metrics": meta.metrics}
    return Evaluation(model=model, options=options, library=library,
                      taxonomy=tuple((g.name, g.tracks, g.albums) for g in taxonomy.genres),
                      agreement=agreement, unlabelled=unlabelled, failed=tuple(failed), rows=tuple(rows),
                      notes=tuple(notes))
