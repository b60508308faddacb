"""left4me-host, the one program l4d2ctl runs as root: its interface, and that nothing points it outside the root.

Most tests call the helper's `run` in-process against a throwaway root; the
real mounts need root on Linux (they skip elsewhere, saying why). A recording
stand-in for the privileged calls lets hypothesis throw arbitrary arguments at
it and check every mount, unmount and systemctl call it would have made.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import pwd
import py_compile
import resource
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.domain.spec import MAX_OVERLAYS
from commands.domain.text_rules import CVAR_PATTERN, FINGERPRINT_PATTERN, NAME_PATTERN, SECRET_VALUE_PATTERN
from host_adapters.a2s_query import A2SQuery
from host_adapters.helper import MAX_BATCH
from host_adapters.overlay import mounted_points

HELPER_SOURCE = Path(__file__).resolve().parent.parent / "scripts" / "host" / "left4me-host"
GAME_USER = "nobody"
needs_root = pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                                reason="the helper runs as root: chown, overlay mounts")


def _load_helper():
    loader = SourceFileLoader("left4me_host", str(HELPER_SOURCE))
    module = module_from_spec(spec_from_loader("left4me_host", loader))
    loader.exec_module(module)
    return module


helper = _load_helper()


class RecordingSystem(helper.System):
    """The privileged calls, recorded with what each path really named at that moment, instead of made."""

    def __init__(self, active: bool = False, failing: tuple[str, ...] = ()):
        self.calls: list[tuple] = []
        self.active = active
        self.failing = failing

    def active_units(self, unit_names: list[str]) -> set[str]:
        self.calls.append(("is-active", *unit_names))
        return set(unit_names) if self.active else set()

    def active_state(self, unit_name: str) -> str:
        return "active" if self.active else "inactive"

    def mount_overlay(self, target: str, options: str) -> None:
        layers = [value for option in options.split(",") for value in option.split("=", 1)[1].split(":")]
        self.calls.append(("mount", _resolved(target), [_resolved(layer) for layer in layers]))

    def umount_here(self, name: str) -> None:
        self.calls.append(("umount", os.path.realpath(name)))

    def systemctl(self, *arguments: str, quiet: bool = False) -> int:
        """The run recorded; it fails when it names a unit of the `failing` instances (reset-failed never does)."""
        self.calls.append(("systemctl", *arguments))
        return 1 if arguments[0] != "reset-failed" and set(arguments) & set(map(helper.unit, self.failing)) else 0

    def systemctl_each(self, arguments: tuple[str, ...], units: list[str]) -> dict[str, int]:
        return {unit: self.systemctl(*arguments, unit) for unit in units}

    def journal_lines(self, *arguments: str):
        self.calls.append(("journalctl", *arguments))
        yield from ()

    def chown(self, fd: int, uid: int, gid: int) -> None:
        self.calls.append(("chown", _resolved(f"/proc/self/fd/{fd}")))


def _resolved(path: str) -> str:
    return os.readlink(path) if path.startswith("/proc/self/fd/") else os.path.realpath(path)


def _instance(root: Path, name: str, layers: list[str] | None = None) -> None:
    """An instance as l4d2ctl leaves it for the helper: instance.env and the cfgs to stage."""
    (root / f"instances/{name}/cfg").mkdir(parents=True, exist_ok=True)
    lowers = layers if layers is not None else [f"{root}/overlays/o", f"{root}/installation"]
    (root / f"instances/{name}/instance.env").write_text(
        f"L4D2_PORT=27015\nL4D2_ARGS=+map c1m1_hotel\nL4D2_LOWERDIRS={':'.join(lowers)}\n")
    (root / f"instances/{name}/cfg/server.cfg").write_text(f"hostname {name}\n")


@pytest.fixture
def root(tmp_path):
    """A root the game user can reach (pytest's own temporary directories are root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="left4me-host-"))
    base.chmod(0o755)
    root = base / "root"
    (root / "installation/left4dead2").mkdir(parents=True)
    (root / "installation/srcds_run").write_text("game")
    (root / "overlays/o/left4dead2/cfg").mkdir(parents=True)
    (root / "overlays/o/left4dead2/cfg/server.cfg").write_text("sv_o 1\n")
    _instance(root, "a")
    yield root
    for point in sorted((p for p in _mounts() if p.startswith(str(base))), reverse=True):
        subprocess.run(["umount", point], capture_output=True)
    shutil.rmtree(base)


@pytest.fixture
def outside(tmp_path):
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "file").write_text("untouched")
    return outside


def _config(root: Path):
    return helper.Config(str(root), GAME_USER)


def _run(root: Path, *argv: str, system=None, stdin: str | bytes = "", stdout=None):
    source = io.BytesIO(stdin if isinstance(stdin, bytes) else stdin.encode()) if argv[:1] == ("restore",) \
        else io.StringIO(stdin if isinstance(stdin, str) else stdin.decode(errors="replace"))
    return helper.run(list(argv), _config(root), system or RecordingSystem(), source, stdout or io.BytesIO())


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        return mounted_points(table.read())


