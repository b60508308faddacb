"""Starting a command is a compare-and-set inside the append: nothing can get a command executed twice."""

from __future__ import annotations

import json
import os

import pytest

from commands.service.executor import Executor
from commands.service.executor_lock import ExecutorLock
from commands.service.requests import append_command
from ledger import CommandFailed, Ledger, LedgerError, NewEvent, verify_ledger
from ledger.lifecycle import TERMINAL_TYPES, EventType, out_of_turn

from .fake_host import ALICE, SPEC, FakeHost
from .real_host import invoke, write_spec

REQUESTED, STARTED, STEP = EventType.COMMAND_REQUESTED, EventType.COMMAND_STARTED, EventType.STEP_COMPLETED


@pytest.mark.parametrize(("recorded", "new"), [
    ([], STARTED),
    ([REQUESTED, STARTED], STARTED),
    ([REQUESTED, STARTED, STEP, EventType.COMMAND_SUCCEEDED], STARTED),
    ([REQUESTED, EventType.COMMAND_REJECTED], STARTED),
    ([REQUESTED], STEP),
    ([REQUESTED], EventType.COMMAND_SUCCEEDED),
    ([REQUESTED, STARTED, EventType.COMMAND_FAILED], EventType.COMMAND_SUCCEEDED),
    ([REQUESTED, STARTED, EventType.COMMAND_SUCCEEDED], STEP),
    ([REQUESTED, STARTED, EventType.COMMAND_INTERRUPTED], EventType.COMMAND_INTERRUPTED),
    ([REQUESTED], REQUESTED),
    ([], EventType.COMMAND_CANCELLED),
])
def test_an_event_out_of_turn_is_refused(recorded, new):
    assert out_of_turn(recorded, new) is not None


@pytest.mark.parametrize(("recorded", "new"), [
    ([], REQUESTED),
    ([REQUESTED], STARTED),
    ([REQUESTED], EventType.COMMAND_REJECTED),
    ([REQUESTED], EventType.COMMAND_CANCELLED),
    ([REQUESTED, STARTED, STEP], EventType.COMMAND_CANCELLED),
    ([REQUESTED, STARTED, STEP, STEP], EventType.COMMAND_SUCCEEDED),
    ([REQUESTED, STARTED], EventType.COMMAND_INTERRUPTED),
    ([REQUESTED, STARTED, EventType.COMMAND_SUCCEEDED], EventType.CANCEL_REQUESTED),
])
def test_an_event_in_turn_is_allowed(recorded, new):
    assert out_of_turn(recorded, new) is None


def test_every_terminal_type_ends_a_command_for_good():
    for ended in TERMINAL_TYPES:
        for new in (STARTED, STEP, *TERMINAL_TYPES):
            assert out_of_turn([REQUESTED, STARTED, ended], new) is not None, (ended, new)


def test_a_second_executor_that_saw_a_command_pending_cannot_start_it_once_another_did(ledger):
    host = FakeHost(ledger)
    command_id, _ = append_command(ledger, ALICE, "alpha", "init", {"spec": SPEC})
    second = Executor(ledger, host.host)
    second.projections.sync()
    stale = second.projections.next_pending()
    host.executor.run_pending()
    host.faults.calls.clear()
    with pytest.raises(LedgerError, match="refusing to record CommandStarted: it was already ended"):
        second._take_up(stale)
    assert host.faults.calls == [], "the host was not touched"
    started = [e for e in ledger.read(command_id=command_id) if e.type == STARTED]
    assert len(started) == 1 and verify_ledger(ledger).ok


def test_a_projection_row_edited_back_to_pending_is_not_executed_again(ledger):
    host = FakeHost(ledger)
    succeeded = host.init("alpha")
    ledger.db.execute("UPDATE commands SET outcome = 'pending' WHERE command_id = ?", [succeeded.command_id])
    host.faults.calls.clear()
    with pytest.raises(LedgerError, match="projections rebuild"):
        host.executor.run_pending()
    assert host.faults.calls == []
    assert [e.type for e in ledger.read(command_id=succeeded.command_id)].count(STARTED) == 1


def test_a_projection_row_with_no_request_behind_it_is_never_executed(ledger):
    host = FakeHost(ledger)
    host.init("alpha")
    ledger.db.execute("INSERT INTO commands (command_id, instance, command, args, actor, os_user, requested_at, "
                      "requested_seq, outcome) VALUES ('forged', 'alpha', 'delete', '{}', 'mallory', 'root', "
                      "'2026-01-01T00:00:00.000000Z', 999, 'pending')")
    host.faults.calls.clear()
    with pytest.raises(LedgerError, match="no request is recorded for it"):
        host.executor.run_pending()
    assert host.faults.calls == [], "the host was not touched"
    assert host.fs.exists("instances/alpha/spec.yaml")


def _verify(root) -> dict:
    result = invoke(root, "verify", "--json")
    return json.loads(result.stdout) | {"exit_code": result.exit_code}


