"""CLI cold start: `l4d2ctl --help` as a whole process, against bare Python importing the same libraries; and a
`--no-wait` append (a whole process, on a throwaway simulated root) against `l4d2ctl --help`.

Run: .venv/bin/python -m scripts.bench.cold_start [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from .reads import BASELINE, installed_l4d2ctl, wall


def simulated_instance(root: Path) -> list[str]:
    """An instance `bench` initialized on a simulated host at `root`; the l4d2ctl command line for that root."""
    (root / "installation").mkdir()
    (root / "spec.yaml").write_text("port: 27015\n")
    where = [installed_l4d2ctl(), "--root", str(root), "--host", "simulated"]
    subprocess.run([*where, "init", "bench", "--spec", str(root / "spec.yaml")], check=True, capture_output=True)
    return where


def run(rounds: int) -> list[str]:
    """Median wall time of both, interleaved; return the report's lines."""
    bare, ours, appends = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        where = simulated_instance(Path(scratch))
        l4d2ctl = where[0]
        for _ in range(rounds):
            bare.append(wall(BASELINE))
            ours.append(wall([l4d2ctl, "--help"]))
            appends.append(wall([*where, "start", "bench", "--no-wait"]))
    ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    append_ratio = statistics.median(a / o for a, o in zip(appends, ours, strict=True))
    return [
        "| cold start | wall time | ratio |",
        "|---|---|---|",
        f"| bare python importing click, rich, pydantic, sqlite_utils, yaml | {statistics.median(bare) * 1000:.0f} ms | 1.00 |",
        f"| l4d2ctl --help | {statistics.median(ours) * 1000:.0f} ms | {ratio:.2f} |",
        f"| l4d2ctl start NAME --no-wait, against --help (target ≤ 1.3) | {statistics.median(appends) * 1000:.0f} ms "
        f"| {append_ratio:.2f} |",
    ]


def main() -> None:
    """Print the cold-start report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    print("\n".join(run(parser.parse_args().rounds)))


if __name__ == "__main__":
    main()
