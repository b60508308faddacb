"""The host steps of each lifecycle command, as DESIGN.md's table gives them.

A step is a name and an action on the host adapters. Every action is
idempotent, so a command cut short by a crash can simply be run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from host_adapters import Host, HostError, StepIO

from .spec import Spec, dump_spec

CFG_DIR = "left4dead2/cfg"


@dataclass(frozen=True)
class Step:
    """One named host step of a command."""

    name: str
    action: Callable[[Host, StepIO], None]


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

    def create_directories(host: Host, io: StepIO) -> None:
        for directory in ("upper", "work", "merged"):
            host.fs.make_dirs(f"{runtime_dir(name)}/{directory}")
        host.fs.make_dirs(instance_dir(name))
        io.say(f"{runtime_dir(name)}/{{upper,work,merged}} and {instance_dir(name)}/ exist")

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
        Step("write server.cfg", write_file("server.cfg", "\n".join(spec.config))),
        Step("write spec.yaml", write_file("spec.yaml", dump_spec(spec))),
    ]


def start_steps(name: str, blueprint: Spec, reinitialize: bool) -> list[Step]:
    """(After a reset, init again from the blueprint,) stage the cfg files, then enable and start the unit."""
    upper_cfg = f"{runtime_dir(name)}/upper/{CFG_DIR}"

    def remove_stale_cfgs(host: Host, io: StepIO) -> None:
        host.fs.make_dirs(upper_cfg)
        for stale in host.fs.list_names(upper_cfg):
            if stale.startswith("server") and stale.endswith(".cfg"):
                host.fs.remove_file(f"{upper_cfg}/{stale}")
                io.say(f"removed stale {upper_cfg}/{stale}")

    def stage_server_cfg(host: Host, io: StepIO) -> None:
        host.fs.write_bytes(f"{upper_cfg}/server.cfg", host.fs.read_bytes(f"{instance_dir(name)}/server.cfg"))
        io.say(f"staged {upper_cfg}/server.cfg")

    def stage_alias_cfgs(host: Host, io: StepIO) -> None:
        for overlay in blueprint.overlays:
            if overlay.alias is None:
                continue
            source = f"overlays/{overlay.path}/{CFG_DIR}/server.cfg"
            if not host.fs.exists(source):
                io.say(f"no {source}; nothing staged for alias {overlay.alias}")
                continue
            host.fs.write_bytes(f"{upper_cfg}/server_{overlay.alias}.cfg", host.fs.read_bytes(source))
            io.say(f"staged {source} as server_{overlay.alias}.cfg")

    def enable_unit(host: Host, io: StepIO) -> None:
        host.services.enable_now(name, io)

    return [
        *(init_steps(name, blueprint) if reinitialize else []),
        Step("remove stale cfgs", remove_stale_cfgs),
        Step("stage server.cfg", stage_server_cfg),
        Step("stage alias cfgs", stage_alias_cfgs),
        Step("enable and start unit", enable_unit),
    ]


def stop_steps(name: str) -> list[Step]:
    """Disable and stop the unit, then unmount the overlay if still mounted (a failed unmount is noted, as in the seed)."""
    return [
        Step("disable and stop unit", _disable_unit(name)),
        Step("unmount overlay", _tolerating(_unmount(name))),
    ]


def purge_steps(name: str) -> list[Step]:
    """Delete and reset: stop and unmount (failures noted, not fatal), then remove the instance's files."""

    def remove(directory: str) -> Callable[[Host, StepIO], None]:
        def remove_directory(host: Host, io: StepIO) -> None:
            merged = _merged(host, name)
            if host.mounter.is_mounted(merged):
                raise HostError(f"{merged} is still mounted; refusing to remove files beneath it")
            host.fs.remove_tree(directory)
            io.say(f"removed {directory}")

        return remove_directory

    return [
        Step("disable and stop unit", _tolerating(_disable_unit(name))),
        Step("unmount overlay", _tolerating(_unmount(name))),
        Step("remove instance files", remove(instance_dir(name))),
        Step("remove runtime files", remove(runtime_dir(name))),
    ]


def _merged(host: Host, name: str):
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
    def tolerant(host: Host, io: StepIO) -> None:
        try:
            action(host, io)
        except HostError as error:
            io.say(f"ignored: {error}")

    return tolerant
