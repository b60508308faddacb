"""The executor runs commands of different instances at the same time, and decides exactly as a serial one would."""

from __future__ import annotations

import itertools
import random
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.service.executor import Executor
from commands.service.executor_lock import ExecutorLock
from commands.service.requests import append_cancel, append_command, see_through
from host_adapters import HostError, StepIO
from ledger import Ledger, LedgerError, LedgerLocked, verify_ledger
from ledger.lifecycle import TERMINAL_TYPES, EventType
from projections import Projections

from .fake_host import ALICE, SPEC, FakeHost
from .fakes import Faults

INSTANCES = ("alpha", "bravo", "charlie")


@dataclass
class Crowded(Faults):
    """Counts how many calls starting with `watched` are inside at once (each stays `dwell` seconds), and can make
    them meet: with `meet` set, each waits until that many are inside together."""

    watched: str = "enable_now"
    dwell: float = 0.05
    meet: int | None = None
    inside: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    barrier: threading.Barrier | None = None

    def check(self, call: str, io: StepIO | None = None) -> None:
        super().check(call, io)
        if not call.startswith(self.watched):
            return
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            if self.meet is not None and self.barrier is None:
                self.barrier = threading.Barrier(self.meet, timeout=5)
        try:
            if self.barrier is not None:
                self.barrier.wait()
            time.sleep(self.dwell)
        finally:
            with self.lock:
                self.inside -= 1


def _fleet(ledger, faults: Faults, names=INSTANCES) -> FakeHost:
    """A fake host with one initialized instance per name, each on a port of its own."""
    host = FakeHost(ledger, faults)
    for number, name in enumerate(names):
        assert host.init(name, SPEC | {"port": 27015 + number}).outcome == "succeeded"
    return host


def _request(host: FakeHost, *commands: tuple[str, str, dict | None]) -> list[str]:
    return [append_command(host.ledger, ALICE, name, command, args)[0] for name, command, args in commands]


def _outcomes(host: FakeHost, command_ids: list[str]) -> list[str]:
    host.executor.projections.sync()
    return [host.executor.projections.command(command_id).outcome for command_id in command_ids]


def test_starts_of_different_instances_run_at_the_same_time(ledger):
    host = _fleet(ledger, Crowded(meet=len(INSTANCES)))
    started = _request(host, *[(name, "start", None) for name in INSTANCES])
    host.executor.run_pending()
    assert _outcomes(host, started) == ["succeeded"] * len(INSTANCES), "each start waited for the others inside"
    assert host.faults.most == len(INSTANCES)


def test_no_more_than_jobs_commands_run_at_once(ledger):
    names = [f"srv{number}" for number in range(6)]
    host = _fleet(ledger, Crowded(), names)
    host.executor.jobs = 2
    started = _request(host, *[(name, "start", None) for name in names])
    host.executor.run_pending()
    assert _outcomes(host, started) == ["succeeded"] * len(names)
    assert host.faults.most == 2


def test_one_instance_commands_never_overlap_and_keep_ledger_order(ledger):
    host = _fleet(ledger, Crowded())
    commands = _request(host, ("alpha", "start", None), ("bravo", "start", None), ("alpha", "stop", None),
                        ("alpha", "start", None), ("bravo", "stop", None), ("alpha", "restart", None))
    host.executor.run_pending()
    assert _outcomes(host, commands) == ["succeeded"] * len(commands)
    for name in ("alpha", "bravo"):
        spans = []
        for command_id in (c for c in commands if host.executor.projections.command(c).instance == name):
            seqs = [event.seq for event in ledger.read(command_id=command_id) if event.type != "CommandRequested"]
            spans.append((min(seqs), max(seqs)))
        assert spans == sorted(spans)
        assert all(end < next_start for (_, end), (next_start, _) in itertools.pairwise(spans)), spans


def test_decisions_are_taken_in_ledger_order(ledger):
    host = _fleet(ledger, Crowded())
    commands = _request(host, *[(name, command, None) for command in ("start", "stop") for name in INSTANCES])
    host.executor.run_pending()
    decided = [event.command_id for event in ledger.read()
               if event.type in ("CommandStarted", "CommandRejected") and event.command_id in commands]
    assert decided == commands


