"""Reading through the CLI: every JSON shape and exit code of docs/cli.md, in-process and as the installed program."""

from __future__ import annotations

import json
import os
import pwd
import subprocess

import pytest
from click.testing import CliRunner

from commands.cli import cli
from commands.domain.errors import InvalidInput
from commands.service.identity import os_user
from commands.service.requests import resolve_actor

from .real_host import invoke, write_spec
from .test_cli_lifecycle import L4D2CTL

COMMAND_FIELDS = {"command_id", "instance", "command", "actor", "os_user", "requested_at", "started_at",
                  "finished_at", "outcome", "error", "retry_of", "replay_of", "part_of"}
STATUS_FIELDS = {"name", "state", "port", "last_command_id", "last_command", "last_outcome", "last_actor",
                 "updated_at"}


@pytest.fixture
def lived(l4d2ctl, tmp_path):
    """alpha: init, start, stop (by alice); bravo: init by bob, a rejected start of ghost."""
    spec = write_spec(tmp_path / "alpha.yaml")
    for args in (("init", "alpha", "--spec", str(spec)), ("start", "alpha"), ("stop", "alpha")):
        assert l4d2ctl(*args, env={"L4D2CTL_ACTOR": "alice"}).exit_code == 0
    bravo = write_spec(tmp_path / "bravo.yaml", {"port": 27020})
    assert l4d2ctl("init", "bravo", "--spec", str(bravo), env={"L4D2CTL_ACTOR": "bob"}).exit_code == 0
    assert l4d2ctl("start", "ghost").exit_code == 3
    return l4d2ctl


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_status_json_lists_every_known_instance_with_the_documented_fields(lived):
    instances = _json(lived("status", "--json"))
    assert [set(instance) for instance in instances] == [STATUS_FIELDS, STATUS_FIELDS]
    assert [(i["name"], i["state"], i["port"]) for i in instances] == [("alpha", "stopped", 27015),
                                                                       ("bravo", "initialized", 27020)]
    assert instances[0]["last_command"] == "stop" and instances[0]["last_actor"] == "alice"


def test_status_of_one_instance_is_that_object(lived):
    alpha = _json(lived("status", "alpha", "--json"))
    assert set(alpha) == STATUS_FIELDS and alpha["name"] == "alpha"


def test_status_of_an_unknown_instance_exits_three(lived):
    assert lived("status", "ghost", "--json").exit_code == 3


def test_history_json_is_every_command_of_the_instance_oldest_first(lived):
    history = _json(lived("history", "alpha", "--json"))
    assert all(set(command) == COMMAND_FIELDS for command in history)
    assert [c["command"] for c in history] == ["init", "start", "stop"]
    assert {c["outcome"] for c in history} == {"succeeded"}


def test_audit_json_spans_instances_and_filters(lived):
    everything = _json(lived("audit", "--json"))
    assert [(c["instance"], c["command"]) for c in everything] == [
        ("alpha", "init"), ("alpha", "start"), ("alpha", "stop"), ("bravo", "init"), ("ghost", "start")]
    assert [c["instance"] for c in _json(lived("audit", "--actor", "bob", "--json"))] == ["bravo"]
    assert [c["command"] for c in _json(lived("audit", "--instance", "alpha", "--command", "start", "--json"))] == ["start"]
    assert _json(lived("audit", "--since", "2999-01-01", "--json")) == []
    assert len(_json(lived("audit", "--until", "2999-01-01T00:00:00+00:00", "--json"))) == 5
    assert _json(lived("audit", "--command", "start", "--json"))[-1]["outcome"] == "rejected"


def test_show_json_adds_the_steps_with_their_output(lived):
    start = _json(lived("history", "alpha", "--json"))[1]
    shown = _json(lived("show", start["command_id"], "--json"))
    assert set(shown) == COMMAND_FIELDS | {"args", "steps"}
    assert [step["step"] for step in shown["steps"]] == [
        "release overlay", "remove stale cfgs", "stage server.cfg", "stage alias cfgs",
        "copy cfgs into the upper layer", "enable and start unit", "wait until serving"]
    assert all(set(step) == {"step", "at", "output"} for step in shown["steps"])


