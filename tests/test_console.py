"""`console NAME CMD...`: one command over RCON to a running server, recorded with its reply."""

from __future__ import annotations

import json

from .real_host import invoke, write_spec


def _running(root, tmp_path, password: bool = True) -> None:
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "s.yaml"))).exit_code == 0
    if password:
        assert invoke(root, "secret", "set", "alpha", "rcon_password", input="hunter2\n").exit_code == 0
    assert invoke(root, "start", "alpha").exit_code == 0


def test_a_console_command_is_recorded_with_its_text_and_its_reply(root, tmp_path):
    _running(root, tmp_path)
    sent = invoke(root, "console", "alpha", "say", "hello", "--json")
    assert sent.exit_code == 0, sent.stderr
    command_id = json.loads(sent.stdout)["command_id"]
    shown = json.loads(invoke(root, "show", command_id, "--json").stdout)
    assert (shown["command"], shown["args"], shown["outcome"]) == ("console", {"text": "say hello"}, "succeeded")
    assert shown["steps"][0]["output"] == ["simulated: no server runs to answer 'say hello'"]
    assert json.loads(invoke(root, "status", "alpha", "--json").stdout)["state"] == "running"


def test_the_console_of_an_instance_without_an_rcon_password_fails_saying_how_to_set_one(root, tmp_path):
    _running(root, tmp_path, password=False)
    result = invoke(root, "console", "alpha", "status")
    assert result.exit_code == 1 and "alpha has no rcon_password: set one with" in result.stderr


def test_the_console_of_an_instance_that_is_not_running_is_rejected(root, tmp_path):
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "s.yaml"))).exit_code == 0
    result = invoke(root, "console", "alpha", "status")
    assert result.exit_code == 3 and "is initialized, not running" in result.stderr


def test_a_console_command_that_sets_a_secret_is_refused_before_anything_is_recorded(root, tmp_path):
    _running(root, tmp_path)
    result = invoke(root, "console", "alpha", "rcon_password", "hunter2")
    assert result.exit_code == 2 and "sets rcon_password, a secret" in result.stderr
    assert "hunter2" not in (root / "ledger.db").read_bytes().decode("utf-8", "replace")


def test_a_console_command_that_is_not_printable_ascii_or_missing_is_refused(root, tmp_path):
    _running(root, tmp_path)
    assert invoke(root, "console", "alpha", "say", "ünï").exit_code == 2
    assert invoke(root, "console", "alpha").exit_code == 2
