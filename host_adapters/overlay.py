"""Overlay mounts: read from /proc/self/mountinfo, unmounted through the privileged helper."""

from __future__ import annotations

import re
from pathlib import Path

from .helper import HelperClient
from .protocols import StepIO

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


class HelperMounter:
    """Overlay mounts as the mount table shows them; unmounting goes through the helper, by instance name.

    Mounting is the unit's own business (its ExecStartPre runs `left4me-host mount NAME`).
    """

    def __init__(self, client: HelperClient, mountinfo: str = "/proc/self/mountinfo"):
        self.client = client
        self.mountinfo = mountinfo

    def unmount(self, merged: Path, io: StepIO) -> None:
        """Ask the helper to unmount the instance whose merged directory this is; nothing if it is not mounted."""
        if not self.is_mounted(merged):
            io.say(f"{merged} is not mounted")
            return
        self.client.call("umount", merged.parent.name, io=io, timeout=MOUNT_TIMEOUT)

    def is_mounted(self, merged: Path) -> bool:
        """Whether `merged` is a mount point right now."""
        with open(self.mountinfo, encoding="utf-8", errors="surrogateescape") as table:
            return str(merged) in mounted_points(table.read())
