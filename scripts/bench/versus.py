"""This checkout against an earlier revision, in the same run: has a change made anything slower?

Each measure runs in a fresh process, alternating between the two trees
(an earlier revision is checked out in a temporary git worktree), so that
noise on a shared machine hits both alike: a durable append of 400 events,
a projections rebuild of the cached 100,000-event ledger, 200 lifecycle
commands with in-memory adapters, and `l4d2ctl --help` as a whole process.
Figures are medians; a ratio above 1 means this checkout is faster.

Run: .venv/bin/python -m scripts.bench.versus REVISION [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .reads import cached_ledger

PROJECT = Path(__file__).resolve().parents[2]
# One measure, run inside a tree: prints a rate (higher is better).
MEASURE = r'''
import shutil, subprocess, sys, tempfile, time
from pathlib import Path
what, cached = sys.argv[1], sys.argv[2]
scratch = Path(tempfile.mkdtemp(dir=sys.argv[3]))
try:
    if what == "append":
        from scripts.bench.append import ledger_rate
        print(ledger_rate(scratch / "a.db", 400))
    elif what == "commands":
        from scripts.bench.commands import l4d2ctl_rate
        print(l4d2ctl_rate(scratch / "c.db", 200, 0))
    elif what == "rebuild":
        from ledger import Ledger
        from projections import Projections
        shutil.copy(cached, scratch / "r.db")
        with Ledger.open(scratch / "r.db") as ledger:
            started = time.perf_counter()
            events = Projections(ledger).rebuild()
            print(events / (time.perf_counter() - started))
    else:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['l4d2ctl', '--help']; "
                        "from commands.cli import main; main()"], stdout=subprocess.DEVNULL, check=True)
        print(1 / (time.perf_counter() - started))
finally:
    shutil.rmtree(scratch)
'''
MEASURES = {"append": "durable appends/s", "rebuild": "rebuild events/s", "commands": "commands/s",
            "help": "`--help` runs/s"}


def measure(tree: Path, what: str, cached: Path, scratch: str) -> float:
    """One measure in `tree`, as a fresh process importing that tree's code."""
    done = subprocess.run([sys.executable, "-c", MEASURE, what, str(cached), scratch], cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def run(revision: str, rounds: int) -> list[str]:
    """The table: each measure's median in the earlier revision and here, and their ratio."""
    cached = cached_ledger(Path.home() / ".cache" / "l4d2ctl-bench", 100_000)
    with tempfile.TemporaryDirectory() as scratch:
        os.chmod(scratch, 0o700)  # the ledger refuses a world-writable directory
        earlier = Path(scratch) / "earlier"
        subprocess.run(["git", "worktree", "add", "--detach", str(earlier), revision], cwd=PROJECT, check=True,
                       capture_output=True)
        try:
            lines = [f"| measure | {revision} | this checkout | ratio |", "|---|---|---|---|"]
            for what, label in MEASURES.items():
                theirs, ours = [], []
                for _ in range(rounds):
                    theirs.append(measure(earlier, what, cached, scratch))
                    ours.append(measure(PROJECT, what, cached, scratch))
                before, after = statistics.median(theirs), statistics.median(ours)
                lines.append(f"| {label} | {before:,.1f} | {after:,.1f} | {after / before:.2f} |")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(earlier)], cwd=PROJECT, check=True,
                           capture_output=True)
    return lines


def main() -> None:
    """Print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the git revision to compare against, e.g. main~10 or a commit id")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    print("\n".join(run(options.revision, options.rounds)))


if __name__ == "__main__":
    main()
