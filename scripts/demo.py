"""Walk a throwaway host through install → init → start → status → stop → backup → reset → restore → start →
history → audit → verify.

Everything runs through the installed `l4d2ctl` with `--host simulated`, so it
works on any machine: instance files are real, systemd units and overlay
mounts are recorded under the root instead of applied, and SteamCMD is the
stand-in of scripts/host/steamcmd (no download).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

STANDIN_STEAMCMD = Path(__file__).resolve().parent / "host" / "steamcmd"
SPEC = """\
port: 27015
arguments: ["+map c1m1_hotel", "-maxplayers 8"]
config: ["hostname \\"Friday Versus\\"", "sv_gametypes versus"]
overlays:
  - path: competitive/zonemod
    alias: zonemod          # its cfg/server.cfg is staged as server_zonemod.cfg
  - path: maps/custom
"""


def make_host(root: Path) -> Path:
    """A host root holding a (tiny) game installation and two content overlays; returns the spec file."""
    (root / "installation/left4dead2/cfg").mkdir(parents=True)
    (root / "installation/srcds_run").write_text("#!/bin/sh\n# stand-in for the game\n")
    zonemod = root / "overlays/competitive/zonemod/left4dead2/cfg"
    zonemod.mkdir(parents=True)
    (zonemod / "server.cfg").write_text("sv_allow_lobby_connect_only 0\nmp_gamemode versus\n")
    (root / "overlays/maps/custom/left4dead2/addons").mkdir(parents=True)
    (root / "overlays/maps/custom/left4dead2/addons/custom_map.vpk").write_bytes(b"VPK")
    spec = root / "friday.yaml"
    spec.write_text(SPEC)
    return spec


def main() -> int:
    """Run the walk-through; stop at the first unexpected exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="an empty or new directory for the host root (default: a new "
                                                  "temporary directory)")
    options = parser.parse_args()
    if options.root is not None and options.root.exists() and any(options.root.iterdir()):
        parser.error(f"--root {options.root}: not empty (the demo builds a host of its own; give a new directory)")
    root = options.root or Path(tempfile.mkdtemp(prefix="l4d2ctl-demo-"))
    spec = make_host(root)
    l4d2ctl = shutil.which("l4d2ctl", path=str(Path(sys.executable).parent)) or "l4d2ctl"
    terminal = sys.stdout.isatty()
    env = {**os.environ, "LEFT4ME_ROOT": str(root), "L4D2CTL_HOST": "simulated", "L4D2CTL_ACTOR": "demo-operator",
           "L4D2CTL_STEAMCMD": str(STANDIN_STEAMCMD),
           "COLUMNS": os.environ.get("COLUMNS", "110"), **({"FORCE_COLOR": "1"} if terminal else {})}
    bold, plain = ("\033[1m", "\033[0m") if terminal else ("", "")

    def step(title: str, *args: str, expect: int = 0) -> str:
        print(f"\n{bold}── {title}{plain}\n$ l4d2ctl {shlex.join(args)}", flush=True)
        result = subprocess.run([l4d2ctl, *args], env=env, stdout=subprocess.PIPE, text=True)
        print(result.stdout, end="", flush=True)
        if result.returncode != expect:
            raise SystemExit(f"demo: `l4d2ctl {shlex.join(args)}` exited {result.returncode}, expected {expect}")
        return result.stdout

    print(f"demo host root: {root}  (LEFT4ME_ROOT; ledger at {root}/ledger.db)")
    step("0. install: the game into the shared installation through SteamCMD (a stand-in here)", "install")
    step("1. init: record the blueprint and write the instance's files", "init", "friday", "--spec", str(spec))
    step("2. start: stage server.cfg and the zonemod alias cfg, enable the unit", "start", "friday")
    step("3. status: what the ledger says about every instance", "status")
    saved = root / "runtime/friday/upper/left4dead2/addons/workshop_map.vpk"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_bytes(b"what the server downloaded while it ran")
    step("4. stop", "stop", "friday")
    step("   backup: the upper layer (what the server wrote), archived with its sha256", "backup", "friday")
    backup = json.loads(step("   backups: the instance's backups, as JSON for scripts", "backups", "friday",
                             "--json"))[-1]["id"]
    step("5. reset: remove the instance's files, keep its blueprint", "reset", "friday")
    print(f"\n   instances/friday exists after reset: {(root / 'instances/friday').exists()}; "
          f"{saved.name} too: {saved.exists()}")
    step("   restore: the upper layer back from the backup, once its checksum holds", "restore", "friday", backup)
    print(f"\n   {saved.name} is back: {saved.exists()}")
    step("6. start again: re-initialized from the blueprint stored in the ledger", "start", "friday")
    step("   a start of an instance nobody initialized is rejected (exit 3), and recorded", "start", "ghost",
         expect=3)
    step("7. history: every command of friday, oldest first", "history", "friday")
    step("8. audit: who did what, across all instances", "audit")
    last = json.loads(step("   the same as JSON, for scripts (last entry)", "audit", "--instance", "friday",
                           "--command", "reset", "--json"))[-1]
    step("   one command in full", "show", last["command_id"])
    step("9. verify: the hash chain and SQLite's integrity check", "verify")
    print(f"\nDone. Inspect the ledger directly, e.g.:\n"
          f"  .venv/bin/sqlite-utils tables {root}/ledger.db --counts\n"
          f"  .venv/bin/sqlite-utils rows {root}/ledger.db events -c seq -c type -c instance -c actor --limit 5\n"
          f"Remove the throwaway root with: rm -r {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
