"""Symlinks planted under the root are never followed out of it."""

from __future__ import annotations

import os

import pytest

from commands.service.executor_lock import ExecutorLock
from ledger import LedgerError

from .real_host import make_root, run, steps


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


def test_an_executor_lock_that_is_not_a_regular_file_is_refused(tmp_path):
    ledger = tmp_path / "ledger.db"
    os.mkfifo(f"{ledger}.executor.lock")
    with pytest.raises(LedgerError, match="not a regular file"):
        ExecutorLock(ledger).try_acquire()
