"""Load: 16 client processes × 100 mixed commands over 50 instances, all at once."""

from __future__ import annotations

import json
import multiprocessing
import queue
import random
import time

import pytest

from commands.service.executor_lock import ExecutorLock
from commands.service.limits import DEFAULT_JOBS
from commands.service.requests import Requester, append_command, see_through
from host_adapters.factory import build_host
from ledger import Ledger, verify_ledger
from ledger.lifecycle import TERMINAL_TYPES
from projections import Projections

from .fake_host import SPEC
from .real_host import make_root

CLIENTS = 16
COMMANDS_PER_CLIENT = 100
INSTANCES = 50
MIX = ["init"] * 3 + ["start"] * 3 + ["stop"] * 2 + ["reset", "delete"]


def _client(root: str, number: int, go, results) -> None:
    rng = random.Random(number)
    requester = Requester(f"client{number}", "root")
    done = []
    go.wait()
    with Ledger.open(f"{root}/ledger.db", busy_timeout=120) as ledger:
        for _ in range(COMMANDS_PER_CLIENT):
            instance = rng.randrange(INSTANCES)
            command = rng.choice(MIX)
            args = {"spec": SPEC | {"port": 20000 + instance}} if command == "init" else None
            (outcome,) = see_through(
                Projections(ledger), ExecutorLock(f"{root}/ledger.db"), lambda: build_host("simulated", root),
                lambda: [append_command(ledger, requester, f"srv{instance:02d}", command, args)[0]])  # noqa: B023
            done.append((outcome.command_id, outcome.outcome))
    results.put(json.dumps(done))


def _results(clients, results, timeout: float) -> list:
    """Every client's report; fails at once when a client died without one."""
    deadline, reports = time.monotonic() + timeout, []
    while len(reports) < len(clients):
        try:
            reports.append(results.get(timeout=1))
        except queue.Empty:
            dead = [client.exitcode for client in clients if client.exitcode not in (None, 0)]
            assert not dead, f"a client died with exit code {dead[0]}"
            assert time.monotonic() < deadline, "the clients did not finish in time"
    return reports


def run_load(root) -> tuple[dict[str, str], float]:
    """The load on `root`: every command's outcome as its client saw it, and the seconds it took."""
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    clients = [context.Process(target=_client, args=(str(root), n, go, results)) for n in range(CLIENTS)]
    for client in clients:
        client.start()
    started = time.monotonic()
    go.set()
    outcomes = dict(pair for report in _results(clients, results, 600) for pair in json.loads(report))
    elapsed = time.monotonic() - started
    for client in clients:
        client.join(timeout=60)
    assert [client.exitcode for client in clients] == [0] * CLIENTS
    return outcomes, elapsed


@pytest.mark.slow
def test_sixteen_clients_at_once_lose_nothing_and_keep_ledger_order(tmp_path):
    root = make_root(tmp_path / "root")
    outcomes, elapsed = run_load(root)
    total = CLIENTS * COMMANDS_PER_CLIENT
    print(f"\nload: {total} commands from {CLIENTS} processes in {elapsed:.1f}s = {total / elapsed:.1f} commands/s")
    with Ledger.open(root / "ledger.db") as ledger:
        assert verify_ledger(ledger).ok
        events = list(ledger.rows())
        projections = Projections(ledger)
        projections.sync()
        incremental = {t: ledger.db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("commands", "instances")}
        projections.rebuild()
        rebuilt = {t: ledger.db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("commands", "instances")}
    assert incremental == rebuilt

    requested = [e["command_id"] for e in events if e["type"] == "CommandRequested"]
    assert len(requested) == len(set(requested)) == total == len(outcomes)
    terminal_types = set(TERMINAL_TYPES)
    terminal = [e["command_id"] for e in events if e["type"] in terminal_types]
    assert sorted(terminal) == sorted(requested), "every command reaches exactly one terminal outcome"
    assert set(outcomes.values()) <= {"succeeded", "rejected"}

    decided = [e["command_id"] for e in events if e["type"] in ("CommandStarted", "CommandRejected")]
    assert decided == requested, "commands are decided in ledger order"
    running: dict[str, str] = {}
    most = 0
    for event in events:
        if event["type"] == "CommandStarted":
            assert event["instance"] not in running, "one command of an instance at a time"
            running[event["instance"]] = event["command_id"]
            most = max(most, len(running))
        elif event["type"] in terminal_types and running.get(event["instance"]) == event["command_id"]:
            del running[event["instance"]]
    assert most <= DEFAULT_JOBS
    print(f"load: at most {most} commands ran at once")
