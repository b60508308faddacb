"""Stand-ins for the host: in memory for tests, or in a state file under the root for `--host simulated`.

Each fake counts its calls on a shared `Faults` plan, which can make the N-th
call fail, or hang until the command is cancelled (or the process killed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import Cancelled, HostError
from .protocols import CFG_DIR, Host, JournalRead, StepIO, UnitEntry, UnitEvent, UnitStatus, unit_name

SIMULATED = "simulated: "


@dataclass
class Faults:
    """Which adapter call (counted from 1 across every fake sharing it, or named by its start) fails or hangs."""

    fail_at: int | None = None
    hang_at: int | None = None
    hang_on: str | None = None
    calls: list[str] = field(default_factory=list)

    def check(self, call: str, io: StepIO | None = None) -> None:
        """Count a call; fail or hang if it is the chosen one."""
        self.calls.append(call)
        number = len(self.calls)
        if number == self.fail_at:
            raise HostError(f"injected fault at call {number} ({call})", [f"fault: {call}"])
        if number == self.hang_at or (self.hang_on is not None and call.startswith(self.hang_on)):
            while io is None or not io.should_cancel():
                time.sleep(0.01)
            raise Cancelled(f"{call} cancelled while hanging")


class MemoryState(dict):
    """Fake host state (units, mounts) held in memory."""

    def save(self) -> None:
        """Nothing to persist."""

    def reload(self) -> None:
        """Nothing to read again."""


class FileState(dict):
    """Fake host state kept in a JSON file, so separate l4d2ctl runs see the same simulated host."""

    def __init__(self, path: Path, mode: int = 0o644):
        try:
            super().__init__(json.loads(path.read_text()) if path.exists() else {})
        except (OSError, ValueError) as error:
            raise HostError(f"simulated host state {path} cannot be read: {error}") from error
        self.path = path
        self.mode = mode

    def reload(self) -> None:
        """Read the file again: another process (a CLI handing over a secret) may have written it."""
        self.clear()
        self.update(type(self)(self.path, self.mode))

    def save(self) -> None:
        """Write the state atomically, with the file's mode."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, self.mode)
            os.fchmod(descriptor, self.mode)
            with os.fdopen(descriptor, "w") as file:
                file.write(json.dumps(self, sort_keys=True, indent=1))
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

    def remove_tree(self, path: str) -> bool:
        """Remove a directory and everything under it (whether anything was there)."""
        self.faults.check(f"remove_tree {path}")
        pure = PurePosixPath(path)
        found = pure in self.dirs or pure in self.files
        self.files = {p: d for p, d in self.files.items() if not _within(p, pure)}
        self.dirs = {p for p in self.dirs if not _within(p, pure)}
        return found

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

    def unmount(self, merged: Path, io: StepIO) -> None:
        """Record `merged` as unmounted."""
        self.faults.check(f"unmount {merged}", io)
        io.say(f"{self.label}{'unmounted' if self.is_mounted(merged) else 'not mounted:'} {merged}")
        _set_mounted(self.state, merged, False)

    def is_mounted(self, merged: Path) -> bool:
        """Whether `merged` is recorded as mounted."""
        return str(merged) in self.state.get("mounts", [])


class FakeSecrets:
    """Secret values in a state store (a 0600 file when simulated), fingerprinted with a key of its own."""

    def __init__(self, store: MemoryState | FileState, faults: Faults | None = None, label: str = ""):
        self.store = store
        self.faults = faults or Faults()
        self.label = label

    def put(self, name: str, cvar: str, value: str) -> str:
        """Keep the value aside under its fingerprint."""
        self.store.reload()
        fingerprint = self._fingerprint(name, cvar, value)
        self.store.setdefault("incoming", {})[f"{name}/{cvar}/{fingerprint}"] = value
        self.store.save()
        return fingerprint

    def commit(self, name: str, cvar: str, fingerprint: str, io: StepIO) -> None:
        """Make the value kept aside the cvar's value; done already is fine, a value never kept is not."""
        self.faults.check(f"secret commit {name} {cvar}", io)
        self.store.reload()
        incoming = self.store.setdefault("incoming", {})
        value = incoming.pop(f"{name}/{cvar}/{fingerprint}", None)
        if value is None and self._fingerprint(name, cvar, self.values(name).get(cvar, "")) != fingerprint:
            raise HostError(f"no value with fingerprint {fingerprint} was kept for {cvar}: set it again")
        if value is not None:
            self.store.setdefault("values", {}).setdefault(name, {})[cvar] = value
        self.store.save()
        io.say(f"{self.label}{cvar} of {name} set (fingerprint {fingerprint})")

    def unset(self, name: str, cvar: str, io: StepIO) -> None:
        """Forget the cvar's value."""
        self.faults.check(f"secret unset {name} {cvar}", io)
        self.store.reload()
        found = self.store.setdefault("values", {}).get(name, {}).pop(cvar, None)
        self.store.save()
        io.say(f"{self.label}{cvar} of {name} {'removed' if found is not None else 'was not set'}")

    def values(self, name: str) -> dict[str, str]:
        """The instance's cvars and their values."""
        self.store.reload()
        return dict(self.store.get("values", {}).get(name, {}))

    def forget(self, name: str) -> None:
        """Drop every value of the instance (its files are removed)."""
        self.store.reload()
        if self.store.get("values", {}).pop(name, None) is not None:
            self.store.save()

    def _fingerprint(self, name: str, cvar: str, value: str) -> str:
        key = self.store.setdefault("key", secrets.token_hex(32))
        return hmac.new(key.encode(), f"{name}\0{cvar}\0{value}".encode(), hashlib.sha256).hexdigest()[:32]


