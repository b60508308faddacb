"""A throwaway host root on the real filesystem, driven with simulated units and mounts."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from commands.cli import cli
from commands.service.executor import Executor
from commands.service.requests import append_command
from host_adapters.factory import SIMULATED_JOURNAL, build_host
from ledger import Ledger
from projections import CommandView, Projections

from .fake_host import ALICE, SPEC, with_default_spec


def make_root(root: Path) -> Path:
    """A host root with an installation and the design example's overlays (one alias cfg present)."""
    (root / "installation/left4dead2").mkdir(parents=True)
    (root / "overlays/competitive/zonemod/left4dead2/cfg").mkdir(parents=True)
    (root / "overlays/competitive/zonemod/left4dead2/cfg/server.cfg").write_text("sv_zonemod 1\n")
    (root / "overlays/maps/custom").mkdir(parents=True)
    return root


def write_spec(path: Path, spec: dict | None = None) -> Path:
    """The spec as a YAML file."""
    path.write_text(yaml.safe_dump(spec or SPEC))
    return path


def run(root: Path, instance: str, command: str, args: dict | None = None, **links) -> CommandView:
    """Request a command against the simulated host at `root` and run the queue."""
    with Ledger.open(root / "ledger.db") as ledger:
        command_id, _ = append_command(ledger, ALICE, instance, command, with_default_spec(command, args), **links)
        executor = Executor(ledger, build_host("simulated", root))
        executor.run_pending()
        return executor.projections.command(command_id)


def steps(root: Path, command: CommandView) -> list[dict]:
    """The steps a command completed, with their output."""
    with Ledger.open(root / "ledger.db") as ledger:
        return Projections(ledger).steps(command.command_id)


def host_files(root: Path) -> dict[str, str | None]:
    """Every directory (None) and file (its text, root written as <root>) under `root`, minus the ledger and the
    simulated journal (a log of when things happened, not host state)."""
    tree = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.startswith("ledger.db") or relative == SIMULATED_JOURNAL:
            continue
        tree[relative] = None if path.is_dir() and not path.is_symlink() else path.read_text().replace(str(root), "<root>")
    return tree


def invoke(root: Path, *args: str, env: dict | None = None, input: str | None = None) -> Result:
    """The CLI in-process against `root` on a simulated host (`input` on its stdin), with no actor claimed
    unless `env` says so."""
    return CliRunner().invoke(cli, ["--root", str(root), "--host", "simulated", *args], input=input,
                              env={"L4D2CTL_ACTOR": None, "SUDO_USER": None, **(env or {})})
