"""Secret cvars: the value goes to the host's secret store and the staged server.cfg, never into the ledger."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from commands.cli import cli
from commands.domain.errors import InvalidSpec
from commands.domain.spec import parse_spec

from .fake_host import SPEC
from .real_host import write_spec

SECRET = "hunter2-7c1e"
STAGED = "runtime/alpha/upper/left4dead2/cfg/server.cfg"


def _secret(root, *args: str, value: str | None = SECRET):
    return CliRunner().invoke(cli, ["--root", str(root), "--host", "simulated", "secret", *args],
                              input=None if value is None else value + "\n",
                              env={"L4D2CTL_ACTOR": "alice", "SUDO_USER": None})


@pytest.fixture
def initialized(root, l4d2ctl, tmp_path):
    assert l4d2ctl("init", "alpha", "--spec", str(write_spec(tmp_path / "friday.yaml"))).exit_code == 0
    return root


def _every_byte_of_the_ledger(root) -> bytes:
    return b"".join(path.read_bytes() for path in root.glob("ledger.db*"))


@pytest.mark.parametrize("line", ['rcon_password "x"', "sv_password x", 'hostname a; rcon_password b',
                                  '"RCON_PASSWORD" "x"'])
def test_a_spec_that_sets_a_secret_cvar_is_refused_naming_secret_set(line):
    with pytest.raises(InvalidSpec, match="use `l4d2ctl secret set NAME"):
        parse_spec({**SPEC, "config": [line]})


def test_a_config_line_that_only_mentions_a_secret_cvar_is_fine():
    assert parse_spec({**SPEC, "config": ["echo rcon_password is set elsewhere"]}).config


def test_init_with_a_secret_in_the_spec_exits_2_and_writes_nothing(root, l4d2ctl, tmp_path):
    spec = write_spec(tmp_path / "leaky.yaml", {**SPEC, "config": [f'rcon_password "{SECRET}"']})
    result = l4d2ctl("init", "alpha", "--spec", str(spec))
    assert result.exit_code == 2 and "secret set" in result.stderr
    assert not (root / "ledger.db").exists()


def test_a_set_secret_is_staged_into_server_cfg_and_is_nowhere_in_the_ledger(initialized, l4d2ctl):
    set_ = _secret(initialized, "set", "alpha", "rcon_password", "--json")
    assert set_.exit_code == 0, set_.output
    assert l4d2ctl("start", "alpha").exit_code == 0
    assert f'rcon_password "{SECRET}"\n' in (initialized / STAGED).read_text()
    outputs = [set_.stdout, *(l4d2ctl(*args).stdout for args in (
        ("show", json.loads(set_.stdout)["command_id"], "--json"), ("history", "alpha", "--json"),
        ("audit", "--json"), ("status", "--json")))]
    assert not any(SECRET in output for output in outputs)
    assert SECRET.encode() not in _every_byte_of_the_ledger(initialized)


def test_the_ledger_records_the_cvar_and_a_fingerprint(initialized, l4d2ctl):
    set_ = json.loads(_secret(initialized, "set", "alpha", "rcon_password", "--json").stdout)
    listed = json.loads(_secret(initialized, "list", "alpha", "--json", value=None).stdout)
    assert [(entry["cvar"], entry["actor"], len(entry["fingerprint"])) for entry in listed] == \
        [("rcon_password", "alice", 32)]
    assert (set_["command"], set_["outcome"]) == ("secret-set", "succeeded")


def test_the_same_value_gives_the_same_fingerprint_and_another_value_another(initialized):
    fingerprints = []
    for value in (SECRET, SECRET, "other"):
        _secret(initialized, "set", "alpha", "rcon_password", value=value)
        listed = json.loads(_secret(initialized, "list", "alpha", "--json", value=None).stdout)
        fingerprints.append(listed[0]["fingerprint"])
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]


def test_unset_removes_it_from_the_next_staged_server_cfg(initialized, l4d2ctl):
    _secret(initialized, "set", "alpha", "rcon_password")
    assert _secret(initialized, "unset", "alpha", "rcon_password", value=None).exit_code == 0
    assert l4d2ctl("start", "alpha").exit_code == 0
    assert "rcon_password" not in (initialized / STAGED).read_text()
    assert json.loads(_secret(initialized, "list", "alpha", "--json", value=None).stdout) == []


def test_reset_forgets_the_secrets_with_the_other_files(initialized, l4d2ctl):
    _secret(initialized, "set", "alpha", "rcon_password")
    assert l4d2ctl("reset", "alpha").exit_code == 0
    assert json.loads(_secret(initialized, "list", "alpha", "--json", value=None).stdout) == []
    assert l4d2ctl("start", "alpha").exit_code == 0
    assert "rcon_password" not in (initialized / STAGED).read_text()


def test_a_secret_for_an_unknown_instance_is_recorded_rejected_and_never_handed_over(root):
    result = _secret(root, "set", "ghost", "rcon_password")
    assert result.exit_code == 3 and "not known" in result.stderr
    assert not (root / ".simulated/secrets.json").exists(), "nothing was handed to the secret store"


@pytest.mark.parametrize("value", ["", 'with"quote', "x" * 256, "tab\there", "ünicode"])
def test_a_value_that_cannot_sit_in_server_cfg_is_exit_2(initialized, value):
    result = _secret(initialized, "set", "alpha", "rcon_password", value=value)
    assert result.exit_code == 2 and "secret value on stdin" in result.stderr


@pytest.mark.parametrize("cvar", ["RCON", "1x", "a-b", "x" * 65])
def test_a_bad_cvar_name_is_exit_2(initialized, cvar):
    assert _secret(initialized, "set", "alpha", cvar).exit_code == 2


def test_the_simulated_secret_store_is_readable_by_its_owner_only(initialized):
    _secret(initialized, "set", "alpha", "rcon_password")
    assert (initialized / ".simulated/secrets.json").stat().st_mode & 0o077 == 0