def test_verify_json_after_a_life(lived):
    report = _json(lived("verify", "--json"))
    assert report["ok"] and report["first_bad_seq"] is None and report["events"] > 20


def test_projections_rebuild_keeps_what_reads_return(lived):
    before = _json(lived("audit", "--json")), _json(lived("status", "--json"))
    assert lived("projections", "rebuild").exit_code == 0
    assert (_json(lived("audit", "--json")), _json(lived("status", "--json"))) == before


@pytest.mark.parametrize("args", [("audit", "--since", "yesterday"), ("audit", "--until", "2026-13-01"),
                                  ("audit", "--command", "explode"), ("audit", "--instance", "../x"),
                                  ("show", "xyz"), ("history", "Bad"), ("status", "a/b")])
def test_bad_read_arguments_exit_two_in_one_line(lived, args):
    result = lived(*args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("l4d2ctl: ")


def test_reads_of_a_ledger_that_does_not_exist_are_empty(l4d2ctl, root):
    assert _json(l4d2ctl("status", "--json")) == []
    assert _json(l4d2ctl("audit", "--json")) == []
    assert l4d2ctl("history", "alpha", "--json").exit_code == 3, "nothing was ever requested for alpha"
    assert not (root / "ledger.db").exists()


def test_people_get_tables(lived):
    assert "alpha" in lived("status").stdout and "stopped" in lived("status").stdout
    assert "History of alpha" in lived("history", "alpha").stdout
    assert "bob" in lived("audit").stdout


# --- who did it ---------------------------------------------------------------------------------


def test_the_actor_is_the_explicit_one_first():
    assert resolve_actor("ops-bot", {"SUDO_USER": "alice"}, "root") == "ops-bot"


def test_without_an_explicit_actor_sudo_user_comes_before_the_effective_user():
    assert resolve_actor(None, {"SUDO_USER": "alice"}, "root") == "alice"
    assert resolve_actor(None, {}, "root") == "root"


@pytest.mark.parametrize("bad", ["", " padded", "a\nb", "x" * 65])
def test_a_bad_actor_is_refused(bad):
    with pytest.raises(InvalidInput):
        resolve_actor(bad, {}, "root")


def test_the_os_user_is_the_effective_user():
    assert os_user() == pwd.getpwuid(os.geteuid()).pw_name


@pytest.mark.parametrize("how, env, args, expected_actor", [
    ("--actor", {}, ["--actor", "claimed"], "claimed"),
    ("L4D2CTL_ACTOR", {"L4D2CTL_ACTOR": "from-env"}, [], "from-env"),
    ("SUDO_USER", {"SUDO_USER": "sudoer"}, [], "sudoer"),
])
def test_a_claimed_actor_never_hides_the_real_os_user(root, tmp_path, how, env, args, expected_actor):
    spec = write_spec(tmp_path / "s.yaml")
    result = CliRunner().invoke(cli, ["--root", str(root), "--host", "simulated", *args, "init", "alpha",
                                      "--spec", str(spec), "--json"],
                                env={"L4D2CTL_ACTOR": None, "SUDO_USER": None, **env})
    command = json.loads(result.stdout)
    assert (command["actor"], command["os_user"]) == (expected_actor, os_user())


# --- the installed program ------------------------------------------------------------------------


@pytest.mark.skipif(L4D2CTL is None, reason="the l4d2ctl console script is not installed beside this Python")
def test_the_installed_program_speaks_the_same_json_and_exit_codes(root, tmp_path):
    env = {**os.environ, "LEFT4ME_ROOT": str(root), "L4D2CTL_HOST": "simulated", "L4D2CTL_ACTOR": "ci"}

    def run(*args):
        return subprocess.run([L4D2CTL, *args], env=env, capture_output=True, text=True, timeout=60)

    spec = write_spec(tmp_path / "s.yaml")
    init = run("init", "alpha", "--spec", str(spec), "--json")
    assert init.returncode == 0 and set(json.loads(init.stdout)) == COMMAND_FIELDS
    assert set(json.loads(run("status", "alpha", "--json").stdout)) == STATUS_FIELDS
    assert [set(c) for c in json.loads(run("history", "alpha", "--json").stdout)] == [COMMAND_FIELDS]
    assert json.loads(run("audit", "--actor", "ci", "--json").stdout)[0]["actor"] == "ci"
    command_id = json.loads(init.stdout)["command_id"]
    assert set(json.loads(run("show", command_id, "--json").stdout)) == COMMAND_FIELDS | {"args", "steps"}
    assert json.loads(run("verify", "--json").stdout)["ok"] is True
    (root / "instances/alpha/server.cfg").unlink()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a ledger" * 500)
    queued = json.loads(run("stop", "alpha", "--no-wait", "--json").stdout)
    codes = {
        "cancelled": run("cancel", queued["command_id"]).returncode,
        "failed": run("start", "alpha").returncode,
        "rejected": run("start", "ghost").returncode,
        "invalid": run("start", "Bad").returncode,
        "cancel finished": run("cancel", command_id).returncode,
        "usage": run("frobnicate").returncode,
        "ledger": run("--db", str(junk), "verify").returncode,
        "done": run("status").returncode,
    }
    assert codes == {"cancelled": 0, "failed": 1, "rejected": 3, "invalid": 2, "cancel finished": 3, "usage": 2,
                     "ledger": 4, "done": 0}
    failing = run("status", "--json", "--bogus")
    assert failing.returncode == 2 and failing.stderr.count("\n") == 1 and "Traceback" not in failing.stderr


@pytest.mark.parametrize("where", ["option", "environment"])
def test_shell_completion_offers_the_recorded_instances_of_the_root_given(lived, root, where):
    words = f"l4d2ctl --root {root} --host simulated start " if where == "option" else "l4d2ctl start "
    env = {**os.environ, "_L4D2CTL_COMPLETE": "bash_complete", "COMP_WORDS": words + "b",
           "COMP_CWORD": str(len(words.split())), "LEFT4ME_ROOT": str(root) if where == "environment" else "/nowhere"}
    completed = subprocess.run([L4D2CTL], env=env, capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["plain,bravo"]


def test_shell_completion_of_a_root_without_a_ledger_offers_nothing_and_creates_nothing(tmp_path):
    env = {**os.environ, "_L4D2CTL_COMPLETE": "bash_complete", "COMP_WORDS": f"l4d2ctl --root {tmp_path} start ",
           "COMP_CWORD": "4"}
    assert subprocess.run([L4D2CTL], env=env, capture_output=True, text=True, check=True).stdout.split() == []
    assert list(tmp_path.iterdir()) == []


def test_verify_json_of_a_file_that_is_no_database_still_prints_its_json(root, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a ledger" * 500)
    result = invoke(root, "--db", str(junk), "verify", "--json")
    assert result.exit_code == 4
    report = json.loads(result.stdout)
    assert report["ok"] is False and "not a database" in report["reason"]


def test_verify_of_an_empty_file_says_it_was_truncated_and_writes_nothing(root, tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    result = invoke(root, "--db", str(empty), "verify")
    assert result.exit_code == 4 and "empty file" in result.stderr
    assert empty.stat().st_size == 0


def test_logs_on_a_simulated_host_says_plainly_there_is_no_journal(root, tmp_path):
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "s.yaml"))).exit_code == 0
    result = invoke(root, "logs", "alpha", "-n", "5")
    assert result.exit_code == 0
    assert result.stdout == ("simulated: there is no journal: nothing runs on a simulated host (what l4d2ctl did "
                             "to alpha is in `l4d2ctl history alpha`)\n")


def test_logs_of_an_unknown_instance_is_rejected(root, tmp_path):
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "s.yaml"))).exit_code == 0
    result = invoke(root, "logs", "ghost")
    assert result.exit_code == 3 and "'ghost' is not known" in result.stderr


@pytest.mark.parametrize("option", [["-n", "-1"], ["-n", "many"], ["--since", "yesterday"]])
def test_logs_refuses_a_bad_count_or_moment(root, option):
    assert invoke(root, "logs", "alpha", *option).exit_code == 2