def _mount_options(point: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        for line in table:
            fields = line.split(" ")
            if fields[4] == str(point):
                return fields[5].split(",")
    return []


def test_the_patterns_agree_with_l4d2ctls_own():
    assert helper.NAME.pattern.removesuffix(r"\Z") == NAME_PATTERN.pattern
    assert helper.CVAR.pattern.removesuffix(r"\Z") == CVAR_PATTERN.pattern
    assert helper.FINGERPRINT.pattern.removesuffix(r"\Z") == FINGERPRINT_PATTERN.pattern
    assert helper.MAX_LAYERS == MAX_OVERLAYS + 1
    assert helper.MAX_BATCH == MAX_BATCH
    for value in ("hunter2", 'a"b', "x" * 255, "x" * 256, "tab\there", "ünï"):
        helper_accepts = bool(helper.SECRET_VALUE.match(value)) and '"' not in value
        assert helper_accepts == bool(SECRET_VALUE_PATTERN.fullmatch(value)), value


@pytest.mark.parametrize("argv", [
    [], ["frob", "a"], ["start"], ["start", "a", "a"], ["stop", *(f"a{n}" for n in range(65))], ["start", "a b"], ["start", "a left4me-server@b"],
    ["start", "../a"], ["start", "a/b"], ["start", "A"], ["start", "-a"], ["start", "a.service"],
    ["start", "a" * 64], ["start", "a\n"], ["root", "a"], ["secret-put", "a", "RCON"],
    ["secret-commit", "a", "rcon_password", "not-hex"], ["mount", "a", "--root=/"],
    ["logs", "a", "10", "-"], ["logs", "a", "-5", "-", "once"], ["logs", "a", "10", "yesterday", "once"],
    ["logs", "a", "10", "@1e9", "once"], ["logs", "a", "10", "-", "--follow"], ["logs", "a", "1234567", "-", "once"],
    ["logs", "a", "10", "-", "once", "--root=/"], ["logs", "a b", "10", "-", "once"],
], ids=repr)
def test_arguments_outside_the_interface_are_refused_before_anything_runs(root, argv):
    system = RecordingSystem()
    with pytest.raises(helper.Refused):
        _run(root, *argv, system=system)
    assert system.calls == []


def test_start_names_exactly_the_instances_unit_once_it_is_staged(root, capsys):
    system = RecordingSystem()
    with pytest.raises(helper.Refused, match="stage the instance first"):
        _run(root, "start", "a", system=system)
    assert capsys.readouterr().out == "a: refused: runtime/a/unit.env does not exist: stage the instance first\n"
    _run(root, "stage", "a", system=system)
    assert capsys.readouterr().out == "a: done: staged server.cfg into runtime/a/upper/left4dead2/cfg; wrote unit.env\n"
    system.calls.clear()
    _run(root, "start", "a", system=system)
    _run(root, "stop", "a", system=system)
    unit = "left4me-server@a.service"
    assert system.calls == [("systemctl", "reset-failed", unit), ("systemctl", "enable", "--now", "--no-reload", unit),
                            ("systemctl", "disable", "--now", "--no-reload", unit)]
    assert capsys.readouterr().out == ("a: done: enabled and started left4me-server@a.service\n"
                                       "a: done: disabled and stopped left4me-server@a.service\n")


def test_a_fleet_starts_and_stops_with_one_systemctl_and_a_line_for_each_name(root, capsys):
    system = RecordingSystem()
    for name in ("a", "b", "c"):
        _instance(root, name)
    _run(root, "stage", "a", "b", "c", system=system)
    capsys.readouterr()
    system.calls.clear()
    _run(root, "start", "a", "b", "c", system=system)
    _run(root, "stop", "c", "b", "a", system=system)
    units = [f"left4me-server@{name}.service" for name in ("a", "b", "c")]
    assert system.calls == [("systemctl", "reset-failed", *units),
                            ("systemctl", "enable", "--now", "--no-reload", *units),
                            ("systemctl", "disable", "--now", "--no-reload", *reversed(units))]
    assert capsys.readouterr().out.splitlines() == [
        *(f"{name}: done: enabled and started left4me-server@{name}.service" for name in ("a", "b", "c")),
        *(f"{name}: done: disabled and stopped left4me-server@{name}.service" for name in ("c", "b", "a"))]


def test_a_fleet_is_staged_in_one_run_where_one_instance_refused_holds_up_none_of_the_others(root, capsys):
    _instance(root, "b")
    shutil.rmtree(root / "instances/b/cfg")
    with pytest.raises(helper.Refused, match="1 of 2 instances: stage refused"):
        _run(root, "stage", "b", "a")
    assert capsys.readouterr().out.splitlines() == [
        "b: refused: instances/b/cfg does not exist",
        "a: done: staged server.cfg into runtime/a/upper/left4dead2/cfg; wrote unit.env"]
    assert (root / "runtime/a/upper/left4dead2/cfg/server.cfg").read_text().startswith("hostname a")


def test_a_fleet_is_staged_after_one_question_to_systemd_and_a_running_unit_is_refused_alone(root, capsys):
    class OneRunning(RecordingSystem):
        def active_units(self, unit_names: list[str]) -> set[str]:
            super().active_units(unit_names)
            return {helper.unit("b")} & set(unit_names)

    _instance(root, "b")
    system = OneRunning()
    with pytest.raises(helper.Refused, match="1 of 2 instances: stage refused"):
        _run(root, "stage", "b", "a", system=system)
    assert [call for call in system.calls if call[0] == "is-active"] == [
        ("is-active", "left4me-server@b.service", "left4me-server@a.service")]
    assert capsys.readouterr().out.splitlines()[0] == \
        "b: refused: left4me-server@b.service is running: stop it before staging its cfgs"
    assert (root / "runtime/a/upper/left4dead2/cfg/server.cfg").exists()
    assert not (root / "runtime/b").exists()


@needs_root
def test_staging_a_fleet_lets_go_of_each_instances_descriptors_and_lock_once_it_is_staged(root, capsys):
    names = [f"i{number}" for number in range(64)]
    for name in names:
        _instance(root, name)
    before = len(os.listdir("/proc/self/fd"))
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + 64, limits[1]))  # far fewer than 64 instances' worth
    try:
        _run(root, "stage", *names)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    assert all(line.split(": ")[1] == "done" for line in capsys.readouterr().out.splitlines())
    assert len(os.listdir("/proc/self/fd")) == before


