"""install and update: the shared installation filled and updated through SteamCMD (the stand-in here), never
under a mounted overlay; an update's stops and starts are commands of their instances, linked to it."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field

import pytest

from commands.service.requests import append_command
from host_adapters import Host, StepIO
from ledger import CommandInterrupted, CommandStarted, NewEvent
from ledger.lifecycle import INSTALLATION, Outcome, State
from projections import CommandView

from .fake_host import ALICE, SPEC, FakeHost
from .fakes import Faults
from .real_host import invoke

PORTS = {"alpha": 27015, "beta": 27016, "gamma": 27017}


@dataclass
class WatchedInstaller:
    """The installer as given, recording which overlays were mounted each time it changed the installation."""

    installer: object
    host: Host
    mounted_while_installing: list[list[str]] = field(default_factory=list)

    def check(self, io: StepIO, requested_by: str) -> None:
        self.installer.check(io, requested_by)

    def install(self, io: StepIO, requested_by: str) -> None:
        self.mounted_while_installing.append(
            [name for name in self.host.fs.list_names("runtime")
             if self.host.mounter.is_mounted(self.host.fs.root / "runtime" / name / "merged")])
        self.installer.install(io, requested_by)


@pytest.fixture
def fleet(ledger, tmp_path):
    """alpha and beta running, gamma stopped, on real files under a root; SteamCMD is the stand-in, watched."""
    host = FakeHost(ledger, root=tmp_path)
    host.host.installer = WatchedInstaller(host.host.installer, host.host)
    for name, port in PORTS.items():
        host.init(name, {**SPEC, "port": port})
    host.run("alpha", "start")
    host.run("beta", "start")
    return host


def _output(host: FakeHost, command: CommandView) -> list[str]:
    return [line for step in host.steps(command) for line in step["output"]]


def _parts(host: FakeHost, command: CommandView) -> list[tuple[str, str, str]]:
    return [(part.command, part.instance, part.outcome) for part in host.executor.projections.parts_of(
        command.command_id)]


def _states(host: FakeHost) -> dict[str, str]:
    return {view.name: view.state for view in host.executor.projections.instances()}


def test_install_fills_the_installation_with_both_steamcmd_passes_windows_first(ledger, tmp_path):
    host = FakeHost(ledger, root=tmp_path)
    done = host.run(INSTALLATION, "install")
    assert done.outcome == Outcome.SUCCEEDED
    assert (tmp_path / "installation/left4dead2/pak01_dir.vpk").is_file()
    assert (tmp_path / "installation/steamapps/appmanifest_222860.acf").is_file()
    passes = [line for line in _output(host, done) if line.startswith("$ ")]
    assert [line.split()[3] for line in passes] == ["windows", "linux"]
    assert all("+login anonymous +app_update 222860 validate +quit" in line for line in passes)
    assert "Success! App '222860' fully installed." in _output(host, done)


def test_install_is_rejected_while_an_instance_runs_on_the_installation(fleet):
    done = fleet.run(INSTALLATION, "install")
    assert done.outcome == Outcome.REJECTED
    assert "instances run on the installation (alpha, beta)" in done.error
    assert fleet.host.installer.mounted_while_installing == []


def test_install_and_update_leave_no_instance_behind_in_status(fleet):
    fleet.run(INSTALLATION, "update")
    assert sorted(_states(fleet)) == ["alpha", "beta", "gamma"]


def test_update_stops_the_running_instances_first_and_starts_exactly_those_again(fleet):
    done = fleet.run(INSTALLATION, "update")
    assert done.outcome == Outcome.SUCCEEDED
    assert fleet.step_names(done) == ["check steamcmd", "stop alpha", "stop beta", "check no overlay is mounted",
                                      "run steamcmd", "start alpha", "start beta"]
    assert _parts(fleet, done) == [("stop", "alpha", "succeeded"), ("stop", "beta", "succeeded"),
                                   ("start", "alpha", "succeeded"), ("start", "beta", "succeeded")]
    assert _states(fleet) == {"alpha": State.RUNNING, "beta": State.RUNNING, "gamma": State.INITIALIZED}


def test_update_never_changes_the_installation_under_a_mounted_overlay(fleet):
    fleet.run(INSTALLATION, "update")
    assert fleet.host.installer.mounted_while_installing == [[]]


def test_each_stop_and_start_of_an_update_is_in_its_instances_history_linked_to_it(fleet):
    update = fleet.run(INSTALLATION, "update")
    history = fleet.executor.projections.history("alpha")
    assert [(view.command, view.part_of) for view in history[-2:]] == [("stop", update.command_id),
                                                                        ("start", update.command_id)]
    assert all(view.actor == update.actor for view in history[-2:])


def test_a_failing_steamcmd_fails_the_update_with_its_output_and_starts_the_stopped_instances_again(
        fleet, monkeypatch):
    monkeypatch.setenv("STEAMCMD_STANDIN_FAIL", "linux")
    done = fleet.run(INSTALLATION, "update")
    assert done.outcome == Outcome.FAILED
    assert "steamcmd's linux pass exited with status 8" in done.error
    assert "Disk write failure" in done.error
    assert fleet.executor.projections.failure(done.command_id)["stderr_tail"][-1].startswith("ERROR!")
    assert fleet.step_names(done)[-2:] == ["undo: start alpha", "undo: start beta"]
    assert _states(fleet) == {"alpha": State.RUNNING, "beta": State.RUNNING, "gamma": State.INITIALIZED}


def test_an_update_whose_stop_fails_changes_nothing_and_starts_again_what_it_stopped(ledger, tmp_path):
    faults = Faults()
    host = FakeHost(ledger, faults, root=tmp_path)
    host.host.installer = WatchedInstaller(host.host.installer, host.host)
    for name in ("alpha", "beta"):
        host.init(name, {**SPEC, "port": PORTS[name]})
        host.run(name, "start")
    faults.fail_on = "disable_now beta"
    done = host.run(INSTALLATION, "update")
    assert done.outcome == Outcome.FAILED
    assert "stop beta failed (command" in done.error
    assert host.host.installer.mounted_while_installing == []
    assert _parts(host, done) == [("stop", "alpha", "succeeded"), ("stop", "beta", "failed"),
                                  ("start", "alpha", "succeeded")]
    assert host.step_names(done)[-2:] == ["undo: start alpha", "undo: start beta"]
    assert _states(host)["alpha"] == State.RUNNING


def test_a_retried_update_also_starts_what_its_interrupted_original_had_stopped(fleet):
    ledger = fleet.ledger
    update_id, _ = append_command(ledger, ALICE, INSTALLATION, "update")
    for payload in (CommandStarted(pid=1, host="gone"), CommandInterrupted(last_step="stop alpha")):
        ledger.append([NewEvent(instance=INSTALLATION, command_id=update_id, actor="alice", os_user="root",
                                payload=payload)])
    stop_id, _ = append_command(ledger, ALICE, "alpha", "stop", {"part_of": update_id})
    fleet.executor.run_pending()
    assert _states(fleet)["alpha"] == State.STOPPED
    retry = fleet.run(INSTALLATION, "update", retry_of=update_id)
    assert retry.outcome == Outcome.SUCCEEDED
    assert "start alpha" in fleet.step_names(retry)
    assert _states(fleet) == {"alpha": State.RUNNING, "beta": State.RUNNING, "gamma": State.INITIALIZED}


def test_nothing_else_starts_while_an_update_runs(fleet, monkeypatch):
    monkeypatch.setenv("STEAMCMD_STANDIN_SECONDS", "0.5")
    update_id, _ = append_command(fleet.ledger, ALICE, INSTALLATION, "update")
    start_id, _ = append_command(fleet.ledger, ALICE, "gamma", "start")
    fleet.executor.run_pending()
    update, start = (fleet.executor.projections.command(command_id) for command_id in (update_id, start_id))
    assert (update.outcome, start.outcome) == (Outcome.SUCCEEDED, Outcome.SUCCEEDED)
    assert start.started_at > update.finished_at


def test_a_cancelled_update_starts_again_the_instances_it_stopped(fleet, monkeypatch):
    monkeypatch.setenv("STEAMCMD_STANDIN_SECONDS", "30")
    update_id, _ = append_command(fleet.ledger, ALICE, INSTALLATION, "update")
    runner = threading.Thread(target=fleet.executor.run_pending)
    runner.start()
    projections = fleet.executor.projections
    while not any(step["step"] == "check no overlay is mounted" for step in projections.steps(update_id)):
        threading.Event().wait(0.05)
    from commands.service.requests import append_cancel

    append_cancel(fleet.ledger, ALICE, projections.recorded_command(update_id))
    runner.join(timeout=30)
    update = projections.command(update_id)
    assert update.outcome == Outcome.CANCELLED
    assert _states(fleet) == {"alpha": State.RUNNING, "beta": State.RUNNING, "gamma": State.INITIALIZED}


def test_update_on_the_command_line_streams_steamcmd_and_is_found_in_audit(root, monkeypatch):
    from .fakes import STANDIN_STEAMCMD

    env = {"L4D2CTL_STEAMCMD": str(STANDIN_STEAMCMD)}
    result = invoke(root, "update", env=env)
    assert result.exit_code == 0, result.output
    assert "Update state (0x61) downloading, progress: 100.00" in result.output
    audit = invoke(root, "audit", "--command", "update", "--json", env=env)
    assert '"instance": "(installation)"' in audit.output


@pytest.mark.parametrize("verb", ["install", "update"])
def test_a_steamcmd_not_given_by_absolute_path_is_refused_before_anything_is_recorded(root, verb):
    result = invoke(root, verb, env={"L4D2CTL_STEAMCMD": "relative/steamcmd"})
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "--steamcmd 'relative/steamcmd': give it by absolute path; nothing was recorded" in result.stderr
    assert not (root / "ledger.db").exists()


@pytest.mark.parametrize("verb", ["retry", "replay"])
def test_a_retried_install_with_a_steamcmd_not_given_by_absolute_path_is_refused_before_recording(root, verb):
    from .fakes import STANDIN_STEAMCMD

    failed = invoke(root, "install", "--json", env={"L4D2CTL_STEAMCMD": "/nonexistent/steamcmd"})
    command_id = json.loads(failed.stdout)["command_id"]
    result = invoke(root, verb, command_id, env={"L4D2CTL_STEAMCMD": "relative/steamcmd"})
    assert result.exit_code == 2 and "give it by absolute path; nothing was recorded" in result.stderr
    assert invoke(root, verb, command_id, env={"L4D2CTL_STEAMCMD": str(STANDIN_STEAMCMD)}).exit_code == 0


def test_a_steamcmd_that_is_not_there_is_said_before_anything_is_stopped(fleet):
    fleet.host.installer.installer.program = "/nonexistent/steamcmd"
    done = fleet.run(INSTALLATION, "update")
    assert done.outcome == Outcome.FAILED
    assert "check steamcmd: steamcmd /nonexistent/steamcmd: no executable file there" in done.error
    assert _parts(fleet, done) == []
    assert _states(fleet)["alpha"] == State.RUNNING


def test_a_failed_update_says_in_its_error_which_instance_did_not_start_again(ledger, tmp_path, monkeypatch):
    faults = Faults()
    host = FakeHost(ledger, faults, root=tmp_path)
    for name in ("alpha", "beta"):
        host.init(name, {**SPEC, "port": PORTS[name]})
        host.run(name, "start")
    monkeypatch.setenv("STEAMCMD_STANDIN_FAIL", "windows")
    faults.fail_on = "enable_now beta"
    done = host.run(INSTALLATION, "update")
    assert done.outcome == Outcome.FAILED
    assert done.error.startswith("run steamcmd: steamcmd's windows pass exited with status 8")
    assert "; and putting back: undo: start beta: failed (command " in done.error
    assert _states(host) == {"alpha": State.RUNNING, "beta": State.FAILED}


def test_on_a_real_host_steamcmd_never_runs_as_root(tmp_path):
    from host_adapters import HostError
    from host_adapters.steamcmd import SteamCmd

    from .fakes import STANDIN_STEAMCMD

    installer = SteamCmd(str(STANDIN_STEAMCMD), tmp_path, never_as_root=True)
    if os.geteuid() != 0:
        assert installer.as_user("root") == [], "not root: it runs as this process's user"
        return
    with pytest.raises(HostError, match="SteamCMD never runs as root"):
        installer.check(StepIO(), "root")
    with pytest.raises(HostError, match="'nobody' is not an operator"):
        installer.as_user("nobody")
