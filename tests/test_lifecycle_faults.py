"""A fault at any adapter call is recorded against its step, and a retry converges."""

from __future__ import annotations

import copy
import functools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger import Ledger, verify_ledger

from .fake_host import FakeHost
from .numbered_cases import parametrize_numbered

# Each scenario: the commands that set the stage, then the command under test.
SCENARIOS = {
    "init": [],
    "start": ["init"],
    "start after reset": ["init", "reset"],
    "stop": ["init", "start"],
    "delete": ["init", "start"],
    "reset": ["init", "start"],
}
# Steps whose failures the original host code tolerated (and so does l4d2ctl): noted in the output, the command goes on.
TOLERANT_STEPS = {"stop": {"unmount overlay"}, "delete": {"disable and stop unit", "unmount overlay"},
                  "reset": {"disable and stop unit", "unmount overlay"}}


@dataclass(frozen=True)
class CleanRun:
    """The command under test run with no fault: the host it leaves, and which step each adapter call belonged to."""

    files: dict
    state: dict
    step_of_call: tuple[str, ...]


@contextmanager
def _staged(path: Path, scenario: str) -> Iterator[tuple[FakeHost, str]]:
    """An in-memory host over a ledger at `path` (closed on exit) with the scenario's stage set, and the command
    under test; the adapter calls are counted from the command under test."""
    with Ledger.open(path) as ledger:
        host = FakeHost(ledger)
        for command in SCENARIOS[scenario]:
            host.run("alpha", command)
        host.faults.calls.clear()
        host.executor.calls_at_step_end.clear()
        yield host, scenario.split()[0]


@functools.cache
def _clean_run(scenario: str) -> CleanRun:
    """The scenario's command run with no fault (once per session: the fakes are deterministic)."""
    with tempfile.TemporaryDirectory() as scratch, _staged(Path(scratch) / "clean.db", scenario) as (host, name):
        command = host.run("alpha", name)
        assert command.outcome == "succeeded", f"{scenario} with no fault: {command.outcome} ({command.error})"
        step_of_call: list[str] = []
        for step, end in zip(host.steps(command), host.executor.calls_at_step_end, strict=True):
            step_of_call += [step["step"]] * (end - len(step_of_call))
        return CleanRun(host.fs.snapshot(), copy.deepcopy(dict(host.state)), tuple(step_of_call))


def pytest_generate_tests(metafunc):
    """One case per adapter call of each scenario's command, counted by a clean run when the tests are collected
    (not when this module is imported)."""
    parametrize_numbered(metafunc, ("scenario", "call"), SCENARIOS,
                         lambda scenario: len(_clean_run(scenario).step_of_call), "call")


def test_a_fault_at_any_call_is_recorded_against_its_step_and_a_retry_converges(tmp_path, scenario, call):
    clean = _clean_run(scenario)
    with _staged(tmp_path / "faulty.db", scenario) as (host, command_name):
        host.faults.fail_at = call
        faulted = host.run("alpha", command_name)

        step = clean.step_of_call[call - 1]
        if step in TOLERANT_STEPS.get(command_name, ()):
            assert faulted.outcome == "succeeded"
            assert any("ignored: injected fault" in line
                       for s in host.steps(faulted) if s["step"] == step for line in s["output"])
            replayed = host.run("alpha", command_name, replay_of=faulted.command_id)
            assert replayed.outcome == "succeeded"
        else:
            assert faulted.outcome == "failed"
            assert faulted.error.startswith(f"{step}: injected fault at call {call}")
            retried = host.run("alpha", command_name, retry_of=faulted.command_id)
            assert retried.outcome == "succeeded"
            assert retried.retry_of == faulted.command_id
        assert host.fs.snapshot() == clean.files
        assert host.state == clean.state
        assert verify_ledger(host.ledger).ok
