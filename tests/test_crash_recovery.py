"""An executor killed at any step boundary leaves a command the next executor marks interrupted; retry converges."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from commands.service.executor import Executor
from commands.service.executor_lock import ExecutorLock
from commands.service.requests import append_command
from host_adapters.factory import SIMULATED_SECRETS, SIMULATED_STATE, build_host
from host_adapters.local_fs import LocalFilesystem
from host_adapters.simulated import FileState
from ledger import Ledger, verify_ledger
from ledger.lifecycle import TERMINAL_TYPES
from projections import Projections

from .fake_host import ALICE, SPEC, CallCountingExecutor
from .fakes import Faults, fake_host
from .numbered_cases import parametrize_numbered
from .real_host import host_files, make_root, run, steps

# The commands that set the stage for each command under test.
SETUP = {"init": [], "start": ["init"], "stop": ["init", "start"], "delete": ["init", "start"],
         "reset": ["init", "start"]}
# The adapter call inside start that the long-step test makes hang.
HANG_ON = "enable_now"


@dataclass(frozen=True)
class Uninterrupted:
    """A command run after its setup with nothing in the way: the host files it leaves, the steps it completes."""

    files: dict
    steps: tuple[str, ...]


@functools.cache
def _uninterrupted(command: str) -> Uninterrupted:
    """`command` run uninterrupted on a simulated host of its own (once per session: the host is deterministic)."""
    with tempfile.TemporaryDirectory() as scratch:
        root = make_root(Path(scratch) / "root")
        for earlier in SETUP[command]:
            run(root, "alpha", earlier)
        view = run(root, "alpha", command)
        assert view.outcome == "succeeded", f"{command} uninterrupted: {view.outcome} ({view.error})"
        return Uninterrupted(host_files(root), tuple(step["step"] for step in steps(root, view)))


def pytest_generate_tests(metafunc):
    """One case per kill point of each command: after CommandStarted (1), then after each StepCompleted
    (2 .. steps + 1) of its uninterrupted run, counted when the tests are collected (not when this module is
    imported: the spawned executors import it too)."""
    parametrize_numbered(metafunc, ("command", "die_after"), SETUP,
                         lambda command: len(_uninterrupted(command).steps) + 1, "boundary")


def _execute_then_die(root: str, die_after: int) -> None:
    lock = ExecutorLock(f"{root}/ledger.db")
    assert lock.try_acquire()
    seen = []

    def observer(row):
        if row.type in ("CommandStarted", "StepCompleted"):
            seen.append(row)
            if len(seen) == die_after:
                os.kill(os.getpid(), signal.SIGKILL)

    with Ledger.open(f"{root}/ledger.db") as ledger:
        Executor(ledger, build_host("simulated", root), observer=observer).run_pending()


def _staged_command(tmp_path, command):
    root = make_root(tmp_path / "root")
    for earlier in SETUP[command]:
        run(root, "alpha", earlier)
    with Ledger.open(root / "ledger.db") as ledger:
        command_id, _ = append_command(ledger, ALICE, "alpha", command, {"spec": SPEC} if command == "init" else None)
    return root, command_id


def test_a_killed_executor_leaves_an_interrupted_command_that_retry_converges(tmp_path, command, die_after):
    uninterrupted = _uninterrupted(command)
    root, command_id = _staged_command(tmp_path, command)
    child = multiprocessing.get_context("spawn").Process(target=_execute_then_die, args=(str(root), die_after))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    _assert_recovers(root, command, command_id, completed=uninterrupted.steps[:die_after - 1])


def _simulated_host(root: str, faults: Faults):
    """The simulated host at `root` (its journal in memory), with a fault plan of the test's own."""
    return fake_host(LocalFilesystem(root), FileState(Path(root) / SIMULATED_STATE),
                     secrets_store=FileState(Path(root) / SIMULATED_SECRETS, mode=0o600), faults=faults,
                     simulated=True)


def _hang_inside_enable(root: str) -> None:
    with Ledger.open(f"{root}/ledger.db") as ledger:
        Executor(ledger, _simulated_host(root, Faults(hang_on=HANG_ON))).run_pending()  # hangs in its step


def _steps_before_call(base: Path, command: str, call_prefix: str) -> tuple[str, ...]:
    """The steps `command` completes before its first adapter call starting with `call_prefix`: a dry run on the
    same simulated host, with nothing hanging."""
    root, command_id = _staged_command(base, command)
    faults = Faults()
    with Ledger.open(root / "ledger.db") as ledger:
        executor = CallCountingExecutor(ledger, _simulated_host(str(root), faults), faults=faults)
        executor.run_pending()
        assert executor.projections.command(command_id).outcome == "succeeded"
        completed = tuple(step["step"] for step in executor.projections.steps(command_id))
    first = next((i for i, call in enumerate(faults.calls) if call.startswith(call_prefix)), None)
    assert first is not None, f"{command} makes no {call_prefix} call: {faults.calls}"
    return completed[:sum(end <= first for end in executor.calls_at_step_end)]


