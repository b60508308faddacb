"""Replication: durable appends with Litestream replicating the ledger (to a file replica) against the same appends
without it, in the same run; and how far the replica trails under that load.

Both sides append events one per durable transaction through `Ledger.append`
(as scripts.bench.append does), each round on a fresh ledger, alternating.
A round is 10,000 events by default: long enough for the WAL to reach the
size it then keeps, as a ledger replicated for months has (in the first
2,000 of a fresh file the replicated side's WAL is still growing, and weighs
more: `--events 2000` shows it).
The replicated side runs `litestream replicate` with the configuration
`l4d2ctl replicate` writes, started before the first append.

Lag: while one process appends as fast as it can with replication running,
the replica is restored every half second into a temporary file; a sample is
the age of the newest event the restored replica holds, taken when the
restore began (so it includes Litestream's one-second sync interval, and is
an upper bound by the restore's own start-up).

The largest the ledger's WAL file grew during that load is reported too: Litestream's read transaction
keeps the WAL from starting over but at the moments it lets go (ledger/wal_room.py).

Run: .venv/bin/python -m scripts.bench.replication [--events N] [--rounds R] [--seconds S]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from commands.service.replication import Litestream, default_litestream
from ledger import Ledger, parse_time

from .append import _event, ledger_rate

TARGET_RATIO = 0.9
SAMPLE_EVERY = 0.5


@contextmanager
def replicated(db: Path, url: str) -> Iterator[None]:
    """Litestream replicating `db` (created first) to `url` while the block runs."""
    Ledger.open(db).close()
    litestream = Litestream(default_litestream())
    with litestream.configured(db, url) as config:
        child = subprocess.Popen([litestream.program, "replicate", "-config", config], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        try:
            yield
        finally:
            child.terminate()
            child.wait(30)


def lag_samples(seconds: float) -> tuple[list[float], int]:
    """Replica lag samples (seconds) while one writer appends durably for `seconds`; and the largest the
    ledger's WAL file grew meanwhile (bytes)."""
    samples: list[float] = []
    largest = 0
    with tempfile.TemporaryDirectory() as scratch:
        db, url = Path(scratch) / "ledger.db", f"file://{scratch}/replica"
        with replicated(db, url):
            stop = threading.Event()

            def append() -> None:
                with Ledger.open(db) as ledger:
                    number = 0
                    while not stop.is_set():
                        ledger.append([_event(number)])
                        number += 1

            writer = threading.Thread(target=append)
            writer.start()
            deadline = time.monotonic() + seconds
            litestream = Litestream(default_litestream())
            while time.monotonic() < deadline:
                largest = max(largest, _size(db.with_name(db.name + "-wal")))
                began = datetime.now(timezone.utc)
                with litestream.restored(db, url) as replica:
                    head, _ = replica.head()
                    if head:
                        newest = next(replica.rows(columns=("recorded_at",), after_seq=head - 1))["recorded_at"]
                        samples.append((began - parse_time(newest)).total_seconds())
                time.sleep(SAMPLE_EVERY)
            stop.set()
            writer.join()
    return samples, largest


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def run(events: int, rounds: int, seconds: float) -> list[str]:
    """Append rates with and without replication (interleaved), and the lag; return the report's lines."""
    plain, shipped = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as scratch:
            plain.append(ledger_rate(Path(scratch) / "ledger.db", events))
        with tempfile.TemporaryDirectory() as scratch:
            with replicated(Path(scratch) / "ledger.db", f"file://{scratch}/replica"):
                shipped.append(ledger_rate(Path(scratch) / "ledger.db", events))
    ratio = statistics.median(s / p for s, p in zip(shipped, plain, strict=True))
    verdict = "✓" if ratio >= TARGET_RATIO else "✗"
    samples, largest = lag_samples(seconds)
    lags = sorted(samples)
    p50 = statistics.median(lags)
    p99 = lags[min(len(lags) - 1, round(0.99 * (len(lags) - 1)))]
    return [
        "| durable append, one event per transaction | events/s | ratio |",
        "|---|---|---|",
        f"| the ledger alone (baseline) | {statistics.median(plain):,.0f} | 1.00 |",
        f"| the ledger with Litestream replicating it to a file replica | {statistics.median(shipped):,.0f} | "
        f"{ratio:.2f} (target ≥ {TARGET_RATIO}) {verdict} |",
        "",
        f"| replica lag under that load ({len(lags)} samples over {seconds:g} s) | seconds |",
        "|---|---|",
        f"| p50 | {p50:.2f} |",
        f"| p99 | {p99:.2f} |",
        "",
        f"The ledger's WAL file meanwhile: at most {largest / (1 << 20):,.0f} MiB.",
    ]


def main() -> None:
    """Print the replication report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    options = parser.parse_args()
    print("\n".join(run(options.events, options.rounds, options.seconds)))


if __name__ == "__main__":
    main()
