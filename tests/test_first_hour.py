"""What a newcomer runs into in the first hour, through the installed `l4d2ctl` program on a simulated host."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import Ledger

from .conftest import an_event
from .real_host import make_root, write_spec

L4D2CTL = shutil.which("l4d2ctl", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(L4D2CTL is None, reason="l4d2ctl is not installed beside this Python")


@pytest.fixture
def run(tmp_path):
    root = make_root(tmp_path / "root")
    spec = write_spec(tmp_path / "friday.yaml")

    def run(*args: str, columns: int = 80, stdin: str | None = None) -> subprocess.CompletedProcess:
        environment = {**run.environment, "COLUMNS": str(columns), "L4D2CTL_ACTOR": "newcomer"}
        return subprocess.run([L4D2CTL, *args], capture_output=True, text=True, env=environment, input=stdin,
                              timeout=60)

    run.spec = str(spec)
    run.environment = {**os.environ, "LEFT4ME_ROOT": str(root), "L4D2CTL_HOST": "simulated"}
    return run


def _ids(run) -> list[str]:
    return [row["command_id"] for row in json.loads(run("audit", "--json").stdout)]


def test_a_request_id_reused_for_another_command_is_exit_2_naming_the_first_use(run):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    first = json.loads(run("start", "alpha", "--request-id", "k1", "--json").stdout)
    reused = run("stop", "alpha", "--request-id", "k1")
    assert reused.returncode == 2
    assert f"--request-id 'k1' was first used for start alpha (command {first['command_id']})" in reused.stderr
    assert len(_ids(run)) == 2, "nothing was appended"
    assert json.loads(run("status", "alpha", "--json").stdout)["state"] == "running"


def test_the_same_request_id_for_the_same_command_returns_the_first(run):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    first = json.loads(run("start", "alpha", "--request-id", "k1", "--json").stdout)
    again = json.loads(run("start", "alpha", "--request-id", "k1", "--json").stdout)
    assert again["command_id"] == first["command_id"] and len(_ids(run)) == 2


def test_a_unique_prefix_of_four_hex_digits_names_a_command(run):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    command_id = _ids(run)[0]
    shown = run("show", command_id[:4], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["command_id"] == command_id


def test_an_ambiguous_prefix_is_exit_2_listing_the_candidates(tmp_path):
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.append([an_event(command_id=command_id) for command_id in ("abcd00000001", "abcd00000002")])
    result = subprocess.run([L4D2CTL, "--db", str(tmp_path / "ledger.db"), "show", "abcd"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "command id prefix abcd is ambiguous: abcd00000001, abcd00000002" in result.stderr


def test_a_prefix_shorter_than_four_digits_is_exit_2(run):
    assert run("show", "abc").returncode == 2


@pytest.mark.parametrize("reading", [("status",), ("history", "alpha"), ("audit",)])
def test_tables_never_cut_an_id_or_a_state_even_at_80_columns_or_in_a_pipe(run, reading):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    command_id = _ids(run)[0]
    for columns in (80, 200):
        text = run(*reading, columns=columns).stdout
        assert command_id in text and "…" not in text
    assert "initialized" in run("status").stdout


READINGS = [("status",), ("audit",), ("history", "alpha"), ("show", "FIRST"), ("show", "FIRST", "--json"),
            ("audit", "--json")]


def _reading(run, reading: tuple[str, ...]) -> list[str]:
    """`reading` with FIRST standing for the first recorded command's id."""
    return [_ids(run)[0] if part == "FIRST" else part for part in reading]


@pytest.mark.parametrize("reading", [("verify",), ("status",), ("audit", "--json")])
def test_a_read_of_a_root_that_does_not_exist_is_exit_2_not_an_empty_answer(run, reading, tmp_path):
    result = subprocess.run([L4D2CTL, "--root", str(tmp_path / "typo"), *reading], capture_output=True, text=True,
                            timeout=60, env=run.environment)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1 and "and no such directory: is --root/--db right?" in result.stderr


def test_a_name_is_whole_at_80_columns_while_other_columns_fold(run, tmp_path):
    name = "friday-versus-main-1"
    assert run("init", name, "--spec", run.spec).returncode == 0
    assert name in run("audit").stdout


def test_a_wide_character_in_a_narrow_column_is_folded_not_dropped(run):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    environment = {**run.environment, "L4D2CTL_ACTOR": "山田太郎", "COLUMNS": "50"}
    subprocess.run([L4D2CTL, "stop", "alpha"], env=environment, capture_output=True, timeout=60)
    text = subprocess.run([L4D2CTL, "audit"], env=environment, capture_output=True, text=True, timeout=60).stdout
    assert all(character in text for character in "山田太郎")