def test_verify_finds_a_blueprint_edited_in_the_projections(root, tmp_path):
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "s.yaml"))).exit_code == 0
    with Ledger.open(root / "ledger.db") as ledger:
        ledger.db.execute("""UPDATE instances SET blueprint = '{"port": 27015, "arguments": ["-insecure"]}'""")
    report = _verify(root)
    assert report["exit_code"] == 4 and report["ok"] is False
    assert report["projections"] == ["instances row alpha: blueprint not as the events say"]


def test_verify_finds_a_projection_row_no_event_made_and_passes_again_after_a_rebuild(root, tmp_path):
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "s.yaml"))).exit_code == 0
    with Ledger.open(root / "ledger.db") as ledger:
        ledger.db.execute("INSERT INTO commands (command_id, instance, command, args, actor, os_user, requested_at, "
                          "requested_seq, outcome) VALUES ('forged', 'alpha', 'delete', '{}', 'mallory', 'root', "
                          "'2026-01-01T00:00:00.000000Z', 999, 'pending')")
    assert _verify(root)["projections"] == ["commands holds forged, which no event made"]
    assert invoke(root, "projections", "rebuild").exit_code == 0
    assert _verify(root) | {"events": None} == {"ok": True, "events": None, "first_bad_seq": None, "reason": None,
                                                "projections": [], "exit_code": 0}


def test_verify_finds_a_command_with_two_outcomes(root, tmp_path):
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "s.yaml"))).exit_code == 0
    with Ledger.open(root / "ledger.db") as ledger:
        (init,) = [e for e in ledger.read() if e.type == "CommandSucceeded"]
        ledger.append([NewEvent(instance="alpha", command_id=init.command_id, actor="alice", os_user="root",
                                payload=CommandFailed(error="forged"))])
    report = _verify(root)
    assert report["exit_code"] == 4 and f"command {init.command_id} has 2 outcomes" in report["projections"]


def test_an_executor_whose_lock_file_was_removed_starts_nothing_more(ledger, ledger_path):
    host = FakeHost(ledger)
    lock = ExecutorLock(ledger_path)
    assert lock.try_acquire()
    host.executor.lock_held = lock.still_ours
    assert host.init("alpha").outcome == "succeeded"
    os.unlink(lock.path)
    assert ExecutorLock(ledger_path).try_acquire(), "a second executor could now take a lock of its own"
    append_command(ledger, ALICE, "alpha", "start")
    host.faults.calls.clear()
    with pytest.raises(LedgerError, match="the executor lock was removed or replaced"):
        host.executor.run_pending()
    assert host.faults.calls == []


@pytest.mark.parametrize(("statement", "found"), [
    ("UPDATE commands SET args = 'not json' WHERE command = 'init'", "commands row {init} cannot be read"),
    ("UPDATE instances SET blueprint = '{'", "instances row alpha cannot be read"),
    ("UPDATE projection_checkpoint SET seq = 99999", "projection_checkpoint says seq 99999, the chain ends at"),
])
def test_verify_finds_projection_rows_edited_into_nonsense_in_one_line(root, tmp_path, statement, found):
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "s.yaml"))).exit_code == 0
    with Ledger.open(root / "ledger.db") as ledger:
        (init,) = [e.command_id for e in ledger.read() if e.type == "CommandRequested"]
        ledger.db.execute(statement)
    result = invoke(root, "verify")
    assert result.exit_code == 4 and result.stderr.count("\n") == 1, result.stderr
    assert found.format(init=init) in result.stderr


def test_a_blueprint_edited_in_the_projections_is_never_written_to_the_host(ledger):
    host = FakeHost(ledger)
    host.init("alpha")
    edited = json.dumps(SPEC | {"arguments": ["-insecure", "+sv_cheats 1"]}, sort_keys=True)
    ledger.db.execute("UPDATE instances SET blueprint = ? WHERE name = 'alpha'", [edited])
    host.faults.calls.clear()
    with pytest.raises(LedgerError, match="blueprint is not the one recorded by its last init or adopt"):
        host.run("alpha", "start")
    assert host.faults.calls == [], "the host was not touched"
    assert b"-insecure" not in host.fs.read_bytes("instances/alpha/instance.env")


def test_a_pending_commands_args_edited_in_the_projections_are_never_used(ledger):
    host = FakeHost(ledger)
    command_id, _ = append_command(ledger, ALICE, "alpha", "init", {"spec": SPEC})
    host.executor.projections.sync()
    edited = json.dumps({"spec": SPEC | {"arguments": ["-insecure"]}}, sort_keys=True)
    ledger.db.execute("UPDATE commands SET args = ? WHERE command_id = ?", [edited, command_id])
    with pytest.raises(LedgerError, match="its projection row is not what its request says"):
        host.executor.run_pending()
    assert host.faults.calls == []
