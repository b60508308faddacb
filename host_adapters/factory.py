"""Build the adapters for `--host systemd` or `--host simulated`."""

from __future__ import annotations

from pathlib import Path

from .errors import HostError
from .fakes import SIMULATED, FakeMounter, FakeServiceControl, FileState
from .local_fs import LocalFilesystem
from .overlay import HelperMounter, KernelOverlayMounter
from .protocols import Host
from .systemd import SystemctlServiceControl, systemd_is_running

SIMULATED_STATE = ".simulated/host.json"
SUDO = ["sudo", "-n"]


def build_host(kind: str, root: Path, sudo_helper: str | None = None) -> Host:
    """The real host (systemd + kernel overlayfs) or a simulated one (real files, recorded units and mounts).

    With `sudo_helper` (the path of left4me-overlay), privileged steps go through
    `sudo -n`: systemctl for the units, the helper for mounts, as the sudoers
    snippet in scripts/host allows.
    """
    fs = LocalFilesystem(root)
    if kind == "simulated":
        state = FileState(fs.root / SIMULATED_STATE)
        label = SIMULATED
        return Host(fs, FakeMounter(state, label=label), FakeServiceControl(state, fs.root, label=label), simulated=True)
    if not systemd_is_running():
        raise HostError("systemd is not running on this machine; use --host simulated")
    if sudo_helper:
        return Host(fs, HelperMounter(sudo_helper, SUDO), SystemctlServiceControl(SUDO))
    return Host(fs, KernelOverlayMounter(), SystemctlServiceControl())
