"""Test stand-ins for the host: in-memory stores and files, a fault plan, and an outside world that acts.

Tests drive the simulated host's own classes (host_adapters.simulated) over
these, so what the tests prove holds for `--host simulated` too.
"""

from __future__ import annotations

import io
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from host_adapters import Cancelled, Host, HostError, ServerQuery, StepIO, UnitEvent
from host_adapters.simulated import SimulatedServerQuery, SimulatedServiceControl, set_mounted, simulated_host
from host_adapters.steamcmd import SteamCmd

STANDIN_STEAMCMD = Path(__file__).resolve().parent.parent / "scripts" / "host" / "steamcmd"


@dataclass
class Faults:
    """Which adapter call (counted from 1 across every fake sharing it, or named by its start) fails or hangs."""

    fail_at: int | None = None
    hang_at: int | None = None
    hang_on: str | None = None
    fail_on: str | None = None
    calls: list[str] = field(default_factory=list)

    def check(self, call: str, io: StepIO | None = None) -> None:
        """Count a call; fail or hang if it is the chosen one."""
        self.calls.append(call)
        number = len(self.calls)
        if number == self.fail_at or (self.fail_on is not None and call.startswith(self.fail_on)):
            raise HostError(f"injected fault at call {number} ({call})", [f"fault: {call}"])
        if number == self.hang_at or (self.hang_on is not None and call.startswith(self.hang_on)):
            while io is None or not io.should_cancel():
                time.sleep(0.01)
            raise Cancelled(f"{call} cancelled while hanging")


class MemoryState(dict):
    """Fake host state (units, mounts) held in memory."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lock = threading.RLock()

    def save(self) -> None:
        """Nothing to persist."""

    def reload(self) -> None:
        """Nothing to read again."""


class MemoryFilesystem:
    """The Filesystem protocol over a dict of paths, for tests."""

    def __init__(self, root: str = "/srv/left4me", faults: Faults | None = None):
        self.root = Path(root)
        self.faults = faults or Faults()
        self.files: dict[PurePosixPath, bytes] = {}
        self.dirs: set[PurePosixPath] = set()
        # The names directly inside each directory: listing stays cheap however many files the fake holds.
        self.children: dict[PurePosixPath, set[str]] = {}
        # The executor's workers change files of different instances at once.
        self.lock = threading.RLock()

    def snapshot(self) -> dict[str, bytes | None]:
        """Every directory (as None) and file under the root, by path: what a test compares."""
        return {str(d): None for d in self.dirs} | {str(f): data for f, data in self.files.items()}

    def make_dirs(self, path: str) -> None:
        """Create a directory and its parents."""
        self.faults.check(f"make_dirs {path}")
        with self.lock:
            self._make_dirs(PurePosixPath(path))

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace a file's content."""
        self.faults.check(f"write_bytes {path}")
        with self.lock:
            pure = PurePosixPath(path)
            self._make_dirs(pure.parent)
            self.files[pure] = data
            self.children.setdefault(pure.parent, set()).add(pure.name)

    def read_bytes(self, path: str) -> bytes:
        """A file's content."""
        self.faults.check(f"read_bytes {path}")
        with self.lock:
            try:
                return self.files[PurePosixPath(path)]
            except KeyError:
                raise HostError(f"{path}: no such file") from None

    def write_from(self, path: str, fill, mode: int | None = None) -> None:
        """Replace a file's content with what `fill` writes."""
        buffer = io.BytesIO()
        fill(buffer)
        self.write_bytes(path, buffer.getvalue())

    @contextmanager
    def open_read(self, path: str):
        """A file, open for reading."""
        yield io.BytesIO(self.read_bytes(path))

    def exists(self, path: str) -> bool:
        """Whether a file or directory is at `path`."""
        self.faults.check(f"exists {path}")
        with self.lock:
            pure = PurePosixPath(path)
            return pure in self.files or pure in self.dirs

    def list_names(self, path: str) -> list[str]:
        """Names directly inside a directory."""
        self.faults.check(f"list_names {path}")
        with self.lock:
            return sorted(self.children.get(PurePosixPath(path), ()))

    def remove_file(self, path: str) -> None:
        """Remove a file if present."""
        self.faults.check(f"remove_file {path}")
        with self.lock:
            pure = PurePosixPath(path)
            if self.files.pop(pure, None) is not None and pure not in self.dirs:
                self.children.get(pure.parent, set()).discard(pure.name)

    def remove_tree(self, path: str) -> bool:
        """Remove a directory and everything under it (whether anything was there)."""
        self.faults.check(f"remove_tree {path}")
        with self.lock:
            pure = PurePosixPath(path)
            found = pure in self.dirs or pure in self.files
            below = [pure]
            for directory in below:
                below.extend(directory / name for name in self.children.pop(directory, ()))
            for gone in below:
                self.files.pop(gone, None)
                self.dirs.discard(gone)
            self.children.get(pure.parent, set()).discard(pure.name)
            return found

    def _make_dirs(self, pure: PurePosixPath) -> None:
        while pure != PurePosixPath(".") and pure not in self.dirs:
            self.dirs.add(pure)
            self.children.setdefault(pure.parent, set()).add(pure.name)
            pure = pure.parent