def test_an_executor_killed_inside_a_long_step_leaves_it_interrupted_and_retry_converges(tmp_path):
    completed = _steps_before_call(tmp_path / "dry-run", "start", HANG_ON)
    root, command_id = _staged_command(tmp_path, "start")
    child = multiprocessing.get_context("spawn").Process(target=_hang_inside_enable, args=(str(root),))
    child.start()
    deadline = time.monotonic() + 60
    with Ledger.open(root / "ledger.db") as ledger:
        while sum(e.type == "StepCompleted" for e in ledger.read(command_id=command_id)) < len(completed):
            assert time.monotonic() < deadline and child.is_alive()
            time.sleep(0.05)
    time.sleep(0.3)  # well inside the hanging step
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    _assert_recovers(root, "start", command_id, completed=completed)


def _assert_recovers(root, command, command_id, *, completed):
    """The next executor marks the command interrupted with the `completed` steps recorded, and maybe some more of
    the steps after them (those a worker had reported, recorded in one commit with the last `completed` one); a
    retry converges (to the host the uninterrupted command leaves); the chain holds; nothing ran twice."""
    lock = ExecutorLock(root / "ledger.db")
    assert lock.try_acquire(), "the dead executor's lock must die with it"
    with Ledger.open(root / "ledger.db") as ledger:
        executor = Executor(ledger, build_host("simulated", root))
        recovered = executor.recover()
        recorded = tuple(step["step"] for step in executor.projections.steps(command_id))
        assert recorded[:len(completed)] == completed
        assert recorded == _uninterrupted(command).steps[:len(recorded)], "a prefix of the steps, in order"
        if executor.projections.command(command_id).outcome == "succeeded":  # recorded with its last steps
            assert recovered == [] and recorded == _uninterrupted(command).steps
            assert host_files(root) == _uninterrupted(command).files
            lock.release()
            return
        assert recovered == [command_id]
        assert executor.projections.command(command_id).outcome == "interrupted"
    lock.release()

    retried = run(root, "alpha", command, retry_of=command_id)
    assert retried.outcome == "succeeded"
    assert host_files(root) == _uninterrupted(command).files
    with Ledger.open(root / "ledger.db") as ledger:
        assert verify_ledger(ledger).ok
        started = [e.command_id for e in ledger.read() if e.type == "CommandStarted"]
        assert len(started) == len(set(started)), "no command is executed twice"
        projections = Projections(ledger)
        projections.sync()
        assert projections.command(command_id).outcome == "interrupted"


FLEET = ("alpha", "bravo", "charlie", "delta")


def _fleet_root(base: Path) -> Path:
    root = make_root(base / "root")
    for number, name in enumerate(FLEET):
        assert run(root, name, "init", {"spec": SPEC | {"port": 27015 + number}}).outcome == "succeeded"
    return root


@functools.cache
def _fleet_started() -> dict:
    """The host files of the fleet started with nothing in the way."""
    with tempfile.TemporaryDirectory() as scratch:
        root = _fleet_root(Path(scratch))
        for name in FLEET:
            assert run(root, name, "start").outcome == "succeeded"
        return host_files(root)


@pytest.mark.parametrize("die_after", [1, 3, 8, 17, 30])
def test_a_concurrent_executor_killed_mid_way_leaves_each_running_command_interrupted_and_retries_converge(
        tmp_path, die_after):
    root = _fleet_root(tmp_path)
    with Ledger.open(root / "ledger.db") as ledger:
        starts = [append_command(ledger, ALICE, name, "start")[0] for name in FLEET]
    child = multiprocessing.get_context("spawn").Process(target=_execute_then_die, args=(str(root), die_after))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL

    lock = ExecutorLock(root / "ledger.db")
    assert lock.try_acquire()
    with Ledger.open(root / "ledger.db") as ledger:
        started = {e.command_id for e in ledger.read() if e.type == "CommandStarted"}
        ended = {e.command_id for e in ledger.read() if e.type in TERMINAL_TYPES}
        executor = Executor(ledger, build_host("simulated", root))
        assert sorted(executor.recover()) == sorted(started - ended), "every command running at the kill"
        executor.run_pending()  # the starts nobody took up yet
        interrupted = [(name, command_id) for name, command_id in zip(FLEET, starts, strict=True)
                       if executor.projections.command(command_id).outcome == "interrupted"]
        assert {executor.projections.command(c).outcome for c in starts} <= {"interrupted", "succeeded"}
    lock.release()

    for name, command_id in interrupted:
        assert run(root, name, "start", retry_of=command_id).outcome == "succeeded"
    assert host_files(root) == _fleet_started(), "every instance ends started, as if nothing had happened"
    with Ledger.open(root / "ledger.db") as ledger:
        assert verify_ledger(ledger).ok
        for command_id in starts:
            ends = [e.type for e in ledger.read(command_id=command_id) if e.type in TERMINAL_TYPES]
            assert len(ends) == 1, f"{command_id} has one outcome, not {ends}"
