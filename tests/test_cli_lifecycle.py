"""The lifecycle CLI: exit codes, one-line errors, idempotent requests, and concurrent callers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from commands.cli import cli
from host_adapters.systemd import systemd_is_running
from ledger import CommandStarted, Ledger, NewEvent, verify_ledger

from .fake_host import SPEC
from .real_host import write_spec

L4D2CTL = shutil.which("l4d2ctl", path=str(Path(sys.executable).parent))


@pytest.fixture
def spec_file(tmp_path):
    return write_spec(tmp_path / "friday.yaml")


def _json(result) -> dict:
    return json.loads(result.stdout)


def test_init_then_start_succeed_with_exit_zero_and_report_each_step(l4d2ctl, spec_file):
    assert l4d2ctl("init", "alpha", "--spec", str(spec_file)).exit_code == 0
    started = l4d2ctl("start", "alpha")
    assert started.exit_code == 0
    assert "✓ enable and start unit" in started.stdout
    assert all("[simulated]" in line for line in started.stdout.splitlines())


def test_a_lifecycle_command_with_json_prints_its_history_object(l4d2ctl, spec_file):
    result = l4d2ctl("init", "alpha", "--spec", str(spec_file), "--json")
    command = _json(result)
    assert set(command) == {"command_id", "instance", "command", "actor", "os_user", "requested_at", "started_at",
                            "finished_at", "outcome", "error", "retry_of", "replay_of", "part_of"}
    assert (command["command"], command["instance"], command["outcome"]) == ("init", "alpha", "succeeded")


def test_a_rejected_command_exits_three(l4d2ctl):
    result = l4d2ctl("start", "ghost", "--json")
    assert (result.exit_code, _json(result)["outcome"]) == (3, "rejected")


def test_with_json_the_reason_a_command_did_not_succeed_is_still_one_line_on_stderr(l4d2ctl):
    result = l4d2ctl("start", "ghost", "--json")
    assert result.stderr == "[simulated] l4d2ctl: start ghost rejected: instance 'ghost' is not known: init it first\n"


def test_a_failed_command_exits_one(l4d2ctl, spec_file, root):
    l4d2ctl("init", "alpha", "--spec", str(spec_file))
    (root / "instances/alpha/server.cfg").unlink()
    result = l4d2ctl("start", "alpha", "--json")
    assert result.exit_code == 1
    assert _json(result)["error"] == "stage server.cfg: instances/alpha/server.cfg: no such file"


@pytest.mark.parametrize("name", ["../x", "Alpha", "-rf", "x" * 64])
def test_a_bad_name_exits_two_in_one_line_and_writes_nothing(l4d2ctl, root, name):
    result = l4d2ctl("start", "--", name)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("l4d2ctl: instance name")
    assert not (root / "ledger.db").exists()


def test_a_bad_spec_exits_two_naming_file_and_field_and_writes_nothing(l4d2ctl, root, tmp_path):
    bad = write_spec(tmp_path / "bad.yaml", SPEC | {"port": 70000})
    result = l4d2ctl("init", "alpha", "--spec", str(bad))
    assert result.exit_code == 2
    assert result.stderr == f"l4d2ctl: {bad}: spec.port: must be between 1 and 65535 (got 70000)\n"
    assert not (root / "ledger.db").exists()


def test_no_wait_prints_the_queued_command_and_the_executor_runs_it(l4d2ctl, spec_file):
    queued = l4d2ctl("init", "alpha", "--spec", str(spec_file), "--no-wait", "--json")
    assert (queued.exit_code, _json(queued)["outcome"]) == (0, "pending")
    assert l4d2ctl("executor", "--once").exit_code == 0
    assert _json(l4d2ctl("retry", _json(queued)["command_id"], "--json"))["outcome"] == "rejected"


def test_the_same_request_id_never_makes_a_second_command(l4d2ctl, spec_file, root):
    first = _json(l4d2ctl("init", "alpha", "--spec", str(spec_file), "--request-id", "deploy-42", "--json"))
    again = _json(l4d2ctl("init", "alpha", "--spec", str(spec_file), "--request-id", "deploy-42", "--json"))
    assert again == first
    with Ledger.open(root / "ledger.db") as ledger:
        assert sum(e.type == "CommandRequested" for e in ledger.read()) == 1


def test_retry_and_replay_link_the_new_command_and_record_who_asked(l4d2ctl, spec_file, root):
    l4d2ctl("init", "alpha", "--spec", str(spec_file))
    (root / "instances/alpha/server.cfg").unlink()
    failed = _json(l4d2ctl("start", "alpha", "--json"))
    l4d2ctl("init", "alpha", "--spec", str(spec_file))
    retried = _json(l4d2ctl("retry", failed["command_id"], "--json", env={"L4D2CTL_ACTOR": "bob"}))
    assert (retried["outcome"], retried["retry_of"], retried["actor"]) == ("succeeded", failed["command_id"], "bob")
    replayed = _json(l4d2ctl("replay", retried["command_id"], "--json"))
    assert (replayed["outcome"], replayed["replay_of"]) == ("succeeded", retried["command_id"])


@pytest.mark.parametrize("verb", ["retry", "replay", "cancel"])
def test_an_unknown_command_id_exits_three_and_a_malformed_one_exits_two(l4d2ctl, verb):
    assert l4d2ctl(verb, "0123456789ab").exit_code == 3
    assert l4d2ctl(verb, "not-an-id").exit_code == 2


def test_cancel_of_a_finished_command_exits_three(l4d2ctl, spec_file):
    done = _json(l4d2ctl("init", "alpha", "--spec", str(spec_file), "--json"))
    result = l4d2ctl("cancel", done["command_id"])
    assert result.exit_code == 3
    assert "already ended (succeeded)" in result.stderr


def test_cancel_of_a_queued_command_exits_zero_once_it_ended_cancelled(l4d2ctl, spec_file):
    queued = _json(l4d2ctl("init", "alpha", "--spec", str(spec_file), "--no-wait", "--json"))
    result = l4d2ctl("cancel", queued["command_id"], "--json")
    assert (result.exit_code, _json(result)["outcome"]) == (0, "cancelled")


def test_cancel_of_a_command_already_cancelled_exits_zero_and_records_nothing_more(l4d2ctl, root, spec_file):
    queued = _json(l4d2ctl("init", "alpha", "--spec", str(spec_file), "--no-wait", "--json"))
    assert l4d2ctl("cancel", queued["command_id"]).exit_code == 0
    with Ledger.open(root / "ledger.db") as ledger:
        before = ledger.head()
    again = l4d2ctl("cancel", queued["command_id"], "--json")
    assert (again.exit_code, _json(again)["outcome"]) == (0, "cancelled")
    queued_again = l4d2ctl("cancel", queued["command_id"], "--no-wait")
    assert (queued_again.exit_code, queued_again.stdout) == (0, f"{queued['command_id']}\n"), "--no-wait prints the id"
    with Ledger.open(root / "ledger.db") as ledger:
        assert ledger.head() == before


def test_cancel_of_a_queued_command_shows_who_asked(l4d2ctl, spec_file):
    queued = _json(l4d2ctl("init", "alpha", "--spec", str(spec_file), "--no-wait", "--json"))
    result = l4d2ctl("cancel", queued["command_id"], env={"L4D2CTL_ACTOR": "bob"})
    assert result.exit_code == 0
    assert "cancel requested by bob" in result.stdout


def test_cancel_of_a_command_a_dead_executor_left_started_records_no_cancel_after_its_outcome(l4d2ctl, root,
                                                                                             spec_file):
    l4d2ctl("init", "alpha", "--spec", str(spec_file))
    queued = _json(l4d2ctl("start", "alpha", "--no-wait", "--json"))
    with Ledger.open(root / "ledger.db") as ledger:  # started by an executor that died (no such pid here)
        ledger.append([NewEvent(instance="alpha", command_id=queued["command_id"], actor="alice", os_user="root",
                                payload=CommandStarted(pid=2**22 + 7, host=socket.gethostname(), simulated=True))])
    result = l4d2ctl("cancel", queued["command_id"])
    assert result.exit_code == 3
    assert "already ended (interrupted)" in result.stderr
    with Ledger.open(root / "ledger.db") as ledger:
        assert [event.type for event in ledger.read(command_id=queued["command_id"])][-1] == "CommandInterrupted"


@pytest.mark.skipif(systemd_is_running(), reason="systemd is running here, so --host systemd is allowed")
def test_a_cancel_with_settings_that_cannot_work_here_is_refused_before_it_is_recorded(l4d2ctl, root, spec_file):
    from commands.service.executor_lock import ExecutorLock

    l4d2ctl("init", "alpha", "--spec", str(spec_file))
    queued = _json(l4d2ctl("start", "alpha", "--no-wait", "--json"))
    holder = ExecutorLock(root / "ledger.db")  # an executor service, which stops soon after
    assert holder.try_acquire()
    releaser = threading.Timer(0.5, holder.release)
    releaser.start()
    try:
        result = l4d2ctl("--host", "systemd", "cancel", queued["command_id"])
    finally:
        releaser.join()
    assert result.exit_code == 2 and "systemd is not running" in result.stderr
    with Ledger.open(root / "ledger.db") as ledger:
        assert "CancelRequested" not in [event.type for event in ledger.read(command_id=queued["command_id"])]


def test_a_cancel_that_must_run_the_queue_with_a_broken_helper_says_it_was_recorded(l4d2ctl, root, spec_file,
                                                                                      monkeypatch):
    from commands.service.executor_lock import ExecutorLock

    l4d2ctl("init", "alpha", "--spec", str(spec_file))
    queued = _json(l4d2ctl("start", "alpha", "--no-wait", "--json"))
    monkeypatch.setattr("host_adapters.systemd.systemd_is_running", lambda: True)
    monkeypatch.setattr("host_adapters.factory.systemd_is_running", lambda: True)
    holder = ExecutorLock(root / "ledger.db")  # an executor service, which stops while the cancel follows it
    assert holder.try_acquire()
    releaser = threading.Timer(0.5, holder.release)
    releaser.start()
    try:
        result = l4d2ctl("--host", "systemd", "--helper", "/bin/false", "cancel", queued["command_id"])
    finally:
        releaser.join()
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"recorded as command {queued['command_id']}, which the next executor takes up" in result.stderr
    with Ledger.open(root / "ledger.db") as ledger:
        assert [event.type for event in ledger.read(command_id=queued["command_id"])][-1] == "CancelRequested"


def test_a_second_executor_is_refused_while_one_holds_the_lock(l4d2ctl, root):
    from commands.service.executor_lock import ExecutorLock

    Ledger.open(root / "ledger.db").close()
    holder = ExecutorLock(root / "ledger.db")
    assert holder.try_acquire()
    try:
        result = l4d2ctl("executor", "--once")
        assert result.exit_code == 4
        assert f"another executor (pid {os.getpid()}) holds" in result.stderr
    finally:
        holder.release()


def test_a_request_id_repeated_while_another_executor_runs_shows_the_ended_command_without_its_steps(l4d2ctl, root,
                                                                                                   spec_file):
    from commands.service.executor_lock import ExecutorLock

    first = l4d2ctl("init", "alpha", "--spec", str(spec_file), "--request-id", "deploy-42")
    assert "✓ write spec.yaml" in first.stdout
    holder = ExecutorLock(root / "ledger.db")
    assert holder.try_acquire()
    try:
        again = l4d2ctl("init", "alpha", "--spec", str(spec_file), "--request-id", "deploy-42")
    finally:
        holder.release()
    assert again.exit_code == 0
    assert "already requested with this request id" in again.stdout and "init alpha succeeded" in again.stdout
    assert "✓ write spec.yaml" not in again.stdout, "its steps are not shown again"


def test_a_starting_executor_waits_for_a_lock_held_only_for_a_moment(l4d2ctl, root):
    from commands.service.executor_lock import ExecutorLock

    Ledger.open(root / "ledger.db").close()
    holder = ExecutorLock(root / "ledger.db")
    assert holder.try_acquire()
    releaser = threading.Timer(0.5, holder.release)
    releaser.start()
    try:
        result = l4d2ctl("executor", "--once")
    finally:
        releaser.join()
    assert result.exit_code == 0, result.stderr


def test_an_option_like_name_is_a_usage_error_in_one_line(l4d2ctl, root):
    result = l4d2ctl("start", "-rf")
    assert (result.exit_code, result.stderr.count("\n")) == (2, 1)
    assert not (root / "ledger.db").exists()


@pytest.mark.skipif(systemd_is_running(), reason="systemd is running here, so --host systemd is allowed")
def test_host_systemd_without_systemd_refuses_with_a_hint(root):
    result = CliRunner().invoke(cli, ["--root", str(root), "--host", "systemd", "start", "alpha"])
    assert result.exit_code == 2
    assert "systemd is not running" in result.stderr and "--host simulated" in result.stderr
    assert not (root / "ledger.db").exists()


@pytest.mark.skipif(L4D2CTL is None, reason="the l4d2ctl console script is not installed beside this Python")
def test_two_cli_processes_at_once_complete_in_ledger_order_with_one_executor_at_a_time(root, tmp_path):
    env = {**os.environ, "LEFT4ME_ROOT": str(root), "L4D2CTL_HOST": "simulated"}
    for name in ("alpha", "bravo", "charlie", "delta"):
        write_spec(tmp_path / f"{name}.yaml", SPEC | {"port": 27000 + len(name) * 7 + ord(name[0])})
    for first, second in (("alpha", "bravo"), ("charlie", "delta")):
        callers = [subprocess.Popen([L4D2CTL, "init", name, "--spec", str(tmp_path / f"{name}.yaml")], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for name in (first, second)]
        outputs = [caller.communicate(timeout=60) for caller in callers]
        assert [caller.returncode for caller in callers] == [0, 0], outputs

    with Ledger.open(root / "ledger.db") as ledger:
        events = list(ledger.read())
        assert verify_ledger(ledger).ok
    requested = [e.command_id for e in events if e.type == "CommandRequested"]
    started = [e.command_id for e in events if e.type == "CommandStarted"]
    assert started == requested, "commands run in ledger order"
    running = None
    for event in events:
        if event.type == "CommandStarted":
            assert running is None, "one executor at a time"
            running = event.command_id
        elif event.type == "CommandSucceeded":
            assert running == event.command_id
            running = None


def test_version_prints_the_installed_version(l4d2ctl):
    from importlib.metadata import version

    result = l4d2ctl("--version")
    assert (result.exit_code, result.stdout.strip()) == (0, f"l4d2ctl {version('l4d2ctl')}")


def test_a_rejections_reason_goes_to_stderr_and_the_step_stream_stays_on_stdout(l4d2ctl):
    result = l4d2ctl("start", "ghost")
    assert result.exit_code == 3
    assert "l4d2ctl: start ghost rejected: instance 'ghost' is not known: init it first" in result.stderr
    assert "not known" not in result.stdout and "start ghost" in result.stdout


def test_a_global_option_after_the_subcommand_gets_a_hint_where_it_goes(l4d2ctl):
    result = l4d2ctl("status", "--host", "simulated")
    assert result.exit_code == 2
    assert "--host is a global option: put it before the subcommand" in result.stderr


def _cli_env(root: Path) -> dict[str, str]:
    return {**os.environ, "LEFT4ME_ROOT": str(root), "L4D2CTL_HOST": "simulated"}


@pytest.mark.skipif(L4D2CTL is None, reason="the l4d2ctl console script is not installed beside this Python")
def test_a_cli_following_a_separate_executor_streams_the_steps_it_records(l4d2ctl, spec_file, root):
    assert l4d2ctl("init", "alpha", "--spec", str(spec_file)).exit_code == 0
    executor = subprocess.Popen([L4D2CTL, "executor"], env=_cli_env(root), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not Path(f"{root}/ledger.db.executor.lock").exists() or _lock_free(root):
            assert time.monotonic() < deadline and executor.poll() is None, executor.communicate()[1]
            time.sleep(0.05)
        started = subprocess.run([L4D2CTL, "start", "alpha"], env=_cli_env(root), capture_output=True, text=True,
                                 timeout=60)
    finally:
        executor.terminate()
        executor.wait(timeout=30)
    assert started.returncode == 0, started.stderr
    with Ledger.open(root / "ledger.db") as ledger:
        pids = [event.payload.pid for event in ledger.read() if event.type == "CommandStarted"]
    assert pids[-1] == executor.pid, "the separate executor ran the start"
    steps = [line.split("✓ ", 1)[1] for line in started.stdout.splitlines() if "  ✓ " in line]
    assert steps[:2] == ["release overlay", "remove stale cfgs"] and "wait until serving" in steps


def _lock_free(root: Path) -> bool:
    from commands.service.executor_lock import ExecutorLock

    lock = ExecutorLock(root / "ledger.db")
    if lock.try_acquire():
        lock.release()
        return True
    return False


@pytest.mark.skipif(L4D2CTL is None, reason="the l4d2ctl console script is not installed beside this Python")
def test_a_closed_stdout_never_aborts_the_command(l4d2ctl, spec_file, root):
    assert l4d2ctl("init", "alpha", "--spec", str(spec_file)).exit_code == 0
    reader, writer = os.pipe()
    started = subprocess.Popen([L4D2CTL, "start", "alpha"], env=_cli_env(root), stdout=writer,
                               stderr=subprocess.PIPE, text=True)
    os.close(writer)
    with os.fdopen(reader) as stdout:
        first = stdout.readline()  # like `| head -1`: one line, then the reader is gone
    _, stderr = started.communicate(timeout=60)
    assert first.startswith("[simulated] start alpha")
    assert started.returncode == 0 and "Traceback" not in stderr, stderr
    history = json.loads(l4d2ctl("history", "alpha", "--json").stdout)
    assert [(row["command"], row["outcome"]) for row in history][-1] == ("start", "succeeded")


@pytest.mark.skipif(L4D2CTL is None, reason="the l4d2ctl console script is not installed beside this Python")
def test_a_stdout_closed_from_the_start_never_stops_the_command(l4d2ctl, spec_file, root):
    assert l4d2ctl("init", "alpha", "--spec", str(spec_file)).exit_code == 0
    started = subprocess.run(["/bin/sh", "-c", f"exec {L4D2CTL} start alpha >&-"], env=_cli_env(root),
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0 and "Traceback" not in started.stderr, started.stderr
    history = json.loads(l4d2ctl("history", "alpha", "--json").stdout)
    assert (history[-1]["command"], history[-1]["outcome"]) == ("start", "succeeded")


@pytest.mark.skipif(L4D2CTL is None, reason="the l4d2ctl console script is not installed beside this Python")
def test_stdout_and_stderr_on_one_closed_pipe_keep_the_commands_exit_code(l4d2ctl, root):
    reader, writer = os.pipe()
    os.close(reader)
    rejected = subprocess.run([L4D2CTL, "start", "ghost"], env=_cli_env(root), stdout=writer, stderr=writer,
                              timeout=60)
    os.close(writer)
    assert rejected.returncode == 3
