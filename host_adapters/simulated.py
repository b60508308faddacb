"""The simulated host of `--host simulated`: units, mounts, the journal and secrets kept in state files.

Instance files are real (the local filesystem adapter); what needs root or
systemd is recorded in JSON state files under the root instead, so separate
l4d2ctl runs see one consistent simulated host. The tests drive the same
classes over in-memory stores, and inject failures through `CallCheck`.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tarfile
import threading
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .backups import BackupFiles
from .errors import HostError
from .local_fs import regular_file
from .protocols import (
    CFG_DIR,
    Filesystem,
    Host,
    Installer,
    JournalRead,
    ServerQuery,
    StepIO,
    UnitEntry,
    UnitEvent,
    UnitStatus,
    unit_name,
)

SIMULATED = "simulated: "


class StateStore(Protocol):
    """A JSON-like dict of simulated host state that can be saved and read again.

    The executor runs several commands at once: whoever reads, changes or
    saves the state holds `lock` for the whole of it.
    """

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Held while the state is read, changed or saved."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value at `key`, else `default`."""

    def setdefault(self, key: str, default: Any) -> Any:
        """The value at `key`, set to `default` first when absent."""

    def __getitem__(self, key: str) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...

    def save(self) -> None:
        """Persist the state."""

    def reload(self) -> None:
        """Read the state again (another process may have changed it)."""


class CallCheck(Protocol):
    """Told of every simulated adapter call before it acts: the tests' way to make one fail or hang."""

    def check(self, call: str, io: StepIO | None = None) -> None:
        """Count `call`; raise (or hang) to make it fail."""


class NoFaults:
    """The simulated host as operators run it: no call fails on purpose."""

    def check(self, call: str, io: StepIO | None = None) -> None:
        """Let every call through."""


NO_FAULTS = NoFaults()


class FileState(dict[str, Any]):
    """Simulated host state kept in a JSON file, so separate l4d2ctl runs see the same simulated host."""

    def __init__(self, path: Path, mode: int = 0o644):
        super().__init__(_read_state(path))
        self.path = path
        self.mode = mode
        self.lock = threading.RLock()

    def reload(self) -> None:
        """Read the file again: another process (a CLI handing over a secret) may have written it."""
        fresh = type(self)(self.path, self.mode)
        with self.lock:
            self.clear()
            self.update(fresh)

    def save(self) -> None:
        """Write the state atomically, with the file's mode; temp files of processes killed mid-save go."""
        with self.lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, self.mode)
                os.fchmod(descriptor, self.mode)
                with os.fdopen(descriptor, "w") as file:
                    file.write(json.dumps(self, sort_keys=True, indent=1))
                os.replace(temporary, self.path)
                for stale in self.path.parent.glob(f"{self.path.name}.*.tmp"):
                    owner = stale.name[len(self.path.name) + 1:-len(".tmp")]
                    if owner.isdigit() and not _alive(int(owner)):
                        stale.unlink(missing_ok=True)
            except OSError as error:
                raise HostError(f"simulated host state {self.path} cannot be written: {error.strerror}") from error


