"""Build the adapters for `--host systemd` or `--host simulated`."""

from __future__ import annotations

from pathlib import Path

from .errors import HostError
from .fakes import SIMULATED, FakeMounter, FakeServiceControl, FileState
from .local_fs import LocalFilesystem
from .overlay import KernelOverlayMounter
from .protocols import Host
from .systemd import SystemctlServiceControl, systemd_is_running

SIMULATED_STATE = ".simulated/host.json"


def build_host(kind: str, root: Path, command_prefix: list[str] | None = None) -> Host:
    """The real host (systemd + kernel overlayfs) or a simulated one (real files, recorded units and mounts)."""
    fs = LocalFilesystem(root)
    if kind == "simulated":
        state = FileState(fs.root / SIMULATED_STATE)
        label = SIMULATED
        return Host(fs, FakeMounter(state, label=label), FakeServiceControl(state, fs.root, label=label), simulated=True)
    if not systemd_is_running():
        raise HostError("systemd is not running on this machine; use --host simulated")
    return Host(fs, KernelOverlayMounter(command_prefix), SystemctlServiceControl(command_prefix))
