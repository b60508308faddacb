"""Kernel overlayfs through mount(8)/umount(8); the mount table is read from /proc/self/mountinfo."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import HostError
from .protocols import StepIO
from .runner import run_checked

MOUNT_TIMEOUT = 60.0
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def mounted_points(mountinfo: str) -> set[str]:
    """Every mount point listed in a mountinfo text, with its octal escapes decoded."""
    points = set()
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.add(_unescape(fields[4]))
    return points


def _unescape(field: str) -> str:
    """Decode the kernel's octal escapes (space, tab, newline, backslash) in a mountinfo field."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


class KernelOverlayMounter:
    """Mount and unmount overlayfs with the host's mount tools; both are idempotent."""

    def __init__(self, command_prefix: list[str] | None = None, mountinfo: str = "/proc/self/mountinfo"):
        self.command_prefix = command_prefix or []
        self.mountinfo = mountinfo

    def mount(self, lowerdirs: list[Path], upper: Path, work: Path, merged: Path, io: StepIO) -> None:
        """Mount the overlay at `merged`, lowerdirs first-listed-on-top; nothing if already mounted."""
        if self.is_mounted(merged):
            io.say(f"{merged} is already mounted")
            return
        for directory in [*lowerdirs, upper, work, merged]:
            if not directory.is_dir():
                raise HostError(f"overlay directory {directory} does not exist")
        options = f"lowerdir={':'.join(map(str, lowerdirs))},upperdir={upper},workdir={work}"
        run_checked([*self.command_prefix, "mount", "-t", "overlay", "overlay", "-o", options, str(merged)], io,
                    timeout=MOUNT_TIMEOUT)
        io.say(f"mounted overlay at {merged}")

    def unmount(self, merged: Path, io: StepIO) -> None:
        """Unmount `merged`; nothing if it is not mounted."""
        if not self.is_mounted(merged):
            io.say(f"{merged} is not mounted")
            return
        run_checked([*self.command_prefix, "umount", str(merged)], io, timeout=MOUNT_TIMEOUT)
        io.say(f"unmounted {merged}")

    def is_mounted(self, merged: Path) -> bool:
        """Whether `merged` is a mount point right now."""
        with open(self.mountinfo, encoding="utf-8", errors="surrogateescape") as table:
            return str(merged) in mounted_points(table.read())


class HelperMounter(KernelOverlayMounter):
    """Mounts through the left4me-overlay helper behind a prefix such as `sudo -n`, for operators without root.

    The helper reads the layers from the instance's own instance.env and refuses
    anything outside the root, so the sudoers rule can name it and nothing else.
    """

    def __init__(self, helper: str, command_prefix: list[str], mountinfo: str = "/proc/self/mountinfo"):
        super().__init__(command_prefix, mountinfo)
        self.helper = helper

    def mount(self, lowerdirs: list[Path], upper: Path, work: Path, merged: Path, io: StepIO) -> None:
        """Ask the helper to mount the instance whose merged directory this is."""
        run_checked([*self.command_prefix, self.helper, "mount", merged.parent.name], io, timeout=MOUNT_TIMEOUT)

    def unmount(self, merged: Path, io: StepIO) -> None:
        """Ask the helper to unmount it; nothing if it is not mounted."""
        if not self.is_mounted(merged):
            io.say(f"{merged} is not mounted")
            return
        run_checked([*self.command_prefix, self.helper, "umount", merged.parent.name], io, timeout=MOUNT_TIMEOUT)
