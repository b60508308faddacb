"""The projections, materialized in the ledger file beside the events, with a checkpoint.

`commands` holds one row per command (history is its rows for one instance,
audit its rows across all); `instances` one row per instance. `sync` brings
them up to date from the events after the checkpoint, in one write
transaction, so concurrent readers never apply an event twice; readers sync
before they read (the CLI once per invocation), the executor after every
event it records.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, cast

from ledger import Ledger, LedgerError, format_time
from ledger.lifecycle import TERMINAL_TYPES, EventType, Outcome, State
from ledger.payloads import CommandFailedData, EventRecord, StepCompletedData

from .schema import PROJECTION_VERSION, schema_statements
from .views import FOLDED_TYPES, CommandView, Fold, InstanceView, StepView

# What the projections keep in the ledger connection's cache (`Ledger.cache`): the checkpoint's row.
CHECKPOINT_ROW = "projection_checkpoint"
KEYS = {"commands": "command_id", "instances": "name"}
SqlParams = Sequence[str | int]
"""The values bound to a query's `?` placeholders."""


class Row(Protocol):
    """A view that is one row of a projection table."""

    def as_row(self) -> dict[str, Any]:
        """The view as its table's row."""
        ...


R = TypeVar("R", bound=Row)


class LoadingMap(Generic[R]):
    """Values by key for an incremental fold: each loaded from its table row on first use (None: absent, and asked
    again next time), and kept with whatever the fold sets; `changes` says what to write back afterwards."""

    __slots__ = ("_held", "_load", "_from_row", "_rows")

    def __init__(self, load: Callable[[str], dict[str, Any] | None], from_row: Callable[[dict[str, Any]], R]):
        self._load = load
        self._from_row = from_row
        self._held: dict[str, R] = {}
        self._rows: dict[str, dict[str, Any]] = {}  # the table rows loaded, as they were

    def get(self, key: str, /) -> R | None:
        """The value for `key`, loaded on first use."""
        value = self._held.get(key)
        if value is None:
            row = self._load(key)
            if row is not None:
                self._rows[key] = row
                value = self._held[key] = self._from_row(row)
        return value

    def __setitem__(self, key: str, value: R, /) -> None:
        """Hold `value` for `key` (a new command or instance, or a replaced one)."""
        self._held[key] = value

    def changes(self) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
        """What the fold changed: the rows of values that were not in the table, and for each loaded one the
        columns that now differ (only those are written, so an index on an unchanged column is left alone)."""
        new, changed = [], []
        for key, value in self._held.items():
            row = value.as_row()
            loaded = self._rows.get(key)
            if loaded is None:
                new.append(row)
                continue
            columns = {column: row[column] for column in row if row[column] != loaded[column]}
            if columns:
                changed.append((key, columns))
        return new, changed


