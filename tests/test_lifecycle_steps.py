"""Each lifecycle command runs its host steps in order, and records each one."""

from __future__ import annotations

import pytest

from .fake_host import SPEC, FakeHost

INIT_STEPS = ["create directories", "write instance.env", "write server.cfg", "write spec.yaml"]
START_STEPS = ["release overlay", "remove stale cfgs", "stage server.cfg", "stage alias cfgs", "enable and start unit", "wait until serving"]
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
    assert host.fs.read_bytes("instances/alpha/server.cfg") == b'hostname "Friday Versus"\nsv_gametypes versus'


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
