"""Whole lifecycle commands per second: l4d2ctl vs the `eventsourcing` package, on the same machine.

l4d2ctl, per command, as the CLI does it when it is the executor: append
CommandRequested, decide it against the materialized projections and record
CommandStarted, in one durable commit; run its host steps through in-memory
fake adapters; record a StepCompleted per step (with output) and the outcome,
in a second durable commit (steps a worker reported earlier may commit
without a sync between). About 4-9 hash-chained events, the projections
brought up to date in each transaction.

eventsourcing (its documented Application/Aggregate API, SQLite persistence
on disk, WAL as it sets it): load the instance aggregate from its events,
decide (a method that checks the state and triggers one event), save that one
event.

Both run the same start/stop sequence over the same instances, first on fresh
instances and then on instances with a long history, so the cost of loading
state shows. The limit is what plain sqlite3 allows at two durable commits per
command (inserts one per transaction, same pragmas, same file system: its rate
halved). Figures are medians of alternating rounds.

Run: .venv/bin/python -m scripts.bench.commands [--commands N] [--rounds R]
(needs the bench extra: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from commands.service.executor import Executor
from commands.service.requests import Requester, append_command
from ledger import Ledger
from tests.fakes import MemoryFilesystem, MemoryState, fake_host

from .append import raw_sqlite_rate
from .synthetic import build_ledger

INSTANCES = 20
TARGETS = {0: 1.0, 500: 10.0}  # prior commands per instance: l4d2ctl / eventsourcing at least
LIMIT_SHARE = 0.5  # l4d2ctl / the two-durable-commits limit at least
BENCH = Requester("bench", "root")


def _name(number: int) -> str:
    return f"srv{number:04d}"


def l4d2ctl_rate(path: Path, commands: int, history: int) -> float:
    """Commands per second through the real executor with in-memory host adapters."""
    if history:
        build_ledger(path, INSTANCES * history * 7, INSTANCES)
    state = MemoryState()
    fs = MemoryFilesystem()
    fs.make_dirs("installation")
    host = fake_host(fs, state)
    with Ledger.open(path) as ledger:
        executor = Executor(ledger, host)
        for number in range(INSTANCES):
            spec = {"port": 20000 + number, "arguments": [], "config": [], "overlays": []}
            append_command(ledger, BENCH, _name(number), "init", {"spec": spec})
        executor.run_pending()
        started = time.perf_counter()
        for number in range(commands):
            name, command = _name(number % INSTANCES), ("start", "stop")[number // INSTANCES % 2]
            # As the CLI requests when it is the executor: the request and its start in one commit.
            executor.take_up_requested(lambda: [append_command(ledger, BENCH, name, command)[0]])  # noqa: B023
            executor.run_pending()
        return commands / (time.perf_counter() - started)


def eventsourcing_rate(path: Path, commands: int, history: int) -> float:
    """Commands per second with the eventsourcing package: load aggregate, decide, save one event."""
    from .es_peer import Instance, Servers

    app = Servers(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})
    ids = []
    for number in range(INSTANCES):
        instance = Instance(_name(number), 20000 + number)
        for step in range(history):
            (instance.start if step % 2 == 0 else instance.stop)()
        app.save(instance)
        ids.append(instance.id)
    started = time.perf_counter()
    for number in range(commands):
        instance = app.repository.get(ids[number % INSTANCES])
        (instance.start if number // INSTANCES % 2 == 0 else instance.stop)()
        app.save(instance)
    rate = commands / (time.perf_counter() - started)
    app.close()
    return rate


def run(commands: int, rounds: int) -> list[str]:
    """Measure both sides and the limit at each history length; return the report's lines."""
    lines = ["| commands/s | l4d2ctl | eventsourcing 9 | ratio | limit: two raw durable commits | share of the "
             "limit |", "|---|---|---|---|---|---|"]
    for history, target in TARGETS.items():
        ours, theirs, limits = [], [], []
        with tempfile.TemporaryDirectory() as scratch:
            for number in range(rounds):
                ours.append(l4d2ctl_rate(Path(scratch, f"ours{number}.db"), commands, history))
                theirs.append(eventsourcing_rate(Path(scratch, f"theirs{number}.db"), commands, history))
                limits.append(raw_sqlite_rate(Path(scratch, f"raw{number}.db"), 2 * commands) / 2)
        ratio = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
        share = statistics.median(o / limit for o, limit in zip(ours, limits, strict=True))
        lines.append(f"| {INSTANCES} instances, {history} prior commands each | {statistics.median(ours):,.0f} | "
                     f"{statistics.median(theirs):,.0f} | {ratio:.2f} (target ≥ {target:g}) "
                     f"{'✓' if ratio >= target else '✗'} | {statistics.median(limits):,.0f} | {share:.2f} (target ≥ "
                     f"{LIMIT_SHARE:g}) {'✓' if share >= LIMIT_SHARE else '✗'} |")
    return lines


def main() -> None:
    """Print the commands report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    print("\n".join(run(options.commands, options.rounds)))


if __name__ == "__main__":
    main()
