"""The state database: which files are done, the runs, and the undo journal.

One SQLite file (default ``platformdirs.user_state_dir("tagger")/state.db``) with four tables:

``files``
    One row per file tagger has handled: ``(path, size, mtime_ns, model_id, outcome, run_id,
    decided)``. A nightly ``tagger tag`` skips a file whose size and modification time are
    unchanged since the *same model* handled it with a final outcome (:data:`CURRENT_OUTCOMES`)
    under the same decision settings (``decided``, :func:`tagger.pipeline.decision_key`);
    ``failed`` files are retried, and a different model (a different ``model_id``) looks again.
``analyses``
    The store of analyses: per file and model, what the model said (the track score of every
    label), how much audio it heard and how it was sampled, keyed by the file's size and
    mtime. A later run decides from it without decoding or running the model, as long as the
    file is unchanged (tagger's own tag writes and undos carry the entry over: the audio is
    bit-identical). Dry runs fill it too. See :class:`StoredAnalysis`.
``runs``
    One row per run: id, start/finish times, model, argv, options, status and counts. Dry runs are
    recorded (``dry_run`` set) but never record files or journal entries. ``options["paths"]``
    holds the absolute PATHS a ``tagger tag`` run covered, ``options["undo_of"]`` the run an
    undo undid (:class:`RunInfo`).
``journal``
    One row per tag write, written *ahead* of it: the tag fields before and the intended fields
    after, and the file's size and mtime before (:meth:`StateDB.journal_intent`, status
    ``pending``, on disk before the file is replaced); once the write is done, its size and mtime
    after (:meth:`StateDB.journal_done`, status ``done``), so ``tagger undo`` can restore exactly
    what was there and refuse files changed since. A ``pending`` entry is one whose write may or
    may not have happened (the run was killed, or the database could not take the second update):
    :func:`tagger.undo.resolve_pending` settles it by looking at the file, before the next run
    and before an undo.

Durability: the database runs in WAL mode with ``synchronous=FULL``. File records are buffered
and committed in batches by :meth:`StateDB.flush` (losing the last batch to a crash only means
those files are analysed again); a journal entry is committed by :meth:`StateDB.journal_intent`
before it returns, so it is on disk before the file is written; when it cannot be, the file is
not written.

Paths are stored as bytes (``os.fsencode``) so file names that are not valid UTF-8 (common in old
music libraries) work; they are compared exactly as given, so callers pass absolute paths.

Problems with the database file itself (not SQLite, corrupt, truncated, written by a newer
tagger, read-only, locked) raise :class:`tagger.errors.StateError` with one line naming the path
and what to do. tagger never resets a state database silently.

This module uses only the standard library: it never imports numpy, TensorFlow or Ray.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger.errors import StateError

log = logging.getLogger(__name__)

#: Schema version, stored in ``PRAGMA user_version``.
SCHEMA_VERSION = 2
#: ``PRAGMA application_id`` of a tagger state database ("TAGR").
APPLICATION_ID = 0x54414752

#: Outcomes a file record may carry.
OUTCOMES = ("tagged", "skipped", "uncertain", "failed", "undone")
#: Outcomes after which an unchanged file is not analysed again by the same model.
#: ``failed`` is retried by the next run.
CURRENT_OUTCOMES = frozenset({"tagged", "skipped", "uncertain", "undone"})
#: Statuses of a run: ``running`` until :meth:`StateDB.finish_run`; ``undo`` for ``tagger undo``.
RUN_STATUSES = ("running", "finished", "interrupted", "failed", "undo")

#: How to point tagger elsewhere (named in every StateError).
_ADVICE_OTHER = "or pass --state-db PATH to use another state database"

_SCHEMA = """
CREATE TABLE files (
    path      BLOB PRIMARY KEY,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    model_id  TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    updated   TEXT NOT NULL,
    decided   TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE runs (
    run_id         TEXT PRIMARY KEY,
    started        TEXT NOT NULL,
    finished       TEXT,
    model_id       TEXT NOT NULL,
    dry_run        INTEGER NOT NULL,
    status         TEXT NOT NULL,
    counts         TEXT NOT NULL DEFAULT '{}',
    argv           TEXT NOT NULL DEFAULT '[]',
    options        TEXT NOT NULL DEFAULT '{}',
    files_changed  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE journal (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          TEXT NOT NULL,
    path            BLOB NOT NULL,
    before          TEXT NOT NULL,
    after           TEXT NOT NULL,
    size_after      INTEGER NOT NULL,
    mtime_ns_after  INTEGER NOT NULL,
    written_at      TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'done',
    size_before     INTEGER,
    mtime_ns_before INTEGER
);
CREATE INDEX journal_pending ON journal (status) WHERE status = 'pending';
CREATE INDEX journal_by_run ON journal (run_id, id);
CREATE INDEX journal_by_path ON journal (path, id);
"""

#: Migrations from schema N to N + 1, applied in order inside one transaction.
_ANALYSES = """
CREATE TABLE analyses (
    path        BLOB NOT NULL,
    model_id    TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    scores      BLOB NOT NULL,
    chunks      INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    duration    REAL,
    sampling    TEXT NOT NULL,
    backbone    TEXT,
    embedding   BLOB,
    analysed_at TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    PRIMARY KEY (path, model_id)
) WITHOUT ROWID;
"""

_MIGRATIONS: dict[int, str] = {
    # 1 -> 2: the write-ahead journal (entries written before the file, settled after), the
    # decision settings of each file record, and the store of analyses.
    1: """
ALTER TABLE journal ADD COLUMN status TEXT NOT NULL DEFAULT 'done';
ALTER TABLE journal ADD COLUMN size_before INTEGER;
ALTER TABLE journal ADD COLUMN mtime_ns_before INTEGER;
CREATE INDEX journal_pending ON journal (status) WHERE status = 'pending';
ALTER TABLE files ADD COLUMN decided TEXT NOT NULL DEFAULT '';
""" + _ANALYSES,
}
#: Statuses of a journal entry: written ahead of the file (``pending``), or settled (``done``).
JOURNAL_STATUSES = ("pending", "done")

# Bound parameters per ``IN (...)`` query of :meth:`StateDB.records` (SQLite's historic limit is 999).
_CHUNK = 900


# -- small helpers -------------------------------------------------------------------------------


def default_state_path() -> Path:
    """``platformdirs.user_state_dir("tagger") / "state.db"`` (e.g. ``~/.local/state/tagger/state.db``)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("tagger")) / "state.db"


def utc_now() -> str:
    """The current time as ISO-8601 UTC with a ``Z``, to the second: ``2026-11-22T10:15:00Z``."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    """A new run id: UTC start time and 4 random hex digits, e.g. ``"20261122-101500-ab12"``.

    Ids sort in start order (UTC, so daylight-saving changes cannot reorder them), are short
    enough to type, and any unique prefix names a run (:meth:`StateDB.run`).
    """
    now = _dt.datetime.now(_dt.UTC)
    return f"{now:%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"


def _enc_path(path: str | os.PathLike) -> bytes:
    return os.fsencode(path)


def _dec_path(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else os.fsdecode(raw)


_BYTES_KEY = "__bytes_b64__"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {_BYTES_KEY: base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def _json_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _BYTES_KEY in obj:
        return base64.b64decode(obj[_BYTES_KEY])
    return obj


def dumps(value: Any) -> str:
    """JSON for the database: ``bytes`` survive (base64-tagged), tuples become lists."""
    return json.dumps(value, default=_json_default, sort_keys=True, separators=(",", ":"))


def loads(text: str) -> Any:
    """Inverse of :func:`dumps` (``bytes`` come back as ``bytes``)."""
    return json.loads(text, object_hook=_json_hook)


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What tagger last did with one file."""

    path: str
    size: int
    mtime_ns: int
    model_id: str
    outcome: str  # one of OUTCOMES
    run_id: str
    decided: str = ""  # the decision settings it was handled with (tagger.pipeline.decision_key)

    def is_current(self, *, size: int, mtime_ns: int, model_id: str, decided: str | None = None) -> bool:
        """True when the file is unchanged since ``model_id`` handled it with a final outcome
        (and, given ``decided``, under those decision settings; an ``undone`` file kept by
        ``undo --keep`` stays current whatever the settings: that was the promise)."""
        return (
            self.outcome in CURRENT_OUTCOMES
            and self.size == size
            and self.mtime_ns == mtime_ns
            and self.model_id == model_id
            and (decided is None or self.outcome == "undone" or self.decided == decided)
        )


@dataclass(frozen=True)
class RunInfo:
    """One run of ``tagger tag`` (or ``tagger undo``, status ``undo``)."""

    run_id: str
    started: str  # ISO-8601 UTC
    finished: str | None
    model_id: str
    dry_run: bool
    status: str  # running | finished | interrupted | failed | undo
    counts: dict[str, int]
    argv: list[str]
    files_changed: int  # journal entries (tag writes) of the run
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def undo_of(self) -> str | None:
        """For an undo run, the id of the run it undid."""
        value = self.options.get("undo_of")
        return str(value) if value else None

    @property
    def paths(self) -> list[str] | None:
        """The PATHS given to ``tagger tag``, absolute (``options["paths"]``); None when
        the run did not record them (runs of tagger 0.2.0 and before, undo runs)."""
        value = self.options.get("paths")
        if isinstance(value, list) and all(isinstance(p, str) for p in value):
            return value
        return None


@dataclass(frozen=True)
class JournalEntry:
    """One tag write: the fields before and after, and the file's size/mtime after the write.

    A ``pending`` entry was written ahead of its file write and not settled: ``after`` is the
    intended fields, ``size_after``/``mtime_ns_after`` are -1, and ``size_before`` /
    ``mtime_ns_before`` say what the file looked like before.
    """

    run_id: str
    path: str
    before: dict
    after: dict
    size_after: int
    mtime_ns_after: int
    written_at: str  # ISO-8601 UTC
    id: int = 0
    status: str = "done"  # one of JOURNAL_STATUSES
    size_before: int | None = None
    mtime_ns_before: int | None = None


@dataclass(frozen=True)
class StoredAnalysis:
    """What a model made of one file's audio, as the store of analyses keeps it.

    ``scores``: the track score of every label, in the model's label order. ``chunks`` and
    ``seconds``: how much the model heard; ``duration``: the track's length (None: unknown);
    ``sampling``: how the stretches were chosen (:func:`tagger.pipeline.sampling_spec`, e.g.
    ``whole<=900`` or ``sample:60``). ``backbone``/``embedding``: for models with a pretrained
    backbone, its id and the track's pooled embedding (empty / None otherwise).
    """

    path: str
    model_id: str
    size: int
    mtime_ns: int
    scores: tuple[float, ...]
    chunks: int
    seconds: float
    sampling: str
    duration: float | None = None
    backbone: str = ""
    embedding: tuple[float, ...] | None = None
    analysed_at: str = ""  # ISO-8601 UTC
    run_id: str = ""

    def problem(self, *, labels: int, model_id: str, embedding_size: int | None = None) -> str | None:
        """Why this row cannot be used for a model with ``labels`` outputs (None: it can)."""
        import math

        if self.model_id != model_id:
            return f"it is for model {self.model_id}, not {model_id}"
        if len(self.scores) != labels:
            return f"it holds {len(self.scores)} scores for a model of {labels} labels"
        if not all(math.isfinite(s) and -1e-6 <= s <= 1 + 1e-6 for s in self.scores):
            return "its scores are not probabilities (NaN or out of range)"
        if self.chunks < 1 or not math.isfinite(self.seconds) or self.seconds < 0:
            return "its chunk count or analysed seconds are invalid"
        if self.embedding is not None:
            if not all(math.isfinite(v) for v in self.embedding):
                return "its embedding holds NaN"
            if embedding_size is not None and len(self.embedding) != embedding_size:
                return f"its embedding has {len(self.embedding)} values, not {embedding_size}"
        return None


class WriteAhead:
    """The write-ahead journal entry of one tag write (or restore) of ``path`` by run ``run_id``.

    Pass :meth:`before_save` to ``tagger.tags.write_genres`` / ``restore_fields``: it puts the
    entry on disk before the file is saved, or raises :class:`~tagger.errors.JournalError` (the
    file is then not touched; ``refusal`` starts its reason). Then :meth:`done` after the save,
    or :meth:`void` when the save failed (the file is as it was); a void the database refuses
    leaves the entry pending, and :func:`tagger.undo.resolve_pending` settles it from the file.
    """

    def __init__(self, db: StateDB, run_id: str, path: str, *, refusal: str):
        self.db, self.run_id, self.path, self.refusal = db, run_id, path, refusal
        self.entry: int | None = None

    def before_save(self, change: Any, st: os.stat_result) -> None:
        from tagger.errors import JournalError

        try:
            self.entry = self.db.journal_intent(self.run_id, self.path, before=change.before, after=change.after,
                                                size_before=st.st_size, mtime_ns_before=st.st_mtime_ns)
        except StateError as exc:
            raise JournalError(self.path, f"{self.refusal}: the undo journal cannot be saved ({exc})") from None

    def done(self, *, after: dict | None = None) -> os.stat_result:
        """Settle the entry with the file's size and mtime now; returns that stat."""
        st = os.stat(self.path)
        if self.entry is not None:
            self.db.journal_done(self.entry, after=after, size_after=st.st_size, mtime_ns_after=st.st_mtime_ns)
        return st

    def void(self) -> None:
        if self.entry is None:
            return
        try:
            self.db.journal_void(self.entry)
        except StateError as exc:
            log.warning("cannot drop the journal entry of a write that did not happen (%s): settled by the "
                        "next run", exc)


# -- the database --------------------------------------------------------------------------------


class StateDB:
    """The state database. Open with ``StateDB(path)``; use as a context manager or call close().

    Opening creates the file (and its folder) when missing, switches to WAL mode, creates or
    migrates the schema, and checks that the database is writable. Every problem with the file
    raises :class:`~tagger.errors.StateError`; nothing is ever reset silently.

    Writes of file records are buffered until :meth:`flush` (called by the pipeline every few
    files or seconds, automatically every ``flush_every`` records, and by :meth:`close`).
    Reads see buffered records. An instance may be shared between threads.

    ``timeout`` is how long to wait for another process's write lock on the database before
    giving up with a StateError.
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float = 10.0, flush_every: int = 1000):
        self.path = Path(path).expanduser()
        self.timeout = float(timeout)
        self.flush_every = int(flush_every)
        self._lock = threading.RLock()
        self._pending: dict[bytes, tuple] = {}
        self._pending_analyses: dict[tuple[bytes, str], tuple] = {}
        self._dry_runs: set[str] = set()
        self._conn: sqlite3.Connection | None = None
        self._open()

    # -- opening ---------------------------------------------------------------------------------
    def _open(self) -> None:
        p = self.path
        if p.is_dir():
            raise StateError(
                f"state database {p} is a directory, not a file: move it aside, {_ADVICE_OTHER}"
            )
        if not p.parent.is_dir():
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(
                    f"cannot create the folder of the state database {p}: {exc.strerror or exc}; "
                    f"{_ADVICE_OTHER}"
                ) from None
        existed = p.exists()
        if existed:
            self._check_file(p)
        # SQLite opens an unwritable file read-only without complaint (and in WAL mode even a
        # write lock succeeds): ask the file system first, so the run fails now, not mid-way.
        kw = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
        if existed and not os.access(p, os.W_OK, **kw):
            raise StateError(f"state database {p} is read-only ({p.name} is not writable): fix its "
                             f"permissions, {_ADVICE_OTHER}")
        if not os.access(p.parent, os.W_OK | os.X_OK, **kw):
            raise StateError(f"cannot open state database {p} (its folder {p.parent} is not writable; "
                             f"SQLite keeps its -wal and -shm files there): fix the folder's permissions, "
                             f"{_ADVICE_OTHER}")
        try:
            conn = sqlite3.connect(
                p, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from None
        self._conn = conn
        try:
            with self._translate("open"):
                self._setup(conn, existed)
        except BaseException:
            self._conn = None
            conn.close()
            raise

    def _check_file(self, p: Path) -> None:
        """Cheap checks of an existing file before SQLite sees it (header, size)."""
        try:
            size = p.stat().st_size
            if size == 0:
                log.warning("state database %s is empty (0 bytes): initialising a new one", p)
                return
            with open(p, "rb") as f:
                header = f.read(100)
        except OSError as exc:
            raise StateError(
                f"cannot read state database {p}: {exc.strerror or exc}; check its permissions, "
                f"{_ADVICE_OTHER}"
            ) from None
        if len(header) < 100 and b"SQLite format 3\x00".startswith(header[:16]):
            raise StateError(
                f"state database {p} is truncated ({size} bytes): restore it from a backup or move it "
                f"aside (tagger then starts a new one), {_ADVICE_OTHER}"
            )
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise StateError(
                f"{p} is not a tagger state database (not an SQLite file): move it aside "
                f"(tagger then starts a new one), {_ADVICE_OTHER}"
            )
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        page_count = int.from_bytes(header[28:32], "big")
        header_count_valid = page_count > 0 and header[92:96] == header[24:28]
        wal = Path(str(p) + "-wal")
        wal_pending = wal.exists() and wal.stat().st_size > 0
        expected = page_count * page_size if header_count_valid else None
        truncated = page_size < 512 or page_size & (page_size - 1) != 0 or size % page_size != 0
        if expected is not None and not wal_pending and size < expected:
            truncated = True
        if truncated:
            detail = f"{size} bytes" + (f", expected {expected}" if expected else "")
            raise StateError(
                f"state database {p} is truncated or corrupt ({detail}): restore it from a backup or "
                f"move it aside (tagger then starts a new one), {_ADVICE_OTHER}"
            )

    def _setup(self, conn: sqlite3.Connection, existed: bool) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id not in (0, APPLICATION_ID):
            raise StateError(
                f"{self.path} is an SQLite database of another program, not a tagger state "
                f"database: check --state-db (or state-db in the config file), or move the file aside"
            )
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state database {self.path} was written by a newer tagger (schema {version}; this "
                f"tagger reads up to {SCHEMA_VERSION}): upgrade tagger, {_ADVICE_OTHER}"
            )
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("state database %s: WAL mode unavailable (journal mode %s)", self.path, mode)
        conn.execute("PRAGMA synchronous = FULL")
        # Create or migrate under a write lock; this also proves the database is writable now.
        conn.execute("BEGIN IMMEDIATE")
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise StateError(
                        f"{self.path} is an SQLite database but not a tagger state database: check "
                        f"--state-db (or state-db in the config file), or move the file aside"
                    )
                for stmt in _statements(_SCHEMA + _ANALYSES):
                    conn.execute(stmt)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                log.info("created state database %s (schema %d)", self.path, SCHEMA_VERSION)
            else:
                if app_id != APPLICATION_ID:
                    raise StateError(
                        f"{self.path} is an SQLite database but not a tagger state database: check "
                        f"--state-db (or state-db in the config file), or move the file aside"
                    )
                while version < SCHEMA_VERSION:
                    for stmt in _statements(_MIGRATIONS[version]):
                        conn.execute(stmt)
                    version += 1
                    conn.execute(f"PRAGMA user_version = {version}")
                    log.info("migrated state database %s to schema %d", self.path, version)
                # Touch every table so a damaged root page shows up now, not mid-run.
                for table in ("files", "runs", "journal", "analyses"):
                    conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchall()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- error translation -----------------------------------------------------------------------
    def _error(self, exc: sqlite3.Error, action: str) -> StateError:
        """One clear line for an SQLite error on this database."""
        p = self.path
        name = getattr(exc, "sqlite_errorname", "") or ""
        msg = str(exc)
        if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED") or "locked" in msg:
            return StateError(
                f"state database {p} is locked by another process (waited {self.timeout:g} s to {action}): "
                f"wait for it to finish, {_ADVICE_OTHER}"
            )
        if name.startswith("SQLITE_READONLY") or "readonly" in msg:
            return StateError(f"state database {p} is read-only ({self._why_unwritable()}): fix the "
                              f"permissions, {_ADVICE_OTHER}")
        if name.startswith("SQLITE_CANTOPEN") or "unable to open" in msg:
            return StateError(f"cannot open state database {p} ({self._why_unwritable()}): fix the "
                              f"permissions, {_ADVICE_OTHER}")
        if name.startswith("SQLITE_NOTADB") or "not a database" in msg:
            return StateError(
                f"{p} is not a tagger state database (not an SQLite file): move it aside (tagger "
                f"then starts a new one), {_ADVICE_OTHER}"
            )
        if name.startswith("SQLITE_CORRUPT") or "malformed" in msg:
            return StateError(
                f"state database {p} is corrupt ({msg}): restore it from a backup or move it aside "
                f"(tagger then starts a new one), {_ADVICE_OTHER}"
            )
        if name.startswith("SQLITE_FULL") or "full" in msg:
            return StateError(f"state database {p}: the disk is full ({action}): free some space")
        if name.startswith("SQLITE_IOERR") or "disk I/O" in msg:
            return StateError(f"state database {p}: I/O error ({msg}) during {action}; check the disk")
        return StateError(f"state database {p}: {msg} (during {action}); {_ADVICE_OTHER}")

    def _why_unwritable(self) -> str:
        p = self.path
        eff = os.access in os.supports_effective_ids
        kw = {"effective_ids": True} if eff else {}
        folder = p.parent
        if not os.access(folder, os.W_OK | os.X_OK, **kw):
            return f"its folder {folder} is not writable"
        for f in (p, Path(str(p) + "-wal"), Path(str(p) + "-shm")):
            if f.exists() and not os.access(f, os.W_OK, **kw):
                return f"{f.name} is not writable"
        return "check the permissions of the file and its folder"

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc, action) from None

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the instance lock, errors as StateError."""
        with self._lock, self._translate(action):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"state database {self.path} is closed")
        return self._conn

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush buffered records and close. Safe to call twice."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self.flush()
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA optimize")
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        # Already failing: keep what was done (records of finished files), but never mask `exc`.
        try:
            self.close()
        except Exception as second:
            log.warning("while closing %s after an error: %s", self.path, second)
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

    def __repr__(self) -> str:
        return f"StateDB({str(self.path)!r})"

    # -- file records ----------------------------------------------------------------------------
    def get(self, path: str) -> FileRecord | None:
        """The record of one file (buffered records included), or None."""
        return self.records([path]).get(path)

    def records(self, paths: Iterable[str]) -> dict[str, FileRecord]:
        """Records of many files at once: ``{path: FileRecord}`` for those that have one.

        Fast for 100k paths (batched primary-key lookups; a few hundred milliseconds at most).
        """
        keys: dict[bytes, str] = {}
        for p in paths:
            keys[_enc_path(p)] = p if isinstance(p, str) else os.fspath(p)
        out: dict[str, FileRecord] = {}
        if not keys:
            return out
        with self._lock, self._translate("read file records"):
            conn = self._connection()
            todo = [k for k in keys if k not in self._pending]
            sql_cache: dict[int, str] = {}
            for i in range(0, len(todo), _CHUNK):
                chunk = todo[i : i + _CHUNK]
                sql = sql_cache.get(len(chunk))
                if sql is None:
                    sql = (
                        "SELECT path, size, mtime_ns, model_id, outcome, run_id, decided FROM files "
                        f"WHERE path IN ({','.join('?' * len(chunk))})"
                    )
                    sql_cache[len(chunk)] = sql
                for raw, size, mtime_ns, model_id, outcome, run_id, decided in conn.execute(sql, chunk):
                    p = keys[raw]
                    out[p] = FileRecord(p, size, mtime_ns, model_id, outcome, run_id, decided)
            for k, row in self._pending.items():
                if k in keys:
                    p = keys[k]
                    if row[0] is None:  # buffered deletion
                        continue
                    out[p] = FileRecord(p, *row[:6])
        return out

    def is_current(self, path: str, size: int, mtime_ns: int, model_id: str) -> bool:
        """True when ``path`` is unchanged since ``model_id`` handled it (tagged, skipped, uncertain,
        or undone); ``failed`` files and files without a record are not current."""
        rec = self.get(path)
        return rec is not None and rec.is_current(size=size, mtime_ns=mtime_ns, model_id=model_id)

    def record_file(
        self, path: str, *, size: int, mtime_ns: int, model_id: str, outcome: str, run_id: str,
        decided: str = "",
    ) -> None:
        """Buffer the record of one file (committed by :meth:`flush`). Ignored for dry runs.
        ``decided``: the decision settings it was handled with."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        with self._lock:
            if run_id in self._dry_runs:
                log.debug("dry run %s: not recording %s", run_id, path)
                return
            self._pending[_enc_path(path)] = (int(size), int(mtime_ns), str(model_id), outcome, str(run_id),
                                              str(decided))
            if len(self._pending) >= self.flush_every:
                self.flush()

    def forget(self, path: str) -> None:
        """Drop the record of one file (buffered like :meth:`record_file`): the next run analyses it."""
        with self._lock:
            self._pending[_enc_path(path)] = (None,)
            if len(self._pending) >= self.flush_every:
                self.flush()

    def flush(self) -> None:
        """Commit buffered file records and analyses in one transaction."""
        with self._lock:
            if not self._pending and not self._pending_analyses:
                return
            now = utc_now()
            upserts = [(k, *row[:5], now, row[5]) for k, row in self._pending.items() if row[0] is not None]
            deletes = [(k,) for k, row in self._pending.items() if row[0] is None]
            analyses = [(k[0], k[1], *row) for k, row in self._pending_analyses.items()]
            with self._transaction("save file records") as conn:
                if upserts:
                    conn.executemany(
                        "INSERT OR REPLACE INTO files (path, size, mtime_ns, model_id, outcome, run_id, "
                        "updated, decided) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        upserts,
                    )
                if deletes:
                    conn.executemany("DELETE FROM files WHERE path = ?", deletes)
                if analyses:
                    conn.executemany(
                        f"INSERT OR REPLACE INTO analyses ({_ANALYSIS_COLS}) VALUES "
                        f"({', '.join('?' * len(_ANALYSIS_COLS.split(',')))})",
                        analyses,
                    )
            self._pending.clear()
            self._pending_analyses.clear()

    # -- the store of analyses ---------------------------------------------------------------
    def store_analysis(self, a: StoredAnalysis) -> None:
        """Buffer one analysis (committed with the file records by :meth:`flush`; also for dry
        runs: the analysis does not depend on what is written). Replaces the file's earlier
        analysis by the same model."""
        with self._lock:
            self._pending_analyses[(_enc_path(a.path), a.model_id)] = (
                int(a.size), int(a.mtime_ns), _pack(a.scores), int(a.chunks), float(a.seconds),
                None if a.duration is None else float(a.duration), a.sampling, a.backbone or None,
                None if a.embedding is None else _pack_half(a.embedding), a.analysed_at or utc_now(), a.run_id,
            )
            if len(self._pending_analyses) >= self.flush_every:
                self.flush()

    def analyses(self, paths: Iterable[str], model_id: str) -> dict[str, StoredAnalysis]:
        """The stored analyses of ``paths`` by ``model_id`` (buffered ones included), as stored:
        the caller checks that they still fit the file (:meth:`StoredAnalysis.problem`)."""
        keys = {_enc_path(p): (p if isinstance(p, str) else os.fspath(p)) for p in paths}
        out: dict[str, StoredAnalysis] = {}
        if not keys:
            return out
        with self._lock, self._translate("read stored analyses"):
            conn = self._connection()
            todo = list(keys)
            for i in range(0, len(todo), _CHUNK):
                chunk = todo[i : i + _CHUNK]
                sql = (f"SELECT path, model_id, {_ANALYSIS_COLS.split(',', 2)[2]} FROM analyses "
                       f"WHERE model_id = ? AND path IN ({','.join('?' * len(chunk))})")
                for row in conn.execute(sql, [model_id, *chunk]):
                    out[keys[row[0]]] = _analysis(keys[row[0]], row)
            for (raw, mid), row in self._pending_analyses.items():
                if mid == model_id and raw in keys:
                    out[keys[raw]] = _analysis(keys[raw], (raw, mid, *row))
        return out

    def prune_analyses(self, root: str, keep: set[str]) -> int:
        """Drop the stored analyses of files below the folder ``root`` that are not in ``keep``
        (the files a complete walk of ``root`` found) and no longer exist. Returns how many."""
        self.flush()
        prefix = _enc_path(os.path.join(root, ""))
        keep_raw = {_enc_path(p) for p in keep}
        with self._lock, self._translate("read stored analyses"):
            rows = self._connection().execute(
                "SELECT DISTINCT path FROM analyses WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
        gone = [(raw,) for (raw,) in rows if raw not in keep_raw and not os.path.lexists(os.fsdecode(raw))]
        if gone:
            with self._transaction("prune stored analyses") as conn:
                conn.executemany("DELETE FROM analyses WHERE path = ?", gone)
        return len(gone)

    def count_analyses(self) -> int:
        """Number of stored analyses (after flushing the buffer)."""
        self.flush()
        with self._lock, self._translate("count stored analyses"):
            return self._connection().execute("SELECT count(*) FROM analyses").fetchone()[0]

    def count_files(self) -> int:
        """Number of file records (after flushing the buffer)."""
        self.flush()
        with self._lock, self._translate("count file records"):
            return self._connection().execute("SELECT count(*) FROM files").fetchone()[0]

    # -- runs ------------------------------------------------------------------------------------
    def begin_run(
        self, run_id: str, *, model_id: str, argv: Iterable[str], dry_run: bool, options: dict[str, Any]
    ) -> None:
        """Record the start of a run (status ``running``).

        The caller holds the :class:`tagger.lock.RunLock`, so any other run still marked
        ``running`` was killed before it could finish: it is marked ``interrupted`` here.
        """
        with self._transaction("record the start of a run") as conn:
            stale = conn.execute(
                "SELECT run_id FROM runs WHERE status = 'running' AND run_id != ?", (run_id,)
            )
            for (old,) in stale.fetchall():
                log.warning("run %s never finished (killed?): marking it interrupted", old)
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', finished = coalesce(finished, ?) "
                    "WHERE run_id = ?",
                    (utc_now(), old),
                )
            try:
                conn.execute(
                    "INSERT INTO runs (run_id, started, model_id, dry_run, status, argv, options) "
                    "VALUES (?, ?, ?, ?, 'running', ?, ?)",
                    (run_id, utc_now(), str(model_id or ""), int(bool(dry_run)), dumps(list(argv)),
                     dumps(dict(options))),
                )
            except sqlite3.IntegrityError:
                raise ValueError(f"run {run_id} already exists in {self.path}") from None
        if dry_run:
            self._dry_runs.add(run_id)

    def finish_run(self, run_id: str, *, status: str, counts: dict[str, int]) -> None:
        """Record the end of a run: status finished | interrupted | failed | undo, and its counts.

        Buffered file records are flushed first.
        """
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"status must be one of finished, interrupted, failed, undo, not {status!r}")
        self.flush()
        with self._transaction("record the end of a run") as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, finished = ?, counts = ? WHERE run_id = ?",
                (status, utc_now(), dumps({str(k): int(v) for k, v in counts.items()}), run_id),
            )
            if cur.rowcount == 0:
                raise ValueError(f"no run {run_id} in {self.path}")

    def runs(self, limit: int | None = 50) -> list[RunInfo]:
        """The latest runs, newest first (``limit=None``: all). Runs started in the same second
        (an undo right after its run) come in the order they were recorded."""
        sql = f"SELECT {_RUN_COLS} FROM runs ORDER BY {_RUN_ORDER}"
        args: tuple = ()
        if limit is not None:
            sql += " LIMIT ?"
            args = (int(limit),)
        with self._lock, self._translate("list runs"):
            return [_run_info(row) for row in self._connection().execute(sql, args)]

    def run(self, run_id: str) -> RunInfo | None:
        """One run by id or by a unique prefix of it; None when nothing matches.

        An ambiguous prefix raises :class:`~tagger.errors.StateError` listing a few matches.
        """
        run_id = str(run_id).strip()
        if not run_id:
            return None
        with self._lock, self._translate("read a run"):
            conn = self._connection()
            row = conn.execute(f"SELECT {_RUN_COLS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None:
                return _run_info(row)
            rows = conn.execute(
                f"SELECT {_RUN_COLS} FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT 6",
                (len(run_id), run_id),
            ).fetchall()
        if not rows:
            return None
        if len(rows) > 1:
            names = ", ".join(r[0] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise StateError(f"run id {run_id!r} is ambiguous: it starts {names}; give more of it")
        return _run_info(rows[0])

    # -- journal ---------------------------------------------------------------------------------
    def journal_intent(
        self, run_id: str, path: str, *, before: dict, after: dict, size_before: int, mtime_ns_before: int
    ) -> int:
        """Journal a tag write *before* it happens (status ``pending``); committed to disk before
        this returns. Returns the entry's id for :meth:`journal_done` / :meth:`journal_void`.

        Raises StateError when the entry cannot be saved: the caller must then leave the file
        alone. Raises ValueError for a dry run.
        """
        if run_id in self._dry_runs:
            raise ValueError(f"run {run_id} is a dry run: it must not write tags")
        with self._transaction("journal a tag write before making it") as conn:
            cur = conn.execute(
                "INSERT INTO journal (run_id, path, before, after, size_after, mtime_ns_after, written_at, "
                "status, size_before, mtime_ns_before) VALUES (?, ?, ?, ?, -1, -1, ?, 'pending', ?, ?)",
                (run_id, _enc_path(path), dumps(before), dumps(after), utc_now(), int(size_before),
                 int(mtime_ns_before)),
            )
            return int(cur.lastrowid)

    @contextlib.contextmanager
    def _settling(self) -> Iterator[None]:
        """Commits that settle a journal entry need not wait for the disk (``synchronous =
        NORMAL`` in WAL mode: durable at the next checkpoint, never corrupt): if power fails
        first, the entry is still ``pending`` and :func:`tagger.undo.resolve_pending` settles it
        from the file. One fsync less per written file; the entry written ahead stays FULL."""
        with self._lock:
            conn = self._connection()
            with self._translate("set the journal's durability"):
                conn.execute("PRAGMA synchronous = NORMAL")
            try:
                yield
            finally:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous = FULL")

    def journal_done(self, entry_id: int, *, after: dict | None = None, size_after: int,
                     mtime_ns_after: int) -> None:
        """Settle a pending entry: the write happened; the file's size and mtime after it
        (``after``: the fields read back, when they are known)."""
        with self._settling(), self._transaction("journal the end of a tag write") as conn:
            row = conn.execute("SELECT run_id, path, size_before, mtime_ns_before FROM journal "
                               "WHERE id = ? AND status = 'pending'", (int(entry_id),)).fetchone()
            if row is None:
                raise ValueError(f"no pending journal entry {entry_id} in {self.path}")
            if size_after >= 0 and row[2] is not None:  # only tags changed: the analyses still hold
                self._retarget(conn, row[1], (row[2], row[3]), (int(size_after), int(mtime_ns_after)))
            if after is None:
                conn.execute("UPDATE journal SET status = 'done', size_after = ?, mtime_ns_after = ? WHERE id = ?",
                             (int(size_after), int(mtime_ns_after), int(entry_id)))
            else:
                conn.execute("UPDATE journal SET status = 'done', size_after = ?, mtime_ns_after = ?, after = ? "
                             "WHERE id = ?", (int(size_after), int(mtime_ns_after), dumps(after), int(entry_id)))
            conn.execute("UPDATE runs SET files_changed = files_changed + 1 WHERE run_id = ?", (row[0],))

    def _retarget(self, conn: sqlite3.Connection, raw: bytes, old: tuple[int, int], new: tuple[int, int]) -> None:
        """A tag write (or undo) changed the file's size and mtime, not its audio: its stored
        analyses (buffered or committed) follow the file."""
        for key, row in self._pending_analyses.items():
            if key[0] == raw and (row[0], row[1]) == old:
                self._pending_analyses[key] = (*new, *row[2:])
        conn.execute("UPDATE analyses SET size = ?, mtime_ns = ? WHERE path = ? AND size = ? AND mtime_ns = ?",
                     (*new, raw, *old))

    def journal_void(self, entry_id: int) -> None:
        """Drop a pending entry whose write did not happen (the file is as it was)."""
        with self._settling(), self._transaction("drop a journal entry of a write that did not happen") as conn:
            conn.execute("DELETE FROM journal WHERE id = ? AND status = 'pending'", (int(entry_id),))

    def pending_journal(self) -> list[JournalEntry]:
        """Entries written ahead of a file write and never settled, oldest first (cheap: indexed)."""
        with self._lock, self._translate("read the journal"):
            rows = self._connection().execute(
                f"SELECT {_JOURNAL_COLS} FROM journal WHERE status = 'pending' ORDER BY id"
            ).fetchall()
        return [_journal_entry(r) for r in rows]

    def journal_add(
        self, run_id: str, path: str, *, before: dict, after: dict, size_after: int, mtime_ns_after: int
    ) -> None:
        """Journal one tag write that is already done, settled in one step; committed (to disk)
        before this returns. Tag writes journal ahead instead (:meth:`journal_intent`).

        ``before``/``after`` are the tag fields (``tagger.tags.snapshot_fields``); they are stored
        as JSON, with ``bytes`` values kept exactly. Raises ValueError for a dry run.
        """
        if run_id in self._dry_runs:
            raise ValueError(f"run {run_id} is a dry run: it must not write tags")
        with self._transaction("journal a tag write") as conn:
            conn.execute(
                "INSERT INTO journal (run_id, path, before, after, size_after, mtime_ns_after, written_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, _enc_path(path), dumps(before), dumps(after), int(size_after), int(mtime_ns_after),
                 utc_now()),
            )
            conn.execute("UPDATE runs SET files_changed = files_changed + 1 WHERE run_id = ?", (run_id,))

    def journal(self, run_id: str) -> list[JournalEntry]:
        """The settled journal of one run in write order (oldest first); pending entries are
        left out (:meth:`pending_journal`)."""
        with self._lock, self._translate("read the journal"):
            rows = self._connection().execute(
                f"SELECT {_JOURNAL_COLS} FROM journal WHERE run_id = ? AND status = 'done' ORDER BY id", (run_id,)
            ).fetchall()
        return [_journal_entry(r) for r in rows]

    def journal_after(self, path: str, run_id: str) -> list[JournalEntry]:
        """Journal entries of ``path`` written by other runs after ``run_id`` wrote it (oldest first)."""
        with self._lock, self._translate("read the journal"):
            rows = self._connection().execute(
                f"SELECT {_JOURNAL_COLS} FROM journal WHERE path = ?1 AND run_id != ?2 AND status = 'done' AND id > "
                "(SELECT coalesce(min(id), 0) FROM journal WHERE path = ?1 AND run_id = ?2) ORDER BY id",
                (_enc_path(path), run_id),
            ).fetchall()
        return [_journal_entry(r) for r in rows]


_ANALYSIS_COLS = ("path, model_id, size, mtime_ns, scores, chunks, seconds, duration, sampling, backbone, "
                  "embedding, analysed_at, run_id")


def _pack(values: Iterable[float]) -> bytes:
    """float32, little-endian (the stored form of scores and embeddings)."""
    import array

    a = array.array("f", values)
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def _pack_half(values: Iterable[float]) -> bytes:
    """float16, little-endian: embeddings (half the bytes of float32; a head trained on them
    loses nothing measurable to a relative error of 1e-3)."""
    import struct

    v = [min(65504.0, max(-65504.0, float(x))) for x in values]  # float16's range
    return struct.pack(f"<{len(v)}e", *v)


def _unpack_half(raw: bytes | None) -> tuple[float, ...] | None:
    import struct

    if raw is None:
        return None
    if len(raw) % 2:
        return (float("nan"),)  # damaged: StoredAnalysis.problem says so
    return struct.unpack(f"<{len(raw) // 2}e", raw)


def _unpack(raw: bytes | None) -> tuple[float, ...] | None:
    import array

    if raw is None:
        return None
    if len(raw) % 4:
        return ()  # damaged: StoredAnalysis.problem says so
    a = array.array("f")
    a.frombytes(raw)
    if sys.byteorder == "big":
        a.byteswap()
    return tuple(a)


def _analysis(path: str, row: tuple) -> StoredAnalysis:
    (_raw, model_id, size, mtime_ns, scores, chunks, seconds, duration, sampling, backbone, embedding,
     analysed_at, run_id) = row
    return StoredAnalysis(
        path=path, model_id=model_id, size=int(size), mtime_ns=int(mtime_ns), scores=_unpack(scores) or (),
        chunks=int(chunks), seconds=float(seconds), duration=None if duration is None else float(duration),
        sampling=str(sampling), backbone=backbone or "", embedding=_unpack_half(embedding),
        analysed_at=str(analysed_at), run_id=str(run_id),
    )


_RUN_COLS = "run_id, started, finished, model_id, dry_run, status, counts, argv, files_changed, options"
# newest first; within one second (the start time's resolution), the later recorded first
_RUN_ORDER = "started DESC, rowid DESC"
_JOURNAL_COLS = ("run_id, path, before, after, size_after, mtime_ns_after, written_at, id, status, size_before, "
                 "mtime_ns_before")


def _run_info(row: tuple) -> RunInfo:
    run_id, started, finished, model_id, dry_run, status, counts, argv, files_changed, options = row
    return RunInfo(
        run_id=run_id,
        started=started,
        finished=finished,
        model_id=model_id,
        dry_run=bool(dry_run),
        status=status,
        counts=loads(counts),
        argv=loads(argv),
        files_changed=int(files_changed),
        options=loads(options),
    )


def _journal_entry(row: tuple) -> JournalEntry:
    run_id, path, before, after, size_after, mtime_ns_after, written_at, id_, status, size_b, mtime_b = row
    return JournalEntry(
        run_id=run_id,
        path=_dec_path(path),
        before=loads(before),
        after=loads(after),
        size_after=int(size_after),
        mtime_ns_after=int(mtime_ns_after),
        written_at=written_at,
        id=int(id_),
        status=status,
        size_before=None if size_b is None else int(size_b),
        mtime_ns_before=None if mtime_b is None else int(mtime_b),
    )


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def peek_runs(path: str | os.PathLike, *, limit: int = 200, timeout: float = 0.5) -> list[RunInfo]:
    """The latest runs of the state database at ``path``, newest first, read without
    :class:`StateDB`: the file is opened read-only (never created, migrated or locked for
    writing), for shell completion. Returns ``[]`` when there is no such file or it is not a
    tagger state database; raises ``sqlite3.Error`` / ``OSError`` / ``ValueError`` when it cannot
    be read (the caller, completion, swallows them).
    """
    from urllib.parse import quote

    p = Path(path)
    if not p.is_file():
        return []
    uri = "file:" + quote(os.fsencode(p.absolute())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout)
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            return []
        rows = conn.execute(f"SELECT {_RUN_COLS} FROM runs ORDER BY {_RUN_ORDER} LIMIT ?", (int(limit),))
        return [_run_info(row) for row in rows.fetchall()]
    finally:
        conn.close()
