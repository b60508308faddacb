"""CLI cold start: `l4d2ctl --help` as a whole process, against bare Python importing the same libraries.

Run: .venv/bin/python -m scripts.bench.cold_start [--rounds R]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

from .reads import BASELINE, wall


def run(rounds: int) -> list[str]:
    """Median wall time of both, interleaved; return the report's lines."""
    l4d2ctl = shutil.which("l4d2ctl", path=str(Path(sys.executable).parent))
    if l4d2ctl is None:
        raise SystemExit("bench: l4d2ctl is not installed beside this Python (run scripts/test once)")
    bare, ours = [], []
    for _ in range(rounds):
        bare.append(wall(BASELINE))
        ours.append(wall([l4d2ctl, "--help"]))
    ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    return [
        "| cold start | wall time | ratio |",
        "|---|---|---|",
        f"| bare python importing click, rich, pydantic, sqlite_utils, yaml | {statistics.median(bare) * 1000:.0f} ms | 1.00 |",
        f"| l4d2ctl --help | {statistics.median(ours) * 1000:.0f} ms | {ratio:.2f} |",
    ]


def main() -> None:
    """Print the cold-start report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    print("\n".join(run(parser.parse_args().rounds)))


if __name__ == "__main__":
    main()
