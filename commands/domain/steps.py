"""The host steps of each lifecycle command, and what undoes a start that did not end serving.

A step is a name and an action on the host adapters. Every action is
idempotent, so a command cut short by a crash can simply be run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from host_adapters import CFG_DIR, Cancelled, Host, HostError, StepIO
from ledger import format_time
from ledger.lifecycle import UNDO_PREFIX, Command

from .errors import InvalidInput

if TYPE_CHECKING:  # the spec models (pydantic, YAML) load only where a spec is read or written: not in a stop
    from .spec import Spec

# While a server comes up: how often it is asked for A2S_INFO (one UDP packet), and how often systemd is asked
# whether its unit still runs (one `systemctl show` for every unit waiting then, each a D-Bus call into PID 1,
# which is busy starting them).
READY_POLL = 0.1
# How long one readiness query waits for its answer: a query sent before the server binds its port is dropped
# unseen (UDP), so a long wait would make a server that came up meanwhile look late by that much.
READY_QUERY_TIMEOUT = 0.25
UNIT_POLL = 2.0


@dataclass(frozen=True)
class Step:
    """One named host step of a command."""

    name: str
    action: Callable[[Host, StepIO], None]


@dataclass(frozen=True)
class Part:
    """A command of one instance that a command runs as part of itself (an update stops and starts the instances
    around its change): requested, decided and recorded like any other, linked to it by `part_of`.

    With `after`, it runs only once the part `after` of the same instance
    succeeded; no part runs twice in one command.
    """

    command: Command
    instance: str
    after: Command | None = None
    undoing: bool = False

    @property
    def name(self) -> str:
        """How the step that runs this part is recorded: `stop NAME`, `start NAME`, `undo: start NAME`."""
        return f"{UNDO_PREFIX if self.undoing else ''}{self.command} {self.instance}"


@dataclass(frozen=True)
class Plan:
    """The steps a command takes, and the steps that put the host back when it fails or is cancelled mid-way.

    Commands that leave a unit running have an undo (a start that does not
    end serving must not leave a unit enabled, restarting, or mounted), and so
    does an update: it starts again what it stopped.
    """

    steps: Sequence[Step | Part]
    undo: Sequence[Step | Part] = ()


def instance_dir(name: str) -> str:
    """instances/NAME: instance.env, server.cfg, spec.yaml."""
    return f"instances/{name}"


def runtime_dir(name: str) -> str:
    """runtime/NAME: the overlay's upper, work and merged directories."""
    return f"runtime/{name}"


def instance_env(host: Host, spec: Spec) -> str:
    """instance.env: the port, the launch arguments, and the overlay stack (first listed on top)."""
    lowerdirs = [str(host.fs.root / "overlays" / overlay.path) for overlay in spec.overlays]
    lowerdirs.append(str(host.fs.root / "installation"))
    return (
        f"L4D2_PORT={spec.port}\n"
        f"L4D2_ARGS={' '.join(spec.arguments)}\n"
        f"L4D2_LOWERDIRS={':'.join(lowerdirs)}\n"
    )


def init_steps(name: str, spec: Spec) -> list[Step]:
    """Create the instance's directories and write instance.env, server.cfg and spec.yaml."""
    from .spec import dump_spec  # loaded already: the init decided its spec

    def create_directories(host: Host, io: StepIO) -> None:
        host.runtime.prepare(name, io)
        host.fs.make_dirs(instance_dir(name))
        io.say(f"{instance_dir(name)}/ exists")

    def write_file(file_name: str, content: str) -> Callable[[Host, StepIO], None]:
        def write(host: Host, io: StepIO) -> None:
            host.fs.write_bytes(f"{instance_dir(name)}/{file_name}", content.encode())
            io.say(f"wrote {instance_dir(name)}/{file_name} ({len(content.encode())} bytes)")

        return write

    def write_instance_env(host: Host, io: StepIO) -> None:
        write_file("instance.env", instance_env(host, spec))(host, io)

    return [
        Step("create directories", create_directories),
        Step("write instance.env", write_instance_env),
        Step("write server.cfg", write_file("server.cfg", "".join(f"{line}\n" for line in spec.config))),
        Step("write spec.yaml", write_file("spec.yaml", dump_spec(spec))),
    ]