def test_when_systemctl_fails_for_a_fleet_each_unit_is_run_on_its_own_to_tell_whose_job_failed(root, capsys):
    system = RecordingSystem(failing=("b",))
    for name in ("a", "b"):
        _instance(root, name)
    _run(root, "stage", "a", "b", system=system)
    capsys.readouterr()
    system.calls.clear()
    with pytest.raises(helper.Failed, match="1 of 3 instances: start failed"):
        _run(root, "start", "a", "b", "c", system=system)
    enable = ("systemctl", "enable", "--now", "--no-reload")
    assert system.calls[1:] == [(*enable, "left4me-server@a.service", "left4me-server@b.service"),
                                (*enable, "left4me-server@a.service"), (*enable, "left4me-server@b.service")]
    assert capsys.readouterr().out.splitlines() == [
        "a: done: enabled and started left4me-server@a.service",
        "b: failed: systemctl enable --now --no-reload left4me-server@b.service exited with status 1",
        "c: refused: runtime/c/unit.env does not exist: stage the instance first"]
    with pytest.raises(helper.Failed, match="1 of 2 instances: stop failed"):
        _run(root, "stop", "a", "b", system=system)
    assert capsys.readouterr().out.splitlines() == [
        "a: done: disabled and stopped left4me-server@a.service",
        "b: failed: systemctl disable --now --no-reload left4me-server@b.service exited with status 1"]


def test_logs_reads_exactly_the_instances_unit_from_the_journal_and_no_file(root):
    system = RecordingSystem()
    assert _run(root, "logs", "a", "20", "-", "once", system=system) is None
    _run(root, "logs", "a", "0", "@1764400000", "follow", system=system)
    unit = "--unit=left4me-server@a.service"
    assert system.calls == [("journalctl", unit, "--no-pager", "--output=short-iso", "--lines=20"),
                            ("journalctl", unit, "--no-pager", "--output=short-iso", "--lines=0",
                             "--since=@1764400000", "--follow")]


@pytest.mark.parametrize("verb", ["prepare", "stage", "remove"])
def test_the_runtime_tree_is_not_touched_while_the_unit_runs(root, verb):
    with pytest.raises(helper.Refused, match="left4me-server@a.service is running"):
        _run(root, verb, "a", system=RecordingSystem(active=True))
    assert not (root / "runtime").exists()


@pytest.mark.parametrize("port", ["0", "65536", "²", "٣٣", "0" * 5000 + "1", "+1", " 1"])
def test_a_port_that_is_not_plain_digits_in_range_is_refused(root, port):
    (root / "instances/a/instance.env").write_text(f"L4D2_PORT={port}\nL4D2_ARGS=\n"
                                                   f"L4D2_LOWERDIRS={root}/installation\n")
    with pytest.raises(helper.Refused, match="L4D2_PORT"):
        _run(root, "stage", "a")


def test_remove_takes_a_tree_deeper_than_python_recursion(root):
    _run(root, "stage", "a")
    fd = os.open(root / "runtime/a/upper", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1200):
        os.mkdir("d", dir_fd=fd)
        below = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = below
    os.close(fd)
    assert _run(root, "remove", "a") == "removed runtime/a"
    assert not (root / "runtime/a").exists()


def test_remove_refuses_a_fifo_swapped_in_for_a_directory_instead_of_hanging(root):
    _run(root, "stage", "a")
    fd = os.open(root / "runtime/a/upper", os.O_RDONLY | os.O_DIRECTORY)
    os.mkfifo("left4dead2-fifo", dir_fd=fd)
    with pytest.raises(helper.Refused):
        helper._open_directory(fd, "left4dead2-fifo")
    os.close(fd)


def test_stage_clears_whatever_the_game_left_where_the_cfgs_go(root):
    _run(root, "stage", "a")
    cfg = root / "runtime/a/upper/left4dead2/cfg"
    (cfg / "server.cfg").unlink()
    (cfg / "server.cfg").mkdir()
    (cfg / "server.cfg/inner").write_text("x")
    _run(root, "stage", "a")
    assert (cfg / "server.cfg").read_text() == "hostname a\n"
    remove_cfg_dir = root / "runtime/a/upper/left4dead2"
    for entry in (remove_cfg_dir / "cfg").iterdir():
        entry.unlink()
    (remove_cfg_dir / "cfg").rmdir()
    (remove_cfg_dir / "cfg").write_text("a file where a directory goes")
    _run(root, "stage", "a")
    assert (cfg / "server.cfg").read_text() == "hostname a\n"


def test_values_waiting_for_their_command_are_capped(root):
    for number in range(helper.MAX_WAITING_SECRETS):
        _run(root, "secret-put", "a", "rcon_password", stdin=f"value{number}\n")
    with pytest.raises(helper.Refused, match="already wait"):
        _run(root, "secret-put", "a", "rcon_password", stdin="one more\n")


def test_root_prints_the_configured_root_whatever_the_caller_says(root):
    assert _run(root, "root") == str(root)


