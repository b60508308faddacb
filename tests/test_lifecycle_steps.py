"""Each lifecycle command runs its host steps in order, and records each one."""

from __future__ import annotations

import pytest

from .fake_host import SPEC, FakeHost

INIT_STEPS = ["create directories", "write instance.env", "write server.cfg", "write spec.yaml"]
START_STEPS = ["release overlay", "remove stale cfgs", "stage server.cfg", "stage alias cfgs",
               "copy cfgs into the upper layer", "enable and start unit", "wait until serving"]
UNDO_STEPS = ["undo: disable and stop unit", "undo: unmount overlay"]
PURGE_STEPS = ["disable and stop unit", "unmount overlay", "remove instance files", "remove runtime files"]


@pytest.fixture
def host(ledger):
    return FakeHost(ledger)


def test_init_creates_directories_then_writes_env_cfg_and_spec(host):
    command = host.init()
    assert command.outcome == "succeeded"
    assert host.step_names(command) == INIT_STEPS


def test_start_stages_cfgs_then_enables_the_unit(host):
    host.init()
    command = host.run("alpha", "start")
    assert host.step_names(command) == START_STEPS
    assert host.host.services.status("alpha").active
    assert host.host.mounter.is_mounted(host.fs.root / "runtime/alpha/merged")


def test_stop_disables_the_unit_then_unmounts(host):
    host.init()
    host.run("alpha", "start")
    command = host.run("alpha", "stop")
    assert host.step_names(command) == ["disable and stop unit", "unmount overlay"]
    assert not host.host.services.status("alpha").active
    assert not host.host.mounter.is_mounted(host.fs.root / "runtime/alpha/merged")


@pytest.mark.parametrize("command", ["delete", "reset"])
def test_delete_and_reset_stop_unmount_and_remove_the_files(host, command):
    host.init()
    host.run("alpha", "start")
    purged = host.run("alpha", command)
    assert host.step_names(purged) == PURGE_STEPS
    assert not any(path.startswith(("instances/alpha", "runtime/alpha")) for path in host.fs.snapshot())


def test_start_after_reset_initializes_again_first(host):
    host.init()
    host.run("alpha", "reset")
    command = host.run("alpha", "start")
    assert host.step_names(command) == INIT_STEPS + START_STEPS
    assert host.fs.read_bytes("instances/alpha/server.cfg") == b'hostname "Friday Versus"\nsv_gametypes versus\n'


def test_start_after_reset_uses_the_blueprint_in_the_ledger_not_the_file_on_disk(host):
    host.init()
    host.run("alpha", "stop")
    host.fs.write_bytes("instances/alpha/spec.yaml", b"port: 1\nconfig: ['rcon_password stolen']\n")
    host.run("alpha", "reset")
    host.run("alpha", "start")
    assert b"stolen" not in host.fs.read_bytes("instances/alpha/server.cfg")
    assert host.fs.read_bytes("instances/alpha/instance.env").startswith(b"L4D2_PORT=27015\n")


def test_every_step_is_recorded_with_its_output(host):
    command = host.init()
    steps = host.steps(command)
    (line,) = steps[1]["output"]
    assert line.startswith("wrote instances/alpha/instance.env (")
    assert all(step["at"] for step in steps)


def test_a_failed_step_ends_the_command_leaves_later_steps_unrun_and_runs_the_undo(host):
    host.init()
    host.faults.calls.clear()
    host.faults.fail_at = 1
    command = host.run("alpha", "start")
    assert command.outcome == "failed"
    assert host.step_names(command) == ["release overlay", *UNDO_STEPS]
    assert command.error.startswith("remove stale cfgs: injected fault")
    assert not host.host.services.status("alpha").active


def test_stored_spec_is_the_one_requested(host):
    host.init()
    assert host.executor.projections.instance("alpha").blueprint == SPEC


def _unit(host: FakeHost):
    return host.services.status("alpha")


def test_start_succeeds_only_once_the_server_answers_and_says_what_it_answered(host):
    host.init()
    command = host.run("alpha", "start")
    (line,) = host.steps(command)[-1]["output"]
    assert line.startswith("the server answers A2S_INFO on udp/27015")