def adopt_steps(name: str, spec: Spec, running: bool) -> list[Step]:
    """Adopt: check that an instance already on disk (made by the original tool, or by l4d2ctl before its ledger
    was lost) is what `spec` says, and its unit as it was when the adopt was requested; touch nothing."""

    def check_files(host: Host, io: StepIO) -> None:
        env = dict(_env_lines(instance_env(host, spec)))
        problems = []
        for file in ("spec.yaml", "instance.env", "server.cfg"):
            path = f"{instance_dir(name)}/{file}"
            try:
                text = host.fs.read_bytes(path).decode(errors="replace")
            except HostError as error:
                problems.append(f"{path} cannot be read ({error})")
                continue
            if file == "spec.yaml" and _spec_or_none(text) != spec:
                problems.append(f"{path} changed since adopt was requested")
            elif file == "instance.env" and dict(_env_lines(text)) != env:
                found = dict(_env_lines(text))
                keys = sorted(key for key in env.keys() | found.keys() if found.get(key) != env.get(key))
                wanted = "; ".join(f"{key}={env.get(key, '')}" for key in keys)
                problems.append(f"{path}: {', '.join(keys)} not as the spec makes them ({wanted})")
            elif file == "server.cfg" and text.splitlines() != list(spec.config):
                problems.append(f"{path} does not hold the spec's config lines")
        missing = [part for part in ("upper", "work", "merged") if not host.fs.exists(f"{runtime_dir(name)}/{part}")]
        if missing:
            problems.append(f"{runtime_dir(name)}/ lacks {', '.join(missing)}")
        if problems:
            raise HostError(f"{'; '.join(problems)}: make them agree with {instance_dir(name)}/spec.yaml (or `init` "
                            f"the instance from it), then adopt again")
        io.say(f"{instance_dir(name)}/spec.yaml, instance.env and server.cfg agree; {runtime_dir(name)}/ is there")

    def check_unit(host: Host, io: StepIO) -> None:
        status = host.services.status(name)
        if status.active != running:
            raise HostError(f"the unit was {'active' if running else 'not active'} when adopt was requested and is "
                            f"{status.describe()} now: adopt again")
        io.say(f"the unit is {status.describe()}: recorded {'running' if running else 'initialized'}")

    return [Step("check the instance files", check_files), Step("check the unit", check_unit)]


def _env_lines(text: str) -> list[tuple[str, str]]:
    """KEY=VALUE lines of an env file, as (key, value)."""
    return [(key, value) for line in text.splitlines() if line for key, _, value in [line.partition("=")]]


def _spec_or_none(text: str) -> Spec | None:
    from .spec import load_spec_text  # loaded already: an adopt decided its spec

    try:
        return load_spec_text(text)
    except InvalidInput:
        return None


def start_plan(name: str, blueprint: Spec, reinitialize: bool) -> Plan:
    """Start: (after a reset, init again from the blueprint,) stage the cfgs, start the unit, wait until it serves.

    A unit found running although the record does not say so (a start cut
    short by a crash, a start by hand) is stopped first: cfgs are staged only
    while the overlay is not mounted.
    """
    return Plan([*(init_steps(name, blueprint) if reinitialize else []), Step("release overlay", _release(name)),
                 *_serving_steps(name, blueprint)], undo=undo_steps(name))


def restart_plan(name: str, blueprint: Spec, reinitialize: bool) -> Plan:
    """Restart: stop, then start with the same readiness rule, as one command."""
    start = start_plan(name, blueprint, reinitialize)
    return Plan([*stop_steps(name), *start.steps], undo=start.undo)


class NothingToDo(Exception):
    """A step found the host already as the command wants it: the command succeeds without its other steps."""


def running_plan(name: str, blueprint: Spec, reinitialize: bool) -> Plan:
    """Start of an instance recorded running: touch nothing while its unit is active; otherwise start it."""

    def check_whether_running(host: Host, io: StepIO) -> None:
        try:
            status = host.services.status(name)
        except HostError as error:
            raise NothingToDo(f"{name} is recorded running and systemd cannot be asked ({error}): "
                              "nothing done") from None
        if status.active:
            raise NothingToDo(f"{name} is already running: nothing to do on the host")
        io.say(f"{name} is recorded running but its unit is {status.describe()}: starting it")

    start = start_plan(name, blueprint, reinitialize)
    return Plan([Step("check whether running", check_whether_running), *start.steps], undo=start.undo)


def undo_steps(name: str) -> list[Step]:
    """What puts the host back after a start that did not end serving: unit disabled and stopped, overlay unmounted."""
    return [Step(UNDO_PREFIX + step.name, step.action) for step in _release_steps(name)]


