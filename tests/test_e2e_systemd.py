"""End to end under a real systemd: the host files, real units, real overlay mounts, the stand-in server.

A container boots systemd with `systemd-nspawn -D / --volatile=yes --boot` (an
empty tmpfs root over the host's /usr), with this checkout and its Python bound
in read-only. Inside it, the host files are installed and l4d2ctl drives
`--host systemd` through the whole lifecycle. Needs root and systemd-nspawn
(`apt-get install systemd-container`); skips elsewhere, saying why.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
L4D2CTL = PROJECT / ".venv" / "bin" / "l4d2ctl"
PYTHON = PROJECT / ".venv" / "bin" / "python"
ROOT = "/var/lib/left4me"
BIN = "/opt/left4me/bin"
HELPER = f"{BIN}/left4me-host"
OPERATOR = "alice"
GAME_USER = "left4me-game"
BOOT_TIMEOUT = 90
# What sudo needs from the host's /etc inside the container (its / is an empty tmpfs over the host's /usr).
SUDO_FILES = ("/etc/pam.d", "/etc/security", "/etc/sudoers")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="booting systemd in a container needs root"),
    pytest.mark.skipif(shutil.which("systemd-nspawn") is None,
                       reason="systemd-nspawn is not installed (apt-get install systemd-container)"),
    pytest.mark.skipif(not L4D2CTL.exists(), reason="l4d2ctl is not installed in this checkout's .venv"),
    pytest.mark.skipif(shutil.which("sudo") is None or not all(os.path.exists(path) for path in SUDO_FILES),
                       reason="sudo is not installed (apt-get install sudo): operators reach the helper through it"),
]


class Container:
    """A booted systemd container; `run` executes a command inside it."""

    def __init__(self, nspawn: subprocess.Popen, init_pid: int):
        self.nspawn = nspawn
        self.init_pid = init_pid

    def run(self, command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a shell command inside the container."""
        result = subprocess.run(["nsenter", "-t", str(self.init_pid), "-a", "/bin/sh", "-c", command],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"`{command}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def l4d2ctl(self, *args: str, user: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
        """l4d2ctl inside the container, against the real systemd, as root or as `user` (no check: callers look
        at the code)."""
        command = f"env L4D2CTL_HELPER={HELPER} {L4D2CTL} {shlex.join(args)}"
        if stdin is not None:
            command = f"printf '%s\\n' {shlex.quote(stdin)} | {command}"
        return self.run(as_user(user, command) if user else command, check=False)


def as_user(user: str, command: str) -> str:
    """A shell command run as `user` with its groups (setpriv: no PAM session, as a service or a login would not
    matter here)."""
    return (f"setpriv --reuid={user} --regid=$(id -g {user}) --init-groups -- /bin/sh -c "
            f"{shlex.quote('cd /tmp && ' + command)}")


@pytest.fixture(scope="module")
def container():
    name = f"l4d2e2e{os.getpid()}"
    nspawn = subprocess.Popen(
        ["systemd-nspawn", "-D", "/", "--volatile=yes", "--boot", "--private-network", "--register=no",
         "--keep-unit", f"--machine={name}", f"--bind-ro={PROJECT}", f"--bind-ro={sys.base_prefix}",
         *(f"--bind-ro={path}" for path in SUDO_FILES), "--", "systemd.firstboot=off"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    deadline = time.monotonic() + BOOT_TIMEOUT
    booted = None
    while time.monotonic() < deadline and nspawn.poll() is None and booted is None:
        children = subprocess.run(["pgrep", "-P", str(nspawn.pid)], capture_output=True, text=True).stdout.split()
        if children:
            probe = Container(nspawn, int(children[0]))
            state = probe.run("systemctl is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                booted = probe
        time.sleep(0.5)
    if booted is None:
        nspawn.kill()
        pytest.skip(f"the systemd container did not boot within {BOOT_TIMEOUT}s: {nspawn.stderr.read()[-300:]!r}")
    yield booted
    booted.run("systemctl poweroff", check=False)
    try:
        nspawn.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(nspawn.pid, signal.SIGKILL)
        nspawn.wait(10)


@pytest.fixture(scope="module")
def host(container):
    """The host files installed, a stand-in game installation, two overlays, and two specs."""
    container.run(f"{PROJECT}/scripts/host/install --bin {BIN} --l4d2ctl {L4D2CTL} --sudoers")
    # The operator: a member of group left4me, nothing more. /root is made traversable only so that the
    # operator can run this checkout's Python (bound in from under /root); the container is thrown away.
    container.run(f"useradd --create-home --groups left4me {OPERATOR} && chmod 0755 /root && "
                  "echo \"127.0.0.1 localhost $(hostname)\" > /etc/hosts")
    container.run(
        f"install -m 0755 {PROJECT}/scripts/host/srcds_run {ROOT}/installation/srcds_run && "
        f"mkdir -p {ROOT}/overlays/competitive/zonemod/left4dead2/cfg {ROOT}/overlays/maps/custom && "
        f"echo 'sv_zonemod 1' > {ROOT}/overlays/competitive/zonemod/left4dead2/cfg/server.cfg"
    )
    spec = {"port": 27015, "arguments": ["+map c2m1_highway", "-maxplayers 12"], "config": ['hostname "E2E Versus"'],
            "overlays": [{"path": "competitive/zonemod", "alias": "zonemod"}, {"path": "maps/custom"}]}
    broken = {"port": 27016, "overlays": [{"path": "missing/layer"}]}
    blocked = {"port": 27017, "ready_timeout": 10}
    watched = {"port": 27018}
    for name, document in (("e2e", spec), ("broken", broken), ("blocked", blocked), ("watched", watched)):
        container.run(f"echo {shlex.quote(json.dumps(document))} > /tmp/{name}.yaml")
    return container


def _unit(container, name="e2e") -> str:
    return container.run(f"systemctl is-active left4me-server@{name}.service", check=False).stdout.strip()


def _unit_properties(container, name: str) -> dict[str, str]:
    """What systemd says of the unit: ActiveState, SubState, UnitFileState, NRestarts, MainPID."""
    shown = container.run(f"systemctl show left4me-server@{name}.service --property=ActiveState,SubState,"
                          f"UnitFileState,NRestarts,MainPID").stdout
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def _observed(container, name: str) -> list[str]:
    history = json.loads(container.l4d2ctl("history", name, "--json").stdout)
    assert all(row["actor"] == "systemd" for row in history if row["outcome"] == "observed")
    return [row["command"] for row in history if row["outcome"] == "observed"]


def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds}s"
        time.sleep(0.5)
    return value


def _mounted(container, name="e2e") -> bool:
    return container.run(f"mountpoint -q {ROOT}/runtime/{name}/merged", check=False).returncode == 0


def _query(container, port=27015) -> dict | None:
    script = (f"import a2s, json, time\n"
              f"for _ in range(40):\n"
              f"    try:\n"
              f"        i = a2s.info(('127.0.0.1', {port}), timeout=0.5); "
              f"print(json.dumps([i.server_name, i.map_name, i.max_players])); break\n"
              f"    except OSError: time.sleep(0.25)\n")
    output = container.run(f"{PYTHON} -c {shlex.quote(script)}", check=False).stdout.strip()
    return json.loads(output) if output else None


def test_the_whole_lifecycle_under_a_real_systemd(host):
    assert host.l4d2ctl("init", "e2e", "--spec", "/tmp/e2e.yaml").returncode == 0

    assert host.l4d2ctl("start", "e2e").returncode == 0
    unit = _unit_properties(host, "e2e")
    assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit
    assert _mounted(host)
    assert _query(host) == ["E2E Versus", "c2m1_highway", 12], "A2S answers with the spec's map and server.cfg's hostname"
    live = json.loads(host.l4d2ctl("status", "e2e", "--live", "--json").stdout)
    assert (live["unit"], live["query"]["map"], live["drift"]) == ("active (running)", "c2m1_highway", [])

    assert host.l4d2ctl("stop", "e2e").returncode == 0
    assert _unit(host) == "inactive" and not _mounted(host)

    assert host.l4d2ctl("reset", "e2e").returncode == 0
    assert host.run(f"test -e {ROOT}/instances/e2e", check=False).returncode != 0
    started = json.loads(host.l4d2ctl("start", "e2e", "--json").stdout)
    assert started["outcome"] == "succeeded"
    steps = [step["step"] for step in json.loads(host.l4d2ctl("show", started["command_id"], "--json").stdout)["steps"]]
    assert steps[0] == "create directories", "start after reset re-initializes from the blueprint"
    assert _unit(host) == "active" and _mounted(host)
    assert _query(host) == ["E2E Versus", "c2m1_highway", 12]

    assert host.l4d2ctl("delete", "e2e").returncode == 0
    assert _unit(host) == "inactive" and not _mounted(host)
    assert host.run("systemctl is-enabled left4me-server@e2e.service", check=False).stdout.strip() != "enabled"
    assert host.run(f"test -e {ROOT}/instances/e2e || test -e {ROOT}/runtime/e2e", check=False).returncode != 0
    assert json.loads(host.l4d2ctl("verify", "--json").stdout)["ok"]


def test_a_missing_overlay_makes_start_fail_with_the_units_error_recorded(host):
    assert host.l4d2ctl("init", "broken", "--spec", "/tmp/broken.yaml").returncode == 0
    failed = host.l4d2ctl("start", "broken", "--json")
    assert failed.returncode == 1
    command = json.loads(failed.stdout)
    assert command["outcome"] == "failed" and command["error"].startswith("copy cfgs into the upper layer:")
    failure = json.loads(host.l4d2ctl("show", command["command_id"], "--json").stdout)["failure"]
    recorded = "\n".join([failure["error"], *failure["output"], *failure["stderr_tail"]])
    assert "overlays/missing/layer does not exist" in recorded, recorded
    assert not _mounted(host, "broken")
    time.sleep(15)  # longer than RestartSec: a unit left enabled would have been restarted by now
    unit = _unit_properties(host, "broken")
    assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("inactive", "disabled", "0"), unit
    assert json.loads(host.l4d2ctl("status", "broken", "--json").stdout)["state"] == "failed"
    assert host.l4d2ctl("delete", "broken").returncode == 0


def test_a_start_whose_port_is_taken_fails_within_ready_timeout_and_is_undone(host):
    host.run(f"systemd-run --unit=blocker {PYTHON} -c "
             + shlex.quote("import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                           "s.bind(('0.0.0.0', 27017)); time.sleep(600)"))
    try:
        assert host.l4d2ctl("init", "blocked", "--spec", "/tmp/blocked.yaml").returncode == 0
        began = time.monotonic()
        failed = host.l4d2ctl("start", "blocked", "--json")
        assert failed.returncode == 1 and time.monotonic() - began < 10 + 5
        command = json.loads(failed.stdout)
        assert command["error"].startswith("wait until serving:"), command
        failure = json.loads(host.l4d2ctl("show", command["command_id"], "--json").stdout)["failure"]
        assert any("Address already in use" in line for line in failure["stderr_tail"]), failure
        unit = _unit_properties(host, "blocked")
        assert unit["ActiveState"] != "active" and unit["UnitFileState"] == "disabled", unit
        time.sleep(6)
        assert _unit_properties(host, "blocked")["ActiveState"] in ("inactive", "failed"), "no restart loop"
    finally:
        host.run("systemctl stop blocker.service", check=False)
    assert host.l4d2ctl("delete", "blocked").returncode == 0


def test_restart_works_and_init_of_a_running_instance_is_rejected(host):
    assert host.l4d2ctl("init", "watched", "--spec", "/tmp/watched.yaml").returncode == 0
    assert host.l4d2ctl("start", "watched").returncode == 0
    before = _unit_properties(host, "watched")["MainPID"]
    assert host.l4d2ctl("restart", "watched").returncode == 0
    after = _unit_properties(host, "watched")
    assert after["ActiveState"] == "active" and after["MainPID"] != before
    assert _query(host, 27018) is not None
    again = host.l4d2ctl("start", "watched", "--json")
    assert again.returncode == 0 and _unit_properties(host, "watched")["MainPID"] == after["MainPID"]
    assert host.l4d2ctl("init", "watched", "--spec", "/tmp/watched.yaml").returncode == 3


def test_what_systemd_does_on_its_own_is_recorded_once_by_the_executor_service(host):
    host.run("systemctl start left4me-executor.service")
    try:
        if json.loads(host.l4d2ctl("status", "watched", "--json").stdout)["state"] != "running":
            assert host.l4d2ctl("start", "watched").returncode == 0
        main_pid = _unit_properties(host, "watched")["MainPID"]
        host.run(f"kill -KILL {main_pid}")
        _wait_for(lambda: _observed(host, "watched")[-2:] == ["crashed", "restarted"], 25, "crashed, restarted")
        crash = [row for row in json.loads(host.l4d2ctl("history", "watched", "--json").stdout)
                 if row["command"] == "crashed"][-1]
        assert crash["error"] == "the server was killed by signal SIGKILL"
        _wait_for(lambda: _unit_properties(host, "watched")["ActiveState"] == "active", 15, "the restart")
        assert _unit_properties(host, "watched")["NRestarts"] == "1"
        live = json.loads(host.l4d2ctl("status", "watched", "--live", "--json").stdout)
        assert (live["state"], live["unit"], live["drift"]) == ("running", "active (running)", [])

        host.run("systemctl stop left4me-server@watched.service")
        _wait_for(lambda: _observed(host, "watched")[-1:] == ["stopped-outside"], 15, "stopped-outside")
        assert json.loads(host.l4d2ctl("status", "watched", "--json").stdout)["state"] == "stopped"

        seen = _observed(host, "watched")
        host.run("systemctl restart left4me-executor.service")
        time.sleep(3)
        assert _observed(host, "watched") == seen, "a new executor records nothing twice"
    finally:
        host.run("systemctl stop left4me-executor.service", check=False)
    assert host.l4d2ctl("delete", "watched").returncode == 0
    assert json.loads(host.l4d2ctl("verify", "--json").stdout)["ok"]


def test_an_operators_alert_hook_gets_a_real_crash_and_a_failed_start(host):
    host.run(f"echo {shlex.quote(json.dumps({'port': 27021}))} > /tmp/alerted.yaml && "
             f"echo {shlex.quote(json.dumps({'port': 27022, 'overlays': [{'path': 'missing/layer'}]}))} "
             f"> /tmp/unstartable.yaml")
    host.run(as_user(OPERATOR, "printf '#!/bin/sh\\ncat >> /tmp/alerts\\n' > /tmp/alert.sh && chmod 0755 /tmp/alert.sh "
                               "&& : > /tmp/alerts"))
    for name in ("alerted", "unstartable"):
        assert host.l4d2ctl("init", name, "--spec", f"/tmp/{name}.yaml", user=OPERATOR).returncode == 0
    assert host.l4d2ctl("start", "alerted", user=OPERATOR).returncode == 0
    host.run(f"kill -KILL {_unit_properties(host, 'alerted')['MainPID']}")
    _wait_for(lambda: _unit_properties(host, "alerted")["NRestarts"] == "1", 15, "systemd's restart")
    assert host.l4d2ctl("start", "unstartable", "--no-wait", user=OPERATOR).returncode == 0

    served = host.l4d2ctl("executor", "--once", "--notify-exec", "/tmp/alert.sh", user=OPERATOR)
    assert served.returncode == 0, served.stderr
    rows = [json.loads(line) for line in host.run("cat /tmp/alerts").stdout.splitlines()]
    seen = {(row["instance"], row["command"], row["outcome"]): row for row in rows}
    assert seen[("alerted", "crashed", "observed")]["error"] == "the server was killed by signal SIGKILL"
    assert ("alerted", "restarted", "observed") in seen
    assert seen[("unstartable", "start", "failed")]["actor"] == OPERATOR
    unit = _unit_properties(host, "alerted")
    assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "1"), unit
    unit = _unit_properties(host, "unstartable")
    assert (unit["ActiveState"], unit["UnitFileState"]) in {("inactive", "disabled"), ("failed", "disabled")}, unit
    for name in ("alerted", "unstartable"):
        assert host.l4d2ctl("delete", name, user=OPERATOR).returncode == 0


def test_the_executor_service_runs_queued_commands_and_callers_follow_it(host):
    host.run("systemctl start left4me-executor.service")
    try:
        main_pid = host.run("systemctl show --property MainPID --value left4me-executor.service").stdout.strip()
        queued = json.loads(host.l4d2ctl("init", "daemon", "--spec", "/tmp/e2e.yaml", "--no-wait", "--json").stdout)
        followed = host.l4d2ctl("status", "daemon", "--json")
        deadline = time.monotonic() + 30
        while followed.returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            followed = host.l4d2ctl("status", "daemon", "--json")
        assert json.loads(followed.stdout)["state"] == "initialized"
        started = json.loads(host.l4d2ctl("start", "daemon", "--json").stdout)
        assert started["outcome"] == "succeeded"
        events = host.run(f"{PYTHON} -c {shlex.quote(_started_pids_script(queued['command_id'], started['command_id']))}")
        assert set(events.stdout.split()) == {main_pid}, "the service's executor ran both commands"
        assert host.l4d2ctl("delete", "daemon").returncode == 0
    finally:
        host.run("systemctl stop left4me-executor.service", check=False)


def _started_pids_script(*command_ids: str) -> str:
    return (f"from ledger import Ledger\n"
            f"with Ledger.open('{ROOT}/ledger.db') as ledger:\n"
            f"    for command_id in {list(command_ids)!r}:\n"
            f"        print(*[e.payload.pid for e in ledger.read(command_id=command_id) if e.type == 'CommandStarted'])\n")


def _gone(container, name: str) -> bool:
    return container.run(f"test -e {ROOT}/instances/{name} || test -e {ROOT}/runtime/{name} || "
                         f"test -e {ROOT}/secrets/{name}", check=False).returncode != 0


def test_an_operator_without_root_runs_the_whole_lifecycle_through_the_installed_files(host):
    spec = json.dumps({"port": 27019, "arguments": ["+map c5m1_waterfront"], "config": ['hostname "Operated"']})
    host.run(f"echo {shlex.quote(spec)} > /tmp/operated.yaml")

    def alice(*args: str) -> subprocess.CompletedProcess:
        return host.l4d2ctl(*args, user=OPERATOR)

    assert alice("init", "operated", "--spec", "/tmp/operated.yaml").returncode == 0
    started = alice("start", "operated", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    unit = _unit_properties(host, "operated")
    assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit
    assert _query(host, 27019) == ["Operated", "c5m1_waterfront", 8]
    assert json.loads(started.stdout)["actor"] == OPERATOR
    game_writes = host.run(as_user(GAME_USER, f"touch {ROOT}/runtime/operated/merged/left4dead2/console.log"),
                           check=False)
    assert game_writes.returncode == 0, game_writes.stderr
    assert host.run(as_user(GAME_USER, f"touch {ROOT}/runtime/operated/planted"), check=False).returncode != 0

    stopped = alice("stop", "operated", "--json")
    assert stopped.returncode == 0
    assert _unit(host, "operated") == "inactive" and not _mounted(host, "operated")
    assert alice("replay", json.loads(stopped.stdout)["command_id"]).returncode == 0
    assert alice("cancel", json.loads(stopped.stdout)["command_id"]).returncode == 3, "it had finished"
    assert alice("start", "operated", "--no-wait").returncode == 0
    assert alice("executor", "--once").returncode == 0
    assert json.loads(alice("status", "operated", "--json").stdout)["state"] == "running"
    assert alice("stop", "operated").returncode == 0
    assert alice("restart", "operated").returncode == 0
    assert _unit_properties(host, "operated")["ActiveState"] == "active"
    assert alice("reset", "operated").returncode == 0
    assert alice("start", "operated").returncode == 0
    assert _query(host, 27019) is not None
    assert alice("delete", "operated").returncode == 0
    unit = _unit_properties(host, "operated")
    assert (unit["ActiveState"], unit["UnitFileState"]) == ("inactive", "disabled"), unit
    assert not _mounted(host, "operated") and _gone(host, "operated")
    for reading in (("status", "--json"), ("history", "operated", "--json"), ("audit", "--json"), ("verify",)):
        assert alice(*reading).returncode == 0, reading


def test_logs_show_the_servers_own_lines_to_root_and_to_an_operator(host):
    host.run(f"echo {shlex.quote(json.dumps({'port': 27020, 'arguments': ['+map c3m1_plankcountry']}))} "
             f"> /tmp/logged.yaml")
    assert host.l4d2ctl("init", "logged", "--spec", "/tmp/logged.yaml").returncode == 0
    assert host.l4d2ctl("start", "logged").returncode == 0
    try:
        unit = _unit_properties(host, "logged")
        assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit
        for user in (None, OPERATOR):
            shown = host.l4d2ctl("logs", "logged", "-n", "20", user=user)
            assert shown.returncode == 0, shown.stderr
            assert "stand-in srcds: c3m1_plankcountry on udp/27020" in shown.stdout, (user, shown.stdout)
        since_now = host.l4d2ctl("logs", "logged", "--since", "2999-01-01T00:00:00", user=OPERATOR)
        assert since_now.returncode == 0 and "stand-in srcds" not in since_now.stdout
        assert host.l4d2ctl("logs", "ghost", user=OPERATOR).returncode == 3
        assert _unit_properties(host, "logged")["ActiveState"] == "active", "reading logs changes nothing"
    finally:
        assert host.l4d2ctl("delete", "logged").returncode == 0


def test_an_instance_the_original_tool_left_running_is_adopted_and_run_by_an_operator(host):
    spec = {"port": 27023, "arguments": ["+map c4m1_milltown_a"], "config": ['hostname "Legacy"']}
    env = f"L4D2_PORT=27023\nL4D2_ARGS=+map c4m1_milltown_a\nL4D2_LOWERDIRS={ROOT}/installation\n"
    # What the original tool's initialize and start left: its files, and the unit running on them.
    host.run(f"mkdir -p {ROOT}/instances/legacy && "
             f"echo {shlex.quote(json.dumps(spec))} > {ROOT}/instances/legacy/spec.yaml && "
             f"printf %s {shlex.quote(env)} > {ROOT}/instances/legacy/instance.env && "
             f"printf %s {shlex.quote(chr(10).join(spec['config']))} > {ROOT}/instances/legacy/server.cfg && "
             f"{HELPER} prepare legacy && mkdir -p {ROOT}/instances/legacy/cfg && "
             f"cp {ROOT}/instances/legacy/server.cfg {ROOT}/instances/legacy/cfg/server.cfg && "
             f"chgrp -R left4me {ROOT}/instances/legacy && chmod -R g+w {ROOT}/instances/legacy && "
             f"{HELPER} stage legacy && {HELPER} start legacy")
    assert _unit(host, "legacy") == "active"

    adopted = host.l4d2ctl("adopt", "legacy", "--json", user=OPERATOR)
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert json.loads(host.l4d2ctl("status", "legacy", "--json").stdout)["state"] == "running"
    unit = _unit_properties(host, "legacy")
    assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit
    assert _query(host, 27023) == ["Legacy", "c4m1_milltown_a", 8]
    assert host.l4d2ctl("adopt", "legacy", user=OPERATOR).returncode == 3, "already recorded"

    assert host.l4d2ctl("stop", "legacy", user=OPERATOR).returncode == 0
    unit = _unit_properties(host, "legacy")
    assert (unit["ActiveState"], unit["UnitFileState"]) == ("inactive", "disabled"), unit
    assert host.l4d2ctl("start", "legacy", user=OPERATOR).returncode == 0
    assert _unit_properties(host, "legacy")["ActiveState"] == "active"
    assert host.l4d2ctl("delete", "legacy", user=OPERATOR).returncode == 0
    assert not _mounted(host, "legacy") and _gone(host, "legacy")


def test_console_over_rcon_as_root_and_as_an_operator_and_the_password_stays_out_of_the_ledger(host):
    spec = {"port": 27024, "config": ['hostname "Consoled"']}
    host.run(f"echo {shlex.quote(json.dumps(spec))} > /tmp/consoled.yaml")
    assert host.l4d2ctl("init", "consoled", "--spec", "/tmp/consoled.yaml", user=OPERATOR).returncode == 0
    assert host.l4d2ctl("console", "consoled", "status", user=OPERATOR).returncode == 3, "not running"
    assert host.l4d2ctl("secret", "set", "consoled", "rcon_password", stdin="console-pw-8d2f",
                        user=OPERATOR).returncode == 0
    assert host.l4d2ctl("start", "consoled", user=OPERATOR).returncode == 0
    try:
        status = host.l4d2ctl("console", "consoled", "status", user=OPERATOR)
        assert status.returncode == 0, status.stderr
        assert "hostname: Consoled" in status.stdout
        assert host.l4d2ctl("console", "consoled", "changelevel", "c5m1_waterfront").returncode == 0
        assert _query(host, 27024)[1] == "c5m1_waterfront"
        said = json.loads(host.l4d2ctl("console", "consoled", "say", "hi", "--json", user=OPERATOR).stdout)
        assert said["actor"] == OPERATOR and said["outcome"] == "succeeded"
        shown = json.loads(host.l4d2ctl("show", said["command_id"], "--json").stdout)
        assert shown["args"] == {"text": "say hi"} and shown["steps"][0]["output"] == ["Console: hi"]

        # A password the running server was not started with: refused, in one line.
        assert host.l4d2ctl("secret", "set", "consoled", "rcon_password", stdin="a-newer-pw",
                            user=OPERATOR).returncode == 0
        refused = host.l4d2ctl("console", "consoled", "status", user=OPERATOR)
        assert refused.returncode == 1 and "refused the instance's rcon_password" in refused.stderr
        unit = _unit_properties(host, "consoled")
        assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit
        ledger = host.run(f"cat {ROOT}/ledger.db {ROOT}/ledger.db-wal 2>/dev/null | strings").stdout
        assert "console-pw-8d2f" not in ledger and "a-newer-pw" not in ledger
    finally:
        assert host.l4d2ctl("delete", "consoled", user=OPERATOR).returncode == 0


def test_the_ledger_is_the_operators_and_nobody_elses(host):
    assert host.l4d2ctl("status").returncode == 0
    modes = host.run(f"stat -c '%U:%G %a' {ROOT} {ROOT}/ledger.db {ROOT}/runtime {ROOT}/secrets").stdout.split("\n")
    assert [line.split(" ")[1] for line in modes[:4]] == ["3771", "660", "755", "700"], modes
    assert modes[1].split(" ")[0].endswith(":left4me"), modes
    assert host.run(as_user(GAME_USER, f"cat {ROOT}/ledger.db"), check=False).returncode != 0
    assert host.run(as_user(OPERATOR, f"ls {ROOT}/secrets"), check=False).returncode != 0


def test_a_secret_reaches_server_cfg_and_nowhere_in_the_ledger(host):
    secret = "e2e-hunter2-9f3a"
    host.run(f"echo {shlex.quote(json.dumps({'port': 27020}))} > /tmp/secretive.yaml")
    assert host.l4d2ctl("init", "secretive", "--spec", "/tmp/secretive.yaml", user=OPERATOR).returncode == 0
    host.run(f"echo {shlex.quote(json.dumps({'port': 27021, 'config': [f'rcon_password {secret}']}))} > /tmp/leaky.yaml")
    refused = host.l4d2ctl("init", "leaky", "--spec", "/tmp/leaky.yaml", user=OPERATOR)
    assert refused.returncode == 2 and "secret set" in refused.stderr
    set_ = host.l4d2ctl("secret", "set", "secretive", "rcon_password", "--json", user=OPERATOR, stdin=secret)
    assert set_.returncode == 0, set_.stdout + set_.stderr
    assert host.l4d2ctl("start", "secretive", user=OPERATOR).returncode == 0
    staged = f"{ROOT}/runtime/secretive/upper/left4dead2/cfg/server.cfg"
    assert f'rcon_password "{secret}"' in host.run(f"cat {staged}").stdout
    assert host.run(f"stat -c '%U %a' {staged}").stdout.split() == [GAME_USER, "640"]
    outputs = [set_.stdout, *(host.l4d2ctl(*args, user=OPERATOR).stdout for args in (
        ("show", json.loads(set_.stdout)["command_id"], "--json"), ("history", "secretive", "--json"),
        ("audit", "--json"), ("status", "--json"), ("secret", "list", "secretive", "--json")))]
    assert not any(secret in output for output in outputs)
    listed = json.loads(outputs[-1])
    assert [entry["cvar"] for entry in listed] == ["rcon_password"] and len(listed[0]["fingerprint"]) == 32
    assert host.run(f"cat {ROOT}/ledger.db* | grep -ac {secret}", check=False).stdout.strip() == "0"
    assert host.l4d2ctl("delete", "secretive", user=OPERATOR).returncode == 0
    assert _gone(host, "secretive")


ESCALATIONS = [
    f"sudo -n {HELPER} start 'nosuch probe'", f"sudo -n {HELPER} start nosuch probe",
    f"sudo -n {HELPER} start ../probe", f"sudo -n {HELPER} start probe.service", f"sudo -n {HELPER} start Probe",
    f"sudo -n {HELPER} start 'x left4me-server@y.service'", f"sudo -n {HELPER} frob probe",
    f"sudo -n {HELPER} mount probe --bind", f"sudo -n {HELPER}",
    "sudo -n /usr/bin/systemctl start probe.service", f"sudo -n LEFT4ME_ROOT=/tmp {HELPER} root",
    f"sudo -n /usr/bin/env LEFT4ME_ROOT=/tmp {HELPER} root", "sudo -n /bin/sh -c id",
]


@pytest.mark.parametrize("attempt", ESCALATIONS)
def test_an_operator_gets_nothing_else_as_root(host, attempt):
    host.run("printf '[Service]\\nType=oneshot\\nExecStart=/bin/sh -c \"id > /run/probe-ran\"\\n' "
             "> /run/systemd/system/probe.service && systemctl daemon-reload")
    tried = host.run(as_user(OPERATOR, attempt), check=False)
    assert tried.returncode != 0, tried.stdout
    assert host.run("test -e /run/probe-ran", check=False).returncode != 0
    assert host.run("systemctl is-active probe.service", check=False).stdout.strip() != "active"


def test_the_operator_may_ask_the_helper_its_root_and_nothing_changes_it(host):
    shown = host.run(as_user(OPERATOR, f"LEFT4ME_ROOT=/tmp sudo -n {HELPER} root"))
    assert shown.stdout.strip() == ROOT


def test_the_unit_is_sandboxed(host):
    analysis = host.run("systemd-analyze security --no-pager left4me-server@scored.service", check=False).stdout
    overall = next(line for line in analysis.splitlines() if "Overall exposure level" in line)
    score = float(overall.split(":")[-1].split()[0])
    print(f"systemd-analyze security: {overall.strip()}")
    assert score <= 2.5, overall


def test_install_never_follows_a_symlink_an_operator_planted_in_the_root(host):
    other = "/var/lib/left4me-other"
    installed = f"{PROJECT}/scripts/host/install --root {other} --bin /opt/left4me-other/bin --config /etc/left4me/other.conf"
    try:
        host.run(installed)
        host.run("install -m 0600 /dev/null /root/decoy && echo secret > /root/decoy")
        host.run(as_user(OPERATOR, f"ln -s /root/decoy {other}/ledger.db"))
        again = host.run(installed, check=False)
        assert again.returncode != 0 and "not a file l4d2ctl made" in again.stderr
        assert host.run("stat -c '%U:%G %a' /root/decoy").stdout.strip() == "root:root 600"
    finally:
        # The unit templates are one per host: put back the ones of the root the other tests use.
        host.run(f"{PROJECT}/scripts/host/install --bin {BIN} --l4d2ctl {L4D2CTL} --sudoers")


@pytest.mark.parametrize("prepared, lib, refusal", [
    ("install -d -o alice /opt/alices", "/opt/alices/lib", "must be root's and writable by nobody else"),
    ("install -d -m 0755 /opt/stray/lib/left4me_host && touch /opt/stray/lib/left4me_host/__init__.py",
     "/opt/stray/lib", "--lib is the helper's alone"),
    ("true", f"{ROOT}/lib", "operators write"),
], ids=["an operator's directory", "a stray package", "under the root"])
def test_install_refuses_a_lib_whose_code_root_would_not_be_alone_in_choosing(host, prepared, lib, refusal):
    host.run(prepared)
    refused = host.run(f"{PROJECT}/scripts/host/install --bin /opt/refused/bin --lib {lib} --config "
                       f"/etc/left4me/refused.conf", check=False)
    assert refused.returncode == 2 and refusal in refused.stderr, refused.stderr
    assert host.run("test -e /opt/refused/bin/left4me-host", check=False).returncode != 0


def test_install_names_the_helpers_code_by_its_path_without_symlinks_and_runs_again_after_being_cut_short(host):
    host.run("install -d /opt/linked-real && ln -sfn /opt/linked-real /tmp/linked")
    try:
        host.run(f"{PROJECT}/scripts/host/install --bin /tmp/linked/bin --config /etc/left4me/linked.conf")
        host.run("touch /opt/linked-real/lib/left4me/left4me_host.py.Ab12Cd")  # render's file, from a killed run
        host.run(f"{PROJECT}/scripts/host/install --bin /tmp/linked/bin --config /etc/left4me/linked.conf")
        assert host.run("ls /opt/linked-real/lib/left4me").stdout.split() == ["__pycache__", "left4me_host.py"]
        launcher = host.run("cat /opt/linked-real/bin/left4me-host").stdout
        assert 'sys.path.append("/opt/linked-real/lib/left4me")' in launcher and "/tmp" not in launcher
        assert host.run("/opt/linked-real/bin/left4me-host root").stdout.strip() == ROOT
    finally:
        host.run(f"{PROJECT}/scripts/host/install --bin {BIN} --l4d2ctl {L4D2CTL} --sudoers")


FLEET = [f"fleet{number:02d}" for number in range(1, 21)]
FLEET_ROUNDS = 3


def _a2s_all_answer_script(ports: list[int]) -> str:
    """Python that waits until every port answers A2S_INFO (at most 60 s), printing how many did."""
    return (f"import a2s, time\n"
            f"waiting, deadline = set({ports!r}), time.monotonic() + 60\n"
            f"while waiting and time.monotonic() < deadline:\n"
            f"    for port in list(waiting):\n"
            f"        try:\n"
            f"            a2s.info(('127.0.0.1', port), timeout=0.2); waiting.discard(port)\n"
            f"        except OSError:\n"
            f"            pass\n"
            f"print({len(ports)} - len(waiting))\n")


def _timed(action):
    """What `action()` returns, and how long it took (seconds)."""
    began = time.monotonic()
    result = action()
    return result, time.monotonic() - began


def _figures(ours: list[float], theirs: list[float]) -> str:
    """Rounds of l4d2ctl against systemd alone: each round's times and ratio, and the median ratio."""
    ratios = [mine / baseline for mine, baseline in zip(ours, theirs, strict=True)]
    return (f"{' / '.join(f'{mine:.2f}' for mine in ours)} s against {' / '.join(f'{t:.2f}' for t in theirs)} s: "
            f"{' / '.join(f'{ratio:.1f}' for ratio in ratios)}x (median {statistics.median(ratios):.2f}x)")


def test_bulk_start_and_stop_of_a_fleet_as_root_and_as_an_operator(host):
    ports = [27100 + number for number in range(len(FLEET))]
    for name, port in zip(FLEET, ports, strict=True):
        host.run(f"echo {shlex.quote(json.dumps({'port': port}))} > /tmp/{name}.yaml")
        assert host.l4d2ctl("init", name, "--spec", f"/tmp/{name}.yaml").returncode == 0
    units = " ".join(f"left4me-server@{name}.service" for name in FLEET)
    times: dict[str, list[float]] = {"start": [], "stop": [], "systemd start": [], "systemd stop": []}
    for _ in range(FLEET_ROUNDS):  # rounds alternate with systemd alone, so that noise hits both sides alike
        started, took = _timed(lambda: host.l4d2ctl("start", *FLEET, "--json"))
        times["start"].append(took)
        failures = [host.l4d2ctl("show", row["command_id"], "--json").stdout for row in json.loads(started.stdout)
                    if row["outcome"] != "succeeded"]
        assert started.returncode == 0 and not failures, failures
        for name in FLEET:
            unit = _unit_properties(host, name)
            assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit

        stopped, took = _timed(lambda: host.l4d2ctl("stop", "--all", "--json", user=OPERATOR))
        times["stop"].append(took)
        assert stopped.returncode == 0, stopped.stderr
        assert {row["instance"] for row in json.loads(stopped.stdout)} >= set(FLEET)
        assert {row["actor"] for row in json.loads(stopped.stdout)} == {OPERATOR}
        for name in FLEET:
            unit = _unit_properties(host, name)
            assert (unit["ActiveState"], unit["UnitFileState"]) == ("inactive", "disabled"), unit
            assert not _mounted(host, name)

        # systemd alone, on the same prepared instances: start the 20 units at once and wait for every answer.
        answered, took = _timed(lambda: (host.run(f"systemctl start {units}"), host.run(
            f"{PYTHON} -c {shlex.quote(_a2s_all_answer_script(ports))}").stdout.strip())[1])
        times["systemd start"].append(took)
        assert answered == str(len(FLEET))
        times["systemd stop"].append(_timed(lambda: host.run(f"systemctl stop {units}"))[1])
    print(f"\nfleet of {len(FLEET)}, {FLEET_ROUNDS} rounds: start {_figures(times['start'], times['systemd start'])}; "
          f"stop --all {_figures(times['stop'], times['systemd stop'])}")

    by_alice = host.l4d2ctl("start", FLEET[0], FLEET[1], user=OPERATOR)
    assert by_alice.returncode == 0, by_alice.stderr
    assert "2 commands: 2 succeeded" in by_alice.stdout
    for name in FLEET[:2]:
        unit = _unit_properties(host, name)
        assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit
    assert host.l4d2ctl("delete", *FLEET).returncode == 0
    assert all(_gone(host, name) for name in FLEET)


STEAMCMD = f"{PROJECT}/scripts/host/steamcmd"


def _overlays_on_installation(container) -> int:
    """How many instance overlays (each has the installation as its lowest layer) PID 1's mount table holds."""
    table = container.run("cat /proc/1/mountinfo").stdout
    return sum(1 for line in table.splitlines()
               if " - overlay " in line and line.split(" ")[4].startswith(f"{ROOT}/runtime/"))


def test_an_operators_update_stops_what_runs_changes_nothing_under_a_mount_and_starts_it_again(host):
    spec = {"port": 27025, "arguments": ["+map c6m1_riverbank"], "config": ['hostname "Updated"']}
    host.run(f"echo {shlex.quote(json.dumps(spec))} > /tmp/updated.yaml")
    assert host.l4d2ctl("init", "updated", "--spec", "/tmp/updated.yaml", user=OPERATOR).returncode == 0
    assert host.l4d2ctl("start", "updated", user=OPERATOR).returncode == 0
    try:
        pid_before = _unit_properties(host, "updated")["MainPID"]
        assert _overlays_on_installation(host) >= 1
        refused = host.l4d2ctl("--steamcmd", STEAMCMD, "install", user=OPERATOR)
        assert refused.returncode == 3 and "update` stops and starts them" in refused.stderr

        updated = host.l4d2ctl("--steamcmd", STEAMCMD, "update", "--json", user=OPERATOR)
        assert updated.returncode == 0, updated.stdout + updated.stderr
        update = json.loads(updated.stdout)
        output = [line for step in json.loads(host.l4d2ctl("show", update["command_id"], "--json").stdout)["steps"]
                  for line in step["output"]]
        for platform in ("windows", "linux"):
            assert f"stand-in: 0 overlays mounted on {ROOT}/installation while writing ({platform} pass)" in output
        unit = _unit_properties(host, "updated")
        assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit
        assert unit["MainPID"] != pid_before, "stopped for the update and started again"
        assert _overlays_on_installation(host) >= 1 and _query(host, 27025) == ["Updated", "c6m1_riverbank", 8]
        history = json.loads(host.l4d2ctl("history", "updated", "--json").stdout)
        assert [(row["command"], row["part_of"], row["actor"]) for row in history[-2:]] == [
            ("stop", update["command_id"], OPERATOR), ("start", update["command_id"], OPERATOR)]
        assert host.run(f"grep -c PatchVersion {ROOT}/installation/left4dead2/steam.inf").stdout.strip() == "1"

        # Root never runs SteamCMD: asked by root, the update fails before anything is stopped.
        as_root = host.l4d2ctl("--steamcmd", STEAMCMD, "update")
        assert as_root.returncode == 1 and "SteamCMD never runs as root" in as_root.stderr
        assert _unit_properties(host, "updated")["MainPID"] == unit["MainPID"]
        # The executor service (root) runs an operator's update as that operator; then a SteamCMD that fails.
        host.run(f"mkdir -p /etc/systemd/system/left4me-executor.service.d && printf '[Service]\\nEnvironment="
                 f"L4D2CTL_STEAMCMD={STEAMCMD}\\n' > /etc/systemd/system/left4me-executor.service.d/steamcmd.conf "
                 f"&& systemctl daemon-reload && systemctl start left4me-executor.service")
        try:
            followed = host.l4d2ctl("--steamcmd", STEAMCMD, "update", "--json", user=OPERATOR)
            assert followed.returncode == 0, followed.stdout + followed.stderr
        finally:
            host.run("systemctl stop left4me-executor.service", check=False)
        shown = json.loads(host.l4d2ctl("show", json.loads(followed.stdout)["command_id"], "--json").stdout)
        uid = host.run(f"id -u {OPERATOR}").stdout.strip()
        assert f"stand-in: running as uid {uid}" in [line for step in shown["steps"] for line in step["output"]]
        failing = host.run(as_user(OPERATOR, f"env STEAMCMD_STANDIN_FAIL=linux L4D2CTL_HELPER={HELPER} {L4D2CTL} "
                                             f"--steamcmd {STEAMCMD} update --json"), check=False)
        assert failing.returncode == 1, failing.stdout + failing.stderr
        assert "Disk write failure" in json.loads(failing.stdout)["error"]
        unit = _unit_properties(host, "updated")
        assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit
        assert json.loads(host.l4d2ctl("status", "updated", "--json").stdout)["state"] == "running"
        # The stand-in's count is no empty promise: run by hand under the mounted overlay, it sees it.
        by_hand = host.run(f"{STEAMCMD} +force_install_dir {ROOT}/installation +login anonymous +app_update 222860")
        assert f"stand-in: {_overlays_on_installation(host)} overlays mounted" in by_hand.stdout
        assert _overlays_on_installation(host) >= 1
    finally:
        assert host.l4d2ctl("delete", "updated", user=OPERATOR).returncode == 0


def test_backup_and_restore_of_a_real_upper_layer_as_an_operator_and_as_root(host):
    spec = {"port": 27026, "arguments": ["+map c7m1_docks"]}
    host.run(f"echo {shlex.quote(json.dumps(spec))} > /tmp/saved.yaml")
    assert host.l4d2ctl("init", "saved", "--spec", "/tmp/saved.yaml", user=OPERATOR).returncode == 0
    assert host.l4d2ctl("start", "saved", user=OPERATOR).returncode == 0
    try:
        merged = f"{ROOT}/runtime/saved/merged/left4dead2"
        host.run(as_user(GAME_USER, f"mkdir -p {merged}/addons {merged}/logs && head -c 300000 /dev/urandom > "
                                    f"{merged}/addons/workshop.vpk && echo said > {merged}/logs/L1.log"))
        host.run(f"cp {ROOT}/runtime/saved/upper/left4dead2/addons/workshop.vpk /tmp/workshop.vpk")
        assert host.l4d2ctl("backup", "saved", user=OPERATOR).returncode == 3, "running"
        assert host.l4d2ctl("stop", "saved", user=OPERATOR).returncode == 0

        taken = host.l4d2ctl("backup", "saved", "--exclude", "*.log", "--keep", "2", "--json", user=OPERATOR)
        assert taken.returncode == 0, taken.stdout + taken.stderr
        backup_id = json.loads(taken.stdout)["command_id"]
        unit = _unit_properties(host, "saved")
        assert (unit["ActiveState"], unit["UnitFileState"]) == ("inactive", "disabled"), unit
        modes = host.run(f"stat -c '%a %G' {ROOT}/backups/saved/{backup_id}.tar {ROOT}/backups/saved/{backup_id}.json")
        assert modes.stdout.split("\n")[:2] == ["640 left4me", "640 left4me"], modes.stdout
        names = host.run(f"tar tf {ROOT}/backups/saved/{backup_id}.tar").stdout.split()
        assert "left4dead2/addons/workshop.vpk" in names and "left4dead2/logs/L1.log" not in names
        assert "left4dead2/cfg/server.cfg" not in names, "the staged cfg holds the secrets"

        host.run(f"rm {ROOT}/runtime/saved/upper/left4dead2/addons/workshop.vpk")
        restored = host.l4d2ctl("restore", "saved", backup_id[:6], user=OPERATOR)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        host.run(f"cmp /tmp/workshop.vpk {ROOT}/runtime/saved/upper/left4dead2/addons/workshop.vpk")
        owner = host.run(f"stat -c %U {ROOT}/runtime/saved/upper {ROOT}/runtime/saved/upper/left4dead2/addons/"
                         f"workshop.vpk").stdout.split()
        assert owner == [GAME_USER, GAME_USER]

        assert host.l4d2ctl("start", "saved", user=OPERATOR).returncode == 0
        unit = _unit_properties(host, "saved")
        assert (unit["ActiveState"], unit["UnitFileState"], unit["NRestarts"]) == ("active", "enabled", "0"), unit
        host.run(f"cmp /tmp/workshop.vpk {merged}/addons/workshop.vpk")
        assert host.l4d2ctl("restore", "saved", backup_id, user=OPERATOR).returncode == 3, "running"
        assert host.l4d2ctl("stop", "saved").returncode == 0

        for _ in range(2):
            assert host.l4d2ctl("backup", "saved", "--keep", "2").returncode == 0
        listed = json.loads(host.l4d2ctl("backups", "saved", "--json", user=OPERATOR).stdout)
        assert len(listed) == 2 and backup_id not in [row["id"] for row in listed]
        newest = listed[-1]["id"]
        host.run(f"printf x | dd of={ROOT}/backups/saved/{newest}.tar bs=1 seek=1000 conv=notrunc 2>/dev/null")
        corrupted = host.l4d2ctl("restore", "saved", newest, user=OPERATOR)
        assert corrupted.returncode == 1 and "is corrupted" in corrupted.stderr
        host.run(f"cmp /tmp/workshop.vpk {ROOT}/runtime/saved/upper/left4dead2/addons/workshop.vpk")
    finally:
        assert host.l4d2ctl("delete", "saved", user=OPERATOR).returncode == 0


def test_the_replicate_unit_streams_the_ledger_off_the_host_and_verify_compares_with_it(host):
    url = "file:///var/lib/left4me-replica"
    host.run(f"echo {shlex.quote(json.dumps({'port': 27027}))} > /tmp/replicated.yaml")
    assert host.l4d2ctl("init", "replicated", "--spec", "/tmp/replicated.yaml", user=OPERATOR).returncode == 0
    host.run(f"{PROJECT}/scripts/host/install --bin {BIN} --l4d2ctl {L4D2CTL} --sudoers --replica {url}")
    try:
        _wait_for(lambda: host.run("systemctl is-active left4me-replicate.service", check=False).stdout.strip()
                  == "active", 30, "left4me-replicate.service active")
        assert host.l4d2ctl("start", "replicated", user=OPERATOR).returncode == 0

        said = []

        def caught_up():
            shown = host.l4d2ctl("verify", "--replica", url, "--json")
            said[:] = [shown.returncode, shown.stdout[-600:], shown.stderr[-600:]]
            return shown.returncode == 0 and json.loads(shown.stdout)["replica"]["lag_events"] == 0

        try:
            _wait_for(caught_up, 60, "the replica catching up")
        except AssertionError as error:
            journal = host.run("journalctl -u left4me-replicate.service --no-pager -n 15", check=False).stdout
            raise AssertionError(f"{error}; verify said {said}; the unit logged {journal}") from None
        shown = host.run("systemctl show left4me-replicate.service --property=ActiveState,NRestarts").stdout
        assert "ActiveState=active" in shown and "NRestarts=0" in shown, shown
        modes = host.run(f"stat -c '%a %G' {ROOT}/.ledger.db-litestream").stdout.strip()
        assert int(modes.split()[0], 8) & 0o007 == 0 and modes.split()[1] == "left4me", "others read nothing"
        second = host.l4d2ctl("replicate", "--replica", url)
        assert second.returncode == 4 and "another `l4d2ctl replicate` runs" in second.stderr
    finally:
        host.run("systemctl disable --now left4me-replicate.service", check=False)
        host.l4d2ctl("delete", "replicated")
