"""Commands are decided against the recorded state: what is allowed runs, the rest is rejected and recorded."""

from __future__ import annotations

import threading
import time

import pytest

from commands.service.requests import append_cancel, append_command
from ledger import Ledger, verify_ledger
from projections import Projections

from .fake_host import ALICE, SPEC, FakeHost


@pytest.fixture
def host(ledger):
    return FakeHost(ledger)


def test_init_is_rejected_when_another_live_instance_uses_the_port(host):
    host.init("alpha")
    command = host.init("bravo")
    assert command.outcome == "rejected"
    assert command.error == "port 27015 is already used by instance 'alpha' (initialized)"
    assert not any(path.startswith("instances/bravo") for path in host.fs.snapshot())


def test_a_deleted_instance_frees_its_port(host):
    host.init("alpha")
    host.run("alpha", "delete")
    assert host.init("bravo").outcome == "succeeded"


def test_reinit_of_a_known_instance_updates_its_blueprint(host):
    host.init("alpha")
    assert host.init("alpha", SPEC | {"port": 27020}).outcome == "succeeded"
    assert host.executor.projections.instance("alpha").blueprint["port"] == 27020
    assert host.fs.read_bytes("instances/alpha/instance.env").startswith(b"L4D2_PORT=27020\n")


@pytest.mark.parametrize("command", ["start", "stop", "reset", "delete"])
def test_commands_on_a_never_initialized_instance_are_rejected(host, command):
    rejected = host.run("ghost", command)
    assert (rejected.outcome, rejected.error) == ("rejected", "instance 'ghost' is not known: init it first")


def test_a_failed_first_init_leaves_the_instance_unknown(host):
    host.faults.fail_at = 1
    assert host.init().outcome == "failed"
    assert host.run("alpha", "start").outcome == "rejected"


@pytest.mark.parametrize("command", ["start", "stop", "reset"])
def test_delete_is_final_until_a_new_init(host, command):
    host.init()
    host.run("alpha", "delete")
    assert host.run("alpha", command).outcome == "rejected"
    assert host.run("alpha", "delete").outcome == "succeeded"
    host.init()
    assert host.run("alpha", command).outcome == "succeeded"


def test_a_failed_start_is_recorded_failed_and_leaves_the_unit_disabled_and_stopped(host):
    host.init()
    host.faults.calls.clear()
    host.faults.fail_at = 4
    assert host.run("alpha", "start").outcome == "failed"
    assert host.executor.projections.instance("alpha").state == "failed"
    assert not host.services.status("alpha").enabled and not host.services.status("alpha").active


def test_stop_of_a_reset_instance_keeps_it_reset_so_start_reinitializes(host):
    host.init()
    host.run("alpha", "reset")
    host.run("alpha", "stop")
    assert host.executor.projections.instance("alpha").state == "reset"
    assert host.step_names(host.run("alpha", "start"))[0] == "create directories"


def test_a_host_already_in_the_target_state_succeeds(host):
    host.init()
    assert host.run("alpha", "stop").outcome == "succeeded"
    assert host.run("alpha", "stop").outcome == "succeeded"
    assert host.run("alpha", "reset").outcome == "succeeded"
    assert host.run("alpha", "reset").outcome == "succeeded"


def test_retry_of_a_succeeded_command_is_rejected(host):
    first = host.init()
    retried = host.run("alpha", "init", retry_of=first.command_id)
    assert retried.outcome == "rejected"
    assert "only failed, interrupted, cancelled commands can be retried" in retried.error


def test_replay_of_any_finished_command_runs_it_again(host):
    first = host.init()
    replayed = host.run("alpha", "init", replay_of=first.command_id)
    assert (replayed.outcome, replayed.replay_of) == ("succeeded", first.command_id)


def test_rejections_are_recorded_in_the_ledger(host):
    host.run("ghost", "start")
    types = [event.type for event in host.ledger.read(instance="ghost")]
    assert types == ["CommandRequested", "CommandRejected"]
    assert verify_ledger(host.ledger).ok


def test_a_cancel_before_the_command_starts_cancels_it_without_touching_the_host(host):
    command_id, _ = append_command(host.ledger, ALICE, "alpha", "init", {"spec": SPEC})
    host.executor.projections.sync()
    append_cancel(host.ledger, ALICE, host.executor.projections.command(command_id))
    host.executor.run_pending()
    command = host.executor.projections.command(command_id)
    assert (command.outcome, host.steps(command)) == ("cancelled", [])
    assert host.faults.calls == []


def test_a_cancel_ends_a_hanging_step_and_records_where(host, ledger_path):
    host.init()
    host.faults.calls.clear()
    host.faults.hang_at = 8
    command_id, _ = append_command(host.ledger, ALICE, "alpha", "start")
    worker = threading.Thread(target=host.executor.run_pending, daemon=True)
    worker.start()
    deadline = time.monotonic() + 10
    while len(host.faults.calls) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    with Ledger.open(ledger_path) as canceller:
        projections = Projections(canceller)
        projections.sync()
        append_cancel(canceller, ALICE, projections.command(command_id))
    worker.join(timeout=10)
    command = host.executor.projections.command(command_id)
    assert command.outcome == "cancelled"
    assert command.error == "cancelled by alice at step 'copy cfgs into the upper layer'"
    assert host.step_names(command) == ["release overlay", "remove stale cfgs", "stage server.cfg", "stage alias cfgs",
                                        "undo: disable and stop unit", "undo: unmount overlay"]
    assert not host.services.status("alpha").active, "a cancelled start is undone"


def test_recovery_marks_started_but_unfinished_commands_interrupted(host):
    from ledger import CommandStarted, NewEvent

    command_id, _ = append_command(host.ledger, ALICE, "alpha", "init", {"spec": SPEC})
    host.ledger.append([NewEvent(instance="alpha", command_id=command_id, actor="alice", os_user="root",
                                 payload=CommandStarted(pid=1, host="gone"))])
    assert host.executor.recover() == [command_id]
    assert host.executor.projections.command(command_id).outcome == "interrupted"
    assert host.executor.run_pending() == 0
