"""The event store: one SQLite file, appended to under `BEGIN IMMEDIATE`, read by index.

Every append takes SQLite's write lock, reads the head of the chain, and links
the new events to it, so concurrent writers (threads or processes) serialise
into one strictly increasing `seq` with an unbroken hash chain.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

from .chain import GENESIS_HASH, ChainWalk, EventRow, canonical_json, event_hash, walk_chain
from .errors import ChainBroken, LedgerError, LedgerLocked
from .holders import processes_with_open
from .lifecycle import EventType
from .payloads import RECORD_COLUMNS, EventRecord, decode, version_marker
from .schema import EVENT_COLUMNS, SCHEMA_VERSION, ensure_schema, schema_version
from .wal_room import tend

if TYPE_CHECKING:
    import sqlite_utils
    from typing_extensions import Unpack

    from .events import NewEvent, Payload, RecordedEvent

DEFAULT_BUSY_TIMEOUT = 10.0
LEDGER_FILE_MODE = 0o660
# The position up to which the chain was verified ("seq:hash"), or "broken:SEQ" once a full walk found a break.
CHAIN_CHECKPOINT = "chain"
BROKEN = "broken:"
# The checkpoint once `verify` found the file failing SQLite's integrity check: appends refuse while it fails.
FAILED_INTEGRITY = f"{BROKEN}integrity"
LEDGER_DIR_MODE = 0o750
LEDGER_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Keys of what this connection keeps in its cache (`Ledger.cache`).
HEAD = "head"
VERIFIED = "verified"  # the head up to which this connection walked or extended the chain itself
POSITIONS_TABLE = "positions table"

_COLUMNS = tuple(EVENT_COLUMNS)
# The columns a RecordedEvent takes as fields (its type is its payload's class, its payload the model itself).
_RECORDED_FIELDS = tuple(column for column in _COLUMNS if column not in ("type", "payload"))
T = TypeVar("T")
_INSERT = f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM events"


def format_time(moment: datetime) -> str:
    """A moment as the ledger stores it: UTC, fixed width, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("ledger times must carry a timezone")
    return moment.astimezone(timezone.utc).strftime(LEDGER_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A moment from the ledger's time format (the inverse of `format_time`)."""
    return datetime.strptime(text, LEDGER_TIME_FORMAT).replace(tzinfo=timezone.utc)


def new_event_id() -> str:
    """A unique event id that sorts by creation time (millisecond clock, then 80 random bits).

    Time-ordered ids land at the end of the id index, so appends stay cheap as the ledger grows.
    """
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def utc_now() -> str:
    """The current moment in the ledger's time format."""
    return format_time(datetime.now(timezone.utc))


class EventFilters(TypedDict, total=False):
    """What reads of the ledger filter on, each served by an index: `after_seq` is exclusive and `upto_seq`
    inclusive, `since` inclusive and `until` exclusive (timezone-aware), `types` the event types wanted."""

    instance: str | None
    command_id: str | None
    actor: str | None
    since: datetime | None
    until: datetime | None
    after_seq: int
    upto_seq: int | None
    types: Sequence[str] | None


class Ledger:
    """An open ledger file: append events, read them back, walk the chain."""

    def __init__(self, conn: sqlite3.Connection, path: str, busy_timeout: float, readonly: bool = False):
        self.conn = conn
        self.path = path
        self.busy_timeout = busy_timeout
        self.readonly = readonly
        self._cache: dict[Any, Any] = {}
        self._cache_version: int | None = None
        self._transactions = 0  # how many this connection began: which one the cache was last checked in
        self._cache_checked_in = -1
        self._autocheckpoint: int | None = None  # the auto-checkpoint threshold `_tend_wal` set, if it set one

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> Ledger:
        """Open the ledger at `path`, creating it (mode 0660: its owner and group) when `create` is set.

        A file that does not exist and is not to be created opens as an empty
        in-memory ledger, so reading a ledger nobody has written yet succeeds.
        A file this user cannot write (or whose directory it cannot write)
        opens read-only: reads work, and any append fails with `LedgerError`.
        """
        path = os.fspath(path)
        try:
            _check_ledger_file(path)
            exists = True
        except FileNotFoundError:
            exists = False
        except OSError as error:
            raise LedgerError(f"ledger {path}: {error.strerror}") from error
        if not exists:
            if not create:
                return cls._connect(":memory:", busy_timeout, shown_as=path)
            _create_file(path)
        directory = os.path.dirname(os.path.abspath(path))
        readonly = not (os.access(path, os.W_OK) and os.access(directory, os.W_OK))
        return cls._connect(path, busy_timeout, shown_as=path, readonly=readonly)

    @classmethod
    def _connect(cls, target: str, busy_timeout: float, shown_as: str, readonly: bool = False) -> Ledger:
        # A read-only WAL file whose -shm this user cannot create opens only as immutable:
        # a snapshot that nobody can change through this connection.
        uris = [target] if not readonly else [f"file:{urllib.parse.quote(target)}?mode=ro",
                                              f"file:{urllib.parse.quote(target)}?immutable=1"]
        conn = None
        for uri in uris:
            try:
                # One connection may be handed to another thread (never used by two at once).
                conn = sqlite3.connect(uri, uri=readonly, timeout=busy_timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA user_version").fetchone()
                break
            except sqlite3.Error as error:
                if conn is not None:
                    conn.close()
                    conn = None
                if uri == uris[-1]:
                    raise LedgerError(f"ledger {shown_as}: {error}{_space_note(shown_as, error)}") from error
        assert conn is not None  # the last uri's failure raised
        ledger = cls(conn, shown_as, busy_timeout, readonly)
        try:
            ledger._prepare(target != ":memory:")
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _prepare(self, on_disk: bool) -> None:
        """Set the pragmas every connection needs, and make sure the schema is there and current."""
        with self.translated_errors():
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if on_disk and not self.readonly:
                self._use_wal()
            self.conn.execute("PRAGMA synchronous = FULL")
            current = schema_version(self.conn) == SCHEMA_VERSION
        if not current:
            if self.readonly:
                raise LedgerError(f"ledger {self.path} is read-only here and holds no current l4d2ctl schema")
            with self.transaction():
                ensure_schema(self.db, self.path)

    def _use_wal(self) -> None:
        """Switch the file to WAL (once per file; it persists), waiting out other openers.

        SQLite does not call the busy handler for a journal-mode change, so when
        several processes open a new file at once the losers would fail at once;
        they retry here until the busy timeout instead.
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """The connection as a sqlite-utils `Database`: what creating the schema and the projections' tables
        use, and anyone exploring the file. Loaded on first use: appends and reads need only the connection,
        and every l4d2ctl start would otherwise pay for importing sqlite-utils."""
        return _database(self.conn)

    def close(self) -> None:
        """Close the connection to the file."""
        self.conn.close()

    def cache(self) -> dict[Any, Any]:
        """Facts this connection read from the file or wrote to it (the head, positions, the projections'
        checkpoint), valid for as long as no other connection commits: emptied when one has (SQLite's
        `data_version` says so), and when a transaction of this one rolls back.

        What a writer does between two of its own appends then costs one
        pragma instead of a walk and several queries; a change by anyone
        else (another process, a tamperer) is seen at the next look.
        """
        if self._in_transaction() and self._cache_checked_in == self._transactions:
            return self._cache  # nobody else commits while this connection's transaction is open
        with self.translated_errors():
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if self._in_transaction():
            self._cache_checked_in = self._transactions
        if version != self._cache_version:
            self._cache.clear()
            self._cache_version = version
        return self._cache

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        """Append events atomically, in order, at the head of the chain."""
        with self.transaction():
            return self._append_locked(events)

    def append_requested(self, event: NewEvent) -> tuple[RecordedEvent, bool]:
        """Append an event keyed by its `request_key`, once: a known key appends nothing.

        Returns the recorded event carrying that key and whether this call wrote it.
        """
        if event.request_key is None:
            raise ValueError("append_requested needs an event with a request_key")
        with self.transaction():
            row = self.conn.execute(f"{_SELECT} WHERE request_key = ?", [event.request_key]).fetchone()
            if row is not None:
                return _recorded(dict(zip(_COLUMNS, row, strict=True))), False
            return self._append_locked([event])[0], True

    def read(self, **filters: Unpack[EventFilters]) -> Iterator[RecordedEvent]:
        """Events matching every filter `rows` takes, oldest first, as event models."""
        return map(_recorded, self.rows(**filters))

    def records(self, **filters: Unpack[EventFilters]) -> Iterator[EventRecord]:
        """Events matching every filter `rows` takes (but `columns`), oldest first, as decoded records:
        what the projections and the CLI read."""
        return self._select(RECORD_COLUMNS, lambda cursor, row: EventRecord(*row), **filters)

    def last_succeeded_request(self, instance: str, commands: Sequence[str]) -> EventRecord | None:
        """The newest request for `instance` of one of `commands` that ended succeeded, as a decoded record.

        Searched newest first, in SQL (the instance's index, the command's
        index for its outcome): the executor asks this before every decision.
        """
        sql = (f"SELECT {', '.join(RECORD_COLUMNS)} FROM events AS request WHERE instance = ? AND type = ? "
               f"AND json_extract(payload, '$.command') IN ({', '.join('?' * len(commands))}) "
               f"AND EXISTS (SELECT 1 FROM events AS outcome WHERE outcome.command_id = request.command_id "
               f"AND outcome.type = ?) ORDER BY seq DESC LIMIT 1")
        with self.translated_errors():
            row = self.conn.execute(sql, [instance, EventType.COMMAND_REQUESTED, *commands,
                                             EventType.COMMAND_SUCCEEDED]).fetchone()
        return None if row is None else EventRecord(*row)

    def rows(self, *, columns: Sequence[str] = _COLUMNS, **filters: Unpack[EventFilters]) -> Iterator[sqlite3.Row]:
        """Stored rows matching every given filter (`EventFilters`), oldest first, readable by column name.

        Each filter is served by an index. Walks of the chain (verification,
        the append check) use this for its speed, and may ask for only the
        event `types` and `columns` they need.
        """
        # sqlite3.Row: read by column name, without building a dict per row.
        return self._select(columns, sqlite3.Row, **filters)

    def _select(self, columns: Sequence[str], row_factory: Callable[[sqlite3.Cursor, tuple[Any, ...]], T],
                **filters: Unpack[EventFilters]) -> Iterator[T]:
        """The `columns` of the events matching every filter, oldest first, each built by `row_factory`."""
        since, until, types = filters.get("since"), filters.get("until"), filters.get("types")
        clauses, params = [], []
        for column, operator, value in (
            ("seq", ">", filters.get("after_seq") or None),
            ("seq", "<=", filters.get("upto_seq")),
            ("instance", "=", filters.get("instance")),
            ("command_id", "=", filters.get("command_id")),
            ("actor", "=", filters.get("actor")),
            ("recorded_at", ">=", since and format_time(since)),
            ("recorded_at", "<", until and format_time(until)),
        ):
            if value is not None:
                clauses.append(f"{column} {operator} ?")
                params.append(value)
        if types is not None:
            clauses.append(f"type IN ({', '.join('?' * len(types))})")
            params.extend(types)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        unknown = set(columns) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"no such event columns: {sorted(unknown)}")
        with self.translated_errors():
            cursor = self.conn.cursor()
            cursor.row_factory = row_factory
            yield from cursor.execute(f"SELECT {', '.join(columns)} FROM events{where} ORDER BY seq", params)

    def position(self, source: str) -> str | None:
        """How far a reader of an outside source (the journal) has recorded it; None before the first time.

        Positions live beside the events, outside the chain: they only spare a
        reader re-reading what it has seen. Facts taken from a source carry
        their source position as request key, so re-reading never records twice.
        """
        cache = self.cache()
        if (POSITIONS_TABLE, source) in cache:
            return cast("str | None", cache[POSITIONS_TABLE, source])
        with self.translated_errors():
            try:
                row = self.conn.execute("SELECT value FROM positions WHERE source = ?", [source]).fetchone()
            except sqlite3.OperationalError as error:
                if "no such table" not in str(error):
                    raise
                return None
        value: str | None = None if row is None else row[0]
        cache[POSITIONS_TABLE, source] = value
        return value

    def set_position(self, source: str, value: str) -> None:
        """Record how far `source` has been read (in the caller's transaction, beside what was appended from it)."""
        with self.transaction(), self.translated_errors():
            cache = self.cache()
            if POSITIONS_TABLE not in cache:
                self.conn.execute("CREATE TABLE IF NOT EXISTS positions (source TEXT PRIMARY KEY, "
                                     "value TEXT NOT NULL)")
                cache[POSITIONS_TABLE] = True
            self.conn.execute("INSERT OR REPLACE INTO positions (source, value) VALUES (?, ?)", [source, value])
            cache[POSITIONS_TABLE, source] = value

    def forget_position(self, source: str) -> None:
        """Forget how far `source` was read (a restored ledger's journal position belongs to another host)."""
        if self.position(source) is None:
            return
        with self.transaction(), self.translated_errors():
            self.conn.execute("DELETE FROM positions WHERE source = ?", [source])
            self.cache()[POSITIONS_TABLE, source] = None

    def integrity_problems(self) -> list[str]:
        """What SQLite's integrity check reports; empty when the file is sound."""
        with self.translated_errors():
            found = [row[0] for row in self.conn.execute("PRAGMA integrity_check").fetchall()]
        return [] if found == ["ok"] else found

    def head(self) -> tuple[int, str]:
        """The last seq and its hash; (0, the genesis hash) for an empty ledger."""
        cache = self.cache()
        if HEAD not in cache:
            with self.translated_errors():
                row = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            cache[HEAD] = tuple(row) if row is not None else (0, GENESIS_HASH)
        return cast("tuple[int, str]", cache[HEAD])

    def _check_chain_locked(self) -> None:
        """Refuse to append onto a broken chain: re-walk it from the last point an append verified to the head.

        The point is kept beside the events (as a position); the event there must
        still have the hash it had. Cheap, since each append moves the point to
        its own head; `verify` still walks everything from genesis.
        """
        seq, checked_hash = 0, GENESIS_HASH
        point = self.position(CHAIN_CHECKPOINT)
        if point == FAILED_INTEGRITY and self.integrity_problems():
            raise ChainBroken(f"ledger {self.path} fails SQLite's integrity check; nothing was appended (see "
                              f"`l4d2ctl verify`; restore the file from a copy or the replica)")
        if point and not point.startswith(BROKEN):
            seq_text, _, checked_hash = point.partition(":")
            seq = int(seq_text)
            rows = list(self.rows(upto_seq=seq, after_seq=seq - 1))
            if not rows or rows[0]["hash"] != checked_hash or event_hash(rows[0]["prev_hash"], rows[0]) != checked_hash:
                raise ChainBroken(f"ledger {self.path}: seq {seq} changed or went missing since it was verified; "
                                  f"nothing was appended (see `l4d2ctl verify`)")
        walk = walk_chain(self.rows(after_seq=seq), seq, checked_hash)
        if walk.first_bad_seq is not None:
            raise ChainBroken(f"ledger {self.path}: the hash chain breaks at seq {walk.first_bad_seq} ({walk.reason}); "
                              f"nothing was appended (see `l4d2ctl verify`)")

    def remember_failed_integrity(self) -> None:
        """Keep that the file failed SQLite's integrity check: appends refuse until it passes again (restored).
        A file too damaged to take even that is left as it is."""
        self._cache.pop(VERIFIED, None)
        try:
            self.set_position(CHAIN_CHECKPOINT, FAILED_INTEGRITY)
        except LedgerError:
            pass

    def remember_chain_walk(self, walk: ChainWalk) -> None:
        """Keep what a walk from genesis found: the point it verified, or a break that appends refuse to build on
        until a walk from genesis holds again."""
        broken = walk.first_bad_seq is not None
        point = f"{BROKEN}{walk.first_bad_seq}" if broken else f"{walk.last_seq}:{walk.last_hash}"
        self._cache.pop(VERIFIED, None)
        self.set_position(CHAIN_CHECKPOINT, point)

    def _append_locked(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        from .events import RecordedEvent  # loaded already: the caller built its events from these models

        cache = self.cache()
        if cache.get(VERIFIED) is None or cache.get(VERIFIED) != cache.get(HEAD):
            self._check_chain_locked()  # someone else wrote since this connection last verified or appended
        seq, prev_hash = self.head()
        recorded_at = utc_now()
        recorded = []
        for event in events:
            seq += 1
            row: dict[str, Any] = {
                "seq": seq,
                "id": new_event_id(),
                "type": event.type,
                "instance": event.instance,
                "command_id": event.command_id,
                "actor": event.actor,
                "os_user": event.os_user,
                "recorded_at": recorded_at,
                "request_key": event.request_key,
                "payload": canonical_json(event.payload.as_json() | version_marker(event.type)),
                "prev_hash": prev_hash,
            }
            row["hash"] = prev_hash = event_hash(prev_hash, row)
            self.conn.execute(_INSERT, [row[column] for column in _COLUMNS])
            assigned = {column: row[column] for column in _RECORDED_FIELDS}
            recorded.append(RecordedEvent(**assigned, payload=event.payload))
        self.set_position(CHAIN_CHECKPOINT, f"{seq}:{prev_hash}")
        cache[HEAD] = cache[VERIFIED] = (seq, prev_hash)
        return recorded

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """Hold SQLite's write lock (BEGIN IMMEDIATE) for the block; commit, or roll back on error.

        A `durable` commit is on disk when it returns (the WAL is synced). One
        that is not (`synchronous=NORMAL`) is atomic and survives a crash of
        this process, but a power cut may take it back; the next durable
        commit makes it durable too. Inside an open transaction it adds
        nothing: the outer one commits or rolls back the whole.
        """
        if self.readonly:
            raise LedgerError(f"ledger {self.path} is read-only for this user (uid {os.geteuid()}): "
                              f"nothing can be recorded")
        if self._in_transaction():
            yield
            return
        with self.translated_errors():
            if not durable:
                self.conn.execute("PRAGMA synchronous = NORMAL")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self._transactions += 1
                try:
                    self._tend_wal()
                    yield
                    self.conn.execute("COMMIT")
                except BaseException:
                    self._cache.clear()  # what this transaction wrote is gone
                    if self._in_transaction():  # a failed COMMIT may leave it open
                        self.conn.rollback()
                    raise
            finally:
                if not durable and not self._in_transaction():  # the level cannot change inside one
                    self.conn.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read the file as one moment of it for the whole block: what other connections commit meanwhile is not
        seen (and, in WAL, not held up either). For reads that must agree with each other, such as the events
        and the projections built from them; nothing may be written in the block. Inside an open transaction
        it adds nothing."""
        if self._in_transaction():
            yield
            return
        with self.translated_errors():
            self.conn.execute("BEGIN DEFERRED")
        try:
            with self.translated_errors():
                self.conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # the moment: a first read
            self._transactions += 1  # the cache is checked anew at its next use, then trusted for the block
            yield
        finally:
            if self._in_transaction():
                self.conn.rollback()  # nothing was written: this only lets the moment go

    def _tend_wal(self) -> None:
        """Pace a WAL that a reader holds back (see `wal_room`), under the write lock just taken."""
        if self._wal_shape is None:
            return
        path, page_size, initial = self._wal_shape
        threshold = tend(path, page_size, initial)
        if threshold != (initial if self._autocheckpoint is None else self._autocheckpoint):
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(threshold)}")
            self._autocheckpoint = threshold

    @cached_property
    def _wal_shape(self) -> tuple[str, int, int] | None:
        """The WAL's path (beside the file as SQLite resolved it), page size and auto-checkpoint threshold as
        the connection began; None for a ledger without a WAL (one in memory)."""
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            return None
        file = self.conn.execute("PRAGMA database_list").fetchone()[2]
        return (f"{file}-wal", self.conn.execute("PRAGMA page_size").fetchone()[0],
                self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

    def _in_transaction(self) -> bool:
        """Whether this connection holds an open transaction (asked anew each time: it changes under us)."""
        return self.conn.in_transaction

    @contextmanager
    def translated_errors(self) -> Iterator[None]:
        """Turn SQLite errors raised in the block into `LedgerError`s that name the file."""
        try:
            yield
        except sqlite3.Error as error:
            # SQLite may have rolled the whole transaction back on its own (a full disk, an I/O error): what this
            # connection kept of it may be gone, and its own rollback does not show in data_version.
            self._cache.clear()
            raise self._translated(error) from error

    def _translated(self, error: sqlite3.Error) -> LedgerError:
        """A SQLite error as the `LedgerError` that says what it means for this file."""
        if isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error)):
            holders = processes_with_open(self.path) if self.path != ":memory:" else []
            return LedgerLocked(f"ledger {self.path} is locked by another process (waited {self.busy_timeout:g}s); "
                                f"open in: {', '.join(holders) or 'no process visible to this user'}")
        return LedgerError(f"ledger {self.path}: {error}{_space_note(self.path, error)}")


def _space_note(path: str, error: sqlite3.Error) -> str:
    """For a full disk or an I/O error, how much room the ledger's filesystem has left."""
    if path == ":memory:" or not any(word in str(error) for word in ("full", "I/O")):
        return ""
    try:
        space = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return ""
    free = space.f_bavail * space.f_frsize
    return f" (the ledger's filesystem has {free} bytes free{'; it is full' if free < 65536 else ''})"


def _check_ledger_file(path: str) -> None:
    """Refuse a ledger file l4d2ctl cannot trust (`LedgerError`; `FileNotFoundError` when there is none).

    A symlink is not followed (it could make any file the ledger); only a
    regular file will do. Nobody but its owner and group may write it, nor
    create or replace it in its directory: so it was made by someone that
    directory trusts (on a host, root or an operator: README, "Who owns
    what"), not planted by a stranger. An empty file is a truncated ledger:
    l4d2ctl creates ledgers with their schema in place.
    """
    info = os.lstat(path)
    directory = os.stat(os.path.dirname(os.path.abspath(path)))
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symlink: l4d2ctl does not follow one to its ledger (give --db the file itself)"
    elif not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif info.st_mode & stat.S_IWOTH:
        problem = f"may be written by anyone (mode {stat.S_IMODE(info.st_mode):04o}): `chmod o-w` it"
    elif directory.st_mode & stat.S_IWOTH:
        problem = "lies in a world-writable directory, where anyone could replace it: move it"
    elif info.st_size == 0:
        problem = ("is an empty file: l4d2ctl never leaves one (it creates a ledger with its schema in place), so "
                   "it was truncated or is not a ledger; restore it from a copy or the replica")
    if problem is not None:
        raise LedgerError(f"ledger {path} {problem}")


def _create_file(path: str) -> None:
    """Create the ledger file with its schema in place, atomically: it is built under a temporary name and
    linked into place, so an l4d2ctl ledger is never an empty file (an empty one was truncated) and a ledger
    another process created meanwhile is kept, not replaced."""
    directory = Path(path).absolute().parent
    temporary = directory / f".{Path(path).name}.{secrets.token_hex(4)}.new"
    try:
        directory.mkdir(mode=LEDGER_DIR_MODE, parents=True, exist_ok=True)
        if directory.stat().st_mode & stat.S_IWOTH:
            raise LedgerError(
                f"refusing to create ledger {path}: its directory {directory} is world-writable, so anyone "
                "could replace the ledger or plant its -wal file; use a directory only its owners can write"
            )
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, LEDGER_FILE_MODE))
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            ensure_schema(_database(conn), path)
            conn.execute("COMMIT")
        finally:
            conn.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    except (OSError, sqlite3.Error) as error:
        raise LedgerError(f"cannot create ledger {path}: {getattr(error, 'strerror', None) or error}") from error
    finally:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            leftover.unlink(missing_ok=True)


def _database(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """A connection as a sqlite-utils `Database`, with no plugins: whatever package registers one would otherwise
    run inside every l4d2ctl (as root, too), and finding them means reading every installed package's metadata."""
    import sqlite_utils

    return sqlite_utils.Database(conn, execute_plugins=False)


def _recorded(row: EventRow) -> RecordedEvent:
    """A stored row as an event model (`LedgerError` if it cannot be read)."""
    from .events import EVENT_TYPES, RecordedEvent  # the models are only needed by typed reads

    fields = dict(row)
    event_type = fields.pop("type")
    try:
        payload = decode(event_type, fields.pop("payload"), fields["seq"])
        return RecordedEvent(**fields, payload=cast("Payload", EVENT_TYPES[event_type](**payload)))
    except (ValueError, TypeError) as error:
        raise LedgerError(
            f"event seq {fields['seq']} cannot be read ({error.__class__.__name__}); "
            "run `l4d2ctl verify`"
        ) from error
