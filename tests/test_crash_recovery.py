"""An executor killed at any step boundary leaves a command the next executor marks interrupted; retry converges."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from commands.service.executor import Executor
from commands.service.executor_lock import ExecutorLock
from commands.service.requests import append_command
from projections import Projections
from host_adapters.factory import SIMULATED_SECRETS, SIMULATED_STATE, build_host
from host_adapters.fakes import Faults, FileState, fake_host
from host_adapters.local_fs import LocalFilesystem
from ledger import Ledger, verify_ledger

from .fake_host import ALICE, SPEC
from .real_host import host_files, make_root, run

# The commands that set the stage for each command under test, and how many steps that command has.
SETUP = {"init": [], "start": ["init"], "stop": ["init", "start"], "delete": ["init", "start"],
         "reset": ["init", "start"]}
STEPS = {"init": 4, "start": 7, "stop": 2, "delete": 4, "reset": 4}
# Kill points: after CommandStarted (1), then after each StepCompleted (2 .. steps + 1).
CASES = [(command, die_after) for command, steps in STEPS.items() for die_after in range(1, steps + 2)]


def _execute_then_die(root: str, die_after: int) -> None:
    lock = ExecutorLock(f"{root}/ledger.db")
    assert lock.try_acquire()
    seen = []

    def observer(row):
        if row["type"] in ("CommandStarted", "StepCompleted"):
            seen.append(row)
            if len(seen) == die_after:
                os.kill(os.getpid(), signal.SIGKILL)

    with Ledger.open(f"{root}/ledger.db") as ledger:
        Executor(ledger, build_host("simulated", root), observer=observer).run_pending()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Host files after each command ran uninterrupted."""
    results = {}
    for command, setup in SETUP.items():
        root = make_root(tmp_path_factory.mktemp(f"clean-{command}") / "root")
        for earlier in setup:
            run(root, "alpha", earlier)
        assert run(root, "alpha", command).outcome == "succeeded"
        results[command] = host_files(root)
    return results


def _staged_command(tmp_path, command):
    root = make_root(tmp_path / "root")
    for earlier in SETUP[command]:
        run(root, "alpha", earlier)
    with Ledger.open(root / "ledger.db") as ledger:
        command_id, _ = append_command(ledger, ALICE, "alpha", command, {"spec": SPEC} if command == "init" else None)
    return root, command_id


@pytest.mark.parametrize("command, die_after", CASES, ids=[f"{c}-boundary{d}" for c, d in CASES])
def test_a_killed_executor_leaves_an_interrupted_command_that_retry_converges(tmp_path, clean, command, die_after):
    root, command_id = _staged_command(tmp_path, command)
    child = multiprocessing.get_context("spawn").Process(target=_execute_then_die, args=(str(root), die_after))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    _assert_recovers(root, command, command_id, completed_steps=die_after - 1, clean=clean)


def _hang_inside_enable(root: str) -> None:
    host = fake_host(LocalFilesystem(root), FileState(Path(root) / SIMULATED_STATE),
                     secrets_store=FileState(Path(root) / SIMULATED_SECRETS, mode=0o600),
                     faults=Faults(hang_on="enable_now"), simulated=True)  # start's "enable and start unit" hangs
    with Ledger.open(f"{root}/ledger.db") as ledger:
        Executor(ledger, host).run_pending()


def test_an_executor_killed_inside_a_long_step_leaves_it_interrupted_and_retry_converges(tmp_path, clean):
    root, command_id = _staged_command(tmp_path, "start")
    child = multiprocessing.get_context("spawn").Process(target=_hang_inside_enable, args=(str(root),))
    child.start()
    deadline = time.monotonic() + 60
    with Ledger.open(root / "ledger.db") as ledger:
        while sum(e.type == "StepCompleted" for e in ledger.read(command_id=command_id)) < 5:
            assert time.monotonic() < deadline and child.is_alive()
            time.sleep(0.05)
    time.sleep(0.3)  # well inside the hanging step
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    _assert_recovers(root, "start", command_id, completed_steps=5, clean=clean)


def _assert_recovers(root, command, command_id, *, completed_steps, clean):
    """The next executor marks the command interrupted; a retry converges; the chain holds; nothing ran twice."""
    lock = ExecutorLock(root / "ledger.db")
    assert lock.try_acquire(), "the dead executor's lock must die with it"
    with Ledger.open(root / "ledger.db") as ledger:
        executor = Executor(ledger, build_host("simulated", root))
        assert executor.recover() == [command_id]
        interrupted = executor.projections.command(command_id)
        assert interrupted.outcome == "interrupted"
        assert len(executor.projections.steps(command_id)) == completed_steps
    lock.release()

    retried = run(root, "alpha", command, retry_of=command_id)
    assert retried.outcome == "succeeded"
    assert host_files(root) == clean[command]
    with Ledger.open(root / "ledger.db") as ledger:
        assert verify_ledger(ledger).ok
        started = [e.command_id for e in ledger.read() if e.type == "CommandStarted"]
        assert len(started) == len(set(started)), "no command is executed twice"
        projections = Projections(ledger)
        projections.sync()
        assert projections.command(command_id).outcome == "interrupted"