def _read_state(path: Path) -> dict[str, Any]:
    """The state in the file at `path` ({} when there is none): a regular file, never read through a symlink."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as error:
        why = "it is a symlink, which is not followed" if error.errno == errno.ELOOP else error.strerror
        raise HostError(f"simulated host state {path} cannot be read: {why}") from error
    try:
        with regular_file(descriptor, f"simulated host state {path} is not a regular file") as file:
            state = json.loads(file.read())
    except (OSError, ValueError) as error:
        raise HostError(f"simulated host state {path} cannot be read: {error}") from error
    if not isinstance(state, dict):
        raise HostError(f"simulated host state {path} is not a JSON object")
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SimulatedMounter:
    """Mount state in a state store; mount and unmount are idempotent, as the real ones."""

    def __init__(self, state: StateStore, faults: CallCheck = NO_FAULTS, label: str = ""):
        self.state = state
        self.faults = faults
        self.label = label

    def unmount(self, merged: Path, io: StepIO) -> None:
        """Record `merged` as unmounted."""
        self.faults.check(f"unmount {merged}", io)
        with self.state.lock:
            was_mounted = self.is_mounted(merged)
            set_mounted(self.state, merged, False)
        io.say(f"{self.label}{'unmounted' if was_mounted else 'not mounted:'} {merged}")

    def is_mounted(self, merged: Path) -> bool:
        """Whether `merged` is recorded as mounted."""
        with self.state.lock:
            return str(merged) in self.state.get("mounts", [])


class SimulatedSecrets:
    """Secret values in a state store (a 0600 file when simulated), fingerprinted with a key of its own."""

    def __init__(self, store: StateStore, faults: CallCheck = NO_FAULTS, label: str = ""):
        self.store = store
        self.faults = faults
        self.label = label

    def put(self, name: str, cvar: str, value: str) -> str:
        """Keep the value aside under its fingerprint."""
        with self.store.lock:
            self.store.reload()
            fingerprint = self._fingerprint(name, cvar, value)
            self.store.setdefault("incoming", {})[f"{name}/{cvar}/{fingerprint}"] = value
            self.store.save()
        return fingerprint

    def commit(self, name: str, cvar: str, fingerprint: str, io: StepIO) -> None:
        """Make the value kept aside the cvar's value; done already is fine, a value never kept is not."""
        self.faults.check(f"secret commit {name} {cvar}", io)
        with self.store.lock:
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
        with self.store.lock:
            self.store.reload()
            found = self.store.setdefault("values", {}).get(name, {}).pop(cvar, None)
            self.store.save()
        io.say(f"{self.label}{cvar} of {name} {'removed' if found is not None else 'was not set'}")

    def values(self, name: str) -> dict[str, str]:
        """The instance's cvars and their values."""
        with self.store.lock:
            self.store.reload()
            return dict(self.store.get("values", {}).get(name, {}))

    def forget(self, name: str) -> None:
        """Drop every value of the instance (its files are removed)."""
        with self.store.lock:
            self.store.reload()
            if self.store.get("values", {}).pop(name, None) is not None:
                self.store.save()

    def _fingerprint(self, name: str, cvar: str, value: str) -> str:
        key = self.store.setdefault("key", secrets.token_hex(32))
        return hmac.new(key.encode(), f"{name}\0{cvar}\0{value}".encode(), hashlib.sha256).hexdigest()[:32]


class SimulatedRuntime:
    """The runtime tree written straight through the filesystem adapter, with the helper's rules on mounts."""

    def __init__(self, fs: Filesystem, mounter: SimulatedMounter, secrets_store: SimulatedSecrets,
                 faults: CallCheck = NO_FAULTS, label: str = ""):
        self.fs = fs
        self.mounter = mounter
        self.secrets = secrets_store
        self.faults = faults
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

    def archive(self, name: str, excludes: list[str], out: BinaryIO, io: StepIO) -> None:
        """A tar of runtime/NAME/upper (on the real files under the root), without what `excludes` match."""
        self.faults.check(f"archive {name}", io)
        self._refuse_mounted(name, "archived")
        upper = self.fs.root / "runtime" / name / "upper"
        if not upper.is_dir() or upper.is_symlink():
            raise HostError(f"runtime/{name}/upper is not a directory")
        entries = left_out = 0
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for directory, names, files in os.walk(upper):
                here = Path(directory).relative_to(upper)
                for entry in sorted(names) + sorted(files):
                    relative = (here / entry).as_posix()
                    if here.as_posix() == CFG_DIR and _staged_cfg(entry):
                        continue  # staged by every start, with the secrets: never into an archive operators read
                    if excluded(relative, excludes):
                        left_out += 1
                        if entry in names:
                            names.remove(entry)
                        continue
                    tar.add(Path(directory) / entry, arcname=relative, recursive=False)
                    entries += 1
                names.sort()
        io.say(f"{self.label}archived runtime/{name}/upper: {entries} entries, {left_out} left out by --exclude")

    def restore(self, name: str, archive: BinaryIO, io: StepIO) -> None:
        """runtime/NAME/upper rebuilt from the tar in a fresh directory beside it, then swapped in."""
        self.faults.check(f"restore {name}", io)
        self._refuse_mounted(name, "restored")
        self._make_directories(name)
        runtime = self.fs.root / "runtime" / name
        fresh, replaced = runtime / "upper.restoring", runtime / "upper.replaced"
        for leftover in (fresh, replaced):
            self.fs.remove_tree(f"runtime/{name}/{leftover.name}")
        fresh.mkdir(mode=0o750)
        links: set[str] = set()
        entries = 0
        with tarfile.open(fileobj=archive, mode="r|") as tar:
            for member in tar:
                problem = member_problem(member.name, links)
                if problem is not None:
                    raise HostError(f"the archive's entry {member.name!r} {problem}: nothing was restored")
                target = fresh / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                if member.isdir():
                    target.mkdir(exist_ok=True)
                elif member.isfile():
                    source = tar.extractfile(member)
                    with open(target, "xb") as file:
                        if source is not None:
                            shutil.copyfileobj(source, file)
                elif member.issym():
                    os.symlink(member.linkname, target)
                    links.add(member.name)
                else:
                    io.say(f"{self.label}skipped {member.name!r}: not a file, directory or symlink")
                    continue
                if not member.issym():
                    os.chmod(target, member.mode & 0o777)
                entries += 1
        os.rename(runtime / "upper", replaced)
        os.rename(fresh, runtime / "upper")
        self.fs.remove_tree(f"runtime/{name}/{replaced.name}")
        io.say(f"{self.label}restored runtime/{name}/upper: {entries} entries")

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


