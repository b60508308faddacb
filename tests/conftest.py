"""Shared fixtures: a fresh ledger file per test and a maker of plain events."""

from __future__ import annotations

import sqlite3

import pytest

from ledger import CommandRequested, Ledger, NewEvent


def an_event(instance: str = "alpha", command_id: str = "cmd-1", actor: str = "alice", **payload_args) -> NewEvent:
    """A CommandRequested event with sensible defaults, overridable per test."""
    payload_args.setdefault("command", "start")
    request_key = payload_args.pop("request_key", None)
    return NewEvent(
        instance=instance,
        command_id=command_id,
        actor=actor,
        os_user="root",
        request_key=request_key,
        payload=CommandRequested(**payload_args),
    )


def holding_reader(path) -> sqlite3.Connection:
    """A second connection to the ledger file holding a read transaction open, as Litestream does while it
    replicates: SQLite's WAL cannot start over past it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM events").fetchone()
    return conn


def query_plan(db, table: str, call) -> str:
    """SQLite's plan for the one SELECT on `table` that `call()` runs: which index serves it."""
    executed: list[str] = []
    db.conn.set_trace_callback(executed.append)
    try:
        call()
    finally:
        db.conn.set_trace_callback(None)
    (select,) = [sql for sql in executed if sql.startswith("SELECT") and f"FROM {table}" in sql]
    return " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {select}"))


@pytest.fixture
def ledger_path(tmp_path):
    """Where a test's ledger file lives (not created until opened)."""
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(ledger_path):
    """An open, empty ledger file."""
    with Ledger.open(ledger_path) as opened:
        yield opened


@pytest.fixture
def root(tmp_path):
    """A throwaway host root with an installation and the design example's overlays."""
    from .real_host import make_root

    return make_root(tmp_path / "root")


@pytest.fixture
def l4d2ctl(root):
    """Invoke the CLI in-process against the throwaway root on a simulated host."""
    from .real_host import invoke

    return lambda *args, env=None: invoke(root, *args, env=env)