@pytest.mark.parametrize("layers, why", [
    (["{root}"], "not a normalized path under"),
    (["{root}/overlays"], "neither below overlays/ nor installation/"),
    (["{root}/instances/a"], "neither below overlays/ nor installation/"),
    (["/etc"], "not a normalized path under"),
    (["{root}/overlays/../../x"], "not a normalized path under"),
    (["{root}/overlays/o,upperdir=/x"], "not a normalized path under"),
    (["{root}/overlays/o\\x"], "not a normalized path under"),
    (["{root}/overlays/o"] * 65, "at most 64"),
], ids=["the root", "overlays/ itself", "instances/", "outside", "dot-dot", "comma", "backslash", "65 layers"])
def test_stage_refuses_a_lower_layer_outside_overlays_and_installation(root, layers, why):
    _instance(root, "a", [layer.format(root=root) for layer in layers])
    with pytest.raises(helper.Refused, match=why):
        _run(root, "stage", "a")
    assert not (root / "runtime/a/unit.env").exists()


def test_stage_refuses_a_symlinked_instance_env_or_cfg(root, outside):
    (root / "instances/a/cfg/server.cfg").unlink()
    (root / "instances/a/cfg/server.cfg").symlink_to(outside / "file")
    with pytest.raises(helper.Refused, match="symlink"):
        _run(root, "stage", "a")


def test_stage_refuses_a_fifo_instead_of_hanging_on_it(root):
    (root / "instances/a/cfg/server.cfg").unlink()
    os.mkfifo(root / "instances/a/cfg/server.cfg")
    with pytest.raises(helper.Refused, match="regular file"):
        _run(root, "stage", "a")


@needs_root
def test_stage_gives_the_upper_layer_to_the_game_and_keeps_the_rest_roots(root):
    _run(root, "stage", "a", system=helper.System())
    game = pwd.getpwnam(GAME_USER)
    runtime = root / "runtime/a"
    owners = {path: (path.stat().st_uid, stat.S_IMODE(path.stat().st_mode))
              for path in (runtime, runtime / "upper", runtime / "work", runtime / "merged", runtime / "unit.env",
                           runtime / "upper/left4dead2/cfg/server.cfg")}
    assert owners == {runtime: (0, 0o755), runtime / "upper": (game.pw_uid, 0o750), runtime / "work": (0, 0o700),
                      runtime / "merged": (0, 0o755), runtime / "unit.env": (0, 0o644),
                      runtime / "upper/left4dead2/cfg/server.cfg": (game.pw_uid, 0o640)}


@needs_root
def test_a_secret_reaches_the_staged_server_cfg_only(root):
    fingerprint = _run(root, "secret-put", "a", "rcon_password", stdin="hunter2\n", system=helper.System())
    _run(root, "secret-commit", "a", "rcon_password", fingerprint, system=helper.System())
    _run(root, "stage", "a", system=helper.System())
    staged = root / "runtime/a/upper/left4dead2/cfg/server.cfg"
    assert staged.read_text() == 'hostname a\nrcon_password "hunter2"\n'
    assert not stat.S_IMODE(staged.stat().st_mode) & 0o007, "server.cfg is not world-readable"
    kept = root / "secrets/a/rcon_password"
    assert (kept.stat().st_uid, stat.S_IMODE(kept.stat().st_mode)) == (0, 0o600)
    assert stat.S_IMODE((root / "secrets").stat().st_mode) == 0o700
    assert "hunter2" not in (root / "instances/a/cfg/server.cfg").read_text()


@needs_root
def test_a_fingerprint_is_keyed_and_a_commit_is_idempotent(root):
    first = _run(root, "secret-put", "a", "rcon_password", stdin="hunter2\n", system=helper.System())
    assert first == _run(root, "secret-put", "a", "rcon_password", stdin="hunter2\n", system=helper.System())
    assert first != _run(root, "secret-put", "b", "rcon_password", stdin="hunter2\n", system=helper.System())
    import hashlib

    assert first not in hashlib.sha256(b"hunter2").hexdigest(), "not a bare hash a dictionary could reverse"
    _run(root, "secret-commit", "a", "rcon_password", first, system=helper.System())
    _run(root, "secret-commit", "a", "rcon_password", first, system=helper.System())
    with pytest.raises(helper.Failed, match="set it again"):
        _run(root, "secret-commit", "a", "rcon_password", "0" * 32, system=helper.System())


@needs_root
def test_remove_refuses_while_mounted_and_removes_root_owned_leftovers_after(root):
    system = helper.System()
    _run(root, "stage", "a", system=system)
    _mount_or_skip(root, system)
    try:
        with pytest.raises(helper.Refused, match="mounted"):
            _run(root, "remove", "a", system=system)
    finally:
        _run(root, "umount", "a", system=system)
    (root / "runtime/a/work/work").mkdir(exist_ok=True)
    (root / "runtime/a/work/work").chmod(0)
    assert _run(root, "remove", "a", system=system) == "removed runtime/a"
    assert not (root / "runtime/a").exists()


def _mount_or_skip(root: Path, system) -> None:
    try:
        _run(root, "mount", "a", system=system)
    except helper.Failed as error:
        pytest.skip(f"overlayfs mount not permitted here: {error}")