def test_a_server_that_never_answers_fails_the_start_after_ready_timeout_and_is_undone(host):
    host.init(spec=SPEC | {"ready_timeout": 1})
    host.query.silent_ports.add(27015)
    command = host.run("alpha", "start")
    assert command.outcome == "failed"
    assert command.error.startswith("wait until serving: no A2S_INFO answer on udp/27015 within ready_timeout (1s)")
    assert host.step_names(command)[-2:] == UNDO_STEPS
    assert (_unit(host).enabled, _unit(host).active) == (False, False)
    assert not host.host.mounter.is_mounted(host.fs.root / "runtime/alpha/merged")
    assert host.executor.projections.instance("alpha").state == "failed"


def test_a_server_that_dies_at_once_fails_the_start_with_the_journal_and_is_undone(host):
    host.init()
    host.services.broken.add("alpha")
    command = host.run("alpha", "start")
    assert command.error.startswith("wait until serving: the unit is activating (auto-restart)")
    failure = host.executor.projections.failure(command.command_id)
    assert any(line.startswith("journal: Main process exited, code=exited, status=1") for line in failure["stderr_tail"])
    assert (_unit(host).enabled, _unit(host).active_state) == (False, "inactive")


def test_a_failed_instance_starts_again_once_the_cause_is_gone(host):
    host.init()
    host.services.broken.add("alpha")
    host.run("alpha", "start")
    host.services.broken.clear()
    assert host.run("alpha", "start").outcome == "succeeded"
    assert host.executor.projections.instance("alpha").state == "running"


def test_start_of_a_running_instance_touches_nothing_and_succeeds(host):
    host.init()
    host.run("alpha", "start")
    host.faults.calls.clear()
    command = host.run("alpha", "start")
    assert command.outcome == "succeeded"
    assert host.step_names(command) == ["check whether running"]
    assert host.steps(command)[0]["output"] == ["alpha is already running: nothing to do on the host"]
    assert host.faults.calls == [], "no adapter call that changes the host"


def test_start_of_an_instance_recorded_running_whose_unit_is_dead_starts_it(host):
    host.init()
    host.run("alpha", "start")
    host.services.state["units"]["alpha"].update(active="failed", sub="failed")  # no journal entry seen
    command = host.run("alpha", "start")
    assert command.outcome == "succeeded"
    assert host.steps(command)[0]["output"] == ["alpha is recorded running but its unit is failed (failed): starting it"]
    assert _unit(host).active


def test_init_of_a_running_instance_is_rejected(host):
    host.init()
    host.run("alpha", "start")
    command = host.init()
    assert (command.outcome, command.error) == ("rejected", "instance 'alpha' is running: stop it first")
    assert host.executor.projections.instance("alpha").state == "running"


def test_restart_stops_then_starts_with_the_same_readiness_rule(host):
    host.init()
    host.run("alpha", "start")
    command = host.run("alpha", "restart")
    assert command.outcome == "succeeded"
    assert host.step_names(command) == ["disable and stop unit", "unmount overlay", *START_STEPS]
    assert _unit(host).active


def test_restart_after_a_reset_initializes_again(host):
    host.init()
    host.run("alpha", "reset")
    command = host.run("alpha", "restart")
    assert command.outcome == "succeeded"
    assert host.step_names(command)[2:6] == INIT_STEPS
    assert host.executor.projections.instance("alpha").state == "running"


def test_a_start_that_finds_the_overlay_mounted_stops_the_unit_before_staging(host):
    host.init()
    host.state["mounts"] = [str(host.fs.root / "runtime/alpha/merged")]  # mounted, with no journal entry to observe
    command = host.run("alpha", "start")
    assert command.outcome == "succeeded"
    assert "its unit runs outside the record; stopping it before staging" in host.steps(command)[0]["output"][0]


def test_show_prints_the_failed_step_before_the_undo_that_followed_it(host):
    from rich.console import Console

    from commands.cli.tables import print_command

    host.init()
    host.services.broken.add("alpha")
    command = host.run("alpha", "start")
    console = Console(record=True, width=200)
    print_command(console, command, host.steps(command), host.executor.projections.failure(command.command_id))
    text = console.export_text()
    assert text.index("✓ enable and start unit") < text.index("✗ wait until serving") \
        < text.index("✓ undo: disable and stop unit") < text.index("✗ failed")


def test_a_step_that_breaks_unexpectedly_fails_its_command_instead_of_leaving_it_running(host):
    host.init()
    host.fs.write_bytes("instances/alpha/instance.env", b"PORT=27015\n")  # no layers line: staging cannot read it
    command = host.run("alpha", "start")
    assert command.outcome == "failed"
    assert command.error.startswith("copy cfgs into the upper layer: StopIteration")
    assert not host.host.services.status("alpha").active
