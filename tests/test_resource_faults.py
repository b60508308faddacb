"""The ledger under resource faults: a full disk, a read-only file, a lock held too long, an unprivileged user."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from commands.cli import cli
from ledger import Ledger, LedgerError, verify_ledger

from .conftest import an_event
from .fake_host import SPEC, FakeHost
from .fakes import Faults
from .real_host import invoke, make_root, write_spec

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small or read-only filesystem needs root")


@pytest.fixture
def mounted(tmp_path):
    """Mount helper: every mount made through it is undone after the test."""
    points = []

    def mount(*args: str) -> None:
        result = subprocess.run(["mount", *args], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"mount {' '.join(args)} not permitted here: {result.stderr.strip()}")
        points.append(args[-1])

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", "--lazy", point], check=False)


@needs_root
def test_an_append_that_does_not_fit_exits_four_and_leaves_ledger_and_host_intact(tmp_path, mounted):
    small = tmp_path / "small"
    small.mkdir()
    mounted("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small))
    root = make_root(small / "root")
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "a.yaml"))).exit_code == 0
    filler = small / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(descriptor, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(descriptor)
    big = write_spec(tmp_path / "big.yaml", SPEC | {"port": 27020, "config": ["x" * 1000] * 100})

    result = invoke(root, "init", "bravo", "--spec", str(big))
    assert result.exit_code == 4
    assert result.stderr.count("\n") == 1 and "it is full" in result.stderr
    assert not (root / "instances/bravo").exists()
    filler.unlink()
    with Ledger.open(root / "ledger.db") as ledger:
        assert verify_ledger(ledger).ok
        assert {e.instance for e in ledger.read()} == {"alpha"}
    assert invoke(root, "init", "bravo", "--spec", str(big)).exit_code == 0


@needs_root
def test_a_read_only_ledger_reads_but_refuses_writes_with_exit_four(tmp_path, mounted):
    source = make_root(tmp_path / "source")
    assert invoke(source, "init", "alpha", "--spec", str(write_spec(tmp_path / "a.yaml"))).exit_code == 0
    with Ledger.open(source / "ledger.db") as ledger:  # an event the projections have not seen yet
        ledger.append([an_event(instance="alpha", command_id="0123456789ab", command="stop")])
    view = tmp_path / "view"
    view.mkdir()
    mounted("--bind", str(source), str(view))
    mounted("-o", "remount,bind,ro", str(view))

    assert json.loads(invoke(view, "status", "--json").stdout)[0]["name"] == "alpha"
    assert [c["command"] for c in json.loads(invoke(view, "history", "alpha", "--json").stdout)] == ["init", "stop"]
    assert json.loads(invoke(view, "verify", "--json").stdout)["ok"]
    refused = invoke(view, "stop", "alpha")
    assert refused.exit_code == 4
    assert "read-only" in refused.stderr and refused.stderr.count("\n") == 1
    assert invoke(view, "projections", "rebuild").exit_code == 4


def _hold_write_lock(path: str, ready, release) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    ready.set()
    release.wait(30)
    conn.execute("ROLLBACK")


def test_a_ledger_locked_past_the_timeout_exits_four_naming_who_holds_it(tmp_path):
    root = make_root(tmp_path / "root")
    spec = write_spec(tmp_path / "a.yaml")
    assert invoke(root, "init", "alpha", "--spec", str(spec)).exit_code == 0
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_write_lock, args=(str(root / "ledger.db"), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["--root", str(root), "--host", "simulated", "--lock-timeout", "0.5",
                                          "start", "alpha"])
        assert result.exit_code == 4
        assert time.monotonic() - started < 10
        assert "locked by another process (waited 0.5s)" in result.stderr
        assert f"pid {holder.pid} (" in result.stderr
    finally:
        release.set()
        holder.join(30)


def test_the_ledger_is_created_for_its_owner_and_group_only_in_a_directory_that_is_not_world_writable(tmp_path):
    root = tmp_path / "fresh" / "root"
    (root / "installation").mkdir(parents=True)
    assert invoke(root, "start", "ghost").exit_code == 3
    assert stat.S_IMODE((root / "ledger.db").stat().st_mode) & 0o117 == 0
    assert not stat.S_IMODE(root.stat().st_mode) & stat.S_IWOTH


def test_a_ledger_is_never_created_in_a_world_writable_directory(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(LedgerError, match="world-writable"):
        Ledger.open(shared / "ledger.db")
    assert not (shared / "ledger.db").exists()


def _as_nobody(args: list[str], output: str) -> None:
    with open(output, "w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    cli.main(args)


def _run_as_nobody(tmp_path: Path, *args: str) -> tuple[int, str]:
    output = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}.txt"
    output.touch()
    output.chmod(0o666)
    child = multiprocessing.get_context("fork").Process(target=_as_nobody, args=(list(args), str(output)))
    child.start()
    child.join(60)
    return child.exitcode, output.read_text()


@pytest.fixture
def public(tmp_path):
    """A directory everyone may traverse (pytest's own temporary tree is private to its owner)."""
    directory = Path(tempfile.mkdtemp(prefix="l4d2ctl-public-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_ledger_this_user_may_not_even_look_at_exits_four(tmp_path):
    root = make_root(tmp_path / "root")
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "a.yaml"))).exit_code == 0
    invoke(root, "status", "--json")  # load every module the child will need while we can read them all
    code, output = _run_as_nobody(tmp_path, "--root", str(root), "--host", "simulated", "status", "--json")
    assert code == 4 and "Permission denied" in output and output.count("\n") == 1, output


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_user_who_cannot_write_the_ledger_gets_exit_four_not_a_traceback(tmp_path, public):
    root = make_root(public / "root")
    root.chmod(0o755)
    spec = write_spec(public / "a.yaml")
    assert invoke(root, "init", "alpha", "--spec", str(spec)).exit_code == 0
    invoke(root, "status", "--json")  # load every module the children will need while we can read them all
    base = ["--root", str(root), "--host", "simulated"]

    code, output = _run_as_nobody(tmp_path, *base, "stop", "alpha")
    assert code == 4 and output.count("\n") == 1 and "Traceback" not in output, output
    code, output = _run_as_nobody(tmp_path, *base, "status", "--json")
    assert code == 4 and "Traceback" not in output, output

    (root / "ledger.db").chmod(0o644)
    code, output = _run_as_nobody(tmp_path, *base, "status", "--json")
    assert code == 0 and json.loads(output)[0]["name"] == "alpha", output
    code, output = _run_as_nobody(tmp_path, *base, "stop", "alpha")
    assert code == 4 and "read-only" in output and "Traceback" not in output, output


