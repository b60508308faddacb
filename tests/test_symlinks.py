"""Symlinks planted under the root are never followed out of it."""

from __future__ import annotations

import os

import pytest

from commands.service.executor_lock import ExecutorLock
from ledger import Ledger, LedgerError

from .real_host import invoke, make_root, run, steps


@pytest.fixture
def root(tmp_path):
    return make_root(tmp_path / "root")


@pytest.fixture
def outside(tmp_path):
    target = tmp_path / "outside"
    target.mkdir()
    (target / "precious").write_text("keep me")
    return target


def _untouched(outside) -> bool:
    return sorted(p.name for p in outside.iterdir()) == ["precious"] and (outside / "precious").read_text() == "keep me"


@pytest.mark.parametrize("command", ["delete", "reset"])
@pytest.mark.parametrize("planted", ["instances/alpha", "runtime/alpha"])
def test_delete_and_reset_remove_a_planted_directory_link_without_following_it(root, outside, command, planted):
    run(root, "alpha", "init")
    (root / planted).rename(root / "moved")
    (root / planted).symlink_to(outside)
    assert run(root, "alpha", command).outcome == "succeeded"
    assert _untouched(outside)
    assert not (root / planted).is_symlink()


@pytest.mark.parametrize("command", ["delete", "reset"])
def test_a_linked_parent_directory_is_refused_not_followed(root, outside, command):
    run(root, "alpha", "init")
    (outside / "alpha").mkdir()
    (outside / "alpha" / "instance.env").write_text("theirs")
    (root / "instances").rename(root / "instances.moved")
    (root / "instances").symlink_to(outside)
    removed = run(root, "alpha", command)
    assert removed.outcome == "failed"
    assert "instances: is a symlink or not a directory; refusing to follow it" in removed.error
    assert (outside / "alpha" / "instance.env").read_text() == "theirs"


def test_init_refuses_to_write_through_a_linked_instance_directory(root, outside):
    (root / "instances").mkdir()
    (root / "instances/alpha").symlink_to(outside)
    initialized = run(root, "alpha", "init")
    assert initialized.outcome == "failed"
    assert _untouched(outside)


def test_start_refuses_to_stage_through_a_linked_upper_directory(root, outside):
    run(root, "alpha", "init")
    (root / "runtime/alpha/upper").rmdir()
    (root / "runtime/alpha/upper").symlink_to(outside)
    started = run(root, "alpha", "start")
    assert started.outcome == "failed"
    assert [step["step"] for step in steps(root, started)] == [
        "release overlay", "remove stale cfgs", "stage server.cfg", "stage alias cfgs",
        "undo: disable and stop unit", "undo: unmount overlay"]
    assert "runtime/alpha/upper: is a symlink" in started.error
    assert _untouched(outside)


def test_start_refuses_an_alias_cfg_reached_through_a_linked_overlay(root, outside):
    (outside / "left4dead2/cfg").mkdir(parents=True)
    (outside / "left4dead2/cfg/server.cfg").write_text("rcon_password leaked")
    spec = {"port": 27015, "overlays": [{"path": "linked", "alias": "linked"}]}
    (root / "overlays/linked").symlink_to(outside)
    run(root, "alpha", "init", {"spec": spec})
    started = run(root, "alpha", "start")
    assert started.outcome == "failed"
    assert "overlays/linked: is a symlink" in started.error
    assert not (root / "runtime/alpha/upper/left4dead2/cfg/server_linked.cfg").exists()


def test_a_fifo_as_an_overlays_server_cfg_fails_the_start_instead_of_blocking_it(root):
    spec = {"port": 27015, "overlays": [{"path": "piped", "alias": "piped"}]}
    (root / "overlays/piped/left4dead2/cfg").mkdir(parents=True)
    os.mkfifo(root / "overlays/piped/left4dead2/cfg/server.cfg")
    run(root, "alpha", "init", {"spec": spec})
    started = run(root, "alpha", "start")
    assert started.outcome == "failed" and "not a regular file" in started.error


def test_a_directory_where_an_instance_file_belongs_fails_the_start_naming_it(root):
    run(root, "alpha", "init", {"spec": {"port": 27015}})
    (root / "instances/alpha/server.cfg").unlink()
    (root / "instances/alpha/server.cfg").mkdir()
    started = run(root, "alpha", "start")
    assert started.outcome == "failed" and "instances/alpha/server.cfg: not a regular file" in started.error


def test_an_executor_lock_that_is_not_a_regular_file_is_refused(tmp_path):
    ledger = tmp_path / "ledger.db"
    os.mkfifo(f"{ledger}.executor.lock")
    with pytest.raises(LedgerError, match="not a regular file"):
        ExecutorLock(ledger).try_acquire()


def _a_ledger(path):
    with Ledger.open(path):
        pass
    return path


def test_a_symlinked_ledger_is_refused_and_its_target_left_alone(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "ledger.db").symlink_to(target)
    with pytest.raises(LedgerError, match="is a symlink"):
        Ledger.open(tmp_path / "root" / "ledger.db")
    assert target.read_bytes() == b""


def test_a_ledger_path_that_is_not_a_regular_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "ledger.db")
    with pytest.raises(LedgerError, match="not a regular file"):
        Ledger.open(tmp_path / "ledger.db")


def test_a_ledger_anyone_may_write_is_refused(tmp_path):
    path = _a_ledger(tmp_path / "ledger.db")
    path.chmod(0o666)
    with pytest.raises(LedgerError, match="may be written by anyone"):
        Ledger.open(path)


def test_a_ledger_in_a_directory_anyone_may_write_is_refused(tmp_path):
    path = _a_ledger(tmp_path / "shared" / "ledger.db")
    path.parent.chmod(0o1777)
    with pytest.raises(LedgerError, match="world-writable directory"):
        Ledger.open(path)


def test_a_huge_sparse_file_as_an_overlays_server_cfg_fails_the_start_instead_of_being_copied(root):
    with open(root / "overlays/competitive/zonemod/left4dead2/cfg/server.cfg", "wb") as huge:
        huge.truncate(300 * 2**20)
    run(root, "alpha", "init")
    started = run(root, "alpha", "start")
    assert started.outcome == "failed" and "larger than 1 MiB" in started.error
    assert not (root / "instances/alpha/cfg/server_zonemod.cfg").exists()


def test_the_simulated_hosts_state_is_never_read_through_a_symlink(root, outside):
    run(root, "alpha", "init")
    secret = outside / "elsewhere.json"
    secret.write_text('{"units": {}}')
    (root / ".simulated").mkdir(exist_ok=True)
    state = root / ".simulated" / "host.json"
    if state.exists():
        state.unlink()
    state.symlink_to(secret)
    result = invoke(root, "start", "alpha")
    assert result.exit_code == 1 and "it is a symlink, which is not followed" in result.stderr
    assert secret.read_text() == '{"units": {}}'
