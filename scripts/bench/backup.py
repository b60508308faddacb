"""Backup throughput: `l4d2ctl backup` of an upper layer of 1 GiB, as a whole process, against GNU tar of the same
tree, in the same run.

The tree is 64 files of 16 MiB of random bytes (incompressible, like a
workshop map's .vpk) read into the page cache once before the rounds, so both
sides read from memory. l4d2ctl's side is the whole command on a simulated
host: the CLI, the ledger's three durable commits, the upper layer walked and
archived (Python's tarfile, as the helper does on a real host, where the tar
also crosses a pipe), hashed with sha256 on the way, fsynced and renamed, then
the manifest. The baselines are `tar -cf` alone, and `tar -cf` followed by
`sha256sum` and `sync` of the archive (what a backup needs to be a backup:
a checksum, and on disk). Rounds alternate between the sides.

Run: .venv/bin/python -m scripts.bench.backup [--mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from .cold_start import simulated_instance
from .reads import wall

FILE_MIB = 16


def make_tree(upper: Path, mib: int) -> None:
    """`mib` MiB of random bytes in files of FILE_MIB MiB under upper/left4dead2/addons/."""
    addons = upper / "left4dead2" / "addons"
    addons.mkdir(parents=True, exist_ok=True)
    for index in range(max(mib // FILE_MIB, 1)):
        (addons / f"workshop_{index:03}.vpk").write_bytes(os.urandom(FILE_MIB * 2**20))


def run(mib: int, rounds: int) -> list[str]:
    """Median wall times of both sides; return the report's lines."""
    if shutil.which("tar") is None:
        raise SystemExit("bench: needs GNU tar")
    ours, plain, checked = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        where = simulated_instance(root)
        upper = root / "runtime" / "bench" / "upper"
        make_tree(upper, mib)
        subprocess.run(["tar", "-cf", "/dev/null", "-C", str(upper), "."], check=True)  # into the page cache
        archive = root / "baseline.tar"
        for _ in range(rounds):
            ours.append(wall([*where, "backup", "bench", "--keep", "1"]))
            plain.append(wall(["tar", "-cf", str(archive), "-C", str(upper), "."]))
            archive.unlink()
            checked.append(wall(["sh", "-c", 'tar -cf "$1" -C "$2" . && sha256sum "$1" >/dev/null && sync "$1"',
                                 "sh", str(archive), str(upper)]))
            archive.unlink()
    size = mib * 2**20

    def row(label: str, seconds: list[float], baseline: list[float]) -> str:
        ratio = statistics.median(b / s for s, b in zip(seconds, baseline, strict=True))
        return (f"| {label} | {statistics.median(seconds):.2f} s | {size / statistics.median(seconds) / 2**20:,.0f} "
                f"MiB/s | {ratio:.2f} |")

    return [
        f"| backup of a {mib} MiB upper layer | wall time | throughput | throughput ratio |",
        "|---|---|---|---|",
        row("`tar -cf` (baseline)", plain, plain),
        row("`tar -cf` + `sha256sum` + `sync`", checked, plain),
        row("`l4d2ctl backup` (whole process: ledger, tar, sha256, fsync, manifest)", ours, plain),
        f"| l4d2ctl against tar + sha256sum + sync | | | "
        f"{statistics.median(c / o for o, c in zip(ours, checked, strict=True)):.2f} |",
    ]


def main() -> None:
    """Print the backup report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    print("\n".join(run(options.mib, options.rounds)))


if __name__ == "__main__":
    main()
