"""A whole host in memory, and helpers to drive commands through the real executor against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from commands.domain.spec import parse_spec
from commands.domain.steps import instance_env
from commands.service.executor import Executor
from commands.service.requests import Requester, append_command
from host_adapters.local_fs import LocalFilesystem
from ledger import Ledger
from projections import CommandView

from .fakes import Faults, MemoryFilesystem, MemoryState, fake_host

SPEC = {
    "port": 27015,
    "arguments": ["+map c1m1_hotel", "-maxplayers 8"],
    "config": ['hostname "Friday Versus"', "sv_gametypes versus"],
    "overlays": [{"path": "competitive/zonemod", "alias": "zonemod"}, {"path": "maps/custom"}],
}
ALICE = Requester(actor="alice", os_user="root")


def with_default_spec(command: str, args: dict | None) -> dict | None:
    """The args a test means: for an init without any, the design example spec."""
    return {"spec": SPEC} if command == "init" and args is None else args


class CallCountingExecutor(Executor):
    """The executor, noting in its worker as each step completes how many adapter calls `faults` has counted so
    far: which step each call belonged to. The ledger learns of steps later, grouped, so its events cannot say."""

    def __init__(self, *args, faults: Faults, **kwargs):
        super().__init__(*args, **kwargs)
        self.faults = faults
        self.calls_at_step_end: list[int] = []

    def _step_completed(self, flight, step, io):
        self.calls_at_step_end.append(len(self.faults.calls))
        super()._step_completed(flight, step, io)


@dataclass
class FakeHost:
    """Fakes of every adapter sharing one fault plan, and the executor over them."""

    ledger: Ledger
    faults: Faults = field(default_factory=Faults)
    root: Path | None = None  # real files under this root (backups need them), else files in memory

    def __post_init__(self):
        self.state = MemoryState()
        self.fs = MemoryFilesystem(faults=self.faults) if self.root is None else LocalFilesystem(self.root)
        self.fs.write_bytes("overlays/competitive/zonemod/left4dead2/cfg/server.cfg", b"sv_zonemod 1\n")
        self.fs.make_dirs("overlays/maps/custom")
        self.fs.make_dirs("installation/left4dead2")
        self.faults.calls.clear()
        self.host = fake_host(self.fs, self.state, faults=self.faults)
        self.services, self.query, self.secrets = self.host.services, self.host.query, self.host.secrets
        self.executor = CallCountingExecutor(self.ledger, self.host, faults=self.faults)

    def run(self, instance: str, command: str, args: dict | None = None, **links) -> CommandView:
        """Request a command (init: the design example spec by default), run everything pending, return it."""
        command_id, _ = append_command(self.ledger, ALICE, instance, command, with_default_spec(command, args),
                                       **links)
        self.executor.run_pending()
        return self.executor.projections.command(command_id)

    def on_disk(self, instance: str = "alpha", spec: dict | None = None) -> None:
        """An instance's files as the original left4me tool's initialize writes them (spec.yaml as given,
        server.cfg without a final newline, the runtime directories), with nothing recorded."""
        spec = spec or SPEC
        self.fs.write_bytes(f"instances/{instance}/spec.yaml", yaml.safe_dump(spec).encode())
        self.fs.write_bytes(f"instances/{instance}/instance.env",
                            instance_env(self.host, parse_spec(spec)).encode())
        self.fs.write_bytes(f"instances/{instance}/server.cfg", "\n".join(spec.get("config", [])).encode())
        for part in ("upper", "work", "merged"):
            self.fs.make_dirs(f"runtime/{instance}/{part}")

    def init(self, instance: str = "alpha", spec: dict | None = None) -> CommandView:
        """Init an instance from `spec` (the design example by default)."""
        return self.run(instance, "init", {"spec": spec} if spec else None)

    def steps(self, command: CommandView) -> list[dict]:
        """The steps a command completed, in order, with their output."""
        return self.executor.projections.steps(command.command_id)

    def step_names(self, command: CommandView) -> list[str]:
        """The names of the steps a command completed, in order."""
        return [step["step"] for step in self.steps(command)]
