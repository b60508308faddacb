"""An executor killed at any step boundary leaves a command the next executor marks interrupted; retry converges."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from commands.executor import Executor
from commands.executor_lock import ExecutorLock
from commands.requests import append_command
from projections import Projections
from host_adapters.factory import build_host
from ledger import Ledger, verify_ledger

from .fake_host import ALICE
from .real_host import host_files, make_root, run

SETUP = {"start": ["init"], "delete": ["init", "start"]}
BOUNDARIES = 5  # after CommandStarted, then after each of the four steps


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


@pytest.mark.parametrize("command", list(SETUP))
@pytest.mark.parametrize("die_after", range(1, BOUNDARIES + 1))
def test_a_killed_executor_leaves_an_interrupted_command_that_retry_converges(tmp_path, clean, command, die_after):
    root = make_root(tmp_path / "root")
    for earlier in SETUP[command]:
        run(root, "alpha", earlier)
    with Ledger.open(root / "ledger.db") as ledger:
        command_id, _ = append_command(ledger, ALICE, "alpha", command)

    child = multiprocessing.get_context("spawn").Process(target=_execute_then_die, args=(str(root), die_after))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL

    lock = ExecutorLock(root / "ledger.db")
    assert lock.try_acquire(), "the dead executor's lock must die with it"
    with Ledger.open(root / "ledger.db") as ledger:
        executor = Executor(ledger, build_host("simulated", root))
        assert executor.recover() == [command_id]
        interrupted = executor.projections.command(command_id)
        assert interrupted.outcome == "interrupted"
        assert len(executor.projections.steps(command_id)) == die_after - 1
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