@needs_root
def test_the_overlay_is_mounted_nosuid_nodev_and_the_game_can_write_below_left4dead2(root):
    system = helper.System()
    _run(root, "stage", "a", system=system)
    _mount_or_skip(root, system)
    merged = root / "runtime/a/merged"
    try:
        assert {"nosuid", "nodev"} <= set(_mount_options(merged))
        assert (merged / "srcds_run").read_text() == "game"
        game = subprocess.run(["setpriv", f"--reuid={GAME_USER}", f"--regid={pwd.getpwnam(GAME_USER).pw_gid}",
                               "--clear-groups", "--", "touch", str(merged / "left4dead2/console.log")],
                              capture_output=True, text=True)
        assert game.returncode == 0, game.stderr
        assert (root / "runtime/a/upper/left4dead2/console.log").exists()
        planted = subprocess.run(["setpriv", f"--reuid={GAME_USER}", f"--regid={pwd.getpwnam(GAME_USER).pw_gid}",
                                  "--clear-groups", "--", "touch", str(root / "runtime/a/planted")],
                                 capture_output=True, text=True)
        assert planted.returncode != 0, "the game cannot write where the helper mounts"
    finally:
        _run(root, "umount", "a", system=system)
    assert str(merged) not in _mounts()
    assert _run(root, "umount", "a", system=system) == "runtime/a/merged is not mounted"


@needs_root
def test_a_symlinked_upper_directory_cannot_inject_mount_options(root, outside):
    system = helper.System()
    _run(root, "stage", "a", system=system)
    upper = root / "runtime/a/upper"
    upper.rename(root / "runtime/a/upper.real")
    injected = root / "runtime/a/x,upperdir=" / str(outside / "dir").lstrip("/")
    injected.mkdir(parents=True)
    upper.symlink_to(injected)
    with pytest.raises(helper.Refused, match="symlink"):
        _run(root, "mount", "a", system=system)
    assert str(root / "runtime/a/merged") not in _mounts()
    assert list((outside / "dir").iterdir()) == []


@needs_root
def test_umount_never_follows_a_symlinked_merged_directory(root, tmp_path):
    system = helper.System()
    _run(root, "stage", "a", system=system)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(elsewhere)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        merged = root / "runtime/a/merged"
        merged.rmdir()
        merged.symlink_to(elsewhere)
        with pytest.raises(helper.Refused, match="symlink"):
            _run(root, "umount", "a", system=system)
        assert str(elsewhere) in _mounts(), "the mount the symlink points at is still there"
    finally:
        subprocess.run(["umount", str(elsewhere)], capture_output=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.renameat2(_AT_FDCWD, str(first).encode(), _AT_FDCWD, str(second).encode(), _RENAME_EXCHANGE)


@needs_root
def test_swapping_merged_for_a_symlink_mid_mount_never_puts_an_overlay_outside_the_root(root, outside):
    system = helper.System()
    _run(root, "stage", "a", system=system)
    merged = root / "runtime/a/merged"
    decoy = root / "runtime/a/decoy"
    decoy.symlink_to(outside / "dir")
    swapping, stop, exchanging = threading.Event(), threading.Event(), threading.Lock()

    def swap():
        while not stop.is_set():
            with exchanging:
                if swapping.is_set():
                    _exchange(merged, decoy)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    outcomes = {"mounted": 0, "refused": 0}
    try:
        for _ in range(300):
            swapping.set()
            try:
                _run(root, "mount", "a", system=system)
                outcomes["mounted"] += 1
            except helper.Refused:
                outcomes["refused"] += 1
            except helper.Failed as error:
                pytest.skip(f"overlayfs mount not permitted here: {error}")
            with exchanging:
                swapping.clear()
            assert not any(point.startswith(str(outside)) for point in _mounts()), "an overlay landed outside"
            overlays = {point for point in _mounts() if point.startswith(str(root.parent))}
            assert overlays <= {str(merged), str(decoy)}, f"an overlay landed elsewhere: {overlays}"
            for point in overlays:  # the real directory, under whichever of its two names it has now
                subprocess.run(["umount", point], check=True)
            if merged.is_symlink():
                _exchange(merged, decoy)
    finally:
        stop.set()
        swapper.join()
    assert list((outside / "dir").iterdir()) == []
    assert outcomes["mounted"] > 0 and outcomes["mounted"] + outcomes["refused"] == 300


@needs_root
def test_the_installed_helper_ignores_its_environment(root, tmp_path):
    config = tmp_path / "host.conf"
    config.write_text(f"root={root}\nuser={GAME_USER}\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "left4me_host.py").write_text(HELPER_SOURCE.read_text().replace("@CONFIG@", str(config)))
    py_compile.compile(str(lib / "left4me_host.py"), doraise=True)
    installed = tmp_path / "left4me-host"
    installed.write_text((HELPER_SOURCE.parent / "left4me-host.launch").read_text()
                         .replace("@PYTHON@", sys.executable).replace("@LIB@", str(lib)))
    installed.chmod(0o755)
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "ran"
    (evil / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (evil / "left4me_host.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (evil / "realpath").write_text(f"#!/bin/sh\necho ran > {marker}\n")
    (evil / "realpath").chmod(0o755)
    environment = {"PATH": str(evil), "PYTHONPATH": str(evil), "PYTHONSTARTUP": str(evil / "sitecustomize.py"),
                   "BASH_ENV": str(evil / "sitecustomize.py"), "LEFT4ME_ROOT": str(tmp_path / "other")}
    shown = subprocess.run([str(installed), "root"], env=environment, capture_output=True, text=True)
    assert (shown.returncode, shown.stdout.strip()) == (0, str(root)), shown.stderr
    assert not marker.exists()


@needs_root
def test_a_configuration_others_can_write_is_refused(tmp_path, root):
    config = tmp_path / "host.conf"
    config.write_text(f"root={root}\nuser={GAME_USER}\n")
    config.chmod(0o666)
    with pytest.raises(helper.Refused, match="writable by nobody else"):
        helper.Config.load(str(config))
    config.chmod(0o644)
    assert helper.Config.load(str(config)).root == str(root)


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory):
    """A root with symlinks planted everywhere the helper looks, pointing outside it."""
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / "root", base / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "file").write_text("untouched")
    (root / "installation").mkdir(parents=True)
    (root / "overlays/o").mkdir(parents=True)
    (root / "overlays/linked").symlink_to(outside / "dir")
    for name in ("a", "b"):
        _instance(root, name)
    _instance(root, "c", [f"{root}/overlays/linked", f"{root}/installation"])
    (root / "instances/evil").symlink_to(outside / "dir")
    (root / "runtime/b").mkdir(parents=True)
    for part in ("upper", "work"):
        (root / f"runtime/b/{part}").symlink_to(outside / "dir")
    (root / "runtime/b/merged").symlink_to(outside / "dir")
    (root / "runtime/d").symlink_to(outside / "dir")
    return root, outside


VERB_OR_NOT = st.one_of(st.sampled_from(sorted([*helper.VERBS, *helper.BATCH_ACTIONS])), st.text(max_size=12))
NAME_OR_NOT = st.one_of(st.sampled_from(["a", "b", "c", "d", "evil", "..", "../..", "a/../b", "a b", "A", ""]),
                        st.text(max_size=20))


@needs_root
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.one_of(VERB_OR_NOT, NAME_OR_NOT), min_size=0, max_size=4),
       verb=VERB_OR_NOT, names=st.lists(NAME_OR_NOT, min_size=1, max_size=3))
