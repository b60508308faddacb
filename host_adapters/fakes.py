"""Stand-ins for the host: in memory for tests, or in a state file under the root for `--host simulated`.

Each fake counts its calls on a shared `Faults` plan, which can make the N-th
call fail, or hang until the command is cancelled (or the process killed).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import Cancelled, HostError
from .protocols import JournalRead, StepIO, UnitEntry, UnitEvent, UnitStatus, unit_name

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
    """Unit state in a state store; starting a unit mounts its overlay, as the unit's ExecStartPre does.

    Like systemd, it writes a journal entry for each thing that happens to a
    unit (into `journal`, a store of its own that `FakeJournal` reads); tests make the outside
    world act with `crash`, `give_up`, `stop_outside` and `start_outside`. A
    unit named in `broken` fails right after it starts, the way a server that
    cannot bind its port does, and waits for an automatic restart.
    """

    def __init__(self, state: MemoryState | FileState, root: Path, faults: Faults | None = None, label: str = "",
                 broken: set[str] | None = None, journal: MemoryState | FileState | None = None):
        self.state = state
        self.journal = MemoryState() if journal is None else journal
        self.root = root
        self.faults = faults or Faults()
        self.label = label
        self.broken = broken or set()

    def enable_now(self, name: str, io: StepIO) -> None:
        """Mark the unit enabled and active, and its overlay mounted."""
        self.faults.check(f"enable_now {name}", io)
        self._set(name, enabled=True, active="active", sub="running", restarts=0)
        _set_mounted(self.state, self.root / "runtime" / name / "merged", True)
        self._log(name, UnitEvent.STARTED, MESSAGE="Started")
        io.say(f"{self.label}systemctl enable --now {unit_name(name)}")
        if name in self.broken:
            self.crash(name, status="1")

    def disable_now(self, name: str, io: StepIO) -> None:
        """Mark the unit disabled and inactive, and its overlay unmounted."""
        self.faults.check(f"disable_now {name}", io)
        was_up = self.status(name).active_state != "inactive"
        self._set(name, enabled=False, active="inactive", sub="dead")
        _set_mounted(self.state, self.root / "runtime" / name / "merged", False)
        if was_up:
            self._log_stop(name)
        io.say(f"{self.label}systemctl disable --now {unit_name(name)}")

    def status(self, name: str) -> UnitStatus:
        """The unit as recorded (inactive and disabled when never seen)."""
        unit = self.state.get("units", {}).get(name, {})
        return UnitStatus(active_state=unit.get("active", "inactive"), sub_state=unit.get("sub", "dead"),
                          enabled=unit.get("enabled", False), restarts=unit.get("restarts", 0))

    def journal_tail(self, name: str) -> list[str]:
        """The messages of the unit's last journal entries."""
        entries = [entry for entry in self.journal.get("entries", []) if entry["instance"] == name]
        return [entry["fields"].get("MESSAGE", entry["event"]) for entry in entries[-5:]]

    def crash(self, name: str, signal: str | None = None, status: str = "1", restart: bool = True) -> None:
        """The server dies (by `signal`, else with exit `status`); systemd schedules a restart unless told not to."""
        code, value = ("killed", signal) if signal else ("exited", status)
        self._log(name, UnitEvent.EXITED, EXIT_CODE=code, EXIT_STATUS=value,
                  MESSAGE=f"Main process exited, code={code}, status={value}")
        if restart and name not in self.broken:
            restarts = self.status(name).restarts + 1
            self._set(name, active="active", sub="running", restarts=restarts)
            self._log(name, UnitEvent.RESTART_SCHEDULED, N_RESTARTS=str(restarts))
            self._log(name, UnitEvent.STARTED, MESSAGE="Started")
        elif restart:
            self._set(name, active="activating", sub="auto-restart")
            self._log(name, UnitEvent.RESTART_SCHEDULED, N_RESTARTS=str(self.status(name).restarts + 1))
        else:
            self._set(name, active="failed", sub="failed")

    def give_up(self, name: str) -> None:
        """The server crashes once too often: systemd stops restarting it."""
        self.crash(name, signal="9", restart=False)
        self._log(name, UnitEvent.START_LIMIT_HIT, MESSAGE="Start request repeated too quickly.")

    def stop_outside(self, name: str) -> None:
        """Someone runs `systemctl stop` on the unit."""
        self._set(name, active="inactive", sub="dead")
        _set_mounted(self.state, self.root / "runtime" / name / "merged", False)
        self._log_stop(name)

    def exit_cleanly(self, name: str) -> None:
        """The server quits by itself with status 0 (no restart: Restart=on-failure)."""
        self._set(name, active="inactive", sub="dead")
        self._log(name, UnitEvent.DEACTIVATED, MESSAGE="Deactivated successfully.")

    def start_outside(self, name: str) -> None:
        """Someone runs `systemctl start` on the unit."""
        self._set(name, active="active", sub="running")
        _set_mounted(self.state, self.root / "runtime" / name / "merged", True)
        self._log(name, UnitEvent.STARTED, MESSAGE="Started")

    def _log_stop(self, name: str) -> None:
        """A stop job, as systemd logs it: stopping, the server's clean exit, stopped."""
        self._log(name, UnitEvent.STOPPING, JOB_TYPE="stop")
        self._log(name, UnitEvent.DEACTIVATED, MESSAGE="Deactivated successfully.")
        self._log(name, UnitEvent.STOPPED, JOB_TYPE="stop")

    def _set(self, name: str, **values: Any) -> None:
        unit = self.state.setdefault("units", {}).setdefault(name, {})
        unit.update(values)
        self.state.save()

    def _log(self, name: str, event: UnitEvent, **fields: str) -> None:
        entries = self.journal.setdefault("entries", [])
        entries.append({"source": f"fake:{len(entries) + 1}", "instance": name, "event": event,
                        "at": datetime.now(timezone.utc).isoformat(), "fields": fields})
        self.journal.save()


class FakeJournal:
    """The journal entries a `FakeServiceControl` wrote into its journal store."""

    def __init__(self, journal: MemoryState | FileState):
        self.journal = journal

    def entries(self, after: str | None, since: datetime | None) -> JournalRead:
        """Entries after the position `after` (else from `since`), oldest first."""
        found = [UnitEntry(source=entry["source"], instance=entry["instance"], at=datetime.fromisoformat(entry["at"]),
                           event=UnitEvent(entry["event"]), fields=entry["fields"])
                 for entry in self.journal.get("entries", [])]
        if after is not None:
            positions = [entry.source for entry in found]
            found = found[positions.index(after) + 1:] if after in positions else found
        else:
            found = [entry for entry in found if since is None or entry.at >= since]
        return JournalRead(found, found[-1].source if found else None)


class FakeServerQuery:
    """A server that answers A2S_INFO while its unit is active, except on `silent_ports`."""

    def __init__(self, services: FakeServiceControl, silent_ports: set[int] | None = None):
        self.services = services
        self.silent_ports = silent_ports or set()

    def info(self, port: int) -> dict[str, Any] | None:
        """A made-up answer while some unit is active and the port is not silent."""
        units = self.services.state.get("units", {})
        if port in self.silent_ports or not any(unit.get("active") == "active" for unit in units.values()):
            return None
        return {"name": f"{self.services.label}fake server", "map": "c1m1_hotel", "players": 0, "max_players": 8}


def _set_mounted(state: MemoryState | FileState, merged: Path, mounted: bool) -> None:
    mounts = set(state.get("mounts", []))
    (mounts.add if mounted else mounts.discard)(str(merged))
    state["mounts"] = sorted(mounts)
    state.save()
