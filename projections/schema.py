"""The projections' tables, indexes and audit view, and the version that says when they must be rebuilt.

Bump `PROJECTION_VERSION` whenever what the fold writes changes (a column,
a meaning): every ledger then rebuilds its projections from the events on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .views import SUMMARY_FIELDS

if TYPE_CHECKING:
    import sqlite_utils

PROJECTION_VERSION = 8

COMMAND_COLUMNS = {
    "command_id": str, "instance": str, "command": str, "args": str, "actor": str, "os_user": str,
    "requested_at": str, "requested_seq": int, "retry_of": str, "replay_of": str, "started_at": str,
    "finished_at": str, "outcome": str, "error": str, "cancel_requested_by": str, "active_until": str,
}
INSTANCE_COLUMNS = {
    "name": str, "state": str, "port": int, "blueprint": str, "last_command_id": str, "last_command": str,
    "last_outcome": str, "last_actor": str, "updated_at": str, "needs_init": int, "secrets": str,
}
COMMAND_INDEXES = {
    "commands_by_instance": ["instance", "requested_seq"],
    "commands_by_actor": ["actor", "requested_seq"],
    "commands_by_command": ["command", "requested_seq"],
    "commands_by_time": ["requested_at"],
    "commands_by_seq": ["requested_seq"],
    "commands_by_outcome": ["outcome", "requested_seq"],
    "commands_by_activity": ["instance", "active_until"],
}
TABLES = ("commands", "instances", "projection_checkpoint")
COMMAND_REQUIRED = {"instance", "command", "args", "actor", "os_user", "requested_at", "requested_seq", "outcome"}


def schema_statements(db: sqlite_utils.Database, schema: str) -> tuple[list[str], list[str]]:
    """Statements that drop and create, in `schema` (main or temp), the tables and audit view; and those that
    create the indexes, to run once the tables are filled (sorting a full table once is faster than growing
    seven indexes row by row)."""
    create = "CREATE TEMP TABLE" if schema == "temp" else "CREATE TABLE"
    tables = [
        f"DROP VIEW IF EXISTS {schema}.audit",
        *(f"DROP TABLE IF EXISTS {schema}.{table}" for table in TABLES),
        db.create_table_sql("commands", COMMAND_COLUMNS, pk="command_id", not_null=COMMAND_REQUIRED)
        .replace("CREATE TABLE", create, 1),
        # For people reading the file with sqlite-utils or sqlite3.
        f"CREATE VIEW {schema}.audit AS SELECT {', '.join(SUMMARY_FIELDS)} FROM commands ORDER BY requested_seq",
        db.create_table_sql("instances", INSTANCE_COLUMNS, pk="name").replace("CREATE TABLE", create, 1),
        f"{create} projection_checkpoint (version INTEGER, seq INTEGER)",
        f"INSERT INTO {schema}.projection_checkpoint (version, seq) VALUES ({PROJECTION_VERSION}, 0)",
    ]
    indexes = [
        *(f"CREATE INDEX {schema}.{name} ON commands ({', '.join(columns)})"
          for name, columns in COMMAND_INDEXES.items()),
        f"CREATE INDEX {schema}.instances_by_port ON instances (port)",
    ]
    return tables, indexes
