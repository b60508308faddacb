"""Durable append: the ledger vs raw sqlite3, and 8 concurrent writer processes vs one, in the same run.

Both sides use the same file system, WAL, synchronous=FULL, and one insert per
`BEGIN IMMEDIATE` transaction. The baseline is a bare insert of a row of the
same width; the ledger adds its chain head read, hashing, model validation and
six index updates. Rounds alternate between the two so that noise on a shared
machine hits both alike; figures are medians.

Run: .venv/bin/python -m scripts.bench.append [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from ledger import CommandRequested, Ledger, NewEvent
from ledger.chain import canonical_json

TARGET_RATIO = 0.5
WRITERS = 8


def _event(number: int) -> NewEvent:
    return NewEvent(
        instance=f"srv{number % 50}",
        command_id=f"cmd-{number}",
        actor="bench",
        os_user="root",
        payload=CommandRequested(command="start", args={"number": number}),
    )


def ledger_rate(path: Path, events: int) -> float:
    """Events per second appended one per transaction through `Ledger.append`."""
    batch = [_event(n) for n in range(events)]
    with Ledger.open(path) as ledger:
        started = time.perf_counter()
        for event in batch:
            ledger.append([event])
        return events / (time.perf_counter() - started)


def raw_sqlite_rate(path: Path, events: int) -> float:
    """Rows per second inserted one per transaction with plain sqlite3 and the same pragmas."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, type TEXT, instance TEXT, command_id TEXT,"
        " actor TEXT, os_user TEXT, recorded_at TEXT, request_key TEXT, payload TEXT, prev_hash TEXT, hash TEXT)"
    )
    rows = [
        (f"{n:032x}", "CommandRequested", f"srv{n % 50}", f"cmd-{n}", "bench", "root",
         "2026-11-28T00:00:00.000000Z", None,
         canonical_json({"command": "start", "args": {"number": n}, "retry_of": None, "replay_of": None}),
         "0" * 64, "f" * 64)
        for n in range(events)
    ]
    started = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO events (id, type, instance, command_id, actor, os_user, recorded_at,"
                     " request_key, payload, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
        conn.execute("COMMIT")
    rate = events / (time.perf_counter() - started)
    conn.close()
    return rate


def _writer(path: str, events: int, go) -> None:
    batch = [_event(n) for n in range(events)]
    with Ledger.open(path, busy_timeout=120) as ledger:
        go.wait()
        for event in batch:
            ledger.append([event])


def concurrent_rate(path: Path, events: int, writers: int = WRITERS) -> float:
    """Events per second appended by `writers` processes at once, `events` in all."""
    Ledger.open(path).close()
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    processes = [context.Process(target=_writer, args=(str(path), events // writers, go)) for _ in range(writers)]
    for process in processes:
        process.start()
    time.sleep(1.0)  # let every writer import and open the ledger before the clock starts
    started = time.perf_counter()
    go.set()
    for process in processes:
        process.join()
    return (events // writers * writers) / (time.perf_counter() - started)


def run(events: int, rounds: int) -> list[str]:
    """Measure both comparisons; return the report's lines."""
    raw, ours, together = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for number in range(rounds):
            raw.append(raw_sqlite_rate(Path(scratch, f"raw{number}.db"), events))
            ours.append(ledger_rate(Path(scratch, f"ledger{number}.db"), events))
            together.append(concurrent_rate(Path(scratch, f"concurrent{number}.db"), events))
    ratio = statistics.median(o / r for o, r in zip(ours, raw, strict=True))
    concurrency = statistics.median(t / o for t, o in zip(together, ours, strict=True))
    return [
        "| append (durable, one event per transaction) | events/s | ratio |",
        "|---|---|---|",
        f"| raw sqlite3, same pragmas (baseline) | {statistics.median(raw):,.0f} | 1.00 |",
        f"| l4d2ctl ledger, one writer | {statistics.median(ours):,.0f} | {ratio:.2f} "
        f"(target ≥ {TARGET_RATIO}) {'✓' if ratio >= TARGET_RATIO else '✗'} |",
        f"| l4d2ctl ledger, {WRITERS} writer processes at once | {statistics.median(together):,.0f} | "
        f"{concurrency:.2f} of one writer |",
    ]


def main() -> None:
    """Print the append report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    print("\n".join(run(options.events, options.rounds)))


if __name__ == "__main__":
    main()