def test_an_init_waits_for_running_commands_so_it_sees_a_freed_port_as_a_serial_executor_would(ledger):
    host = _fleet(ledger, Crowded(watched="remove runtime bravo", dwell=0.3))
    deleted, claimed = _request(host, ("bravo", "delete", None), ("delta", "init", {"spec": SPEC | {"port": 27016}}))
    host.executor.run_pending()
    assert _outcomes(host, [deleted, claimed]) == ["succeeded", "succeeded"]


def test_an_init_waits_for_running_commands_so_it_sees_a_taken_port_as_a_serial_executor_would(ledger):
    host = FakeHost(ledger, Crowded(dwell=0.3))
    host.init("alpha")
    host.run("alpha", "delete")
    revived, clashing = _request(host, ("alpha", "init", {"spec": SPEC}), ("bravo", "init", {"spec": SPEC}))
    host.executor.run_pending()
    assert _outcomes(host, [revived, clashing]) == ["succeeded", "rejected"]


def test_a_cancel_reaches_only_its_command_among_those_running(ledger):
    host = _fleet(ledger, Faults(hang_on="enable_now alpha"))
    hanging, other = _request(host, ("alpha", "start", None), ("bravo", "start", None))
    worker = threading.Thread(target=host.executor.run_pending, daemon=True)
    worker.start()
    with Ledger.open(ledger.path) as canceller:
        deadline = time.monotonic() + 10
        while not any(e.type == "CommandSucceeded" for e in canceller.read(command_id=other)):
            assert time.monotonic() < deadline, "bravo's start should end while alpha's hangs"
            time.sleep(0.02)
        projections = Projections(canceller)
        projections.sync()
        append_cancel(canceller, ALICE, projections.command(hanging))
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert _outcomes(host, [hanging, other]) == ["cancelled", "succeeded"]
    assert not host.services.status("alpha").active and host.services.status("bravo").active


@dataclass
class BrokenUndo(Faults):
    """The unit will not start, and stopping it (the undo) breaks in a way no step expects."""

    def check(self, call: str, io: StepIO | None = None) -> None:
        super().check(call, io)
        if call == "enable_now alpha":
            raise HostError("the unit did not start")
        if call == "disable_now alpha":
            raise RuntimeError("systemctl vanished")


def test_a_command_whose_undo_breaks_still_gets_exactly_one_outcome(ledger):
    host = _fleet(ledger, BrokenUndo(), ("alpha",))
    (started,) = _request(host, ("alpha", "start", None))
    host.executor.run_pending()
    command = host.executor.projections.command(started)
    assert command.outcome == "failed"
    assert "RuntimeError: systemctl vanished" in command.error
    outcomes = [e.type for e in ledger.read(command_id=started) if e.type in TERMINAL_TYPES]
    assert outcomes == [EventType.COMMAND_FAILED]


@dataclass
class Jitter(Faults):
    """Every adapter call takes a random moment, so concurrent commands interleave differently each time."""

    rng: random.Random = field(default_factory=random.Random)

    def check(self, call: str, io: StepIO | None = None) -> None:
        super().check(call, io)
        time.sleep(self.rng.random() * 0.002)


COMMANDS = st.tuples(st.sampled_from(INSTANCES),
                     st.sampled_from(["init", "start", "stop", "restart", "delete", "reset"]),
                     st.sampled_from([27015, 27016]))


def _run_all(requests: list[tuple[str, str, int]], jobs: int, seed: int) -> list[tuple]:
    """Every request appended at once, then run by an executor with `jobs` workers: each command's outcome and
    error, and each instance's recorded state and port at the end."""
    with tempfile.TemporaryDirectory() as scratch, Ledger.open(Path(scratch) / "ledger.db") as ledger:
        host = FakeHost(ledger, Jitter(rng=random.Random(seed)))
        host.executor.jobs = jobs
        ids = _request(host, *[(name, command, {"spec": SPEC | {"port": port}} if command == "init" else None)
                               for name, command, port in requests])
        host.executor.run_pending()
        projections = host.executor.projections
        assert verify_ledger(ledger).ok
        commands = [(c.outcome, c.error) for c in map(projections.command, ids)]
        instances = [(i.state, i.port) for i in map(projections.instance, INSTANCES)]
        return commands + instances


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(COMMANDS, min_size=1, max_size=12), st.integers(0, 2**32))
def test_a_concurrent_executor_reaches_exactly_what_a_serial_one_does(requests, seed):
    assert _run_all(requests, jobs=4, seed=seed) == _run_all(requests, jobs=1, seed=seed)