def _release(name: str) -> Callable[[Host, StepIO], None]:
    def release_overlay(host: Host, io: StepIO) -> None:
        merged = _merged(host, name)
        if not host.mounter.is_mounted(merged):
            io.say(f"{merged} is not mounted")
            return
        io.say(f"{merged} is mounted: its unit runs outside the record; stopping it before staging")
        for step in _release_steps(name):
            step.action(host, io)

    return release_overlay


def _serving_steps(name: str, blueprint: Spec) -> list[Step]:
    """Stage server.cfg and the alias cfgs in instances/NAME/cfg/, have the helper copy them into the upper layer
    (never under a mounted overlay), start the unit, wait for A2S_INFO."""
    staged = f"{instance_dir(name)}/cfg"

    def remove_stale_cfgs(host: Host, io: StepIO) -> None:
        host.fs.make_dirs(staged)
        for stale in host.fs.list_names(staged):
            host.fs.remove_file(f"{staged}/{stale}")
            io.say(f"removed stale {staged}/{stale}")

    def stage_server_cfg(host: Host, io: StepIO) -> None:
        host.fs.write_bytes(f"{staged}/server.cfg", host.fs.read_bytes(f"{instance_dir(name)}/server.cfg"))
        io.say(f"staged {staged}/server.cfg")

    def stage_alias_cfgs(host: Host, io: StepIO) -> None:
        for overlay in blueprint.overlays:
            if overlay.alias is None:
                continue
            source = f"overlays/{overlay.path}/{CFG_DIR}/server.cfg"
            if not host.fs.exists(source):
                io.say(f"no {source}; nothing staged for alias {overlay.alias}")
                continue
            host.fs.write_bytes(f"{staged}/server_{overlay.alias}.cfg", host.fs.read_bytes(source))
            io.say(f"staged {source} as server_{overlay.alias}.cfg")

    def copy_into_upper_layer(host: Host, io: StepIO) -> None:
        host.runtime.stage(name, io)

    def enable_unit(host: Host, io: StepIO) -> None:
        host.services.enable_now(name, io)

    return [
        Step("remove stale cfgs", remove_stale_cfgs),
        Step("stage server.cfg", stage_server_cfg),
        Step("stage alias cfgs", stage_alias_cfgs),
        Step("copy cfgs into the upper layer", copy_into_upper_layer),
        Step("enable and start unit", enable_unit),
        Step("wait until serving", _wait_until_serving(name, blueprint)),
    ]


def _wait_until_serving(name: str, blueprint: Spec) -> Callable[[Host, StepIO], None]:
    """Started means serving: the unit stays active and the server answers A2S_INFO within ready_timeout."""

    def wait_until_serving(host: Host, io: StepIO) -> None:
        port, seconds = blueprint.port, blueprint.readiness_seconds
        deadline = time.monotonic() + seconds
        unit_due = time.monotonic() + UNIT_POLL  # the unit was active when enable returned
        while True:
            answer = host.query.info(port, timeout=READY_QUERY_TIMEOUT)
            if answer is not None:
                io.say(f"the server answers A2S_INFO on udp/{port}: {answer['name']!r} on {answer['map']}, "
                       f"{answer['players']}/{answer['max_players']} players")
                return
            if io.should_cancel():
                raise Cancelled(f"cancelled while waiting for the server on udp/{port}")
            out_of_time = time.monotonic() >= deadline
            if out_of_time or time.monotonic() >= unit_due:
                status = host.services.status(name)
                if not status.active:
                    raise HostError(f"the unit is {status.describe()}: the server stopped before it answered "
                                    f"A2S_INFO on udp/{port}", _journal(host, name))
                if out_of_time:
                    raise HostError(f"no A2S_INFO answer on udp/{port} within ready_timeout ({seconds}s); "
                                    f"the unit is {status.describe()}", _journal(host, name))
                unit_due = time.monotonic() + UNIT_POLL
            time.sleep(READY_POLL)

    return wait_until_serving


def _journal(host: Host, name: str) -> list[str]:
    return [f"journal: {line}" for line in host.services.journal_tail(name)]


def secret_set_plan(name: str, cvar: str, fingerprint: str) -> Plan:
    """Secret set: make the value the CLI handed the host (kept aside under its fingerprint) the cvar's value."""

    def store_secret(host: Host, io: StepIO) -> None:
        host.secrets.commit(name, cvar, fingerprint, io)
        io.say("the next start stages it into server.cfg (a running server keeps its value until then)")

    return Plan([Step("store secret", store_secret)])


