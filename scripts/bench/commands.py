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
halved). The ceiling is what storing l4d2ctl's rows costs by itself: the
inserts, updates and commits of the same commands, captured and replayed
through plain sqlite3 with nothing in between; once with the ledger's indexes,
once with none. Figures are medians of alternating rounds.

Run: .venv/bin/python -m scripts.bench.commands [--commands N] [--rounds R]
(needs the bench extra: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

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
WRITES = {"BEGIN", "INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT", "ROLLBACK"}  # what a replay keeps
STORED = ("SELECT count(*), max(seq), (SELECT hash FROM events ORDER BY seq DESC LIMIT 1) FROM events",
          "SELECT * FROM commands ORDER BY command_id", "SELECT * FROM instances ORDER BY name",
          "SELECT * FROM projection_checkpoint")  # what a faithful replay leaves as l4d2ctl left it


def _name(number: int) -> str:
    return f"srv{number:04d}"


@contextmanager
def _executor_over(path: Path, history: int) -> Iterator[tuple[Ledger, Executor]]:
    """The ledger at `path` with `history` prior commands per instance, its instances initialized, and an
    executor over it with in-memory host adapters."""
    if history:
        build_ledger(path, INSTANCES * history * 7, INSTANCES)
    state = MemoryState()
    fs = MemoryFilesystem()
    fs.make_dirs("installation")
    with Ledger.open(path) as ledger:
        executor = Executor(ledger, fake_host(fs, state))
        for number in range(INSTANCES):
            spec = {"port": 20000 + number, "arguments": [], "config": [], "overlays": []}
            append_command(ledger, BENCH, _name(number), "init", {"spec": spec})
        executor.run_pending()
        yield ledger, executor


def _run(ledger: Ledger, executor: Executor, commands: int) -> None:
    """Request and execute the start/stop sequence, one command at a time."""
    for number in range(commands):
        name, command = _name(number % INSTANCES), ("start", "stop")[number // INSTANCES % 2]
        # As the CLI requests when it is the executor: the request and its start in one commit.
        executor.take_up_requested(lambda: [append_command(ledger, BENCH, name, command)[0]])  # noqa: B023
        executor.run_pending()


def l4d2ctl_rate(path: Path, commands: int, history: int) -> float:
    """Commands per second through the real executor with in-memory host adapters."""
    with _executor_over(path, history) as (ledger, executor):
        started = time.perf_counter()
        _run(ledger, executor, commands)
        return commands / (time.perf_counter() - started)


class _Recording:
    """A connection that keeps every statement run through `execute` or `executemany`, with its parameters, in
    order (and runs it): every write l4d2ctl makes goes through one of them."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.calls: list[tuple[str, Any, bool]] = []  # (sql, parameters, whether executemany)

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        self.calls.append((sql, parameters, False))
        return self.conn.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any) -> sqlite3.Cursor:
        rows = list(parameters)
        self.calls.append((sql, rows, True))
        return self.conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def _is_write(sql: str) -> bool:
    """Whether a replay of the writes keeps `sql`: what changes the file, and how durably each commit syncs."""
    words = sql.split(None, 2)
    return words[0].upper() in WRITES or [word.upper() for word in words[:2]] == ["PRAGMA", "SYNCHRONOUS"]


def writes_alone_rate(path: Path, commands: int, history: int, indexed: bool = True) -> float:
    """Commands per second of the writes alone: what the same commands store, replayed through plain sqlite3.

    The inserts, updates and commits l4d2ctl issued are captured, each statement with its parameters, and
    replayed in order on a copy of the ledger taken before they ran (same pragmas, the same statements, so
    SQLite reuses their compiled forms as l4d2ctl's connection does), with nothing in between: no reads, no
    hashing, no deciding, no host. No implementation that stores these rows in the same commits can run
    faster, so this is the ceiling on the ratios above. Without `indexed`, the copy's secondary indexes are
    dropped first (what audit, history and the executor's reads stand on).
    """
    replayed = path.with_name(f"{path.stem}-replayed.db")
    with _executor_over(path, history) as (ledger, executor):
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(path, replayed)
        recording = _Recording(ledger.conn)
        ledger.conn = executor.projections.conn = cast(sqlite3.Connection, recording)  # all that writes the file
        _run(ledger, executor, commands)
        ledger.conn = executor.projections.conn = recording.conn
    writes = [call for call in recording.calls if _is_write(call[0])]
    conn = sqlite3.connect(replayed, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    if not indexed:
        for (index,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                                     ).fetchall():
            conn.execute(f'DROP INDEX "{index}"')
    started = time.perf_counter()
    for sql, parameters, many in writes:
        (conn.executemany if many else conn.execute)(sql, parameters)
    rate = commands / (time.perf_counter() - started)
    stored = sqlite3.connect(path)
    for query in STORED:
        if conn.execute(query).fetchall() != stored.execute(query).fetchall():
            raise RuntimeError(f"the replay of {path} did not store what l4d2ctl stored ({query})")
    stored.close()
    conn.close()
    return rate


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


def _verdict(value: float, target: float) -> str:
    return f"{value:.2f} (target ≥ {target:g}) {'✓' if value >= target else '✗'}"


def run(commands: int, rounds: int) -> list[str]:
    """Measure both sides, the limit and the ceiling at each history length; return the report's lines."""
    measured = []
    for history in TARGETS:
        rates: dict[str, list[float]] = {side: [] for side in ("ours", "theirs", "limit", "writes", "bare")}
        with tempfile.TemporaryDirectory() as scratch:
            for number in range(rounds):
                rates["ours"].append(l4d2ctl_rate(Path(scratch, f"ours{number}.db"), commands, history))
                rates["theirs"].append(eventsourcing_rate(Path(scratch, f"theirs{number}.db"), commands, history))
                rates["limit"].append(raw_sqlite_rate(Path(scratch, f"raw{number}.db"), 2 * commands) / 2)
                rates["writes"].append(writes_alone_rate(Path(scratch, f"writes{number}.db"), commands, history))
                rates["bare"].append(writes_alone_rate(Path(scratch, f"bare{number}.db"), commands, history,
                                                       indexed=False))
        measured.append((history, rates))

    def median(rates: dict[str, list[float]], side: str, against: str | None = None) -> float:
        return statistics.median(rates[side] if against is None else
                                 [a / b for a, b in zip(rates[side], rates[against], strict=True)])

    lines = ["| commands/s | l4d2ctl | eventsourcing 9 | ratio | limit: two raw durable commits | share of the "
             "limit |", "|---|---|---|---|---|---|"]
    for history, rates in measured:
        lines.append(f"| {INSTANCES} instances, {history} prior commands each | {median(rates, 'ours'):,.0f} | "
                     f"{median(rates, 'theirs'):,.0f} | {_verdict(median(rates, 'ours', 'theirs'), TARGETS[history])}"
                     f" | {median(rates, 'limit'):,.0f} | {_verdict(median(rates, 'ours', 'limit'), LIMIT_SHARE)} |")
    lines += ["", "The ceiling: the same commands' writes alone, replayed by plain sqlite3 (what any implementation "
              "storing these rows pays), with the ledger's indexes and without any secondary index:", "",
              "| commands/s | writes alone | ratio to eventsourcing | share of the limit | without indexes | ratio "
              "to eventsourcing | share of the limit |", "|---|---|---|---|---|---|---|"]
    for history, rates in measured:
        lines.append(f"| {INSTANCES} instances, {history} prior commands each | {median(rates, 'writes'):,.0f} | "
                     f"{median(rates, 'writes', 'theirs'):.2f} | {median(rates, 'writes', 'limit'):.2f} | "
                     f"{median(rates, 'bare'):,.0f} | {median(rates, 'bare', 'theirs'):.2f} | "
                     f"{median(rates, 'bare', 'limit'):.2f} |")
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