def excluded(relative: str, excludes: list[str]) -> bool:
    """Whether an upper layer entry at `relative` is left out of a backup: a glob with a '/' matches the path
    from the upper layer down (`left4dead2/logs/*`), one without matches the entry's name (`*.dem`)."""
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative if "/" in glob else name, glob) for glob in excludes)


def member_problem(name: str, links: set[str]) -> str | None:
    """Why an archive entry may not be restored (None when it may): a path that leaves the upper layer, or one
    that goes through a symlink the archive made."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        return "is not a plain relative path"
    if any("/".join(parts[:depth]) in links for depth in range(1, len(parts))):
        return "goes through a symlink"
    return None


def _staged_cfg(file_name: str) -> bool:
    return file_name.startswith("server") and file_name.endswith(".cfg")


class SimulatedServiceControl:
    """Unit state in a state store; starting a unit mounts its overlay, as the unit's ExecStartPre does.

    Like systemd, it writes a journal entry for each thing that happens to a
    unit (into `journal`, a store of its own that `SimulatedJournal` reads).
    """

    def __init__(self, state: StateStore, root: Path, journal: StateStore, faults: CallCheck = NO_FAULTS,
                 label: str = ""):
        self.state = state
        self.journal = journal
        self.root = root
        self.faults = faults
        self.label = label
        # The secret store `console` looks in for the rcon_password, as the real helper does.
        self.secrets: SimulatedSecrets | None = None

    def enable_now(self, name: str, io: StepIO) -> None:
        """Mark the unit enabled and active, and its overlay mounted."""
        self.faults.check(f"enable_now {name}", io)
        with self.state.lock:
            self.set_unit(name, enabled=True, active="active", sub="running", restarts=0)
            set_mounted(self.state, self.root / "runtime" / name / "merged", True)
        self.log(name, UnitEvent.STARTED, MESSAGE="Started")
        io.say(f"{self.label}systemctl enable --now {unit_name(name)}")

    def disable_now(self, name: str, io: StepIO) -> None:
        """Mark the unit disabled and inactive, and its overlay unmounted."""
        self.faults.check(f"disable_now {name}", io)
        with self.state.lock:
            was_up = self.status(name).active_state != "inactive"
            self.set_unit(name, enabled=False, active="inactive", sub="dead")
            set_mounted(self.state, self.root / "runtime" / name / "merged", False)
        if was_up:
            self.log_stop(name)
        io.say(f"{self.label}systemctl disable --now {unit_name(name)}")

    def status(self, name: str) -> UnitStatus:
        """The unit as recorded (inactive and disabled when never seen)."""
        with self.state.lock:
            unit = dict(self.state.get("units", {}).get(name, {}))
        return UnitStatus(active_state=unit.get("active", "inactive"), sub_state=unit.get("sub", "dead"),
                          enabled=unit.get("enabled", False), restarts=unit.get("restarts", 0))

    def console(self, name: str, text: str, io: StepIO) -> None:
        """A made-up reply (nothing runs on a simulated host to answer), once an rcon_password is set, as the real
        helper wants one."""
        self.faults.check(f"console {name}", io)
        if self.secrets is None or "rcon_password" not in self.secrets.values(name):
            raise HostError(f"{name} has no rcon_password: set one with `l4d2ctl secret set {name} rcon_password`")
        io.say(f"{self.label}no server runs to answer {text!r}")

    def logs(self, name: str, lines: int, since: datetime | None, follow: bool, io: StepIO) -> None:
        """Say plainly that there is no journal: nothing runs on a simulated host, so nothing logs."""
        io.say(f"{self.label}there is no journal: nothing runs on a simulated host (what l4d2ctl "
               f"did to {name} is in `l4d2ctl history {name}`)")

    def journal_tail(self, name: str) -> list[str]:
        """The messages of the unit's last journal entries."""
        with self.journal.lock:
            entries = [entry for entry in self.journal.get("entries", []) if entry["instance"] == name]
        return [entry["fields"].get("MESSAGE", entry["event"]) for entry in entries[-5:]]

    def log_stop(self, name: str) -> None:
        """Journal a stop job, as systemd logs it: stopping, the server's clean exit, stopped."""
        self.log(name, UnitEvent.STOPPING, JOB_TYPE="stop")
        self.log(name, UnitEvent.DEACTIVATED, MESSAGE="Deactivated successfully.")
        self.log(name, UnitEvent.STOPPED, JOB_TYPE="stop")

    def set_unit(self, name: str, **values: Any) -> None:
        """Change the recorded unit's properties (active, sub, enabled, restarts) and save them."""
        with self.state.lock:
            self.state.setdefault("units", {}).setdefault(name, {}).update(values)
            self.state.save()

    def log(self, name: str, event: UnitEvent, **fields: str) -> None:
        """Append a journal entry about the unit, as systemd would."""
        with self.journal.lock:
            entries = self.journal.setdefault("entries", [])
            entries.append({"source": f"fake:{len(entries) + 1}", "instance": name, "event": event,
                            "at": datetime.now(timezone.utc).isoformat(), "fields": fields})
            self.journal.save()