def test_no_arguments_make_the_helper_act_outside_the_root(hostile_root, argv, verb, names):
    root, outside = hostile_root
    system = RecordingSystem()
    for arguments in (argv, [verb, *names]):
        try:
            _run(root, *arguments, system=system, stdin="hunter2\n")
        except (helper.Refused, helper.Failed, OSError):
            pass
    inside = str(root) + "/"
    for call in system.calls:
        match call:
            case ("mount", target, layers):
                assert all(path.startswith(inside) for path in [target, *layers]), call
            case ("umount", path) | ("chown", path):
                assert path.startswith(inside), call
            case ("systemctl", verb, *arguments):
                assert verb in ("reset-failed", "enable", "disable"), call
                units = [argument for argument in arguments if not argument.startswith("--")]
                assert units and all(unit.startswith("left4me-server@") and unit.endswith(".service") and
                                     NAME_PATTERN.fullmatch(unit.removeprefix("left4me-server@")
                                                            .removesuffix(".service")) for unit in units), call
    assert sorted(p.name for p in outside.rglob("*")) == ["dir", "file"]
    assert (outside / "file").read_text() == "untouched"


class JournalSystem(RecordingSystem):
    """journalctl answering with PID 1's lines about two units, one of them an instance's."""

    def journal_lines(self, *arguments: str):
        self.calls.append(("journalctl", *arguments))
        yield json.dumps({"__CURSOR": "s=1;i=1", "UNIT": "left4me-server@a.service", "MESSAGE": "Started"}) + "\n"
        yield json.dumps({"__CURSOR": "s=1;i=2", "UNIT": "sshd.service", "MESSAGE": "secret sshd stuff"}) + "\n"
        yield "not json\n"


def test_journal_passes_on_only_the_instance_units_entries_then_the_last_cursor(root, capsys):
    system = JournalSystem()
    last = _run(root, "journal", "s=1;i=0", system=system)
    printed = capsys.readouterr().out
    assert system.calls == [("journalctl", "--output=json", "--no-pager", "--quiet", "--after-cursor=s=1;i=0",
                             "_PID=1")]
    assert "left4me-server@a.service" in printed and "sshd" not in printed
    assert json.loads(last) == {"__CURSOR": "s=1;i=2"}
    _run(root, "journal", "@1764400000.123456", system=system)
    assert system.calls[-1][4] == "--since=@1764400000.123456"


@pytest.mark.parametrize("position", ["yesterday", "@", "s=1;i=2;--output=cat", "s=XYZ", "--since=@1", "a=1 b=2"])
def test_journal_refuses_a_position_that_is_neither_a_cursor_nor_a_moment(root, position):
    system = JournalSystem()
    with pytest.raises(helper.Refused, match="bad journal position"):
        _run(root, "journal", position, system=system)
    assert system.calls == []


@pytest.fixture
def rcon_server(tmp_path):
    """The stand-in srcds on a free port, its server.cfg setting rcon_password "hunter2"."""
    (tmp_path / "game/left4dead2/cfg").mkdir(parents=True)
    (tmp_path / "game/left4dead2/cfg/server.cfg").write_text('hostname "Console Test"\nrcon_password "hunter2"\n')
    binary = tmp_path / "game/srcds_run"
    binary.write_bytes((Path(__file__).resolve().parent.parent / "scripts/host/srcds_run").read_bytes())
    binary.chmod(0o755)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(binary), "+hostport", str(port), "+map", "c1m1_hotel"],
                               stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while A2SQuery().info(port) is None:
        assert time.monotonic() < deadline, "the stand-in never answered"
    yield port
    process.terminate()
    process.wait(10)


def _with_password(root: Path, name: str, port: int, password: str) -> None:
    """The instance staged for `port` with `password` as its rcon_password, as l4d2ctl leaves it."""
    (root / f"instances/{name}/instance.env").write_text(
        f"L4D2_PORT={port}\nL4D2_ARGS=+map c1m1_hotel\nL4D2_LOWERDIRS={root}/installation\n")
    fingerprint = _run(root, "secret-put", name, "rcon_password", stdin=f"{password}\n", system=helper.System())
    _run(root, "secret-commit", name, "rcon_password", fingerprint, system=helper.System())
    _run(root, "stage", name, system=helper.System())