def secret_unset_plan(name: str, cvar: str) -> Plan:
    """Secret unset: remove the cvar's value."""

    def remove_secret(host: Host, io: StepIO) -> None:
        host.secrets.unset(name, cvar, io)

    return Plan([Step("remove secret", remove_secret)])


def console_plan(name: str, text: str) -> Plan:
    """Console: one command to the instance's server over RCON; the reply is the step's output."""

    def send_over_rcon(host: Host, io: StepIO) -> None:
        host.services.console(name, text, io)

    return Plan([Step("send over RCON", send_over_rcon)])


def install_plan(requested_by: str) -> Plan:
    """Install: fill the shared installation with SteamCMD (run as `requested_by` where this process is root),
    never under a mounted overlay."""
    return Plan([Step("check steamcmd", _check_installer(requested_by)),
                 Step("check no overlay is mounted", _check_unmounted),
                 Step("run steamcmd", _run_installer(requested_by))])


def update_plan(running: list[str], requested_by: str) -> Plan:
    """Update: stop the instances that run on the installation, update it, start again exactly those it stopped;
    each stop and start a command of its instance. Failed or cancelled mid-way, it starts them again."""
    return Plan([Step("check steamcmd", _check_installer(requested_by)),
                 *(Part(Command.STOP, name) for name in running),
                 Step("check no overlay is mounted", _check_unmounted),
                 Step("run steamcmd", _run_installer(requested_by)),
                 *(Part(Command.START, name, after=Command.STOP) for name in running)],
                undo=[Part(Command.START, name, after=Command.STOP, undoing=True) for name in running])


def _check_installer(requested_by: str) -> Callable[[Host, StepIO], None]:
    def check_steamcmd(host: Host, io: StepIO) -> None:
        host.installer.check(io, requested_by)

    return check_steamcmd


def _run_installer(requested_by: str) -> Callable[[Host, StepIO], None]:
    def run_steamcmd(host: Host, io: StepIO) -> None:
        host.installer.install(io, requested_by)

    return run_steamcmd


def _check_unmounted(host: Host, io: StepIO) -> None:
    """The kernel leaves changing a lower layer under a mounted overlay undefined: no instance's overlay may be
    mounted (a unit started by hand, or by systemd, included) while the installation changes."""
    mounted = [name for name in host.fs.list_names("runtime") if host.mounter.is_mounted(_merged(host, name))]
    if mounted:
        raise HostError(f"the overlays of {', '.join(mounted)} are mounted on the installation: stop "
                        f"{'them' if len(mounted) > 1 else 'it'} first (`l4d2ctl update` stops what the ledger "
                        f"records running)")
    io.say("no instance's overlay is mounted: the installation can change")


INSTANCE_FILES = ("spec.yaml", "instance.env", "server.cfg")


def backup_plan(name: str, backup_id: str, excludes: list[str], keep: int | None) -> Plan:
    """Backup: archive the upper layer (the instance is stopped: nothing writes it) with a manifest holding the
    instance files; then, with `keep`, remove the oldest backups beyond the newest `keep`."""

    def archive_upper_layer(host: Host, io: StepIO) -> None:
        files = {file: host.fs.read_bytes(f"{instance_dir(name)}/{file}").decode(errors="replace")
                 for file in INSTANCE_FILES if host.fs.exists(f"{instance_dir(name)}/{file}")}
        manifest = host.backups.take(
            name, backup_id, lambda out: host.runtime.archive(name, excludes, out, io),
            {"taken_at": format_time(datetime.now(timezone.utc)), "command_id": backup_id, "excludes": excludes,
             "files": files})
        io.say(f"backups/{name}/{backup_id}.tar: {manifest['size']} bytes, sha256 {manifest['sha256']}")

    def remove_oldest_backups(host: Host, io: StepIO) -> None:
        listed = host.backups.manifests(name)
        for broken in (manifest for manifest in listed if manifest.get("error")):
            io.say(f"kept {broken['id']}, whose manifest cannot be read ({broken['error']}): look at it by hand")
        others = [manifest["id"] for manifest in listed if manifest["id"] != backup_id and not manifest.get("error")]
        dropped = others[:max(len(others) - ((keep or 1) - 1), 0)]
        for old in dropped:
            host.backups.remove(name, old)
            io.say(f"removed backup {old} (--keep {keep})")
        io.say(f"{len(others) - len(dropped) + 1} backups of {name} kept")

    steps = [Step("archive the upper layer", archive_upper_layer)]
    return Plan([*steps, Step(f"keep the newest {keep}", remove_oldest_backups)] if keep else steps)