class Projections:
    """Read models over one ledger: instances, commands (history and audit), kept current by `sync`."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.conn = ledger.conn
        self._tables_current = False

    def sync(self) -> list[EventRecord]:
        """Fold every event after the checkpoint into the tables; return the events applied.

        On a ledger this user may only read, stale projections are rebuilt in
        temporary tables (they shadow the file's own for this connection).
        """
        head, _ = self.ledger.head()
        if self._checkpoint() == head:
            return []
        if self.ledger.readonly:
            self._rebuild(temp=True)
            return []
        with self.ledger.transaction(durable=False):  # derived data: a power cut only means folding again
            if self._version() != PROJECTION_VERSION:
                self._rebuild()
                return []
            events = list(self.ledger.records(after_seq=self._checkpoint()))
            commands = LoadingMap(self._command_row, CommandView.from_row)
            instances = LoadingMap(self._instance_row, InstanceView.from_row)
            fold = Fold(commands, instances)
            for event in events:
                fold.apply(event)
            for table, changes in (("commands", commands.changes()), ("instances", instances.changes())):
                self._write(table, *changes)
            self._set_checkpoint(events[-1].seq if events else self._checkpoint())
        return events

    def disagreements(self, limit: int = 5) -> list[str]:
        """Where the projection tables in the file say what the chain does not (at most `limit`, most telling
        first): a command with more than one outcome, a row no event made, a row missing, a row edited.

        Decisions read these tables, and SQL can edit them unseen by the
        chain; `verify` calls this, after bringing them up to date, to prove
        them. Not on a read-only ledger, whose projections may be stale.
        """
        self.sync()
        with self.ledger.snapshot():  # the events, the checkpoint and the tables as of one moment
            head, checkpoint = self.ledger.head()[0], self._checkpoint()
            if checkpoint != head:
                return [f"projection_checkpoint says seq {checkpoint}, the chain ends at {head}"]
            terminal = ", ".join("?" * len(TERMINAL_TYPES))
            found = [f"command {command_id} has {count} outcomes" for command_id, count in self.conn.execute(
                f"SELECT command_id, count(*) FROM events WHERE type IN ({terminal}) GROUP BY command_id "
                f"HAVING count(*) > 1 ORDER BY min(seq)", list(TERMINAL_TYPES))]
            commands, instances = self._fold_chain(checkpoint)
            tables: tuple[tuple[str, str, Callable[[dict[str, Any]], Any], dict[str, Any]], ...] = (
                ("commands", "command_id", CommandView.from_row, commands),
                ("instances", "name", InstanceView.from_row, instances))
            for table, key, from_row, expected in tables:
                stored: dict[str, Any] = {}
                for row in self._raw(f"SELECT * FROM main.{table}", []):
                    try:
                        stored[row[key]] = from_row(row)
                    except (ValueError, TypeError, KeyError):
                        stored[row[key]] = None
                for name in sorted(expected.keys() | stored.keys()):
                    if name in stored and stored[name] is None:
                        found.append(f"{table} row {name} cannot be read")
                    elif name not in stored:
                        found.append(f"{table} lacks {name}")
                    elif name not in expected:
                        found.append(f"{table} holds {name}, which no event made")
                    elif stored[name] != expected[name]:
                        edited = [field for field, value in vars(expected[name]).items()
                                  if getattr(stored[name], field) != value]
                        found.append(f"{table} row {name}: {', '.join(edited)} not as the events say")
            return found[:limit]

    def rebuild(self) -> int:
        """Drop the projections and fold the whole ledger again; return how many events were folded."""
        with self.ledger.transaction(durable=False):  # derived data: a power cut only means folding again
            return self._rebuild()

    def instance(self, name: str) -> InstanceView:
        """The recorded view of an instance (an unknown one if nothing succeeded for it)."""
        return self._load_instance(name) or InstanceView(name)

    def instances(self, name: str | None = None) -> list[InstanceView]:
        """Every instance that was ever initialized (or just `name`), by name."""
        where, params = ("state IS NOT NULL", []) if name is None else ("state IS NOT NULL AND name = ?", [name])
        return [InstanceView.from_row(row) for row in self._rows("instances", where, params, "name")]

    def port_holder(self, port: int, other_than: str) -> InstanceView | None:
        """A live (initialized, not deleted) instance other than `other_than` that uses `port`."""
        rows = self._rows("instances", "port = ? AND name != ? AND state IS NOT NULL AND state != ?",
                          [port, other_than, State.DELETED], "name")
        return next((InstanceView.from_row(row) for row in rows), None)

    def command(self, command_id: str) -> CommandView | None:
        """One command by id."""
        return self._load_command(command_id)

    def recorded_command(self, command_id: str) -> CommandView:
        """One command by id that is known to be recorded (say, just appended); `LedgerError` if it is not there."""
        command = self._load_command(command_id)
        if command is None:
            raise LedgerError(f"command {command_id} is not in ledger {self.ledger.path}")
        return command

    def succeeded_retry(self, command_id: str) -> CommandView | None:
        """A retry of `command_id` that succeeded, if one did."""
        return next(self._commands("retry_of = ? AND outcome = ?", [command_id, Outcome.SUCCEEDED], limit=1), None)

    def parts_of(self, command_id: str) -> list[CommandView]:
        """The commands run as part of `command_id` (an update's stops and starts), in the order they ran."""
        return list(self._commands("json_extract(args, '$.part_of') = ?", [command_id]))

    def command_ids_starting(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` command ids that start with `prefix` (hex digits), oldest first."""
        rows = self._raw("SELECT command_id FROM commands WHERE command_id >= ? AND command_id < ? "
                         "ORDER BY requested_seq LIMIT ?", [prefix, prefix + "g", limit])
        return [row["command_id"] for row in rows]

    def acting_on(self, instance: str, moment: str) -> bool:
        """Whether a command of `instance` was acting on the host at `moment` (started by then, not yet done).

        What systemd logs about a unit while l4d2ctl acts on it is the command's
        own doing, not an observation. An interrupted command acted only until
        its last recorded event: what happened while no executor ran is news.
        """
        # Two ranges of the activity index (still acting; acted until after `moment`), so that an instance's
        # long history is not read for every journal entry.
        rows = self._raw("SELECT 1 FROM commands WHERE instance = ? AND active_until IS NULL AND started_at <= ? "
                         "AND outcome != ? UNION ALL SELECT 1 FROM commands WHERE instance = ? AND active_until >= ? "
                         "AND started_at <= ? AND outcome != ? LIMIT 1",
                         [instance, moment, Outcome.OBSERVED, instance, moment, moment, Outcome.OBSERVED])
        return next(rows, None) is not None

    def next_pending(self) -> CommandView | None:
        """The oldest command nobody has taken up yet."""
        return next(self._commands("outcome = ?", [Outcome.PENDING], limit=1), None)

    def running(self) -> list[CommandView]:
        """Commands started and not finished."""
        return list(self._commands("outcome = ?", [Outcome.RUNNING]))

    def cancels_asked(self) -> list[str]:
        """The ids of running commands someone asked to cancel."""
        return [row["command_id"] for row in self._raw(
            "SELECT command_id FROM commands WHERE outcome = ? AND cancel_requested_by IS NOT NULL", [Outcome.RUNNING])]

    def history(self, instance: str) -> list[CommandView]:
        """Every command of one instance, oldest first."""
        return list(self._commands("instance = ?", [instance]))

    def audit(self, *, actor: str | None = None, instance: str | None = None, command: str | None = None,
              outcome: str | None = None, since: datetime | None = None, until: datetime | None = None,
              limit: int | None = None) -> list[CommandView]:
        """Every command matching the filters (since inclusive, until exclusive, on request time), oldest first;
        with `limit`, only the newest that many."""
        clauses: list[str] = []
        params: list[str | int] = []
        for column, value in (("actor", actor), ("instance", instance), ("command", command), ("outcome", outcome)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        for operator, moment in ((">=", since), ("<", until)):
            if moment is not None:
                clauses.append(f"requested_at {operator} ?")
                params.append(format_time(moment))
        where = " AND ".join(clauses) or "1"
        if limit is not None:
            where += f" AND requested_seq >= coalesce((SELECT requested_seq FROM commands WHERE {where} " \
                     f"ORDER BY requested_seq DESC LIMIT 1 OFFSET ?), 0)"
            params = [*params, *params, limit - 1]
        return list(self._commands(where, params))

    def steps(self, command_id: str) -> list[StepView]:
        """The completed steps of a command, in order, each with when it ended and its output."""
        return [
            {"step": step["step"], "at": event.recorded_at, "output": step["output"]}
            for event in self.ledger.records(command_id=command_id, types=(EventType.STEP_COMPLETED,))
            for step in [cast(StepCompletedData, event.payload)]
        ]

    def failure(self, command_id: str) -> CommandFailedData | None:
        """How a failed command failed: the step, the error, what the step printed, the stderr tail."""
        for event in self.ledger.records(command_id=command_id, types=(EventType.COMMAND_FAILED,)):
            return cast(CommandFailedData, event.payload)
        return None

    def _commands(self, where: str, params: SqlParams, limit: int | None = None) -> Iterator[CommandView]:
        return map(CommandView.from_row, self._rows("commands", where, params, "requested_seq", limit))

    def _rows(self, table: str, where: str, params: SqlParams, order: str,
              limit: int | None = None) -> Iterator[dict[str, Any]]:
        sql = f"SELECT * FROM {table} WHERE {where} ORDER BY {order}" + (f" LIMIT {limit}" if limit else "")
        return self._raw(sql, params)

    def _ensure_tables(self) -> None:
        """Make sure the tables exist (an empty ledger has none until its first sync)."""
        if self._tables_current or self._version() == PROJECTION_VERSION:
            self._tables_current = True
            return
        if self.ledger.readonly:
            self._rebuild(temp=True)
            return
        with self.ledger.transaction(durable=False):  # derived data: a power cut only means folding again
            if self._version() != PROJECTION_VERSION:
                self._rebuild()

    def _load_command(self, command_id: str) -> CommandView | None:
        row = self._command_row(command_id)
        return None if row is None else CommandView.from_row(row)

    def _load_instance(self, name: str) -> InstanceView | None:
        row = self._instance_row(name)
        return None if row is None else InstanceView.from_row(row)

    def _command_row(self, command_id: str) -> dict[str, Any] | None:
        return next(self._raw("SELECT * FROM commands WHERE command_id = ?", [command_id]), None)

    def _instance_row(self, name: str) -> dict[str, Any] | None:
        return next(self._raw("SELECT * FROM instances WHERE name = ?", [name]), None)

    def _raw(self, sql: str, params: SqlParams) -> Iterator[dict[str, Any]]:
        self._ensure_tables()
        with self.ledger.translated_errors():
            cursor = self.conn.execute(sql, params)
            names = [column[0] for column in cursor.description]
            return iter([dict(zip(names, values, strict=True)) for values in cursor.fetchall()])

    def _checkpoint(self) -> int:
        if not self._tables_current and self._version() != PROJECTION_VERSION:
            return -1
        return int(self._checkpoint_row()[1] or 0)

    def _version(self) -> int | None:
        return self._checkpoint_row()[0]

    def _checkpoint_row(self) -> tuple[int | None, int | None]:
        """The projections' version and the seq they are folded up to ((None, None) before the tables exist),
        kept in the connection's cache until someone else writes."""
        cache = self.ledger.cache()
        if CHECKPOINT_ROW not in cache:
            with self.ledger.translated_errors():
                try:
                    row = self.conn.execute("SELECT version, seq FROM projection_checkpoint").fetchone()
                except sqlite3.OperationalError as error:
                    if "no such table" not in str(error):
                        raise
                    row = None
            cache[CHECKPOINT_ROW] = tuple(row) if row else (None, None)
        return cast("tuple[int | None, int | None]", cache[CHECKPOINT_ROW])

    def _rebuild(self, temp: bool = False) -> int:
        """Create the tables afresh (temporary ones when `temp`) and fold the whole ledger into them."""
        tables, indexes = schema_statements(self.ledger.db, "temp" if temp else "main")
        with self.ledger.translated_errors():
            for statement in tables:
                self.conn.execute(statement)
            # Up to the head as it is now: without the write lock (read-only), a writer may append during the fold.
            seq = self.ledger.head()[0]
            commands, instances = self._fold_chain(seq)
            for table, views in (("commands", commands.values()), ("instances", instances.values())):
                self._write(table, [view.as_row() for view in views], [])
            for statement in indexes:
                self.conn.execute(statement)
            self._set_checkpoint(seq)
        return seq

    def _fold_chain(self, upto_seq: int) -> tuple[dict[str, CommandView], dict[str, InstanceView]]:
        """Every command and instance as a fold of the chain up to `upto_seq` makes them."""
        commands: dict[str, CommandView] = {}
        instances: dict[str, InstanceView] = {}
        fold = Fold(commands, instances)
        for event in self.ledger.records(types=FOLDED_TYPES, upto_seq=upto_seq):
            fold.apply(event)
        return commands, instances

    def _write(self, table: str, new: list[dict[str, Any]], changed: list[tuple[str, dict[str, Any]]]) -> None:
        """Insert the `new` rows of `table`, and set the changed columns of existing ones (by key)."""
        if new:
            columns = list(new[0])
            self.conn.executemany(
                f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [[row[column] for column in columns] for row in new],
            )
        key = KEYS[table]
        for value, changes in changed:
            assignments = ", ".join(f"{column} = ?" for column in changes)
            self.conn.execute(f"UPDATE {table} SET {assignments} WHERE {key} = ?", [*changes.values(), value])

    def _set_checkpoint(self, seq: int) -> None:
        self.conn.execute("UPDATE projection_checkpoint SET seq = ?", [seq])
        self.ledger.cache()[CHECKPOINT_ROW] = (PROJECTION_VERSION, seq)
