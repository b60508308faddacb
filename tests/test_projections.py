"""Projections are pure folds: incremental updates always equal a full rebuild, and state follows the rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.service.requests import Requester, append_command
from ledger import (
    CancelRequested,
    CommandCancelled,
    CommandFailed,
    CommandInterrupted,
    CommandRejected,
    CommandStarted,
    CommandSucceeded,
    Ledger,
    NewEvent,
    StepCompleted,
)
from projections import Projections

from .conftest import query_plan
from .fake_host import SPEC, FakeHost

INSTANCES = ["alpha", "bravo", "charlie"]
COMMANDS = ["init", "start", "stop", "restart", "reset", "delete"]
ENDINGS = [CommandSucceeded(), CommandFailed(step="x", error="boom"), CommandRejected(reason="no"),
           CommandCancelled(step=None), CommandInterrupted(last_step="x")]


def _tables(ledger: Ledger) -> dict[str, list[tuple]]:
    return {table: ledger.db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("commands", "instances", "projection_checkpoint")}


def _event(instance, command_id, payload, actor="alice"):
    return NewEvent(instance=instance, command_id=command_id, actor=actor, os_user="root", payload=payload)


command_stories = st.lists(
    st.tuples(
        st.sampled_from(INSTANCES),
        st.sampled_from(COMMANDS),
        st.integers(0, 3),                       # steps completed
        st.one_of(st.none(), st.sampled_from(ENDINGS)),  # outcome (None: still running)
        st.booleans(),                           # a cancel was requested
        st.integers(27015, 27017),               # the init's port
        st.booleans(),                           # sync the projections after this command
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stories=command_stories)
def test_incremental_projections_always_equal_a_full_rebuild(tmp_path_factory, stories):
    path = tmp_path_factory.mktemp("projections") / "ledger.db"
    with Ledger.open(path) as ledger:
        projections = Projections(ledger)
        for instance, command, steps, ending, cancel, port, sync in stories:
            args = {"spec": SPEC | {"port": port}} if command == "init" else {}
            command_id, _ = append_command(ledger, Requester("alice", "root"), instance, command, args)
            events = [_event(instance, command_id, CommandStarted(pid=1, host="h"))]
            events += [_event(instance, command_id, StepCompleted(step=f"s{n}")) for n in range(steps)]
            events += [_event(instance, command_id, CancelRequested(), actor="bob")] if cancel else []
            events += [_event(instance, command_id, ending)] if ending else []
            ledger.append(events)
            if sync:
                projections.sync()
        projections.sync()
        incremental = _tables(ledger)
        projections.rebuild()
        assert _tables(ledger) == incremental


@st.composite
def operations(draw):
    return draw(st.lists(st.tuples(st.sampled_from(INSTANCES[:2]), st.sampled_from(COMMANDS),
                                   st.one_of(st.none(), st.integers(1, 8))), max_size=20))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations())
def test_recorded_state_follows_the_lifecycle_rules(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("rules") / "ledger.db"
    with Ledger.open(path) as ledger:
        host = FakeHost(ledger)
        for instance, command, fault in ops:
            before = host.executor.projections.instance(instance)
            host.faults.calls.clear()
            host.faults.fail_at = fault
            args = {"spec": SPEC | {"port": 27015 + INSTANCES.index(instance)}} if command == "init" else None
            result = host.run(instance, command, args)
            after = host.executor.projections.instance(instance)
            if result.outcome == "failed" and command in ("start", "restart"):
                assert after.state == "failed", "a start that did not end serving is undone and recorded failed"
                assert not host.services.status(instance).active
            elif result.outcome != "succeeded":
                assert after.state == before.state, "only a successful command (or a failed start) changes the state"
            if result.outcome != "succeeded":
                assert after.blueprint == before.blueprint
            if command == "init" and before.state == "running":
                assert result.outcome == "rejected", "init of a running instance: stop it first"
            if command == "reset" and result.outcome == "succeeded":
                assert (after.state, after.blueprint) == ("reset", before.blueprint)
            if before.state == "deleted" and command not in ("init", "delete"):
                assert result.outcome == "rejected", "delete is final until a new init"
            if not before.known and command != "init":
                assert result.outcome == "rejected"
        host.executor.projections.sync()
        incremental = _tables(ledger)
        host.executor.projections.rebuild()
        assert _tables(ledger) == incremental


@pytest.fixture
def audited(ledger):
    """Commands by three actors over two instances; returns the ledger and the commands in order."""
    requests = [("alpha", "init", "alice"), ("alpha", "start", "bob"), ("bravo", "init", "bob"),
                ("alpha", "stop", "carol"), ("bravo", "start", "alice"), ("alpha", "start", "alice")]
    for instance, command, actor in requests:
        args = {"spec": SPEC | {"port": 27015 if instance == "alpha" else 27016}} if command == "init" else {}
        append_command(ledger, Requester(actor, "root"), instance, command, args)
    projections = Projections(ledger)
    projections.sync()
    return projections, projections.audit()


def _ids(commands):
    return [command.command_id for command in commands]


def test_history_holds_every_command_of_one_instance_oldest_first(audited):
    projections, everything = audited
    assert _ids(projections.history("alpha")) == _ids([c for c in everything if c.instance == "alpha"])
    assert projections.history("nobody") == []


@pytest.mark.parametrize("filters, expected", [
    ({"actor": "alice"}, [0, 4, 5]),
    ({"actor": "bob"}, [1, 2]),
    ({"instance": "bravo"}, [2, 4]),
    ({"command": "start"}, [1, 4, 5]),
    ({"actor": "alice", "instance": "alpha"}, [0, 5]),
    ({"actor": "alice", "command": "start", "instance": "bravo"}, [4]),
    ({"actor": "nobody"}, []),
])
def test_audit_filters_return_exactly_the_matching_commands_oldest_first(audited, filters, expected):
    projections, everything = audited
    assert _ids(projections.audit(**filters)) == [everything[n].command_id for n in expected]


def test_audit_time_filters_are_inclusive_since_and_exclusive_until(audited):
    projections, everything = audited
    third = datetime.strptime(everything[2].requested_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    same_moment = [c.command_id for c in everything if c.requested_at == everything[2].requested_at]
    since = _ids(projections.audit(since=third))
    until = _ids(projections.audit(until=third))
    assert set(same_moment) <= set(since) and not set(same_moment) & set(until)
    assert until + since == _ids(everything)
    assert _ids(projections.audit(since=third + timedelta(days=1))) == []
    assert _ids(projections.audit(until=third - timedelta(days=1))) == []


def test_a_missing_ledger_projects_to_nothing(tmp_path):
    with Ledger.open(tmp_path / "none.db", create=False) as ledger:
        projections = Projections(ledger)
        assert (projections.sync(), projections.instances(), projections.audit()) == ([], [], [])
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("call, table, index", [
    (lambda p: p.next_pending(), "commands", "commands_by_outcome"),
    (lambda p: p.running(), "commands", "commands_by_outcome"),
    (lambda p: p.history("alpha"), "commands", "commands_by_instance"),
    (lambda p: p.audit(actor="alice"), "commands", "commands_by_actor"),
    (lambda p: p.command("0123456789ab"), "commands", "sqlite_autoindex_commands_1"),
    (lambda p: p.port_holder(27015, other_than="alpha"), "instances", "instances_by_port"),
    (lambda p: p.acting_on("alpha", "2026-11-29T00:00:00.000000Z"), "commands", "commands_by_activity"),
])
def test_each_projection_read_is_served_by_an_index(audited, call, table, index):
    projections, _ = audited
    assert index in query_plan(projections.ledger.db, table, lambda: call(projections))