class SimulatedJournal:
    """The journal entries a `SimulatedServiceControl` wrote into its journal store."""

    def __init__(self, journal: StateStore):
        self.journal = journal

    def entries(self, after: str | None, since: datetime | None) -> JournalRead:
        """Entries after the position `after` (else from `since`), oldest first."""
        with self.journal.lock:
            recorded = list(self.journal.get("entries", []))
        number = after.removeprefix("fake:") if after is not None else ""
        # Entry N's source is "fake:N": read on from a known position without decoding what came before it.
        start = int(number) if number.isdigit() and 0 < int(number) <= len(recorded) and \
            recorded[int(number) - 1]["source"] == after else 0
        found = [UnitEntry(source=entry["source"], instance=entry["instance"], at=datetime.fromisoformat(entry["at"]),
                         event=UnitEvent(entry["event"]), fields=entry["fields"])
                 for entry in recorded[start:]]
        if after is None:
            found = [entry for entry in found if since is None or entry.at >= since]
        return JournalRead(found, found[-1].source if found else None)


class SimulatedServerQuery:
    """A server that answers A2S_INFO while some unit is active."""

    def __init__(self, services: SimulatedServiceControl):
        self.services = services

    def info(self, port: int, timeout: float | None = None) -> dict[str, Any] | None:
        """A made-up answer while some unit is active (at once: `timeout` does not matter)."""
        with self.services.state.lock:
            serving = any(unit.get("active") == "active" for unit in self.services.state.get("units", {}).values())
        if not serving:
            return None
        return {"name": f"{self.services.label}simulated server", "map": "c1m1_hotel", "players": 0, "max_players": 8}


def simulated_host(fs: Filesystem, state: StateStore, journal: StateStore, secrets_store: StateStore, *,
                   installer: Installer, faults: CallCheck = NO_FAULTS, label: str = "",
                   services: SimulatedServiceControl | None = None, query: ServerQuery | None = None,
                   simulated: bool = True) -> Host:
    """Every adapter but the filesystem, SteamCMD and the backup files simulated over the state stores and one
    fault check: units, mounts, journal, A2S, the runtime tree and the secret store (`services` and `query` may
    be given instead)."""
    services = services or SimulatedServiceControl(state, fs.root, journal, faults, label=label)
    mounter = SimulatedMounter(state, faults, label=label)
    secrets_kept = SimulatedSecrets(secrets_store, faults, label=label)
    services.secrets = secrets_kept
    return Host(fs, mounter, services, SimulatedJournal(journal), query or SimulatedServerQuery(services),
                SimulatedRuntime(fs, mounter, secrets_kept, faults, label=label), secrets_kept, installer,
                BackupFiles(fs), simulated=simulated)


def set_mounted(state: StateStore, merged: Path, mounted: bool) -> None:
    """Record the overlay at `merged` as mounted or not."""
    with state.lock:
        mounts = set(state.get("mounts", []))
        (mounts.add if mounted else mounts.discard)(str(merged))
        state["mounts"] = sorted(mounts)
        state.save()