@needs_root
def test_rcon_sends_one_command_with_the_instances_password_and_prints_the_reply(root, rcon_server):
    _with_password(root, "a", rcon_server, "hunter2")
    status = _run(root, "rcon", "a", system=helper.System(), stdin="status\n")
    assert "hostname: Console Test" in status and "map     : c1m1_hotel" in status
    assert _run(root, "rcon", "a", system=helper.System(), stdin="changelevel c2m1_highway\n") == ""
    assert A2SQuery().info(rcon_server)["map"] == "c2m1_highway"
    assert _run(root, "rcon", "a", system=helper.System(), stdin="say hello there\n") == "Console: hello there"


@needs_root
def test_rcon_with_a_password_the_server_does_not_have_fails_in_one_line(root, rcon_server):
    _with_password(root, "a", rcon_server, "not-it")
    with pytest.raises(helper.Failed, match="refused the instance's rcon_password"):
        _run(root, "rcon", "a", system=helper.System(), stdin="status\n")


@needs_root
def test_rcon_without_a_password_or_with_unprintable_text_is_refused(root, rcon_server):
    _run(root, "stage", "a", system=helper.System())
    with pytest.raises(helper.Refused, match="has no rcon_password"):
        _run(root, "rcon", "a", system=helper.System(), stdin="status\n")
    with pytest.raises(helper.Refused, match="printable ASCII"):
        _run(root, "rcon", "a", system=helper.System(), stdin="say \x1b[31mred\n")


@needs_root
def test_rcon_with_nothing_listening_fails_saying_so(root):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _with_password(root, "a", port, "hunter2")
    with pytest.raises(helper.Failed, match=f"no RCON answer on tcp/{port}"):
        _run(root, "rcon", "a", system=helper.System(), stdin="status\n")


# --- archive and restore: the upper layer, in and out of a tar -----------------------------------


def _upper(root: Path) -> Path:
    _run(root, "prepare", "a")
    upper = root / "runtime/a/upper"
    (upper / "left4dead2/addons").mkdir(parents=True)
    (upper / "left4dead2/addons/map.vpk").write_bytes(bytes(range(256)) * 64)
    (upper / "left4dead2/logs").mkdir()
    (upper / "left4dead2/logs/l0001.log").write_text("said hello\n")
    (upper / "left4dead2/cfg").mkdir()
    (upper / "left4dead2/cfg/server.cfg").write_text('rcon_password "hunter2"\n')
    (upper / "left4dead2/cfg/autoexec.cfg").write_text("sv_cheats 0\n")
    (upper / "demo.dem").write_text("demo")
    return upper


def _archive(root: Path, *globs: str) -> bytes:
    out = io.BytesIO()
    _run(root, "archive", "a", stdin="".join(f"{glob}\n" for glob in globs), stdout=out)
    return out.getvalue()


