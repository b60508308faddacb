"""Durable single-writer append: the ledger vs raw sqlite3, measured in the same run.

Both sides use the same file system, WAL, synchronous=FULL, and one insert per
`BEGIN IMMEDIATE` transaction. The baseline is a bare insert of a row of the
same width; the ledger adds its chain head read, hashing, model validation and
six index updates. Rounds alternate between the two so that noise on a shared
machine hits both alike; the figure is the median ratio.

Run: .venv/bin/python -m scripts.bench.append [--events N] [--rounds R] [--dir D]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from ledger import CommandRequested, Ledger, NewEvent
from ledger.chain import canonical_json

TARGET_RATIO = 0.5


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


def main() -> None:
    """Run alternating rounds and print both rates, the median ratio and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="directory for the files (default: a temp dir)")
    options = parser.parse_args()

    raw, ours = [], []
    with tempfile.TemporaryDirectory(dir=options.dir) as scratch:
        for round_number in range(options.rounds):
            raw.append(raw_sqlite_rate(Path(scratch, f"raw{round_number}.db"), options.events))
            ours.append(ledger_rate(Path(scratch, f"ledger{round_number}.db"), options.events))
    ratios = [o / r for o, r in zip(ours, raw)]
    ratio = statistics.median(ratios)
    print(f"raw sqlite3, one insert per transaction: {statistics.median(raw):8.0f} events/s (median of {options.rounds})")
    print(f"l4d2ctl ledger append:                   {statistics.median(ours):8.0f} events/s (median of {options.rounds})")
    print(f"ratio (median of per-round ratios):      {ratio:8.2f}  target >= {TARGET_RATIO}  "
          f"{'MET' if ratio >= TARGET_RATIO else 'MISSED'}")


if __name__ == "__main__":
    main()