class FakeRuntime:
    """The runtime tree written straight through the filesystem adapter, with the helper's rules on mounts."""

    def __init__(self, fs: MemoryFilesystem, mounter: FakeMounter, secrets_store: FakeSecrets,
                 faults: Faults | None = None, label: str = ""):
        self.fs = fs
        self.mounter = mounter
        self.secrets = secrets_store
        self.faults = faults or Faults()
        self.label = label

    def prepare(self, name: str, io: StepIO) -> None:
        """Create runtime/NAME/{upper,work,merged}."""
        self.faults.check(f"prepare {name}", io)
        self._refuse_mounted(name, "prepared")
        self._make_directories(name)
        io.say(f"{self.label}runtime/{name}/{{upper,work,merged}} exist")

    def stage(self, name: str, io: StepIO) -> None:
        """Replace the upper layer's server*.cfg with instances/NAME/cfg/'s; server.cfg gets the secrets."""
        self.faults.check(f"stage {name}", io)
        self._refuse_mounted(name, "staged")
        upper_cfg, source = f"runtime/{name}/upper/{CFG_DIR}", f"instances/{name}/cfg"
        for layer in self._layers(name):
            if not self.fs.exists(layer):
                raise HostError(f"{layer} does not exist")
        self._make_directories(name)
        self.fs.make_dirs(upper_cfg)
        for stale in self.fs.list_names(upper_cfg):
            if _staged_cfg(stale):
                self.fs.remove_file(f"{upper_cfg}/{stale}")
        staged = [entry for entry in self.fs.list_names(source) if _staged_cfg(entry)]
        for entry in staged:
            data = self.fs.read_bytes(f"{source}/{entry}")
            if entry == "server.cfg":
                data += b"" if not data or data.endswith(b"\n") else b"\n"
                data += "".join(f'{cvar} "{value}"\n' for cvar, value in sorted(self.secrets.values(name).items())
                                ).encode()
            self.fs.write_bytes(f"{upper_cfg}/{entry}", data)
        io.say(f"{self.label}staged {', '.join(staged) or 'no cfgs'} into {upper_cfg}")

    def remove(self, name: str, io: StepIO) -> None:
        """Remove runtime/NAME and forget the instance's secrets."""
        self.faults.check(f"remove runtime {name}", io)
        self._refuse_mounted(name, "removed")
        removed = self.fs.remove_tree(f"runtime/{name}")
        self.secrets.forget(name)
        io.say(f"{self.label}{'removed' if removed else 'no'} runtime/{name}{'' if removed else ' to remove'}")

    def _make_directories(self, name: str) -> None:
        for directory in ("upper", "work", "merged"):
            self.fs.make_dirs(f"runtime/{name}/{directory}")

    def _layers(self, name: str) -> list[str]:
        """The lower layers instance.env names, relative to the root."""
        env = self.fs.read_bytes(f"instances/{name}/instance.env").decode()
        line = next(line for line in env.splitlines() if line.startswith("L4D2_LOWERDIRS="))
        return [str(Path(layer).relative_to(self.fs.root)) for layer in line.split("=", 1)[1].split(":")]

    def _refuse_mounted(self, name: str, what: str) -> None:
        if self.mounter.is_mounted(self.fs.root / "runtime" / name / "merged"):
            raise HostError(f"runtime/{name}/merged is mounted: it is {what} only while it is not")


def _staged_cfg(file_name: str) -> bool:
    return file_name.startswith("server") and file_name.endswith(".cfg")


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


def fake_host(fs: Any, state: MemoryState | FileState, *, journal: MemoryState | FileState | None = None,
              secrets_store: MemoryState | FileState | None = None, faults: Faults | None = None, label: str = "",
              query: Any = None, simulated: bool = False) -> Host:
    """Every adapter but the filesystem faked over one state store and one fault plan: units, mounts, journal,
    A2S (unless `query` is given), the runtime tree and the secret store."""
    faults = faults or Faults()
    services = FakeServiceControl(state, fs.root, faults, label=label, journal=journal)
    mounter = FakeMounter(state, faults, label=label)
    secrets_kept = FakeSecrets(MemoryState() if secrets_store is None else secrets_store, faults, label=label)
    return Host(fs, mounter, services, FakeJournal(services.journal), query or FakeServerQuery(services),
                FakeRuntime(fs, mounter, secrets_kept, faults, label=label), secrets_kept, simulated=simulated)


def _set_mounted(state: MemoryState | FileState, merged: Path, mounted: bool) -> None:
    mounts = set(state.get("mounts", []))
    (mounts.add if mounted else mounts.discard)(str(merged))
    state["mounts"] = sorted(mounts)
    state.save()