@dataclass
class LockedDuringStart(Faults):
    """Someone else takes the ledger's write lock while the unit starts, and keeps it for a second."""

    ledger_path: str = ""
    holders: list = field(default_factory=list)

    def check(self, call: str, io=None) -> None:
        super().check(call, io)
        if call.startswith("enable_now") and not self.holders:
            holder = sqlite3.connect(self.ledger_path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN IMMEDIATE")
            self.holders.append(holder)
            threading.Timer(1.0, lambda: (holder.execute("ROLLBACK"), holder.close())).start()


def test_a_step_that_ran_is_recorded_even_when_the_ledger_stays_locked_past_the_timeout(ledger_path):
    with Ledger.open(ledger_path, busy_timeout=0.2) as ledger:
        host = FakeHost(ledger, LockedDuringStart(ledger_path=str(ledger_path)))
        host.init()
        warnings: list[str] = []
        host.executor.warn = warnings.append
        started = host.run("alpha", "start")
        assert started.outcome == "succeeded"
        assert "enable and start unit" in host.step_names(started)
        assert warnings and "still trying to record StepCompleted" in warnings[0]


def test_a_cli_that_fails_after_recording_its_command_names_it_and_says_it_stays_queued(root, tmp_path):
    spec = write_spec(tmp_path / "s.yaml")
    assert invoke(root, "init", "alpha", "--spec", str(spec)).exit_code == 0
    (root / "ledger.db.executor.lock").unlink()
    os.mkfifo(root / "ledger.db.executor.lock")
    result = invoke(root, "start", "alpha", "--no-wait")  # recorded, then the look for an executor fails
    assert result.exit_code == 4
    assert result.stderr.count("\n") == 1 and "not a regular file" in result.stderr
    with Ledger.open(root / "ledger.db") as ledger:
        (queued,) = [e.command_id for e in ledger.read() if e.type == "CommandRequested"][1:]
    assert f"recorded as command {queued}, which the next executor takes up" in result.stderr


def test_a_cli_that_cannot_take_the_executor_lock_records_nothing_and_says_why(root, tmp_path):
    spec = write_spec(tmp_path / "s.yaml")
    assert invoke(root, "init", "alpha", "--spec", str(spec)).exit_code == 0
    (root / "ledger.db.executor.lock").unlink()
    os.mkfifo(root / "ledger.db.executor.lock")
    with Ledger.open(root / "ledger.db") as ledger:
        before = ledger.head()
    result = invoke(root, "start", "alpha")
    assert result.exit_code == 4
    assert result.stderr.count("\n") == 1 and "not a regular file" in result.stderr
    assert "recorded" not in result.stderr
    with Ledger.open(root / "ledger.db") as ledger:
        assert ledger.head() == before
