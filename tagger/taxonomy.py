"""A library's genres as people's tools wrote them -> one taxonomy: keys, splitting, counts, styles.

Pure Python (no numpy, TensorFlow or Ray); mutagen only for the ID3v1 genre list. ``tagger learn``
builds its labels here (:func:`build_taxonomy`), ``tagger evaluate`` compares genres by
:func:`genre_key`, and ``tagger tag --genre-style`` writes names through :func:`styled`. The rules
are those of docs/genres.md; in short:

**One key per genre** (:func:`genre_key`): two spellings are one genre when their keys are equal.

1. Unicode NFKC and case folding ("ROCK" = "rock", "Straße" = "STRASSE"), then accents folded:
   a letter's combining accents (U+0300..U+036F, after NFKD) are dropped and ``ø æ œ ł đ ð þ``
   become ``o ae oe l d d th`` ("Música" = "Musica", "Électro" = "Electro"). Marks of other
   scripts (Japanese dakuten, Indic vowel signs) are kept: they change the letter. A key is its
   own key (``genre_key(genre_key(x)) == genre_key(x)``).
2. "and" is one symbol wherever it joins two words: ``&``, ``+``, the word ``and``, and the
   ``n`` of ``'n'`` / ``'n`` / ``n'`` / a lone ``n`` between words ("Drum & Bass" = "Drum and Bass"
   = "Drum'n'Bass" = "drum n bass"; "Rock 'n' Roll" = "Rock & Roll"). An ``&`` that joins nothing
   ("& Country") stays as it is, so it never matches the word alone.
3. Every other punctuation character (Unicode category P: ``-`` ``–`` ``.`` ``/``
   ``'`` ``_`` ``,`` brackets, quotes) and all spacing is removed ("Hip Hop" = "hip-hop" =
   "HipHop" = "Hip-Hop"; "Singer/Songwriter" = "Singer-Songwriter"; "Alt. Rock" = "Alt Rock").
   Letters, digits and symbols (``#``, ``$``, emoji) are kept.
4. Abbreviations written without a separator: ``RnB`` = ``R&B`` and ``DnB`` / ``D&B`` = "Drum and
   Bass" (the only ones: a general rule would break real words). "Rhythm and Blues" stays apart
   from "R&B": they are different genres to MusicBrainz, Discogs and AllMusic (the older one and
   contemporary R&B); ``[learn] merge`` joins them where a library means one.
5. A name with nothing left (empty, only spaces or punctuation) has the key ``""``: no genre.

**One file's values -> single genres** (:func:`split_values`), in order, trimmed, inner spacing
collapsed, repeats (by key) dropped, the first spelling kept:

* ``;``, NUL, ``|``, ``\\`` and line breaks always split (no genre name holds one);
* ``,`` and ``/`` split only where every part is a genre -- a key of ``known_keys`` (the library's
  own single-value genres) or an ID3v1 name -- and a name that is itself a genre stays whole. So
  "Rock/Pop" and "Rock, Pop" split, while "Singer/Songwriter", "AC/DC Tribute", "Folk, World, &
  Country" (Discogs' genre) and ID3v1's own "Pop/Funk" stay whole; ``&`` never splits;
* ID3v1 genre numbers are named first, as ID3v2.3 writes them: "(17)" and "17" -> Rock,
  "(17)(9)" -> Rock, Metal, "(17)Rock" -> Rock, "(21)Eurodisco" -> Ska, Eurodisco (the text after
  the numbers is a refinement, kept when it names another genre), "(RX)" / "(CR)" -> Remix /
  Cover, "((Foo)" -> "(Foo)" (the escape). A number the list does not have (255: ID3v1's "none")
  names nothing and is dropped.

**The taxonomy** (:func:`build_taxonomy`): every track counts once per genre key. A genre's name is
the spelling most tracks use; a tie goes to the first spelling in code-point order ("Rock" before
"rock"), so the name never depends on the order the files were walked. ``[learn]``: ``merge``
folds a genre into another (by key; chains followed), ``rename`` sets the written name, ``drop``
leaves genres out (default: "Other" and "Unknown", ID3v1's placeholders -- mutagen names an
unknown number "Unknown"); genres with fewer than ``min_tracks`` tracks or ``min_albums`` albums
(20 and 3) are left out, each with its reason.

**Written styles** (:func:`styled`): ``as-is`` (the name unchanged), ``beets`` (beets' lastgenre
names in title case: "Hip Hop", "Drum and Bass", "R&B", "Rock and Roll"), ``id3v1`` (the ID3v1
list's spelling where the key is in it: "Hip-Hop", "Rock & Roll"; else unchanged), ``lower``
(MusicBrainz: "hip hop").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The written styles of :func:`styled` (``--genre-style``); the first is the default.
STYLES: tuple[str, ...] = ("as-is", "beets", "id3v1", "lower")

#: [learn] defaults.
DEFAULT_MIN_TRACKS = 20
DEFAULT_MIN_ALBUMS = 3
#: ID3v1's placeholders, left out unless [learn] drop says otherwise ("Unknown" is what mutagen
#: names an ID3v1 number outside the list, e.g. 255, ID3v1's "no genre").
DEFAULT_DROP: frozenset[str] = frozenset({"Other", "Unknown"})

# -- keys ------------------------------------------------------------------------------------------

#: Letters that carry no combining accent to drop but are commonly written without it.
_LETTER_FOLD = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ł": "l",
                              "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH"})
#: Apostrophe look-alikes people's tools write in "Rock 'n' Roll".
_APOSTROPHES = str.maketrans({c: "'" for c in "\u2018\u2019\u201b\u02bc\u0060\u00b4\u2032"})
_W = r"[^\W_]"  # a letter or digit
_AND_WORD = re.compile(rf"(?<={_W})\s+and\s+(?={_W})")
_AND_N = re.compile(rf"(?<={_W})(?:\s+|\s*'\s*)n(?:\s+|\s*'\s*)(?={_W})")
_AND_SYMBOL = re.compile(rf"(?<={_W})\s*\+\s*(?={_W})")
#: Abbreviations of "and" names written without any separator (after the rules above).
_ALIASES = {"rnb": "r&b", "dnb": "drum&bass", "d&b": "drum&bass"}


def _fold_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not 0x300 <= ord(c) <= 0x36F).translate(_LETTER_FOLD)
    return unicodedata.normalize("NFC", kept)


@functools.lru_cache(maxsize=65536)
def genre_key(name: str) -> str:
    """One key per genre whatever its case, accents, spacing and punctuation (module docstring):
    "Hip Hop", "hip-hop" and "HipHop" -> ``"hiphop"``; "Drum & Bass", "drum n bass" ->
    ``"drum&bass"``; "" or only spaces/punctuation -> ``""``."""
    text = _fold_accents(unicodedata.normalize("NFKC", name).casefold()).translate(_APOSTROPHES)
    # punctuation other than & and ' (and the + of "Jazz+Funk") separates words like a space does
    text = "".join(" " if _separates(c) else c for c in text)
    text = _AND_WORD.sub("&", text)
    text = _AND_N.sub("&", text)
    text = _AND_SYMBOL.sub("&", text)
    text = re.sub(r"\s*&\s*", "&", text)
    key = "".join(c for c in text if not (c.isspace() or c == "'"))
    return _ALIASES.get(key, key)


def _separates(c: str) -> bool:
    if c in "&'+":
        return False
    cat = unicodedata.category(c)
    return cat[0] in "PZ" or cat in ("Cc", "Cf")


# -- ID3v1 -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def id3v1_genres() -> tuple[str, ...]:
    """The ID3v1 genre list (with Winamp's extensions), as mutagen has it: index = number."""
    from mutagen.id3 import TCON

    return tuple(TCON.GENRES)


@functools.lru_cache(maxsize=1)
def _id3v1_by_key() -> dict[str, str]:
    return {genre_key(g): g for g in id3v1_genres()}


_ID3_SPECIAL = {"RX": "Remix", "CR": "Cover"}
_ID3_REFS = re.compile(r"^((?:\((?:\d+|RX|CR)\))+)(.*)$", re.DOTALL)
_ID3_REF = re.compile(r"\((\d+|RX|CR)\)")


def _number_name(ref: str) -> str | None:
    if ref in _ID3_SPECIAL:
        return _ID3_SPECIAL[ref]
    n = int(ref)
    genres = id3v1_genres()
    return genres[n] if n < len(genres) else None


def _id3v1_parse(value: str) -> list[str] | None:
    """The genres an ID3v1 reference stands for (refinement text included), or None when
    ``value`` is no reference. Unknown numbers name nothing (an empty list)."""
    text = value.strip()
    if text.isdigit() and text.isascii():
        name = _number_name(text)
        return [name] if name else []
    m = _ID3_REFS.match(text)
    if m is None:
        return None
    names = [n for n in (_number_name(r) for r in _ID3_REF.findall(m.group(1))) if n]
    rest = m.group(2).strip().lstrip(",/;").strip()  # "(17)/Pop": the refinement is "Pop"
    if rest and not (names and genre_key(rest) == genre_key(names[-1])):
        names.append(rest[1:] if rest.startswith("((") else rest)
    return names


def id3v1_name(value: str) -> str | None:
    """The genre one ID3v1 number names: "(17)", "17", "(17)Rock" -> "Rock"; "(RX)" -> "Remix".

    None when ``value`` is not exactly one known number (optionally followed by its own name):
    "Rock", "(255)", "(17)(9)" (several: :func:`split_values` names those), "(21)Eurodisco" (a
    refinement)."""
    names = _id3v1_parse(value)
    if names is None or len(names) != 1:
        return None
    if len(_ID3_REF.findall(value)) > 1:
        return None
    return names[0]


# -- splitting -------------------------------------------------------------------------------------

_HARD = re.compile(r"[;\x00|\\\r\n]")
_SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
    """Trimmed, inner spacing one space, control characters gone."""
    text = "".join(c for c in text if unicodedata.category(c) != "Cc" or c in "\t")
    return _SPACES.sub(" ", text).strip()


def _hard_parts(values: Sequence[str]) -> list[str]:
    """Values cut at the separators that always split, ID3v1 references named; trimmed, no empties."""
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            continue
        for part in _HARD.split(value):
            part = _clean(part)
            if not part:
                continue
            if part.startswith("(("):  # ID3v2.3's escape: "((Foo)" is the text "(Foo)"
                out.append(part[1:])
                continue
            named = _id3v1_parse(part)
            if named is None:
                out.append(part)
            else:
                out.extend(_clean(n) for n in named if _clean(n))
    return out


def single_keys(values: Iterable[Sequence[str]]) -> frozenset[str]:
    """The keys of every single-value genre among many files' values (parts without ``,`` or
    ``/`` once the always-splitting separators are applied): the ``known_keys`` of
    :func:`split_values` for a library."""
    keys = set()
    for vals in values:
        for part in _hard_parts(vals):
            if "," not in part and "/" not in part:
                k = genre_key(part)
                if k:
                    keys.add(k)
    return frozenset(keys)


def _soft(text: str, is_genre) -> list[str] | None:
    """``text`` as genres split at ``,`` / ``/``: itself when it is a genre, else its parts when
    every one is (recursively); None when it cannot be."""
    if is_genre(text):
        return [text]
    for sep in (",", "/"):
        if sep not in text:
            continue
        parts = [p for p in (_clean(p) for p in text.split(sep)) if p]
        if not parts:
            return None
        out: list[str] = []
        for p in parts:
            got = _soft(p, is_genre)
            if got is None:
                break
            out.extend(got)
        else:
            return out
    return None


def split_values(values: Sequence[str], known_keys: Collection[str] = ()) -> list[str]:
    """One file's genre values -> single genres, in order, each once (by key), trimmed.

    ``;``, NUL, ``|``, ``\\`` and line breaks always split; ``,`` and ``/`` only where every part is
    a genre (a key in ``known_keys`` or an ID3v1 name) and the whole is not; ID3v1 numbers are
    named first. See the module docstring for the rules and examples."""
    if isinstance(values, str):
        values = [values]
    known = known_keys if isinstance(known_keys, frozenset) else frozenset(known_keys)
    return list(_split(tuple(v for v in values if isinstance(v, str)), known))


@functools.lru_cache(maxsize=65536)
def _split(values: tuple[str, ...], known: frozenset[str]) -> tuple[str, ...]:
    """:func:`split_values`, cached: a library repeats the same few values on many files (a
    frozenset caches its hash, so the key costs little)."""
    id3 = _id3v1_by_key()

    def is_genre(text: str) -> bool:
        k = genre_key(text)
        return bool(k) and (k in known or k in id3)

    out: list[str] = []
    seen: set[str] = set()
    for part in _hard_parts(values):
        pieces = [part]
        if "," in part or "/" in part:
            part = _clean(part.strip(",/")) or part  # "Rock/" is Rock
            pieces = _soft(part, is_genre) or [part]
        for p in pieces:
            k = genre_key(p)
            if k and k not in seen:
                seen.add(k)
                out.append(p)
    return tuple(out)


# -- written styles --------------------------------------------------------------------------------

#: beets (lastgenre's names, title-cased) where plain title case gets them wrong; by key.
_BEETS = {genre_key(n): n for n in (
    "Hip Hop", "Trip Hop", "Drum and Bass", "R&B", "Rock and Roll", "Rhythm and Blues", "Jazz Funk",
    "Lo-Fi", "J-Pop", "K-Pop", "J-Rock", "C-Pop", "EDM", "IDM", "EBM", "UK Garage", "UK Drill", "2-Step",
    "Synthpop", "Britpop", "Post-Punk", "Post-Rock", "Post-Hardcore", "Post-Metal", "New Age", "New Wave",
    "Nu Metal", "Nu Jazz", "Singer-Songwriter", "A Cappella", "Avant-Garde", "Easy Listening",
    "Alternative Rock", "Classic Rock", "Progressive Rock", "Indie Pop", "Indie Rock", "Hard Rock",
    "Heavy Metal", "Doo-Wop", "Bebop", "Hip House", "Lo-Fi Hip Hop", "Rock en Español", "Música Popular Brasileira",
    "MPB", "AOR", "Reggaeton", "Dancehall", "Dubstep", "Electronica", "Chanson", "Schlager", "Zydeco",
)}
#: Words title case leaves lower case unless they begin the name.
_SMALL = frozenset({"and", "n", "of", "the", "in", "on", "an", "de", "del", "la", "le", "en", "et", "und", "di",
                    "da", "do", "for", "to", "with"})


@functools.lru_cache(maxsize=1)
def _genre_words() -> frozenset[str]:
    """Lower-case words of genre names (ID3v1 list, beets table): an all-capitals word among them
    is shouted ("ROCK"), any other all-capitals word an acronym ("EDM", "UK")."""
    words: set[str] = set()
    for name in (*id3v1_genres(), *_BEETS.values()):
        words.update(w for w in re.split(r"[^\w]+", name.lower()) if w)
    return frozenset(words)


def _same_genre_case(text: str, changed: str) -> str:
    """``changed`` (``text`` in another case) where the case change keeps every character the same
    to :func:`genre_key` (never, e.g., dotless i -> I), else ``text``'s own character."""
    if len(text) == len(changed) and all(genre_key(a) == genre_key(b) for a, b in zip(text, changed, strict=True)):
        return changed
    if genre_key(changed) == genre_key(text):
        return changed
    return text


def _title(name: str) -> str:
    """Title case, word by word (words split at spaces, ``-`` and ``/``): the first letter upper
    case, the rest as written; a word in capitals stays so (an acronym: "EDM", "UK") unless it is a
    genre word shouted ("ROCK", "DEATH METAL"); small words ("and", "of", "the") lower case unless
    they begin the name."""
    out = []
    first = True
    for w in re.split(r"(\s+|-|/)", name):
        if not w or w.isspace() or w in ("-", "/"):
            out.append(w)
            continue
        low = w.lower()
        if not first and low in _SMALL:
            out.append(_same_genre_case(w, low))
        elif w.isupper() and len(w) > 1 and low not in _genre_words():
            out.append(w)
        else:
            base = _same_genre_case(w, low) if w.isupper() else w
            i = next((j for j, c in enumerate(base) if c.isalpha()), None)
            if i is not None:
                base = base[:i] + _same_genre_case(base[i], base[i].upper()) + base[i + 1:]
            out.append(base)
        first = False
    return "".join(out)


@functools.lru_cache(maxsize=65536)
def styled(name: str, style: str) -> str:
    """``name`` in a written style: ``as-is`` (unchanged), ``beets`` (beets' names in title case:
    "Hip Hop", "Drum and Bass", "R&B", "Rock and Roll"; else title case), ``id3v1`` (the ID3v1
    list's spelling where the key is in it: "Hip-Hop"; else unchanged), ``lower`` (MusicBrainz:
    "hip hop"). An unknown style is a ValueError."""
    if style == "as-is":
        return name
    if style == "lower":
        return _same_genre_case(name, name.lower())
    key = genre_key(name)
    if style == "id3v1":
        return _id3v1_by_key().get(key, name) if key else name
    if style == "beets":
        if key in _BEETS:
            return _BEETS[key]
        return _title(name)
    raise ValueError(f"unknown genre style {style!r}: expected one of {', '.join(STYLES)}")


# -- the taxonomy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LearnSettings:
    """The config's ``[learn]`` table (+ command-line options). Keys of ``merge``, ``rename`` and
    ``drop`` are genre names compared by :func:`genre_key`."""

    merge: dict[str, str] = field(default_factory=dict)  # source genre -> the genre it is folded into
    rename: dict[str, str] = field(default_factory=dict)  # genre -> written name
    drop: frozenset[str] = DEFAULT_DROP  # genres left out
    min_tracks: int = DEFAULT_MIN_TRACKS
    min_albums: int = DEFAULT_MIN_ALBUMS

    def __post_init__(self) -> None:
        problem = settings_problem(self.merge, self.rename, self.drop, self.min_tracks, self.min_albums)
        if problem:
            raise ValueError(problem)

    def merge_keys(self) -> dict[str, str]:
        """Source key -> final target key, chains followed (:func:`settings_problem` refuses cycles)."""
        direct = {genre_key(s): genre_key(t) for s, t in self.merge.items()}
        out = {}
        for s in direct:
            t = s
            while t in direct:
                t = direct[t]
            out[s] = t
        return out


def settings_problem(merge: Mapping[str, str], rename: Mapping[str, str], drop: Iterable[str],
                     min_tracks: Any, min_albums: Any) -> str:
    """Why these [learn] settings cannot be used (one line naming the key), or ``""``."""
    for what, value in (("min-tracks", min_tracks), ("min-albums", min_albums)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"{what}: expected an integer of at least 1, got {value!r}"
    for table, pairs in (("merge", merge), ("rename", rename)):
        for k, v in pairs.items():
            if not genre_key(k):
                return f"{table} {k!r}: not a genre name (nothing left once spacing and punctuation go)"
            if not isinstance(v, str) or not genre_key(v):
                return f"{table} {k!r}: expected a genre name, got {v!r}"
    drops = list(drop)
    for d in drops:
        if not isinstance(d, str) or not genre_key(d):
            return f"drop {d!r}: not a genre name"
    direct = {genre_key(s): (s, genre_key(t)) for s, t in merge.items()}
    seen_src: dict[str, str] = {}
    for s in merge:
        if genre_key(s) in seen_src:
            return f"merge {s!r} and {seen_src[genre_key(s)]!r} are the same genre; keep one"
        seen_src[genre_key(s)] = s
    for s, (_, t) in direct.items():
        if t == s:
            return f"merge {direct[s][0]!r}: merges a genre into itself"
        path = [s]
        while t in direct:
            if t in path:
                return f"merge {direct[s][0]!r}: the merges go round in a circle ({' -> '.join(path + [t])})"
            path.append(t)
            t = direct[t][1]
    drop_keys = {genre_key(d): d for d in drops}
    for s, (name, _) in direct.items():
        if s in drop_keys:
            return f"merge {name!r}: the genre is also dropped ([learn] drop {drop_keys[s]!r}); choose one"
    rename_src: dict[str, str] = {}
    for k in rename:
        if genre_key(k) in direct:
            return (f"rename {k!r}: that genre is merged into {merge[direct[genre_key(k)][0]]!r} by [learn] "
                    f"merge; rename the genre it is merged into")
        if genre_key(k) in rename_src:
            return f"rename {k!r} and {rename_src[genre_key(k)]!r} are the same genre; keep one"
        rename_src[genre_key(k)] = k
    return ""


@dataclass(frozen=True)
class Genre:
    key: str
    name: str  # the owner's most common spelling, or [learn] rename
    tracks: int
    albums: int
    variants: tuple[tuple[str, int], ...]  # (spelling, tracks), most tracks first


@dataclass(frozen=True)
class Taxonomy:
    genres: tuple[Genre, ...]  # kept, most tracks first
    left_out: tuple[tuple[Genre, str], ...]  # (genre, one-line reason)
    tracks_labelled: int  # tracks with at least one kept genre
    tracks_unlabelled: int  # the rest: no genre at all, or only genres left out
    tracks_without_genre: int = 0  # of the unlabelled: no genre at all
    known: frozenset[str] = frozenset()  # single-value keys of the library (split_values' known_keys)
    merges: Mapping[str, str] = field(default_factory=dict)  # source key -> target key
    settings: LearnSettings = field(default_factory=LearnSettings)

    @functools.cached_property
    def _kept(self) -> frozenset[str]:
        return frozenset(g.key for g in self.genres)

    def keys(self) -> tuple[str, ...]:
        return tuple(g.key for g in self.genres)

    def key_of(self, name: str) -> str:
        """The key a genre name counts under here (merges applied); ``""`` for no genre."""
        k = genre_key(name)
        return self.merges.get(k, k)

    def labels_of(self, raw: Sequence[str]) -> tuple[str, ...]:
        """The kept genre keys of one track's raw values, in order, no repeats."""
        kept = self._kept
        out: list[str] = []
        for g in split_values(raw, self.known):
            k = self.key_of(g)
            if k in kept and k not in out:
                out.append(k)
        return tuple(out)

    def names(self) -> dict[str, str]:
        """Kept key -> written name."""
        return {g.key: g.name for g in self.genres}

    def describe(self) -> list[str]:
        """The table ``tagger learn`` prints before training: each kept genre with its tracks,
        albums and the variants folded into it; what was left out and why; the track counts."""
        rows = [("genre", "tracks", "albums", "variants folded in")]
        for g in self.genres:
            rows.append((g.name, str(g.tracks), str(g.albums), _variants_text(g)))
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"Genres to learn: {len(self.genres)}"]
        for name, tracks, albums, variants in rows:
            lines.append(f"  {name:<{width[0]}}  {tracks:>{width[1]}}  {albums:>{width[2]}}  {variants}".rstrip())
        if self.left_out:
            lines.append(f"Left out: {len(self.left_out)}")
            w = max(len(g.name) for g, _ in self.left_out)
            for g, why in self.left_out:
                lines.append(f"  {g.name:<{w}}  {why}")
        other = self.tracks_unlabelled - self.tracks_without_genre
        lines.append(f"Tracks: {self.tracks_labelled} labelled, {self.tracks_unlabelled} unlabelled "
                     f"({self.tracks_without_genre} without a genre, {other} with only genres left out)")
        return lines


def _variants_text(g: Genre) -> str:
    others = [(s, n) for s, n in g.variants if s != g.name]
    return ", ".join(f"{s} ({n})" for s, n in others)


def build_taxonomy(tracks: Iterable[tuple[Sequence[str], str]], settings: LearnSettings) -> Taxonomy:
    """The owner's taxonomy from ``(raw genre values of one track, its album key)`` items.

    Values are split with the library's own single-value genres as ``known_keys``
    (:func:`single_keys`); each track counts once per genre key (after ``merge``). A genre's name
    is its most common spelling (ties: first in code-point order), or ``rename``'s; a merge
    target's name comes from its own spellings, else as the config writes it. Left out, with a
    reason: ``drop``, fewer than ``min_tracks`` tracks, fewer than ``min_albums`` albums."""
    items = [(tuple(v for v in values if isinstance(v, str)), album) for values, album in tracks]
    known = single_keys(v for v, _ in items)
    merges = settings.merge_keys()
    target_names = {genre_key(t): t.strip() for t in settings.merge.values()}
    renames = {genre_key(k): v.strip() for k, v in settings.rename.items()}
    drops = {genre_key(d) for d in settings.drop}
    track_count: dict[str, int] = {}
    albums: dict[str, set[str]] = {}
    spellings: dict[str, dict[str, int]] = {}  # key -> own spelling -> tracks
    sources: dict[str, dict[str, int]] = {}  # target key -> merged spelling -> tracks
    without = 0
    per_track: list[list[str]] = []
    for values, album in items:
        genres = split_values(values, known)
        if not genres:
            without += 1
        keys: list[str] = []
        for spelling in genres:
            k = genre_key(spelling)
            target = merges.get(k, k)
            table = spellings if target == k else sources
            table.setdefault(target, {})
            table[target][spelling] = table[target].get(spelling, 0) + 1
            if target not in keys:
                keys.append(target)
        per_track.append(keys)
        for k in keys:
            track_count[k] = track_count.get(k, 0) + 1
            albums.setdefault(k, set()).add(album)
    genres_all: list[Genre] = []
    for k, n in track_count.items():
        own = spellings.get(k, {})
        if k in renames:
            name = renames[k]
        elif own:
            name = min(own.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        else:
            name = target_names.get(k, k)
        folded = dict(own)
        for s, c in sources.get(k, {}).items():
            folded[s] = folded.get(s, 0) + c
        variants = tuple(sorted(folded.items(), key=lambda kv: (-kv[1], kv[0])))
        genres_all.append(Genre(k, name, n, len(albums[k]), variants))
    genres_all.sort(key=lambda g: (-g.tracks, g.name.casefold(), g.key))
    kept: list[Genre] = []
    left: list[tuple[Genre, str]] = []
    for g in genres_all:
        why = _left_out_reason(g, drops, settings)
        if why:
            left.append((g, why))
        else:
            kept.append(g)
    kept_keys = {g.key for g in kept}
    labelled = sum(1 for keys in per_track if any(k in kept_keys for k in keys))
    return Taxonomy(tuple(kept), tuple(left), labelled, len(per_track) - labelled, without, known,
                    merges, settings)


def _left_out_reason(g: Genre, drops: set[str], settings: LearnSettings) -> str:
    if g.key in drops:
        default = settings.drop == DEFAULT_DROP
        return "dropped by [learn] drop" + (" (the default: a placeholder, not a genre)" if default else "")
    why = []
    if g.tracks < settings.min_tracks:
        why.append(f"too few tracks ({g.tracks} < {settings.min_tracks})")
    if g.albums < settings.min_albums:
        why.append(f"too few albums ({g.albums} < {settings.min_albums})")
    return "; ".join(why)


def learn_settings(config: Mapping[str, Any]) -> LearnSettings:
    """LearnSettings from :func:`tagger.config.load_config`'s parsed config (its ``learn`` entry,
    already validated there); defaults where the config has no ``[learn]`` table."""
    table = config.get("learn") or {}
    if isinstance(table, LearnSettings):
        return table
    return LearnSettings(
        merge=dict(table.get("merge", {})),
        rename=dict(table.get("rename", {})),
        drop=frozenset(table["drop"]) if "drop" in table else DEFAULT_DROP,
        min_tracks=int(table.get("min_tracks", DEFAULT_MIN_TRACKS)),
        min_albums=int(table.get("min_albums", DEFAULT_MIN_ALBUMS)),
    )


__all__ = ["DEFAULT_DROP", "DEFAULT_MIN_ALBUMS", "DEFAULT_MIN_TRACKS", "STYLES", "Genre", "LearnSettings",
           "Taxonomy", "build_taxonomy", "genre_key", "id3v1_genres", "id3v1_name", "learn_settings",
           "settings_problem", "single_keys", "split_values", "styled"]