@pytest.mark.parametrize("gone", ["exec {} >&-", "{} | head -c5 >/dev/null; exit ${{PIPESTATUS[0]}}"],
                         ids=["stdout closed from the start", "reader leaves"])
@pytest.mark.parametrize("reading", [*READINGS, ("verify",), ("projections", "rebuild")])
def test_a_read_without_a_reader_ends_quietly_with_exit_0(run, reading, gone):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    shell = gone.format(shlex.join([L4D2CTL, *_reading(run, reading)]))
    result = subprocess.run(["/bin/bash", "-c", shell], capture_output=True, text=True, timeout=60,
                            env=run.environment)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("reading", READINGS)
def test_a_read_that_cannot_write_its_answer_says_so_in_one_line_and_exits_1(run, reading):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    with open("/dev/full", "w") as full:
        result = subprocess.run([L4D2CTL, *_reading(run, reading)], stdout=full, stderr=subprocess.PIPE, text=True,
                                timeout=60, env=run.environment)
    assert result.returncode == 1
    assert result.stderr == "l4d2ctl: the answer could not all be written to stdout: No space left on device\n"


@pytest.mark.parametrize("reading", [("status",), ("audit",)])
def test_a_read_with_nothing_recorded_prints_an_empty_table(run, reading):
    result = run(*reading)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "id" in result.stdout.split() and "no ledger" in result.stderr


@pytest.mark.parametrize("columns", [80, 100, 60])
def test_a_folded_detail_loses_no_character_and_no_line_passes_the_edge(run, columns):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    assert run("init", "alpha-two", "--spec", run.spec).returncode == 3  # its port is alpha's
    error = json.loads(run("audit", "--outcome", "rejected", "--json").stdout)[0]["error"]
    lines = run("audit", columns=columns).stdout.splitlines()
    assert max(map(len, lines)) <= columns
    first = next(number for number, line in enumerate(lines) if "✗ rejected" in line)
    start = lines[first].index("✗ rejected") + len("✗ rejected")  # the detail is the last column, after it
    rest = itertools.takewhile(lambda line: not line[1:5].isdigit(), lines[first + 1:])  # until a row's date
    shown = "".join(line[start:] for line in [lines[first], *rest])
    assert "".join(shown.split()) == "".join(error.split()), f"the detail as folded at {columns} columns"


def test_a_host_that_cannot_be_built_records_nothing(run, tmp_path):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    (tmp_path / "root/.simulated").mkdir(exist_ok=True)
    (tmp_path / "root/.simulated/host.json").write_text("{not json")
    result = run("start", "alpha")
    assert result.returncode == 1 and "simulated host state" in result.stderr
    assert len(_ids(run)) == 1, "the start was not appended, so it cannot run later behind somebody's back"


def test_init_into_a_root_without_an_installation_is_exit_2_and_creates_nothing(run, tmp_path):
    elsewhere = tmp_path / "typo"
    result = run("--root", str(elsewhere), "init", "alpha", "--spec", run.spec)
    assert result.returncode == 2 and "has no installation/" in result.stderr
    assert not elsewhere.exists()


def test_reading_a_root_with_no_ledger_says_so_on_stderr(run, tmp_path):
    (tmp_path / "fresh").mkdir()
    result = run("--root", str(tmp_path / "fresh"), "status", "--json")
    assert (result.returncode, json.loads(result.stdout)) == (0, [])
    assert "no ledger at" in result.stderr


def test_verify_of_a_missing_ledger_does_not_claim_an_intact_chain(run, tmp_path):
    result = run("--db", str(tmp_path / "wrong.db"), "verify")
    assert "chain intact" not in result.stdout and "nothing to verify" in result.stderr


def test_no_wait_with_no_executor_running_says_when_the_command_will_run(run):
    result = run("init", "alpha", "--spec", run.spec, "--no-wait")
    assert result.returncode == 0 and "no executor is running" in result.stderr


def test_a_missing_overlay_fails_the_simulated_start_as_it_would_the_real_one(run, tmp_path):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    (tmp_path / "root/overlays/maps/custom").rmdir()
    result = run("start", "alpha")
    assert result.returncode == 1 and "overlays/maps/custom does not exist" in result.stderr


def test_history_of_an_instance_never_requested_is_exit_3_like_status(run):
    assert run("history", "nosuch").returncode == 3
    assert run("status", "nosuch").returncode == 3


def test_show_of_an_init_shows_the_spec_it_recorded(run):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    command_id = _ids(run)[0]
    assert json.loads(run("show", command_id, "--json").stdout)["args"]["spec"]["port"] == 27015
    assert '"port": 27015' in run("show", command_id, columns=200).stdout