def _names(archive: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return sorted(tar.getnames())


def test_archive_writes_the_upper_layer_without_what_the_excludes_match(root):
    _upper(root)
    assert _names(_archive(root, "left4dead2/logs/*", "*.dem")) == [
        "left4dead2", "left4dead2/addons", "left4dead2/addons/map.vpk", "left4dead2/cfg",
        "left4dead2/cfg/autoexec.cfg", "left4dead2/logs"]


def test_archive_never_carries_the_staged_cfgs_which_hold_the_secrets(root):
    upper = _upper(root)
    (upper / "left4dead2/cfg/.server.cfg.0a1b2c3d.tmp").write_text('rcon_password "hunter3"\n')  # a killed stage's
    archive = _archive(root)
    assert "left4dead2/cfg/server.cfg" not in _names(archive)
    assert b"hunter2" not in archive and b"hunter3" not in archive


def test_stage_removes_the_temporary_copy_a_stage_killed_mid_write_left(root):
    upper = _upper(root)
    (upper / "left4dead2/cfg/.server.cfg.0a1b2c3d.tmp").write_text('rcon_password "hunter3"\n')
    _run(root, "stage", "a")
    assert not (upper / "left4dead2/cfg/.server.cfg.0a1b2c3d.tmp").exists()


def test_archive_keeps_a_symlink_as_a_symlink_and_never_reads_through_it(root, outside):
    upper = _upper(root)
    (upper / "escape").symlink_to(outside)
    with tarfile.open(fileobj=io.BytesIO(_archive(root))) as tar:
        link = tar.getmember("escape")
        assert link.issym() and link.linkname == str(outside)
        assert not any(name.startswith("escape/") for name in tar.getnames())


@pytest.mark.parametrize("verb", ["archive", "restore"])
def test_archive_and_restore_are_refused_while_the_unit_runs(root, verb):
    _upper(root)
    with pytest.raises(helper.Refused, match="left4me-server@a.service is running"):
        _run(root, verb, "a", system=RecordingSystem(active=True))


def test_restore_puts_back_every_file_byte_for_byte_and_swaps_the_old_layer_out(root):
    upper = _upper(root)
    archive = _archive(root)
    (upper / "left4dead2/addons/map.vpk").unlink()
    (upper / "left4dead2/addons/new.vpk").write_text("after the backup")
    system = RecordingSystem()
    _run(root, "restore", "a", stdin=archive, system=system)
    assert (upper / "left4dead2/addons/map.vpk").read_bytes() == bytes(range(256)) * 64
    assert not (upper / "left4dead2/addons/new.vpk").exists()
    assert sorted(path.name for path in (root / "runtime/a").iterdir()) == ["merged", "upper", "work"]
    assert ("chown", str(root / "runtime/a/upper.restoring/left4dead2/addons/map.vpk")) in system.calls  # built aside


@pytest.mark.parametrize(("member", "why"), [
    ("../escaped", "is not a plain relative path"), ("/etc/escaped", "is not a plain relative path"),
    ("a/../../escaped", "is not a plain relative path"), ("link/escaped", "goes through a symlink")])
def test_restore_refuses_an_entry_that_leaves_the_upper_layer_and_changes_nothing(root, outside, member, why):
    upper = _upper(root)
    before = sorted(str(path) for path in upper.rglob("*"))
    crafted = io.BytesIO()
    with tarfile.open(fileobj=crafted, mode="w") as tar:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        entry = tarfile.TarInfo(member)
        entry.size = 5
        tar.addfile(entry, io.BytesIO(b"owned"))
    with pytest.raises(helper.Refused, match=why):
        _run(root, "restore", "a", stdin=crafted.getvalue())
    assert sorted(str(path) for path in upper.rglob("*")) == before
    assert sorted(p.name for p in outside.rglob("*")) == ["dir", "file"]


def test_restore_leaves_out_devices_and_strips_setuid_bits(root):
    upper = _upper(root)
    crafted = io.BytesIO()
    with tarfile.open(fileobj=crafted, mode="w") as tar:
        device = tarfile.TarInfo("null")
        device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(device)
        program = tarfile.TarInfo("program")
        program.size, program.mode = 2, 0o4755
        tar.addfile(program, io.BytesIO(b"#!"))
    _run(root, "restore", "a", stdin=crafted.getvalue())
    assert not (upper / "null").exists()
    assert stat.S_IMODE((upper / "program").stat().st_mode) == 0o755


def test_archive_leaves_out_a_hard_linked_file_which_may_reach_what_the_game_cannot_read(root):
    upper = _upper(root)
    os.link(upper / "left4dead2/addons/map.vpk", upper / "left4dead2/loot")
    out = io.BytesIO()
    _run(root, "archive", "a", stdout=out)
    assert not any(name.endswith(("map.vpk", "loot")) for name in _names(out.getvalue()))


def test_archive_walks_a_nested_tree_without_recursion_down_to_its_cap_and_says_what_it_left(root, capsys):
    upper = _upper(root)
    fd = os.open(upper, os.O_RDONLY)
    for _ in range(helper.MAX_DEPTH + 5):
        os.mkdir("d", dir_fd=fd)
        below = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = below
    os.close(fd)
    names = _names(_archive(root))
    assert max(name.count("/") + 1 for name in names) == helper.MAX_DEPTH
    assert f"nested deeper than {helper.MAX_DEPTH} directories" in capsys.readouterr().err


def test_the_left_out_entries_are_counted_and_only_the_first_few_named_quoted(root, capsys):
    upper = _upper(root)
    for number in range(30):
        os.mkfifo(upper / f"fifo{number}\nleft4me-host: refused: forged")
    _archive(root)
    said = capsys.readouterr().err
    assert "left out 30: " in said and "and 20 more" in said
    assert "\nleft4me-host: refused: forged" not in said


def test_a_restore_refuses_an_oversized_extended_header_before_reading_it(root):
    _upper(root)
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, helper.MAX_TAR_HEADER + 1
    crafted = header.tobuf(tarfile.USTAR_FORMAT) + b"\0" * 1024
    with pytest.raises(helper.Refused, match="extended header"):
        _run(root, "restore", "a", stdin=crafted)


def test_a_restore_refuses_what_is_not_a_tar_archive(root):
    _upper(root)
    with pytest.raises(helper.Refused, match="not a tar archive"):
        _run(root, "restore", "a", stdin=b"hunter2\n")
    assert (root / "runtime" / "a" / "upper").is_dir()


def test_a_restore_keeps_file_times(root):
    upper = _upper(root)
    os.utime(upper / "left4dead2/addons/map.vpk", (1_000_000_000, 1_000_000_000))
    archive = _archive(root)
    _run(root, "restore", "a", stdin=archive)
    assert (upper / "left4dead2/addons/map.vpk").stat().st_mtime == 1_000_000_000


@needs_root
def test_whiteouts_and_opaque_directories_survive_a_backup_so_a_restore_keeps_deletions(root):
    upper = _upper(root)
    os.mknod(upper / "left4dead2/banned_user.cfg", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "left4dead2/addons").mkdir(exist_ok=True)
    os.setxattr(upper / "left4dead2/addons", "trusted.overlay.opaque", b"y")
    archive = _archive(root)
    shutil.rmtree(upper / "left4dead2")
    _run(root, "restore", "a", stdin=archive)
    whiteout = (upper / "left4dead2/banned_user.cfg").lstat()
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert os.getxattr(upper / "left4dead2/addons", "trusted.overlay.opaque") == b"y"


def test_a_second_archive_or_restore_of_a_busy_runtime_is_refused(root):
    import fcntl

    _upper(root)
    holder = os.open(root / "runtime/a", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(helper.Refused, match="runtime/a is busy"):
            _run(root, "archive", "a")
    finally:
        os.close(holder)


def test_archive_and_restore_refuse_a_unit_on_its_way_up(root):
    class Activating(RecordingSystem):
        def active_state(self, unit_name: str) -> str:
            return "activating"

    _upper(root)
    with pytest.raises(helper.Refused, match="is activating: stop it before"):
        _run(root, "archive", "a", system=Activating())
