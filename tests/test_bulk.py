"""Bulk lifecycle commands: several names or --all, one recorded command each, the worst exit code."""

from __future__ import annotations

import json

import pytest

from commands.cli.edge import worst_exit_code
from ledger import Ledger

from .fake_host import SPEC
from .real_host import write_spec


@pytest.fixture
def fleet(l4d2ctl, tmp_path):
    """alpha, bravo and charlie initialized (ports 27015, 27016, 27017)."""
    for number, name in enumerate(("alpha", "bravo", "charlie")):
        spec = write_spec(tmp_path / f"{name}.yaml", SPEC | {"port": 27015 + number})
        assert l4d2ctl("init", name, "--spec", str(spec)).exit_code == 0
    return l4d2ctl


def _outcomes(l4d2ctl, name: str) -> list[tuple[str, str]]:
    return [(row["command"], row["outcome"]) for row in json.loads(l4d2ctl("history", name, "--json").stdout)]


def test_several_names_each_get_their_own_recorded_command(fleet):
    result = fleet("start", "alpha", "charlie")
    assert result.exit_code == 0, result.stderr
    assert _outcomes(fleet, "alpha")[-1] == _outcomes(fleet, "charlie")[-1] == ("start", "succeeded")
    assert _outcomes(fleet, "bravo") == [("init", "succeeded")]


def test_a_bulk_call_prints_a_line_per_instance_and_a_summary(fleet):
    lines = fleet("start", "alpha", "bravo", "charlie").stdout.splitlines()
    assert "start 3 instances" in lines[0]
    assert sorted(line.split()[-2] for line in lines[1:4]) == ["alpha", "bravo", "charlie"]
    assert "3 commands: 3 succeeded" in lines[-1]
    assert len(lines) == 5


def test_a_bulk_call_with_json_prints_a_list_of_command_objects(fleet):
    result = fleet("stop", "alpha", "bravo", "--json")
    objects = json.loads(result.stdout)
    assert [(o["instance"], o["command"], o["outcome"]) for o in objects] == [
        ("alpha", "stop", "succeeded"), ("bravo", "stop", "succeeded")]
    assert result.stderr == ""


def test_a_bulk_call_with_json_gives_each_reason_on_stderr(fleet):
    result = fleet("start", "alpha", "ghost", "--json")
    assert [o["outcome"] for o in json.loads(result.stdout)] == ["succeeded", "rejected"]
    assert result.stderr.splitlines() == ["[simulated] l4d2ctl: start ghost rejected: instance 'ghost' is not known: "
                                          "init it first"]


def test_all_means_every_instance_whose_state_allows_the_command(fleet):
    assert fleet("delete", "bravo").exit_code == 0
    result = fleet("start", "--all", "--json")
    assert [o["instance"] for o in json.loads(result.stdout)] == ["alpha", "charlie"]


def test_the_exit_code_is_the_worst_outcome(fleet):
    result = fleet("start", "alpha", "ghost")
    assert result.exit_code == 3
    assert _outcomes(fleet, "alpha")[-1] == ("start", "succeeded")
    assert "ghost" in result.stdout and "rejected" in result.stdout


def test_each_command_of_a_bulk_call_that_did_not_succeed_says_why_in_one_line_on_stderr(fleet):
    result = fleet("start", "alpha", "ghost", "phantom")
    assert result.stderr.splitlines() == [
        "[simulated] l4d2ctl: start ghost rejected: instance 'ghost' is not known: init it first",
        "[simulated] l4d2ctl: start phantom rejected: instance 'phantom' is not known: init it first"]


def test_names_and_all_together_or_neither_are_refused_and_record_nothing(fleet, root):
    with Ledger.open(root / "ledger.db") as ledger:
        before = ledger.head()[0]
    for args in (("start", "alpha", "--all"), ("start",)):
        result = fleet(*args)
        assert (result.exit_code, result.stderr.count("\n")) == (2, 1), result.stderr
    with Ledger.open(root / "ledger.db") as ledger:
        assert ledger.head()[0] == before


def test_a_bad_name_among_several_records_nothing(fleet, root):
    with Ledger.open(root / "ledger.db") as ledger:
        before = ledger.head()[0]
    assert fleet("stop", "alpha", "Not/A/Name").exit_code == 2
    with Ledger.open(root / "ledger.db") as ledger:
        assert ledger.head()[0] == before


def test_no_wait_prints_one_id_per_command(fleet):
    result = fleet("stop", "alpha", "bravo", "--no-wait")
    ids = result.stdout.split()
    assert len(ids) == 2 and all(len(command_id) == 12 for command_id in ids)


def test_a_request_id_keys_each_instance_so_repeating_the_call_records_nothing_new(fleet):
    first = json.loads(fleet("start", "alpha", "bravo", "--request-id", "deploy-7", "--json").stdout)
    again = json.loads(fleet("start", "alpha", "bravo", "--request-id", "deploy-7", "--json").stdout)
    assert [o["command_id"] for o in again] == [o["command_id"] for o in first]


def test_all_with_nothing_to_do_records_nothing_and_says_so(l4d2ctl, root):
    result = l4d2ctl("stop", "--all")
    assert result.exit_code == 0 and "nothing was recorded" in result.stderr


def test_a_batch_refused_half_way_records_none_of_it(fleet, root):
    assert fleet("stop", "bravo", "--request-id", "K/bravo").exit_code == 0
    with Ledger.open(root / "ledger.db") as ledger:
        before = ledger.head()[0]
    result = fleet("start", "alpha", "bravo", "charlie", "--request-id", "K")
    assert result.exit_code == 2, result.stderr
    with Ledger.open(root / "ledger.db") as ledger:
        assert ledger.head()[0] == before


def test_a_name_given_twice_is_one_command_keyed_like_a_single_call(fleet):
    first = json.loads(fleet("start", "alpha", "--request-id", "E", "--json").stdout)
    again = json.loads(fleet("start", "alpha", "alpha", "--request-id", "E", "--json").stdout)
    assert again["command_id"] == first["command_id"]


@pytest.mark.parametrize(("outcomes", "code"), [
    (["succeeded", "succeeded"], 0),
    (["succeeded", "rejected"], 3),
    (["rejected", "cancelled"], 5),
    (["cancelled", "failed", "rejected"], 1),
    (["interrupted", "cancelled"], 1),
    (["failed"], 1),
])
def test_the_worst_outcome_sets_the_exit_code(outcomes, code):
    assert worst_exit_code(outcomes) == code


def test_repeating_a_bulk_call_with_its_request_id_still_prints_a_line_per_instance(fleet):
    assert fleet("stop", "alpha", "bravo", "--request-id", "k1").exit_code == 0
    again = fleet("stop", "alpha", "bravo", "--request-id", "k1").stdout.splitlines()
    assert [line.split()[-2] for line in again[1:3]] == ["alpha", "bravo"] and "2 commands" in again[-1]
