"""The narrow protocols the executor drives the host through, and the bundle of them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .batches import Company

CFG_DIR = "left4dead2/cfg"  # where the game reads its cfgs, in the merged tree and in every layer


def valid_text(text: str) -> str:
    """`text` as UTF-8 can carry it: the undecodable bytes of a file name (Python's surrogate escapes) become
    U+FFFD. What the host says ends up in the ledger, which stores and hashes UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class HostKind(StrEnum):
    """Which host the adapters drive: the real one, or a simulation kept in files under the root."""

    SYSTEMD = "systemd"
    SIMULATED = "simulated"


@dataclass
class StepIO:
    """What a long host operation may use: a line sink for its output, and a cancel check."""

    emit: Callable[[str], None] = lambda line: None
    should_cancel: Callable[[], bool] = lambda: False
    lines: list[str] = field(default_factory=list)
    keep: bool = True

    def say(self, line: str) -> None:
        """Pass one output line on (as valid text: see `valid_text`), and record it in `lines` unless told not to
        keep what may never end (`logs -f`)."""
        line = valid_text(line)
        if self.keep:
            self.lines.append(line)
        self.emit(line)


class Filesystem(Protocol):
    """Files under the host root, addressed by relative POSIX paths; never leaves the root."""

    root: Path

    def make_dirs(self, path: str) -> None:
        """Create a directory and its missing parents."""

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace a file's content atomically (temp file, fsync, rename)."""

    def read_bytes(self, path: str) -> bytes:
        """A file's content; refused (`HostError`) past a size no cfg or env file reaches."""

    def write_from(self, path: str, fill: Callable[[BinaryIO], object], mode: int | None = None) -> None:
        """Replace a file atomically with what `fill` writes into it (of any size); with `mode`, exactly that mode."""

    def open_read(self, path: str) -> AbstractContextManager[BinaryIO]:
        """A regular file, open for reading (of any size)."""

    def exists(self, path: str) -> bool:
        """Whether anything (file, directory, symlink) is at `path`."""

    def list_names(self, path: str) -> list[str]:
        """Names in a directory, sorted; empty when it does not exist."""

    def remove_file(self, path: str) -> None:
        """Remove a file if it exists."""

    def remove_tree(self, path: str) -> bool:
        """Remove a directory tree if it exists (whether it did); a symlink there is removed, not followed."""


class Mounter(Protocol):
    """Kernel overlayfs mounts (the unit's ExecStartPre mounts); unmount is idempotent."""

    def unmount(self, merged: Path, io: StepIO) -> None:
        """Unmount `merged` if it is mounted."""

    def is_mounted(self, merged: Path) -> bool:
        """Whether something is mounted at `merged`."""


class RuntimeTree(Protocol):
    """runtime/NAME, which only root changes: the upper layer the game owns, the work and merged directories."""

    def prepare(self, name: str, io: StepIO) -> None:
        """Create runtime/NAME/{upper,work,merged} with their owners (idempotent)."""

    def stage(self, name: str, io: StepIO) -> None:
        """Replace the upper layer's server*.cfg with instances/NAME/cfg/'s, server.cfg with the secrets appended,
        and write the unit's environment from instance.env; refused while the overlay is mounted."""

    def remove(self, name: str, io: StepIO) -> None:
        """Remove runtime/NAME and the instance's secret values; refused while the overlay is mounted."""

    def archive(self, name: str, excludes: list[str], out: BinaryIO, io: StepIO) -> None:
        """Write a tar of the upper layer to `out` (paths relative to it; regular files, directories and symlinks,
        as they are; what matches a glob of `excludes` left out); refused while the overlay is mounted."""

    def restore(self, name: str, archive: BinaryIO, io: StepIO) -> None:
        """Replace the upper layer with the tar read from `archive` (an `archive`'s), its entries owned by the game;
        refused while the overlay is mounted. The old upper layer stays until the new one is complete."""


class SecretStore(Protocol):
    """Secret cvar values, kept outside the ledger where only root (and, staged, the game) can read them."""

    def put(self, name: str, cvar: str, value: str) -> str:
        """Keep `value` aside until a `secret-set` command commits it; its keyed fingerprint."""

    def commit(self, name: str, cvar: str, fingerprint: str, io: StepIO) -> None:
        """Make the value kept aside under `fingerprint` the cvar's value (idempotent)."""

    def unset(self, name: str, cvar: str, io: StepIO) -> None:
        """Remove the cvar's value (idempotent)."""


@dataclass(frozen=True)
class UnitStatus:
    """What systemd says of an instance's unit right now."""

    active_state: str
    sub_state: str
    enabled: bool
    restarts: int = 0

    @property
    def active(self) -> bool:
        """Whether the unit is active (its server process runs)."""
        return self.active_state == "active"

    def describe(self) -> str:
        """The state as `systemctl status` words it, e.g. `activating (auto-restart)`."""
        return f"{self.active_state} ({self.sub_state})"


class ServiceControl(Protocol):
    """The instance units `left4me-server@NAME.service`."""

    def enable_now(self, name: str, io: StepIO) -> None:
        """Enable and start the instance's unit (clearing a failed state and its start limit first)."""

    def disable_now(self, name: str, io: StepIO) -> None:
        """Disable and stop the instance's unit."""

    def status(self, name: str) -> UnitStatus:
        """The unit's state, whether it is enabled, and how often systemd restarted it."""

    def journal_tail(self, name: str) -> list[str]:
        """The unit's last journal lines: what a failed start records as its reason."""

    def console(self, name: str, text: str, io: StepIO) -> None:
        """Send `text` to the instance's server console over RCON (with its rcon_password); the reply to `io`."""

    def logs(self, name: str, lines: int, since: datetime | None, follow: bool, io: StepIO) -> None:
        """The unit's journal (the server's console output among it) to `io`: its last `lines` lines (from
        `since`), then, when `follow`, what it logs next until cancelled."""


class Installer(Protocol):
    """SteamCMD, filling and updating the shared installation (app 222860)."""

    def check(self, io: StepIO, requested_by: str) -> None:
        """Refuse (`HostError`) when SteamCMD cannot run (for `requested_by`, the OS user who asked), before anything
        is stopped for it."""

    def install(self, io: StepIO, requested_by: str) -> None:
        """Install or update the game into the installation, validating every file; its progress to `io`."""


class BackupStore(Protocol):
    """Instance backups: an archive of the upper layer and its manifest, under backups/NAME/."""

    def take(self, name: str, backup_id: str, fill: Callable[[BinaryIO], None],
             manifest: dict[str, Any]) -> dict[str, Any]:
        """Write the archive with what `fill` writes, then its manifest with the archive's size and sha256."""

    def manifests(self, name: str) -> list[dict[str, Any]]:
        """The instance's backups' manifests, oldest first."""

    def manifest(self, name: str, backup_id: str) -> dict[str, Any]:
        """One backup's manifest (`HostError` when there is none)."""

    def verified(self, name: str, backup_id: str) -> AbstractContextManager[tuple[dict[str, Any], BinaryIO]]:
        """The manifest and the archive open at its start, once its size and sha256 match the manifest."""

    def remove(self, name: str, backup_id: str) -> None:
        """Remove a backup, manifest first."""


class UnitEvent(StrEnum):
    """The kinds of journal entry systemd writes about a unit that matter to the ledger."""

    STARTED = "started"  # a start job finished
    STOPPING = "stopping"  # a stop job began
    STOPPED = "stopped"  # a stop job finished
    EXITED = "exited"  # a process of the unit exited unsuccessfully
    DEACTIVATED = "deactivated"  # the unit went inactive after a clean exit
    RESTART_SCHEDULED = "restart-scheduled"  # Restart= will start it again
    START_LIMIT_HIT = "start-limit-hit"  # systemd gave up restarting it


@dataclass(frozen=True)
class UnitEntry:
    """One journal entry about an instance's unit: where it sits in the journal, when, and what it says."""

    source: str
    instance: str
    at: datetime
    event: UnitEvent
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JournalRead:
    """The unit entries one read found, and the position of the last entry it read (about any unit), if any."""

    entries: list[UnitEntry]
    position: str | None


class UnitJournal(Protocol):
    """What systemd wrote about the instance units, in journal order."""

    def entries(self, after: str | None, since: datetime | None) -> JournalRead:
        """Entries after the source position `after` (or, without one, from `since`), oldest first."""


class ServerQuery(Protocol):
    """Asking a running game server about itself (Source A2S_INFO)."""

    def info(self, port: int, timeout: float | None = None) -> dict[str, Any] | None:
        """The server's name, map and players on `port` of this host; None when it does not answer (within
        `timeout` seconds, when given, else the adapter's own)."""


@dataclass
class Host:
    """The adapters one executor works through, and whether they only simulate."""

    fs: Filesystem
    mounter: Mounter
    services: ServiceControl
    journal: UnitJournal
    query: ServerQuery
    runtime: RuntimeTree
    secrets: SecretStore
    installer: Installer
    backups: BackupStore
    simulated: bool = False
    company: Company = field(default_factory=Company)  # the executor's workers at work, for the batchers to count


UNIT_PREFIX, UNIT_SUFFIX = "left4me-server@", ".service"


def unit_name(name: str) -> str:
    """The systemd unit of an instance."""
    return f"{UNIT_PREFIX}{name}{UNIT_SUFFIX}"
