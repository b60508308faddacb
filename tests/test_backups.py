"""backup, backups, restore: a stopped instance's upper layer archived with a checksummed manifest, listed, and put
back byte for byte, only while stopped and only from an archive whose checksum holds."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

import pytest

from ledger.lifecycle import Outcome, State

from .fake_host import FakeHost
from .real_host import invoke, write_spec

MAP = bytes(range(256)) * 512


@pytest.fixture
def host(ledger, tmp_path) -> FakeHost:
    """alpha initialized and started once (its upper layer has what the server wrote), then stopped."""
    host = FakeHost(ledger, root=tmp_path)
    host.init("alpha")
    host.run("alpha", "start")
    host.run("alpha", "stop")
    upper = tmp_path / "runtime/alpha/upper/left4dead2"
    (upper / "addons").mkdir(parents=True)
    (upper / "addons/workshop_map.vpk").write_bytes(MAP)
    (upper / "logs").mkdir()
    (upper / "logs/L0001.log").write_text("L 11/29/2026 - map c1m1_hotel\n")
    (upper / "ban.txt").write_text("banid 0 STEAM_1:0:1\n")
    return host


def _upper(host: FakeHost) -> Path:
    return host.fs.root / "runtime/alpha/upper/left4dead2"


def _archive_names(host: FakeHost, backup_id: str) -> list[str]:
    with tarfile.open(host.fs.root / f"backups/alpha/{backup_id}.tar") as tar:
        return sorted(tar.getnames())


def test_a_restore_puts_a_deleted_file_back_byte_for_byte(host):
    backup = host.run("alpha", "backup")
    (_upper(host) / "addons/workshop_map.vpk").unlink()
    restore = host.run("alpha", "restore", {"backup": backup.command_id})
    assert (backup.outcome, restore.outcome) == (Outcome.SUCCEEDED, Outcome.SUCCEEDED)
    assert (_upper(host) / "addons/workshop_map.vpk").read_bytes() == MAP


def test_a_restore_removes_what_was_written_after_the_backup(host):
    backup = host.run("alpha", "backup")
    (_upper(host) / "addons/later.vpk").write_text("later")
    host.run("alpha", "restore", {"backup": backup.command_id})
    assert not (_upper(host) / "addons/later.vpk").exists()


def test_the_manifest_records_size_sha256_excludes_and_the_instance_files(host):
    backup = host.run("alpha", "backup", {"exclude": ["*.log"]})
    manifest = json.loads((host.fs.root / f"backups/alpha/{backup.command_id}.json").read_text())
    archive = (host.fs.root / f"backups/alpha/{backup.command_id}.tar").read_bytes()
    import hashlib

    assert (manifest["size"], manifest["sha256"]) == (len(archive), hashlib.sha256(archive).hexdigest())
    assert (manifest["id"], manifest["command_id"], manifest["excludes"]) == (backup.command_id,) * 2 + (["*.log"],)
    assert manifest["files"]["spec.yaml"] == (host.fs.root / "instances/alpha/spec.yaml").read_text()


def test_excludes_leave_out_what_they_match_by_path_or_by_name(host):
    backup = host.run("alpha", "backup", {"exclude": ["left4dead2/logs/*", "ban.txt"]})
    names = _archive_names(host, backup.command_id)
    assert "left4dead2/addons/workshop_map.vpk" in names
    assert "left4dead2/logs" in names and "left4dead2/logs/L0001.log" not in names
    assert "left4dead2/ban.txt" not in names


def test_the_staged_server_cfg_with_its_secrets_is_never_archived(host):
    fingerprint = host.secrets.put("alpha", "rcon_password", "hunter2-7c1e")
    host.run("alpha", "secret-set", {"cvar": "rcon_password", "fingerprint": fingerprint})
    host.run("alpha", "start")
    host.run("alpha", "stop")
    backup = host.run("alpha", "backup")
    assert "left4dead2/cfg/server.cfg" not in _archive_names(host, backup.command_id)
    assert b"hunter2" not in (host.fs.root / f"backups/alpha/{backup.command_id}.tar").read_bytes()


def test_keep_two_keeps_the_newest_two(host):
    taken = [host.run("alpha", "backup", {"exclude": [], "keep": 2}).command_id for _ in range(3)]
    assert [manifest["id"] for manifest in host.host.backups.manifests("alpha")] == taken[1:]
    assert sorted(path.name for path in (host.fs.root / "backups/alpha").iterdir()) == sorted(
        f"{backup_id}.{kind}" for backup_id in taken[1:] for kind in ("json", "tar"))


def test_a_corrupted_archive_is_refused_with_both_sums_and_nothing_is_restored(host):
    backup = host.run("alpha", "backup")
    archive = host.fs.root / f"backups/alpha/{backup.command_id}.tar"
    data = bytearray(archive.read_bytes())
    data[700] ^= 0xFF
    archive.write_bytes(bytes(data))
    (_upper(host) / "addons/workshop_map.vpk").unlink()
    restore = host.run("alpha", "restore", {"backup": backup.command_id})
    assert restore.outcome == Outcome.FAILED
    assert "is corrupted" in restore.error and "nothing was restored" in restore.error
    assert not (_upper(host) / "addons/workshop_map.vpk").exists()


def test_a_truncated_archive_is_refused_too(host):
    backup = host.run("alpha", "backup")
    archive = host.fs.root / f"backups/alpha/{backup.command_id}.tar"
    archive.write_bytes(archive.read_bytes()[:1024])
    restore = host.run("alpha", "restore", {"backup": backup.command_id})
    assert restore.outcome == Outcome.FAILED
    assert "1024 bytes" in restore.error


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_backup_and_restore_of_a_running_instance_are_rejected(host, command):
    backup = host.run("alpha", "backup")
    host.run("alpha", "start")
    done = host.run("alpha", command, {"backup": backup.command_id} if command == "restore" else None)
    assert done.outcome == Outcome.REJECTED
    assert "is running: stop it first" in done.error
    assert host.executor.projections.instance("alpha").state == State.RUNNING


def test_archive_and_manifest_are_readable_by_owner_and_group_only(host):
    backup = host.run("alpha", "backup")
    for kind in ("tar", "json"):
        mode = stat.S_IMODE((host.fs.root / f"backups/alpha/{backup.command_id}.{kind}").stat().st_mode)
        assert mode == 0o640, kind


def test_a_restore_says_when_the_instance_files_differ_from_the_backups(host):
    backup = host.run("alpha", "backup")
    host.init("alpha", {**json.loads(json.dumps(host.executor.projections.instance("alpha").blueprint)),
                        "config": ['hostname "Changed"']})
    restore = host.run("alpha", "restore", {"backup": backup.command_id})
    said = [line for step in host.steps(restore) for line in step["output"]]
    assert any(line.startswith("instances/alpha/server.cfg differs from the backup's") for line in said)
    assert (host.fs.root / "instances/alpha/server.cfg").read_text() == 'hostname "Changed"\n'


def test_a_restore_after_a_reset_says_the_instance_files_are_not_there_rather_than_that_they_differ(host):
    backup = host.run("alpha", "backup")
    host.run("alpha", "reset")
    restore = host.run("alpha", "restore", {"backup": backup.command_id})
    said = [line for step in host.steps(restore) for line in step["output"]]
    assert any(line.startswith("instances/alpha/server.cfg is not there now") for line in said)
    assert not any("differs from the backup's" in line for line in said)


def test_a_restore_after_a_reset_brings_the_upper_layer_back_for_the_next_start(host):
    backup = host.run("alpha", "backup")
    host.run("alpha", "reset")
    assert host.run("alpha", "restore", {"backup": backup.command_id}).outcome == Outcome.SUCCEEDED
    assert host.run("alpha", "start").outcome == Outcome.SUCCEEDED
    assert (_upper(host) / "addons/workshop_map.vpk").read_bytes() == MAP


def test_a_restore_refuses_an_archive_entry_that_leaves_the_upper_layer(host, tmp_path):
    backup = host.run("alpha", "backup")
    crafted = io.BytesIO()
    with tarfile.open(fileobj=crafted, mode="w") as tar:
        entry = tarfile.TarInfo("../../escaped")
        entry.size = 1
        tar.addfile(entry, io.BytesIO(b"x"))
    manifest_path = host.fs.root / f"backups/alpha/{backup.command_id}.json"
    import hashlib

    manifest = json.loads(manifest_path.read_text())
    data = crafted.getvalue()
    manifest.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (host.fs.root / f"backups/alpha/{backup.command_id}.tar").write_bytes(data)
    manifest_path.write_text(json.dumps(manifest))
    restore = host.run("alpha", "restore", {"backup": backup.command_id})
    assert restore.outcome == Outcome.FAILED
    assert "is not a plain relative path" in restore.error
    assert not (host.fs.root / "escaped").exists() and not (host.fs.root / "runtime/escaped").exists()
    assert (_upper(host) / "addons/workshop_map.vpk").read_bytes() == MAP


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def stopped(root, tmp_path):
    """alpha initialized on a simulated host under `root`, with a file in its upper layer."""
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "alpha.yaml"))).exit_code == 0
    upper = root / "runtime/alpha/upper/left4dead2"
    upper.mkdir(parents=True, exist_ok=True)
    (upper / "motd.txt").write_text("welcome\n")
    return root


def test_backups_lists_id_taken_at_size_and_sha256_as_json(stopped):
    backup = json.loads(invoke(stopped, "backup", "alpha", "--json").output)
    listed = json.loads(invoke(stopped, "backups", "alpha", "--json").output)
    assert [row["id"] for row in listed] == [backup["command_id"]]
    assert set(listed[0]) == {"id", "taken_at", "size", "sha256", "excludes", "command_id", "error"}


def test_restore_takes_a_unique_prefix_of_the_backup_id(stopped):
    backup = json.loads(invoke(stopped, "backup", "alpha", "--json").output)
    (stopped / "runtime/alpha/upper/left4dead2/motd.txt").unlink()
    result = invoke(stopped, "restore", "alpha", backup["command_id"][:6])
    assert result.exit_code == 0, result.output
    assert (stopped / "runtime/alpha/upper/left4dead2/motd.txt").read_text() == "welcome\n"


def test_restore_of_an_unknown_backup_is_exit_2_and_records_nothing(stopped):
    result = invoke(stopped, "restore", "alpha", "abcdef")
    assert result.exit_code == 2
    assert "backup id abcdef: no backup of alpha" in result.output
    assert '"restore"' not in invoke(stopped, "history", "alpha", "--json").output


def test_restore_while_running_is_exit_3(stopped):
    backup = json.loads(invoke(stopped, "backup", "alpha", "--json").output)
    assert invoke(stopped, "start", "alpha").exit_code == 0
    result = invoke(stopped, "restore", "alpha", backup["command_id"])
    assert result.exit_code == 3
    assert "is running: stop it first" in result.output


@pytest.mark.parametrize(("option", "why"), [
    (["--exclude", "/etc/*"], "relative to the upper layer"), (["--exclude", "a/../b"], "without '..'"),
    (["--exclude", "é"], "printable ASCII"), (["--keep", "0"], "--keep"),
    (["--exclude", "*"] * 33, "at most 32 globs")])
def test_a_bad_exclude_or_keep_is_exit_2_and_records_nothing(stopped, option, why):
    result = invoke(stopped, "backup", "alpha", *option)
    assert result.exit_code == 2
    assert why in result.output
    assert '"backup"' not in invoke(stopped, "history", "alpha", "--json").output


def test_keep_goes_by_the_file_names_id_and_never_removes_what_it_cannot_read(host):
    taken = [host.run("alpha", "backup").command_id for _ in range(2)]
    backups = host.fs.root / "backups/alpha"
    forged = json.loads((backups / f"{taken[1]}.json").read_text()) | {"taken_at": "2000-01-01T00:00:00.000000Z"}
    (backups / "000000000000.json").write_text(json.dumps(forged))
    (backups / f"{taken[0]}.json").write_text("{")
    kept = host.run("alpha", "backup", {"exclude": [], "keep": 1})
    assert kept.outcome == Outcome.SUCCEEDED
    said = [line for step in host.steps(kept) for line in step["output"]]
    assert any(line.startswith(f"kept {taken[0]}, whose manifest cannot be read") for line in said)
    assert any(line.startswith("kept 000000000000, whose manifest cannot be read (") for line in said)
    assert (backups / f"{taken[0]}.tar").exists(), "a backup with a damaged manifest is never removed"
    assert not (backups / f"{taken[1]}.json").exists(), "the real second backup went, by its own id"
    assert [row["id"] for row in host.host.backups.manifests("alpha") if not row.get("error")] == [kept.command_id]


@pytest.mark.parametrize("manifest", ["[" * 100000, '{"id": "x"}', '"[/x]"'])
def test_a_hostile_manifest_is_listed_as_an_error_in_one_line(stopped, manifest):
    backup = json.loads(invoke(stopped, "backup", "alpha", "--json").output)
    (stopped / f"backups/alpha/{backup['command_id']}.json").write_text(manifest)
    assert invoke(stopped, "backups", "alpha").exit_code == 0
    listed = json.loads(invoke(stopped, "backups", "alpha", "--json").output)
    assert listed[0]["error"].startswith(f"backups/alpha/{backup['command_id']}.json: not a manifest l4d2ctl wrote")
    restored = invoke(stopped, "restore", "alpha", backup["command_id"])
    assert restored.exit_code == 1 and "not a manifest l4d2ctl wrote" in restored.output


def test_what_a_backup_cut_short_left_is_removed_by_the_next_backup(host):
    backups = host.fs.root / "backups/alpha"
    backups.mkdir(parents=True)
    (backups / ".deadbeef0000.tar.0123abcd.tmp").write_bytes(b"x" * 1000)
    (backups / "deadbeef0001.tar").write_bytes(b"an archive whose manifest was never written")
    host.run("alpha", "backup")
    assert not (backups / ".deadbeef0000.tar.0123abcd.tmp").exists()
    assert not (backups / "deadbeef0001.tar").exists()
