"""The ledger stores events append-only, in one strictly increasing sequence."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone

import pytest

from ledger import (
    CommandFailed,
    CommandSucceeded,
    Ledger,
    LedgerError,
    LedgerLocked,
    NewEvent,
    SchemaTooNew,
    StepCompleted,
    verify_ledger,
)
from ledger.schema import SCHEMA_VERSION

from .conftest import an_event, query_plan


def test_append_assigns_consecutive_seqs_from_one(ledger):
    first = ledger.append([an_event(), an_event()])
    second = ledger.append([an_event()])
    assert [event.seq for event in first + second] == [1, 2, 3]


def test_append_links_each_event_to_the_one_before(ledger):
    events = ledger.append([an_event(), an_event(), an_event()])
    assert [event.prev_hash for event in events[1:]] == [event.hash for event in events[:-1]]
    assert events[0].prev_hash == "0" * 64


def test_recorded_events_read_back_equal_to_what_append_returned(ledger):
    written = ledger.append([
        an_event(command="init", args={"port": 27015, "overlays": [{"path": "maps"}]}),
        NewEvent(instance="alpha", command_id="cmd-1", actor="alice", os_user="root",
                 payload=StepCompleted(step="write instance.env", output=["ok"])),
        NewEvent(instance="alpha", command_id="cmd-1", actor="alice", os_user="root",
                 payload=CommandFailed(step="enable unit", error="exit 1", stderr_tail=["boom"])),
    ])
    assert list(ledger.read()) == written


def test_recorded_at_is_utc_with_fixed_width(ledger):
    (event,) = ledger.append([an_event()])
    assert event.recorded_at.endswith("Z")
    moment = datetime.strptime(event.recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - moment) < timedelta(minutes=1)


def test_the_same_request_key_appends_once_and_returns_the_first_command(ledger):
    first, created_first = ledger.append_requested(an_event(command_id="first", request_key="key-1"))
    again, created_again = ledger.append_requested(an_event(command_id="second", request_key="key-1"))
    assert (created_first, created_again) == (True, False)
    assert again == first
    assert [event.command_id for event in ledger.read()] == ["first"]


def test_different_request_keys_append_separately(ledger):
    ledger.append_requested(an_event(command_id="a", request_key="key-a"))
    ledger.append_requested(an_event(command_id="b", request_key="key-b"))
    assert [event.command_id for event in ledger.read()] == ["a", "b"]


def test_read_filters_by_instance_command_and_actor(ledger):
    ledger.append([
        an_event(instance="alpha", command_id="c1", actor="alice"),
        an_event(instance="bravo", command_id="c2", actor="bob"),
        an_event(instance="alpha", command_id="c3", actor="bob"),
    ])
    assert [e.command_id for e in ledger.read(instance="alpha")] == ["c1", "c3"]
    assert [e.command_id for e in ledger.read(command_id="c2")] == ["c2"]
    assert [e.command_id for e in ledger.read(actor="bob")] == ["c2", "c3"]
    assert [e.command_id for e in ledger.read(instance="alpha", actor="bob")] == ["c3"]


def test_read_by_seq_range_excludes_after_and_includes_upto(ledger):
    ledger.append([an_event(command_id=f"c{n}") for n in range(1, 6)])
    assert [e.seq for e in ledger.read(after_seq=1, upto_seq=4)] == [2, 3, 4]


def test_read_by_time_range_is_inclusive_then_exclusive(ledger):
    (event,) = ledger.append([an_event()])
    moment = datetime.strptime(event.recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert list(ledger.read(since=moment)) == [event]
    assert list(ledger.read(until=moment)) == []
    assert list(ledger.read(actor="alice", since=moment, until=moment + timedelta(microseconds=1))) == [event]


def test_read_refuses_naive_times(ledger):
    with pytest.raises(ValueError):
        list(ledger.read(since=datetime(2026, 1, 1)))


SOON = datetime(2026, 1, 1, tzinfo=timezone.utc)
LATER = datetime(2027, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "filters, index",
    [
        ({"instance": "a"}, "events_by_instance"),
        ({"instance": "a", "after_seq": 10}, "events_by_instance"),
        ({"command_id": "c"}, "events_by_command"),
        ({"actor": "x", "since": SOON, "until": LATER}, "events_by_actor_time"),
        ({"since": SOON, "until": LATER}, "events_by_time"),
        ({"after_seq": 5, "upto_seq": 9}, "INTEGER PRIMARY KEY"),
    ],
)
def test_each_read_is_served_by_an_index(ledger, filters, index):
    assert index in query_plan(ledger.db, "events", lambda: list(ledger.read(**filters)))


def test_request_key_lookup_is_served_by_an_index(ledger):
    plan = " ".join(row[3] for row in ledger.db.execute("EXPLAIN QUERY PLAN SELECT * FROM events WHERE request_key = 'k'"))
    assert "events_by_request_key" in plan


@pytest.mark.parametrize("statement", [
    "UPDATE events SET actor = 'mallory' WHERE seq = 1",
    "UPDATE events SET payload = '{}'",
    "DELETE FROM events WHERE seq = 1",
    "DELETE FROM events",
])
def test_update_and_delete_on_events_fail(ledger, statement):
    ledger.append([an_event()])
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.db.execute(statement)
    assert verify_ledger(ledger).ok


def test_the_ledger_file_is_created_readable_by_owner_and_group_only(ledger_path):
    Ledger.open(ledger_path).close()
    assert stat.S_IMODE(os.stat(ledger_path).st_mode) & 0o037 == 0


def test_the_ledger_uses_wal_and_full_sync(ledger):
    assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_a_missing_file_reads_as_an_empty_ledger_and_is_not_created(ledger_path):
    with Ledger.open(ledger_path, create=False) as ledger:
        assert list(ledger.read()) == []
        assert verify_ledger(ledger).ok
    assert not ledger_path.exists()


def test_the_schema_version_is_recorded_in_the_file(ledger):
    assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_from_a_newer_l4d2ctl_is_refused(ledger_path):
    Ledger.open(ledger_path).close()
    with sqlite3.connect(ledger_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade l4d2ctl"):
        Ledger.open(ledger_path)


def test_a_foreign_sqlite_file_is_refused(ledger_path):
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(LedgerError, match="not an l4d2ctl ledger"):
        Ledger.open(ledger_path)


def test_a_file_that_is_not_sqlite_is_refused(ledger_path):
    ledger_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="not a database"):
        Ledger.open(ledger_path)


def test_a_writer_blocked_past_the_timeout_gets_ledger_locked(ledger_path):
    Ledger.open(ledger_path).close()
    holder = sqlite3.connect(ledger_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Ledger.open(ledger_path, busy_timeout=0.2) as ledger:
            with pytest.raises(LedgerLocked, match="locked by another process"):
                ledger.append([an_event()])
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_snapshot_reads_one_moment_while_another_connection_appends(ledger_path):
    with Ledger.open(ledger_path) as reader, Ledger.open(ledger_path) as writer:
        writer.append([an_event()])
        with reader.snapshot():
            writer.append([an_event()])  # not held up: WAL readers do not block writers
            assert reader.head()[0] == 1 and [event.seq for event in reader.read()] == [1]
        assert reader.head()[0] == 2 and [event.seq for event in reader.read()] == [1, 2]


def test_a_failed_append_writes_nothing(ledger):
    ledger.append([an_event()])
    bad = dataclasses.replace(an_event(), instance=None)
    with pytest.raises(LedgerError):
        ledger.append([an_event(), bad])
    assert [event.seq for event in ledger.read()] == [1]
    assert verify_ledger(ledger).ok


def test_a_new_ledger_file_is_born_with_its_schema_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger.open(path):
        pass
    assert path.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("ledger.db")) == []


def test_an_empty_ledger_file_is_refused_as_truncated_and_left_as_it_is(tmp_path):
    path = tmp_path / "ledger.db"
    path.touch()
    with pytest.raises(LedgerError, match="empty file"):
        Ledger.open(path)
    assert path.stat().st_size == 0


def test_the_last_succeeded_request_of_some_commands_is_found_newest_first(ledger):
    def request(command_id: str, command: str, outcome: CommandSucceeded | CommandFailed | None) -> None:
        ledger.append([an_event(command_id=command_id, command=command, args={"n": command_id})])
        if outcome is not None:
            ledger.append([NewEvent(instance="alpha", command_id=command_id, actor="alice", os_user="root",
                                    payload=outcome)])

    assert ledger.last_succeeded_request("alpha", ("init", "adopt")) is None
    request("first", "init", CommandSucceeded())
    request("second", "init", CommandFailed(error="no"))
    request("third", "start", CommandSucceeded())
    request("fourth", "init", None)
    found = ledger.last_succeeded_request("alpha", ("init", "adopt"))
    assert (found.command_id, found.payload["args"]) == ("first", {"n": "first"})
