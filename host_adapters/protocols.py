"""The narrow protocols the executor drives the host through, and the bundle of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass
class StepIO:
    """What a long host operation may use: a line sink for its output, and a cancel check."""

    emit: Callable[[str], None] = lambda line: None
    should_cancel: Callable[[], bool] = lambda: False
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        """Record one output line of the step and pass it on."""
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
        """A file's content."""

    def exists(self, path: str) -> bool:
        """Whether anything (file, directory, symlink) is at `path`."""

    def list_names(self, path: str) -> list[str]:
        """Names in a directory, sorted; empty when it does not exist."""

    def remove_file(self, path: str) -> None:
        """Remove a file if it exists."""

    def remove_tree(self, path: str) -> None:
        """Remove a directory tree if it exists; a symlink there is removed, not followed."""


class Mounter(Protocol):
    """Kernel overlayfs mounts; mount and unmount are idempotent."""

    def mount(self, lowerdirs: list[Path], upper: Path, work: Path, merged: Path, io: StepIO) -> None:
        """Mount an overlay at `merged` unless one is mounted there already."""

    def unmount(self, merged: Path, io: StepIO) -> None:
        """Unmount `merged` if it is mounted."""

    def is_mounted(self, merged: Path) -> bool:
        """Whether something is mounted at `merged`."""


class ServiceControl(Protocol):
    """The instance units `left4me-server@NAME.service`."""

    def enable_now(self, name: str, io: StepIO) -> None:
        """Enable and start the instance's unit."""

    def disable_now(self, name: str, io: StepIO) -> None:
        """Disable and stop the instance's unit."""

    def is_active(self, name: str) -> bool:
        """Whether the instance's unit is active."""


@dataclass
class Host:
    """The adapters one executor works through, and whether they only simulate."""

    fs: Filesystem
    mounter: Mounter
    services: ServiceControl
    simulated: bool = False


def unit_name(name: str) -> str:
    """The systemd unit of an instance."""
    return f"left4me-server@{name}.service"