def test_audit_filters_by_outcome_and_keeps_the_newest_n(run):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    for _ in range(3):
        run("start", "ghost")
    rejected = json.loads(run("audit", "--outcome", "rejected", "--json").stdout)
    assert [row["outcome"] for row in rejected] == ["rejected"] * 3
    newest = json.loads(run("audit", "--limit", "2", "--json").stdout)
    assert [row["command_id"] for row in newest] == _ids(run)[-2:]


def test_deleting_an_instance_whose_files_are_gone_says_so_instead_of_removed(run, tmp_path):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    assert run("delete", "alpha").returncode == 0
    again = run("delete", "alpha", columns=200)
    assert again.returncode == 0
    assert "no instances/alpha to remove" in again.stdout and "removed instances/alpha" not in again.stdout


def test_retrying_what_a_retry_already_fixed_is_refused_naming_that_retry(run, tmp_path):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    (tmp_path / "root/overlays/maps/custom").rmdir()
    failed = json.loads(run("start", "alpha", "--json").stdout)
    (tmp_path / "root/overlays/maps/custom").mkdir()
    fixed = json.loads(run("retry", failed["command_id"], "--json").stdout)
    assert fixed["outcome"] == "succeeded"
    again = run("retry", failed["command_id"])
    assert again.returncode == 3
    assert f"was already retried successfully by {fixed['command_id']}" in again.stderr


def test_a_rejection_says_how_the_linked_command_ended_in_words(run):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    result = run("retry", _ids(run)[0])
    assert "ended succeeded; only failed, interrupted, cancelled commands can be retried" in result.stderr


def test_help_names_paths_as_paths(run):
    shown = run("--help", columns=200).stdout
    assert "--root PATH" in shown and "--db PATH" in shown and "--helper PATH" in shown


def test_the_readme_stands_alone_every_local_link_is_in_the_repository():
    project = Path(__file__).resolve().parent.parent
    readme = (project / "README.md").read_text()
    assert "../shared" not in readme
    links = [target for target in re.findall(r"\]\(([^)#]+)\)", readme) if "://" not in target]
    assert links, "the README links the contract and the design"
    assert all((project / target).exists() for target in links), links


def test_cancel_and_show_take_a_prefix_like_every_other_id(run, tmp_path):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    (tmp_path / "root/overlays/maps/custom").rmdir()
    failed = json.loads(run("start", "alpha", "--json").stdout)["command_id"]
    shown = json.loads(run("show", failed[:5], "--json").stdout)
    assert shown["steps"] and shown["failure"]["step"] == "copy cfgs into the upper layer"
    queued = run("stop", "alpha", "--no-wait").stdout.strip()
    cancelled = run("cancel", queued[:6].upper())
    assert cancelled.returncode == 0 and "Traceback" not in cancelled.stderr
    assert json.loads(run("show", queued, "--json").stdout)["outcome"] == "cancelled"


def test_no_wait_prints_just_the_id(run):
    result = run("init", "alpha", "--spec", run.spec, "--no-wait")
    assert result.returncode == 0 and re.fullmatch(r"[0-9a-f]{12}\n", result.stdout)


def test_every_write_command_refuses_a_root_without_an_installation(run, tmp_path):
    for command in (("stop", "friday"), ("secret", "set", "friday", "rcon_password")):
        result = run("--root", str(tmp_path / "typo"), *command, stdin="x\n")
        assert result.returncode == 2 and "has no installation/" in result.stderr
    assert not (tmp_path / "typo").exists()


def test_a_secret_in_the_launch_arguments_is_refused_too(run, tmp_path):
    spec = write_spec(tmp_path / "leaky.yaml", {"port": 27015, "arguments": ["+rcon_password x"]})
    result = run("init", "alpha", "--spec", str(spec))
    assert result.returncode == 2 and "secret set" in result.stderr


def test_bare_l4d2ctl_prints_its_help_as_help(run):
    result = run()
    assert result.stdout.startswith("Usage: l4d2ctl") and "\\n" not in result.stderr


def test_a_mistyped_command_gets_plain_suggestions(run):
    result = run("stauts")
    assert result.returncode == 2 and "'status'" in result.stderr and "Command." not in result.stderr


def test_a_failed_step_is_marked_on_stdout(run, tmp_path):
    assert run("init", "alpha", "--spec", run.spec).returncode == 0
    (tmp_path / "root/overlays/maps/custom").rmdir()
    result = run("start", "alpha", columns=200)
    assert "✗ copy cfgs into the upper layer" in result.stdout


def test_an_audit_window_that_cannot_match_is_exit_2(run):
    result = run("audit", "--since", "2026-11-29", "--until", "2026-11-28")
    assert result.returncode == 2 and "is not before --until" in result.stderr
