"""Build the adapters for `--host systemd` or `--host simulated`."""

from __future__ import annotations

from pathlib import Path

from .errors import HostError
from .a2s_query import A2SQuery
from .fakes import SIMULATED, FakeJournal, FakeMounter, FakeServerQuery, FakeServiceControl, FileState
from .journal import JournalctlJournal
from .local_fs import LocalFilesystem
from .overlay import HelperMounter, KernelOverlayMounter
from .protocols import Host
from .systemd import SystemctlServiceControl, systemd_is_running

SIMULATED_STATE = ".simulated/host.json"
SIMULATED_JOURNAL = ".simulated/journal.json"
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
        journal = FileState(fs.root / SIMULATED_JOURNAL)
        services = FakeServiceControl(state, fs.root, label=SIMULATED, journal=journal)
        return Host(fs, FakeMounter(state, label=SIMULATED), services, FakeJournal(journal), FakeServerQuery(services),
                    simulated=True)
    if not systemd_is_running():
        raise HostError("systemd is not running on this machine; use --host simulated")
    if sudo_helper:
        return Host(fs, HelperMounter(sudo_helper, SUDO), SystemctlServiceControl(SUDO), JournalctlJournal(),
                    A2SQuery())
    return Host(fs, KernelOverlayMounter(), SystemctlServiceControl(), JournalctlJournal(), A2SQuery())
