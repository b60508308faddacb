"""Build the adapters for `--host systemd` or `--host simulated`."""

from __future__ import annotations

from pathlib import Path

from .a2s_query import A2SQuery
from .backups import BackupFiles
from .errors import HostError
from .helper import DEFAULT_HELPER, HelperClient, HelperRuntime, HelperSecrets
from .journal import HelperJournal, JournalctlJournal
from .local_fs import LocalFilesystem
from .overlay import HelperMounter
from .protocols import Host, HostKind
from .steamcmd import DEFAULT_STEAMCMD, SteamCmd
from .systemd import SystemctlServiceControl, systemd_is_running

SIMULATED_STATE = ".simulated/host.json"
SIMULATED_JOURNAL = ".simulated/journal.json"
SIMULATED_SECRETS = ".simulated/secrets.json"


def build_host(kind: str, root: Path, helper: str = DEFAULT_HELPER, steamcmd: str = DEFAULT_STEAMCMD) -> Host:
    """The real host (systemd, kernel overlayfs, the privileged helper) or a simulated one (real instance files,
    recorded units, mounts and secrets).

    On the real host every privileged step goes through `helper` (left4me-host):
    run directly by root, through `sudo -n` by anyone else; it must be
    configured for this same root.
    """
    fs = LocalFilesystem(root)
    installer = SteamCmd(steamcmd, fs.root / "installation", never_as_root=kind != HostKind.SIMULATED)
    if kind == HostKind.SIMULATED:
        from .simulated import SIMULATED, FileState, simulated_host  # not loaded for a real host

        return simulated_host(fs, FileState(fs.root / SIMULATED_STATE), FileState(fs.root / SIMULATED_JOURNAL),
                              FileState(fs.root / SIMULATED_SECRETS, mode=0o600), installer=installer,
                              label=SIMULATED)
    if not systemd_is_running():
        raise HostError("systemd is not running on this machine; use --host simulated")
    client = HelperClient(helper)
    client.check_root(fs.root)
    journal = JournalctlJournal() if client.as_root else HelperJournal(client)
    return Host(fs, HelperMounter(client), SystemctlServiceControl(client), journal, A2SQuery(),
                HelperRuntime(client), HelperSecrets(client), installer, BackupFiles(fs), company=client.company)