class ScriptedServiceControl(SimulatedServiceControl):
    """The simulated units, plus an outside world tests make act: crashes, systemd giving up, stops and starts by
    hand. A unit named in `broken` fails right after it starts, the way a server that cannot bind its port does,
    and waits for an automatic restart."""

    def __init__(self, state: Any, root: Path, journal: Any, faults: Any, label: str = ""):
        super().__init__(state, root, journal, faults, label=label)
        self.broken: set[str] = set()

    def enable_now(self, name: str, io: StepIO) -> None:
        """Start the unit; a broken one crashes at once."""
        super().enable_now(name, io)
        if name in self.broken:
            self.crash(name, status="1")

    def crash(self, name: str, signal: str | None = None, status: str = "1", restart: bool = True) -> None:
        """The server dies (by `signal`, else with exit `status`); systemd schedules a restart unless told not to."""
        code, value = ("killed", signal) if signal else ("exited", status)
        self.log(name, UnitEvent.EXITED, EXIT_CODE=code, EXIT_STATUS=value,
                  MESSAGE=f"Main process exited, code={code}, status={value}")
        if restart and name not in self.broken:
            restarts = self.status(name).restarts + 1
            self.set_unit(name, active="active", sub="running", restarts=restarts)
            self.log(name, UnitEvent.RESTART_SCHEDULED, N_RESTARTS=str(restarts))
            self.log(name, UnitEvent.STARTED, MESSAGE="Started")
        elif restart:
            self.set_unit(name, active="activating", sub="auto-restart")
            self.log(name, UnitEvent.RESTART_SCHEDULED, N_RESTARTS=str(self.status(name).restarts + 1))
        else:
            self.set_unit(name, active="failed", sub="failed")

    def give_up(self, name: str) -> None:
        """The server crashes once too often: systemd stops restarting it."""
        self.crash(name, signal="9", restart=False)
        self.log(name, UnitEvent.START_LIMIT_HIT, MESSAGE="Start request repeated too quickly.")

    def stop_outside(self, name: str) -> None:
        """Someone runs `systemctl stop` on the unit."""
        self.set_unit(name, active="inactive", sub="dead")
        set_mounted(self.state, self.root / "runtime" / name / "merged", False)
        self.log_stop(name)

    def exit_cleanly(self, name: str) -> None:
        """The server quits by itself with status 0 (no restart: Restart=on-failure)."""
        self.set_unit(name, active="inactive", sub="dead")
        self.log(name, UnitEvent.DEACTIVATED, MESSAGE="Deactivated successfully.")

    def start_outside(self, name: str) -> None:
        """Someone runs `systemctl start` on the unit."""
        self.set_unit(name, active="active", sub="running")
        set_mounted(self.state, self.root / "runtime" / name / "merged", True)
        self.log(name, UnitEvent.STARTED, MESSAGE="Started")


class ScriptedServerQuery(SimulatedServerQuery):
    """The simulated A2S answer, except on `silent_ports` (a server that never answers)."""

    def __init__(self, services: SimulatedServiceControl):
        super().__init__(services)
        self.silent_ports: set[int] = set()

    def info(self, port: int, timeout: float | None = None) -> dict[str, Any] | None:
        """No answer on a silent port, else the simulated one."""
        return None if port in self.silent_ports else super().info(port, timeout)


def fake_host(fs: Any, state: MemoryState | None = None, *, journal: MemoryState | None = None,
              secrets_store: MemoryState | None = None, faults: Faults | None = None, label: str = "",
              query: ServerQuery | None = None, simulated: bool = False) -> Host:
    """The simulated host over in-memory stores, one fault plan and the scripted outside world; SteamCMD is the
    stand-in (scripts/host/steamcmd), installing under the root."""
    faults = faults or Faults()
    state = MemoryState() if state is None else state
    journal = MemoryState() if journal is None else journal
    services = ScriptedServiceControl(state, fs.root, journal, faults, label=label)
    return simulated_host(fs, state, journal, MemoryState() if secrets_store is None else secrets_store,
                          installer=SteamCmd(str(STANDIN_STEAMCMD), fs.root / "installation"), faults=faults,
                          label=label, services=services, query=query or ScriptedServerQuery(services),
                          simulated=simulated)
