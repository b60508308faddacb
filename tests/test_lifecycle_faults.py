"""A fault at any adapter call is recorded against its step, and a retry converges."""

from __future__ import annotations

import pytest

from ledger import Ledger, verify_ledger

from .fake_host import FakeHost

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


def _staged(path) -> FakeHost:
    return FakeHost(Ledger.open(path))


def _set_stage(host: FakeHost, scenario: str) -> str:
    for command in SCENARIOS[scenario]:
        host.run("alpha", command)
    host.faults.calls.clear()
    return scenario.split()[0]


def _clean_run(tmp_path, scenario):
    """The command run with no fault: its final host, and which step each adapter call belonged to."""
    host = _staged(tmp_path / "clean.db")
    command_name = _set_stage(host, scenario)
    boundaries = []
    host.executor.observer = lambda row: boundaries.append(len(host.faults.calls)) if row["type"] == "StepCompleted" else None
    command = host.run("alpha", command_name)
    assert command.outcome == "succeeded"
    step_of_call = []
    for step, end in zip(host.steps(command), boundaries):
        step_of_call += [step["step"]] * (end - len(step_of_call))
    return host.fs.snapshot(), host.state.copy(), step_of_call


def _call_counts():
    import tempfile
    from pathlib import Path

    counts = {}
    with tempfile.TemporaryDirectory() as scratch:
        for scenario in SCENARIOS:
            counts[scenario] = len(_clean_run(Path(scratch) / scenario, scenario)[2])
    return counts


CASES = [(scenario, call) for scenario, calls in _call_counts().items() for call in range(1, calls + 1)]


@pytest.mark.parametrize("scenario, call", CASES, ids=[f"{s}-call{c}" for s, c in CASES])
def test_a_fault_at_any_call_is_recorded_against_its_step_and_a_retry_converges(tmp_path, scenario, call):
    clean_files, clean_state, step_of_call = _clean_run(tmp_path, scenario)
    host = _staged(tmp_path / "faulty.db")
    command_name = _set_stage(host, scenario)
    host.faults.fail_at = call
    faulted = host.run("alpha", command_name)

    step = step_of_call[call - 1]
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
    assert host.fs.snapshot() == clean_files
    assert host.state == clean_state
    assert verify_ledger(host.ledger).ok