@dataclass
class LockedWhileStarting(Faults):
    """As alpha's unit starts (slowly), another process requests a stop of bravo, then holds the ledger's write
    lock for a while: the deciding thread finds news it cannot fold in."""

    ledger_path: str = ""
    held: list = field(default_factory=list)

    def check(self, call: str, io: StepIO | None = None) -> None:
        super().check(call, io)
        if call == "enable_now alpha" and not self.held:
            with Ledger.open(self.ledger_path) as other:
                self.held.append(append_command(other, ALICE, "bravo", "stop")[0])
            holder = sqlite3.connect(self.ledger_path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN IMMEDIATE")
            threading.Timer(1.5, lambda: (holder.execute("ROLLBACK"), holder.close())).start()
            time.sleep(2)


def test_a_ledger_locked_while_commands_run_is_waited_out_not_given_up(ledger_path):
    with Ledger.open(ledger_path, busy_timeout=0.2) as ledger:
        faults = LockedWhileStarting(ledger_path=str(ledger_path))
        host = _fleet(ledger, faults, ("alpha", "bravo"))
        warnings: list[str] = []
        host.executor.warn = warnings.append
        (started,) = _request(host, ("alpha", "start", None))
        host.executor.run_pending()
        assert _outcomes(host, [started, *faults.held]) == ["succeeded", "succeeded"]
        assert any("is locked" in warning for warning in warnings)


def _failing_on(kind: str):
    """An observer that fails (as a read finding the ledger locked would) whenever it is told of a `kind` event."""
    def observer(event):
        if event.type == kind:
            raise LedgerLocked("database is locked (in the observer)")

    return observer


@pytest.mark.parametrize("failing", [EventType.COMMAND_STARTED, EventType.STEP_COMPLETED,
                                     EventType.COMMAND_SUCCEEDED])
def test_an_observer_that_fails_after_a_commit_is_warned_about_and_nothing_is_recorded_twice(ledger, failing):
    host = _fleet(ledger, Faults())
    (started,) = _request(host, ("alpha", "start", None))
    warnings: list[str] = []
    host.executor.observer, host.executor.warn = _failing_on(failing), warnings.append
    running = threading.Thread(target=host.executor.run_pending, daemon=True)
    running.start()
    running.join(10)
    assert not running.is_alive(), "the executor saw its command through: each started command has its worker"
    assert _outcomes(host, [started]) == ["succeeded"]
    types = [event.type for event in ledger.read(command_id=started)]
    assert [types.count(kind) for kind in (EventType.COMMAND_REQUESTED, EventType.COMMAND_STARTED,
                                           EventType.COMMAND_SUCCEEDED)] == [1, 1, 1]
    assert verify_ledger(ledger).ok
    steps = [step["step"] for step in host.executor.projections.steps(started)]
    assert len(steps) == len(set(steps)), "no step recorded twice"
    assert any("passing it on failed" in warning for warning in warnings)


def test_a_follower_shows_the_steps_of_its_command_though_another_executor_ended_it_at_once(ledger, ledger_path):
    service = _fleet(ledger, Faults(), ("alpha",))
    holder = ExecutorLock(ledger_path)
    assert holder.try_acquire()
    seen: list[str] = []
    try:
        with Ledger.open(ledger_path) as mine:
            (command,) = see_through(
                Projections(mine), ExecutorLock(ledger_path), lambda: service.host,
                lambda: [append_command(mine, ALICE, "alpha", "start")[0]],
                announce=lambda command_ids: service.executor.run_pending(),  # the other executor, meanwhile
                observer=lambda event: seen.append(event.type))
    finally:
        holder.release()
    assert command.outcome == "succeeded"
    assert EventType.STEP_COMPLETED in seen and seen[-1] == EventType.COMMAND_SUCCEEDED


def test_a_requester_that_is_its_own_executor_hears_what_it_could_not_do(ledger, ledger_path):
    host = _fleet(ledger, Faults(), ("alpha",))
    warnings: list[str] = []
    (command,) = see_through(host.executor.projections, ExecutorLock(ledger_path), lambda: host.host,
                             lambda: [append_command(ledger, ALICE, "alpha", "start")[0]],
                             observer=_failing_on(EventType.STEP_COMPLETED), warn=warnings.append)
    assert command.outcome == "succeeded"
    assert warnings and all("passing it on failed" in warning for warning in warnings)


def test_a_rounds_workers_join_the_company_before_any_of_them_asks_and_leave_as_they_end(ledger):
    host = _fleet(ledger, Faults(), ("alpha", "bravo", "charlie"))
    services, company, seen = host.host.services, host.host.company, []
    enable_now = services.enable_now

    def counting(name, io):
        seen.append(company.size)
        enable_now(name, io)

    services.enable_now = counting
    started = _request(host, ("alpha", "start", None), ("bravo", "start", None), ("charlie", "start", None))
    host.executor.run_pending()
    assert _outcomes(host, started) == ["succeeded"] * 3
    assert seen[0] == 3, "the first to ask knew of all three"
    assert company.size == 0


class OneThreadTooMany(threading.Thread):
    """A thread that cannot be started the first time one is asked for, as in a process at its thread limit."""

    refused: list[str] = []

    def start(self) -> None:
        if not OneThreadTooMany.refused:
            OneThreadTooMany.refused.append(self.name)
            raise RuntimeError("can't start new thread")
        super().start()


def test_a_command_whose_worker_cannot_be_started_ends_interrupted_at_once_and_the_others_run(ledger,
                                                                                             monkeypatch):
    host = _fleet(ledger, Faults())
    monkeypatch.setattr(OneThreadTooMany, "refused", [])
    monkeypatch.setattr("commands.service.executor.threading.Thread", OneThreadTooMany)
    started = _request(host, ("alpha", "start", None), ("bravo", "start", None), ("charlie", "start", None))
    host.executor.run_pending()
    assert _outcomes(host, started) == ["interrupted", "succeeded", "succeeded"]
    interrupted = host.executor.projections.command(started[0])
    assert interrupted.error == "the executor could not start a worker for it (can't start new thread); nothing " \
                                "was done"
    assert host.executor.projections.steps(started[0]) == [], "nothing was done on the host for it"
    assert host.executor.projections.instance("alpha").state == "initialized", "its recorded state is unchanged"
    assert host.host.company.size == 0
    assert verify_ledger(ledger).ok


def test_a_cli_executor_takes_up_nothing_requested_after_its_own_commands(ledger):
    host = _fleet(ledger, Faults())
    mine, later = _request(host, ("alpha", "start", None), ("bravo", "start", None))
    host.executor.projections.sync()
    host.executor.run_pending(upto_seq=host.executor.projections.command(mine).requested_seq)
    assert _outcomes(host, [mine, later]) == ["succeeded", "pending"]


def test_a_new_executor_does_not_interrupt_the_commands_of_one_that_still_runs(ledger, ledger_path):
    host = _fleet(ledger, Faults(hang_on="enable_now alpha"), ("alpha",))
    (hanging,) = _request(host, ("alpha", "start", None))
    first = threading.Thread(target=host.executor.run_pending, daemon=True)
    first.start()
    with Ledger.open(ledger_path) as other:
        deadline = time.monotonic() + 10
        while not any(e.type == "CommandStarted" for e in other.read(command_id=hanging)):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        newcomer = Executor(other, host.host)
        with pytest.raises(LedgerError, match="is still run by executor pid"):
            newcomer.recover()
        projections = Projections(other)
        projections.sync()
        append_cancel(other, ALICE, projections.command(hanging))
    first.join(timeout=10)
    assert _outcomes(host, [hanging]) == ["cancelled"]
