"""Reads on large ledgers through the installed CLI, against bare Python with the same imports.

For each ledger size, the installed `l4d2ctl` runs `history NAME --json`,
`status --json` and `audit --actor eve --json` (eve requests the same 20
commands at every size, so the answer does not grow with the ledger), each
timed as a whole process, interleaved with the baseline
`python -c "import click, rich, pydantic, sqlite_utils, yaml"`.
Figures are medians; ratios are against the baseline from the same run.
Then `projections rebuild` is timed on the largest ledger.

Run: .venv/bin/python -m scripts.bench.reads [--sizes 10000,100000,1000000] [--rounds 7]
Ledgers are built once and cached (building 1M events takes a few minutes).
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .synthetic import build_ledger

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("commands", "ledger", "projections", "host_adapters")
BASELINE = [sys.executable, "-c", "import click, rich, pydantic, sqlite_utils, yaml"]
INSTANCES = 1000
READS = {
    "history": ["history", "srv0042", "--json"],
    "status": ["status", "--json"],
    "audit --actor": ["audit", "--actor", "eve", "--json"],
}
TARGET_VS_BARE = 1.5
TARGET_GROWTH = 1.2
TARGET_REBUILD = 100_000


def cached_ledger(cache: Path, events: int) -> Path:
    """A synthetic ledger of `events` events, built on first use and kept in `cache`."""
    path = cache / f"ledger-{events}.db"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f"building-{events}.db"
        for stale in cache.glob(f"building-{events}.db*"):
            stale.unlink()
        print(f"building a {events:,}-event ledger in {cache} (once)...", file=sys.stderr, flush=True)
        build_ledger(partial, events, INSTANCES)
        partial.rename(path)
    return path


def installed_l4d2ctl() -> str:
    """The l4d2ctl program beside this Python (scripts/test installs it), its modules compiled as a regular install
    leaves them (scripts/venv.sh does it too; again here, for modules edited since): otherwise, where
    PYTHONDONTWRITEBYTECODE is set, every run would compile l4d2ctl from source while the baseline's libraries
    load compiled."""
    l4d2ctl = shutil.which("l4d2ctl", path=str(Path(sys.executable).parent))
    if l4d2ctl is None:
        raise SystemExit("bench: l4d2ctl is not installed beside this Python (run scripts/test once)")
    for package in PACKAGES:
        compileall.compile_dir(PROJECT / package, quiet=1)
    return l4d2ctl


def wall(command: list[str]) -> float:
    """Seconds one process takes from start to exit (its output and hints discarded)."""
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure_reads(l4d2ctl: str, ledger: Path, rounds: int) -> dict[str, float]:
    """Median wall time of the baseline and of each read, interleaved round by round."""
    subprocess.run([l4d2ctl, "--db", str(ledger), "projections", "rebuild"], stdout=subprocess.DEVNULL, check=True)
    samples: dict[str, list[float]] = {"bare python": [], **{name: [] for name in READS}}
    for _ in range(rounds):
        samples["bare python"].append(wall(BASELINE))
        for name, args in READS.items():
            samples[name].append(wall([l4d2ctl, "--db", str(ledger), *args]))
    return {name: statistics.median(values) for name, values in samples.items()}


def measure_rebuild(ledger: Path, rounds: int) -> float:
    """Events per second of a full projection rebuild (median of `rounds`)."""
    from ledger import Ledger
    from projections import Projections

    rates = []
    with Ledger.open(ledger) as opened:
        for _ in range(rounds):
            started = time.perf_counter()
            events = Projections(opened).rebuild()
            rates.append(events / (time.perf_counter() - started))
    return statistics.median(rates)


def run(sizes: list[int], rounds: int, cache: Path) -> list[str]:
    """Measure everything; return the report's lines."""
    l4d2ctl = installed_l4d2ctl()
    results = {size: measure_reads(l4d2ctl, cached_ledger(cache, size), rounds) for size in sizes}
    smallest, largest = min(sizes), max(sizes)
    lines = [f"| read | {' | '.join(f'{size:,} events' for size in sizes)} | vs bare at {largest:,} "
             f"(target ≤ {TARGET_VS_BARE}) | growth {smallest:,}→{largest:,} (target ≤ {TARGET_GROWTH}) |",
             "|---|" + "---|" * len(sizes) + "---|---|"]
    for name in ["bare python", *READS]:
        cells = " | ".join(f"{results[size][name] * 1000:.0f} ms" for size in sizes)
        if name == "bare python":
            lines.append(f"| {name} | {cells} | 1.00 | {results[largest][name] / results[smallest][name]:.2f} |")
            continue
        vs_bare = results[largest][name] / results[largest]["bare python"]
        growth = results[largest][name] / results[smallest][name]
        lines.append(f"| l4d2ctl {name} | {cells} | {vs_bare:.2f} {'✓' if vs_bare <= TARGET_VS_BARE else '✗'} | "
                     f"{growth:.2f} {'✓' if growth <= TARGET_GROWTH else '✗'} |")
    rate = measure_rebuild(cached_ledger(cache, largest), max(1, rounds // 3))
    lines.append("")
    lines.append(f"projections rebuild at {largest:,} events: {rate:,.0f} events/s "
                 f"(target ≥ {TARGET_REBUILD:,}) {'✓' if rate >= TARGET_REBUILD else '✗'}")
    return lines


def main() -> None:
    """Print the read and rebuild report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "l4d2ctl-bench")
    options = parser.parse_args()
    print("\n".join(run([int(size) for size in options.sizes.split(",")], options.rounds, options.cache)))


if __name__ == "__main__":
    main()
