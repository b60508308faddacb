"""The ledger file's schema: the append-only events table, its indexes and triggers.

The schema version lives in SQLite's `user_version`, so a file written by a
newer l4d2ctl is refused before anything reads or writes it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from .errors import LedgerError, SchemaTooNew

if TYPE_CHECKING:
    import sqlite_utils

SCHEMA_VERSION = 1

EVENT_COLUMNS = {
    "seq": int,
    "id": str,
    "type": str,
    "instance": str,
    "command_id": str,
    "actor": str,
    "os_user": str,
    "recorded_at": str,
    "request_key": str,
    "payload": str,
    "prev_hash": str,
    "hash": str,
}

# name -> (columns, unique); every read the ledger offers is served by one of these.
EVENT_INDEXES = {
    "events_by_instance": (["instance", "seq"], False),
    "events_by_command": (["command_id", "seq"], False),
    "events_by_actor_time": (["actor", "recorded_at"], False),
    "events_by_time": (["recorded_at"], False),
    "events_by_id": (["id"], True),
    "events_by_request_key": (["request_key"], True),
}

APPEND_ONLY_TRIGGERS = tuple(
    f"CREATE TRIGGER events_no_{verb.lower()} BEFORE {verb} ON events "
    f"BEGIN SELECT RAISE(ABORT, 'events are append-only: {verb} is refused'); END"
    for verb in ("UPDATE", "DELETE")
)


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the file (0 for a file with no schema yet)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def ensure_schema(db: sqlite_utils.Database, path: str) -> None:
    """Create the schema in an empty file, accept a current one, refuse a newer one.

    Must run inside a write transaction, so that processes opening a new file
    at the same moment create the schema exactly once.
    """
    version = schema_version(db.conn)
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"ledger {path} has schema version {version}, newer than this l4d2ctl "
            f"understands ({SCHEMA_VERSION}); upgrade l4d2ctl to read it"
        )
    if version == SCHEMA_VERSION:
        return
    foreign = db.table_names()
    if foreign:
        raise LedgerError(
            f"{path} is not an l4d2ctl ledger (it holds tables {', '.join(foreign)} "
            "and no ledger schema)"
        )
    events = db.table("events")
    events.create(
        EVENT_COLUMNS,
        pk="seq",
        not_null=set(EVENT_COLUMNS) - {"request_key"},
        strict=True,
    )
    for name, (columns, unique) in EVENT_INDEXES.items():
        events.create_index(columns, index_name=name, unique=unique)
    for trigger in APPEND_ONLY_TRIGGERS:
        db.execute(trigger)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
