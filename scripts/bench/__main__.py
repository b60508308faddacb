"""Run every benchmark in one go, print the tables, and write them to docs/benchmarks.md.

Every figure is a ratio against a baseline measured in the same run (these
machines are shared and noisy), medians of several repetitions.

Run: .venv/bin/python -m scripts.bench [--quick]
(the commands comparison needs the bench extra: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from . import append, backup, cold_start, commands, reads, replication

REPORT = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
# The real-systemd figures come from the nspawn end-to-end test (root only), not from this script: a
# regenerated report keeps that section as it was written.
SYSTEMD_SECTION = "## On a real systemd"


def machine() -> str:
    """One line on what the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    disk = subprocess.run(["df", "-hT", "/tmp"], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    return (f"{os.cpu_count()} × {cpu}, {memory:.0f} GiB, /tmp on {disk}; Linux {platform.release()}; "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"sqlite-utils {version('sqlite-utils')}, pydantic {version('pydantic')}")


def main() -> None:
    """Measure everything, print it, and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and no 1M-event ledger (a smoke run)")
    options = parser.parse_args()
    rounds = 3 if options.quick else 7
    sizes = [10_000, 100_000] if options.quick else [10_000, 100_000, 1_000_000]
    sections = [
        ("Append", append.__doc__, append.run(2000, rounds)),
        ("Commands", commands.__doc__, commands.run(200, max(1, rounds // 2))),
        ("Reads and rebuild", reads.__doc__, reads.run(sizes, rounds, Path.home() / ".cache" / "l4d2ctl-bench")),
        ("CLI cold start", cold_start.__doc__, cold_start.run(rounds * 2 + 1)),
        ("Backup", backup.__doc__, backup.run(256 if options.quick else 1024, 3)),
        ("Replication", replication.__doc__, replication.run(1000 if options.quick else 2000, 3,
                                                              10 if options.quick else 20)),
    ]
    lines = ["# Benchmarks", "", f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}.", "",
             "Regenerate with `.venv/bin/python -m scripts.bench`. Every ratio is against a baseline measured in "
             "the same run; figures are medians.", ""]
    for title, doc, table in sections:
        lines += [f"## {title}", "", doc.split("\n\nRun:")[0].strip(), "", *table, ""]
    text = "\n".join(lines)
    print(text)
    kept = REPORT.read_text().partition(SYSTEMD_SECTION)[2] if REPORT.exists() else ""
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(text + (f"\n{SYSTEMD_SECTION}{kept}" if kept else ""))


if __name__ == "__main__":
    main()
