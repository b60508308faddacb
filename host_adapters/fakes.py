"""Stand-ins for the host: in memory for tests, or in a state file under the root for `--host simulated`.

Each fake counts its calls on a shared `Faults` plan, which can make the N-th
call fail, or hang until the command is cancelled (or the process killed).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import Cancelled, HostError
from .protocols import StepIO, unit_name

SIMULATED = "simulated: "


@dataclass
class Faults:
    """Which adapter call (counted from 1 across every fake sharing it) fails or hangs."""

    fail_at: int | None = None
    hang_at: int | None = None
    calls: list[str] = field(default_factory=list)

    def check(self, call: str, io: StepIO | None = None) -> None:
        """Count a call; fail or hang if it is the chosen one."""
        self.calls.append(call)
        number = len(self.calls)
        if number == self.fail_at:
            raise HostError(f"injected fault at call {number} ({call})", [f"fault: {call}"])
        if number == self.hang_at:
            while io is None or not io.should_cancel():
                time.sleep(0.01)
            raise Cancelled(f"{call} cancelled while hanging")


class MemoryState(dict):
    """Fake host state (units, mounts) held in memory."""

    def save(self) -> None:
        """Nothing to persist."""


class FileState(dict):
    """Fake host state kept in a JSON file, so separate l4d2ctl runs see the same simulated host."""

    def __init__(self, path: Path):
        try:
            super().__init__(json.loads(path.read_text()) if path.exists() else {})
        except (OSError, ValueError) as error:
            raise HostError(f"simulated host state {path} cannot be read: {error}") from error
        self.path = path

    def save(self) -> None:
        """Write the state atomically."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self, sort_keys=True, indent=1))
            os.replace(temporary, self.path)
        except OSError as error:
            raise HostError(f"simulated host state {self.path} cannot be written: {error.strerror}") from error


class MemoryFilesystem:
    """The Filesystem protocol over a dict of paths, for tests."""

    def __init__(self, root: str = "/srv/left4me", faults: Faults | None = None):
        self.root = Path(root)
        self.faults = faults or Faults()
        self.files: dict[PurePosixPath, bytes] = {}
        self.dirs: set[PurePosixPath] = set()

    def snapshot(self) -> dict[str, bytes | None]:
        """Every directory (as None) and file under the root, by path: what a test compares."""
        return {str(d): None for d in self.dirs} | {str(f): data for f, data in self.files.items()}

    def make_dirs(self, path: str) -> None:
        """Create a directory and its parents."""
        self.faults.check(f"make_dirs {path}")
        self._make_dirs(PurePosixPath(path))

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace a file's content."""
        self.faults.check(f"write_bytes {path}")
        pure = PurePosixPath(path)
        self._make_dirs(pure.parent)
        self.files[pure] = data

    def read_bytes(self, path: str) -> bytes:
        """A file's content."""
        self.faults.check(f"read_bytes {path}")
        try:
            return self.files[PurePosixPath(path)]
        except KeyError:
            raise HostError(f"{path}: no such file") from None

    def exists(self, path: str) -> bool:
        """Whether a file or directory is at `path`."""
        self.faults.check(f"exists {path}")
        pure = PurePosixPath(path)
        return pure in self.files or pure in self.dirs

    def list_names(self, path: str) -> list[str]:
        """Names directly inside a directory."""
        self.faults.check(f"list_names {path}")
        pure = PurePosixPath(path)
        return sorted({p.name for p in [*self.files, *self.dirs] if p.parent == pure})

    def remove_file(self, path: str) -> None:
        """Remove a file if present."""
        self.faults.check(f"remove_file {path}")
        self.files.pop(PurePosixPath(path), None)

    def remove_tree(self, path: str) -> None:
        """Remove a directory and everything under it."""
        self.faults.check(f"remove_tree {path}")
        pure = PurePosixPath(path)
        self.files = {p: d for p, d in self.files.items() if not _within(p, pure)}
        self.dirs = {p for p in self.dirs if not _within(p, pure)}

    def _make_dirs(self, pure: PurePosixPath) -> None:
        while pure != PurePosixPath("."):
            self.dirs.add(pure)
            pure = pure.parent


def _within(path: PurePosixPath, top: PurePosixPath) -> bool:
    return path == top or top in path.parents


class FakeMounter:
    """Mount state in a state store; mount and unmount are idempotent, as the real ones."""

    def __init__(self, state: MemoryState | FileState, faults: Faults | None = None, label: str = ""):
        self.state = state
        self.faults = faults or Faults()
        self.label = label

    def mount(self, lowerdirs: list[Path], upper: Path, work: Path, merged: Path, io: StepIO) -> None:
        """Record `merged` as mounted."""
        self.faults.check(f"mount {merged}", io)
        _set_mounted(self.state, merged, True)
        io.say(f"{self.label}mounted overlay at {merged}")

    def unmount(self, merged: Path, io: StepIO) -> None:
        """Record `merged` as unmounted."""
        self.faults.check(f"unmount {merged}", io)
        io.say(f"{self.label}{'unmounted' if self.is_mounted(merged) else 'not mounted:'} {merged}")
        _set_mounted(self.state, merged, False)

    def is_mounted(self, merged: Path) -> bool:
        """Whether `merged` is recorded as mounted."""
        return str(merged) in self.state.get("mounts", [])


class FakeServiceControl:
    """Unit state in a state store; starting a unit mounts its overlay, as the unit's ExecStartPre does."""

    def __init__(self, state: MemoryState | FileState, root: Path, faults: Faults | None = None, label: str = ""):
        self.state = state
        self.root = root
        self.faults = faults or Faults()
        self.label = label

    def enable_now(self, name: str, io: StepIO) -> None:
        """Mark the unit enabled and active, and its overlay mounted."""
        self.faults.check(f"enable_now {name}", io)
        self.state.setdefault("units", {})[name] = {"enabled": True, "active": True}
        _set_mounted(self.state, self.root / "runtime" / name / "merged", True)
        io.say(f"{self.label}systemctl enable --now {unit_name(name)}")

    def disable_now(self, name: str, io: StepIO) -> None:
        """Mark the unit disabled and inactive, and its overlay unmounted."""
        self.faults.check(f"disable_now {name}", io)
        self.state.setdefault("units", {})[name] = {"enabled": False, "active": False}
        _set_mounted(self.state, self.root / "runtime" / name / "merged", False)
        io.say(f"{self.label}systemctl disable --now {unit_name(name)}")

    def is_active(self, name: str) -> bool:
        """Whether the unit is recorded active."""
        return self.state.get("units", {}).get(name, {}).get("active", False)


def _set_mounted(state: MemoryState | FileState, merged: Path, mounted: bool) -> None:
    mounts = set(state.get("mounts", []))
    (mounts.add if mounted else mounts.discard)(str(merged))
    state["mounts"] = sorted(mounts)
    state.save()