def restore_plan(name: str, backup_id: str) -> Plan:
    """Restore: check the archive against its manifest (size, sha256) and only then replace the upper layer with
    it; the instance files stay as the recorded blueprint has them (differences are said)."""

    def restore_upper_layer(host: Host, io: StepIO) -> None:
        with host.backups.verified(name, backup_id) as (manifest, archive):
            io.say(f"backups/{name}/{backup_id}.tar: {manifest['size']} bytes, sha256 {manifest['sha256']}, as "
                   f"its manifest records")
            host.runtime.prepare(name, io)
            host.runtime.restore(name, archive, io)

    def compare_instance_files(host: Host, io: StepIO) -> None:
        backed_up = host.backups.manifest(name, backup_id).get("files") or {}
        for file in INSTANCE_FILES:
            path = f"{instance_dir(name)}/{file}"
            now = host.fs.read_bytes(path).decode(errors="replace") if host.fs.exists(path) else None
            if file in backed_up and now is None:
                io.say(f"{path} is not there now; left so, as the recorded blueprint has it (after a reset, the "
                       f"next start writes it; the backup's copy is in backups/{name}/{backup_id}.json)")
            elif file in backed_up and backed_up[file] != now:
                io.say(f"{path} differs from the backup's; kept as the recorded blueprint makes it (the backup's "
                       f"copy is in backups/{name}/{backup_id}.json)")
        io.say(f"the instance files of {name} are compared")

    return Plan([Step("restore the upper layer", restore_upper_layer),
                 Step("compare instance files", compare_instance_files)])


def stop_plan(name: str) -> Plan:
    """Stop: disable and stop the unit, unmount the overlay."""
    return Plan(stop_steps(name))


def purge_plan(name: str) -> Plan:
    """Delete and reset: stop, unmount, remove the instance's files."""
    return Plan(purge_steps(name))


def stop_steps(name: str) -> list[Step]:
    """Disable and stop the unit, then unmount the overlay if still mounted (a failed unmount is noted, not fatal)."""
    return [
        Step("disable and stop unit", _disable_unit(name)),
        Step("unmount overlay", _tolerating(_unmount(name))),
    ]


def purge_steps(name: str) -> list[Step]:
    """Delete and reset: stop and unmount (failures noted, not fatal), then remove the instance's files."""

    def remove_instance_files(host: Host, io: StepIO) -> None:
        merged = _merged(host, name)
        if host.mounter.is_mounted(merged):
            raise HostError(f"{merged} is still mounted; refusing to remove files beneath it")
        removed = host.fs.remove_tree(instance_dir(name))
        io.say(f"removed {instance_dir(name)}" if removed else f"no {instance_dir(name)} to remove")

    def remove_runtime_files(host: Host, io: StepIO) -> None:
        host.runtime.remove(name, io)

    return [
        *_release_steps(name),
        Step("remove instance files", remove_instance_files),
        Step("remove runtime files", remove_runtime_files),
    ]


def _release_steps(name: str) -> list[Step]:
    """Disable and stop the unit, unmount the overlay; failures noted, not fatal."""
    return [
        Step("disable and stop unit", _tolerating(_disable_unit(name))),
        Step("unmount overlay", _tolerating(_unmount(name))),
    ]


def _merged(host: Host, name: str) -> Path:
    return host.fs.root / runtime_dir(name) / "merged"


def _disable_unit(name: str) -> Callable[[Host, StepIO], None]:
    def disable_unit(host: Host, io: StepIO) -> None:
        host.services.disable_now(name, io)

    return disable_unit


def _unmount(name: str) -> Callable[[Host, StepIO], None]:
    def unmount(host: Host, io: StepIO) -> None:
        host.mounter.unmount(_merged(host, name), io)

    return unmount


def _tolerating(action: Callable[[Host, StepIO], None]) -> Callable[[Host, StepIO], None]:
    """The action, with a failure on the host noted in its output instead of ending the command (undo steps)."""
    def tolerant(host: Host, io: StepIO) -> None:
        try:
            action(host, io)
        except (HostError, OSError) as error:
            io.say(f"ignored: {error}")

    return tolerant
