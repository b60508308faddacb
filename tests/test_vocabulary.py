"""One list of command names, and every place agrees with it.

`ledger.lifecycle.Command` is the one list. Each test below names one other
place that enumerates commands (or the states and outcomes around them) and
checks that it agrees: the CLI, audit's filter, the decisions, the state
machine, the ledger, the projections, the docs and the renderings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from commands.cli import cli
from commands.cli.edge import OUTCOME_EXIT_CODES
from commands.cli.progress import OUTCOME_STYLE
from commands.cli.tables import STATE_STYLE
from commands.domain.decide import decide
from commands.domain.errors import Rejected
from commands.domain.steps import Plan
from ledger import CommandRequested
from ledger.lifecycle import (
    COMMAND_NAMES,
    INSTALLATION,
    ON_INSTALLATION,
    ROW_KINDS,
    Command,
    Observation,
    Outcome,
    State,
    needs_init_after,
    refusal,
    state_after,
)
from projections import CommandView, InstanceView

from .fake_host import SPEC, FakeHost
from .real_host import write_spec

DOCS = Path(__file__).resolve().parent.parent / "docs"
FINISHED = [Outcome.SUCCEEDED, Outcome.FAILED, Outcome.REJECTED, Outcome.CANCELLED, Outcome.INTERRUPTED]
RECORDED_STATES: list[State | None] = [None, *State]
FINGERPRINT = "0123456789abcdef" * 2
SECRET = "hunter2-7c1e"

# How a person types each command: the CLI spelling of every recorded command name.
CLI_SPELLING: dict[Command, tuple[str, ...]] = {
    Command.INIT: ("init",),
    Command.START: ("start",),
    Command.STOP: ("stop",),
    Command.RESTART: ("restart",),
    Command.DELETE: ("delete",),
    Command.RESET: ("reset",),
    Command.SECRET_SET: ("secret", "set"),
    Command.SECRET_UNSET: ("secret", "unset"),
    Command.ADOPT: ("adopt",),
    Command.CONSOLE: ("console",),
    Command.BACKUP: ("backup",),
    Command.RESTORE: ("restore",),
    Command.INSTALL: ("install",),
    Command.UPDATE: ("update",),
}
# CLI commands that record a command of another's name: a retry or replay re-requests the original.
RERUNS = {("retry",), ("replay",)}
# The args each command needs to be planned (init: a spec; secrets: a cvar, and a fingerprint to set).
ARGS: dict[Command, dict] = {
    Command.INIT: {"spec": SPEC},
    Command.ADOPT: {"spec": SPEC, "running": False},
    Command.CONSOLE: {"text": "status"},
    Command.SECRET_SET: {"cvar": "rcon_password", "fingerprint": FINGERPRINT},
    Command.SECRET_UNSET: {"cvar": "rcon_password"},
    Command.BACKUP: {"exclude": ["*.dem"], "keep": 2},
    Command.RESTORE: {"backup": "0123456789ab"},
}
BACKUP_ID = ARGS[Command.RESTORE]["backup"]


def _label(value: object) -> str:
    return "unknown" if value is None else str(value)


def _click_commands(group: click.Group, path: tuple[str, ...] = ()):
    """Every leaf click command under `group`, by the words that invoke it."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _click_commands(command, (*path, name))
        else:
            yield (*path, name), command


def _click_command(path: tuple[str, ...]) -> click.Command | None:
    command: click.Command | None = cli
    for word in path:
        command = command.commands.get(word) if isinstance(command, click.Group) else None
    return command


def _option(command: click.Command, name: str) -> click.Option:
    (option,) = [param for param in command.params if param.name == name]
    return option


class _Recorded:
    """An in-memory recorded state holding one instance (a fake `RecordedState`)."""

    def __init__(self, instance: InstanceView | None = None):
        self.held = instance

    def instance(self, name: str) -> InstanceView:
        return self.held if self.held is not None and self.held.name == name else InstanceView(name)

    def command(self, command_id: str) -> CommandView | None:
        return None

    def port_holder(self, port: int, other_than: str) -> InstanceView | None:
        return None

    def succeeded_retry(self, command_id: str) -> CommandView | None:
        return None

    def running_instances(self) -> list[str]:
        return [self.held.name] if self.held is not None and self.held.state == State.RUNNING else []

    def stopped_by(self, command_id: str) -> list[str]:
        return []


def _recorded(state: State | None) -> _Recorded:
    if state is None:
        return _Recorded()
    return _Recorded(InstanceView("alpha", state=state.value, port=SPEC["port"], blueprint=SPEC,
                                  needs_init=state is State.RESET))


def _request(command: str, args: dict) -> CommandView:
    instance = INSTALLATION if command in ON_INSTALLATION else "alpha"
    return CommandView(command_id="c0ffee000001", instance=instance, command=command, args=args, actor="alice",
                       os_user="root", requested_at="2024-05-01T12:00:00.000000Z", requested_seq=1)


# --- the one list --------------------------------------------------------------------------------


def test_the_command_names_are_the_lifecycle_enum_in_its_order():
    assert COMMAND_NAMES == tuple(Command)


def test_no_command_shares_its_name_with_an_observation():
    assert not set(Command) & set(Observation)


def test_history_and_audit_rows_hold_exactly_the_commands_and_the_observations():
    assert ROW_KINDS == (*Command, *Observation)


# --- the CLI -------------------------------------------------------------------------------------


def test_this_test_spells_every_command_for_the_cli():
    assert set(CLI_SPELLING) == set(Command)


@pytest.mark.parametrize("command", Command, ids=str)
def test_every_command_is_a_click_command_of_the_cli(command):
    assert isinstance(_click_command(CLI_SPELLING[command]), click.Command)


def test_the_cli_commands_that_record_a_command_are_the_commands_and_the_reruns():
    recording = {path for path, command in _click_commands(cli)
                 if any(param.name == "request_id" for param in command.params)}
    assert recording == set(CLI_SPELLING.values()) | RERUNS


@pytest.mark.parametrize("command", Command, ids=str)
def test_each_cli_spelling_records_the_command_it_is_named_for(command, root, tmp_path):
    extra = ["--spec", str(write_spec(tmp_path / "friday.yaml"))] if command is Command.INIT else []
    extra += ["rcon_password"] if command in (Command.SECRET_SET, Command.SECRET_UNSET) else []
    if command is Command.ADOPT:
        (root / "instances" / "alpha").mkdir(parents=True)
        write_spec(root / "instances" / "alpha" / "spec.yaml")
    extra += ["status"] if command is Command.CONSOLE else []
    if command is Command.RESTORE:
        (root / "backups" / "alpha").mkdir(parents=True)
        (root / "backups" / "alpha" / f"{BACKUP_ID}.json").write_text(json.dumps(
            {"id": BACKUP_ID, "taken_at": "2024-05-01T12:00:00.000000Z", "size": 0, "sha256": "0" * 64}))
        extra.append(BACKUP_ID)
    name = [] if command in ON_INSTALLATION else ["alpha"]
    result = CliRunner().invoke(
        cli, ["--root", str(root), "--host", "simulated", *CLI_SPELLING[command], *name, *extra, "--no-wait",
              "--json"],
        input=SECRET + "\n", env={"L4D2CTL_ACTOR": "alice", "SUDO_USER": None})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["command"] == command.value


def test_audit_filters_by_exactly_the_commands_and_the_observations():
    choices = _option(_click_command(("audit",)), "command_filter").type.choices
    assert list(choices) == [kind.value for kind in (*Command, *Observation)]


def test_audit_filters_by_exactly_the_outcomes():
    choices = _option(_click_command(("audit",)), "outcome_filter").type.choices
    assert list(choices) == [outcome.value for outcome in Outcome]


# --- the decisions and the state machine ---------------------------------------------------------


@pytest.mark.parametrize("command", Command, ids=str)
def test_decide_plans_every_command_for_a_stopped_instance_or_the_one_state_it_needs(command):
    state = {Command.ADOPT: None, Command.CONSOLE: State.RUNNING}.get(command, State.STOPPED)
    assert isinstance(decide(_request(command, ARGS.get(command, {})), _recorded(state)), Plan)


ANY_ARGS = st.dictionaries(
    st.sampled_from(["spec", "cvar", "fingerprint", "other"]),
    st.none() | st.integers() | st.text(max_size=40) | st.sampled_from(["rcon_password", FINGERPRINT])
    | st.just(SPEC) | st.dictionaries(st.text(max_size=8), st.integers(), max_size=3) | st.lists(st.integers()),
    max_size=4)


@given(command=st.sampled_from(Command), state=st.sampled_from(RECORDED_STATES), args=ANY_ARGS)
def test_decide_answers_every_command_in_every_state_with_a_plan_or_a_rejection(command, state, args):
    try:
        assert isinstance(decide(_request(command, args), _recorded(state)), Plan)
    except Rejected:
        pass


@pytest.mark.parametrize("state", RECORDED_STATES, ids=_label)
@pytest.mark.parametrize("command", Command, ids=str)
def test_refusal_answers_every_command_in_every_state(command, state):
    assert isinstance(refusal(command, state, "alpha"), str | None)


@pytest.mark.parametrize("outcome", FINISHED, ids=str)
@pytest.mark.parametrize("command", Command, ids=str)
def test_state_after_knows_every_command_and_finished_outcome(command, outcome):
    if command in ON_INSTALLATION and outcome is Outcome.SUCCEEDED:
        with pytest.raises(ValueError, match="leaves no instance state"):
            state_after(command, outcome, State.STOPPED)
    else:
        assert isinstance(state_after(command, outcome, State.STOPPED), State)


@pytest.mark.parametrize("before", [False, True], ids=["files-in-place", "needs-init"])
@pytest.mark.parametrize("outcome", FINISHED, ids=str)
@pytest.mark.parametrize("command", Command, ids=str)
def test_needs_init_after_knows_every_command_and_finished_outcome(command, outcome, before):
    assert isinstance(needs_init_after(command, outcome, before), bool)


# --- the ledger and the projections --------------------------------------------------------------


@pytest.mark.parametrize("command", Command, ids=str)
def test_the_ledger_records_every_command(command):
    assert CommandRequested(command=command.value, args=ARGS.get(command, {})).command is command


def test_the_ledger_refuses_a_command_name_not_in_the_list():
    with pytest.raises(ValueError, match="'explode' is not a valid Command"):
        CommandRequested(command="explode")


@pytest.mark.parametrize("command", [command for command in Command if command not in ON_INSTALLATION], ids=str)
def test_the_projections_fold_every_succeeded_command_into_the_state_the_lifecycle_says(command, ledger, tmp_path):
    host = FakeHost(ledger, root=tmp_path)
    if command is Command.ADOPT:
        host.on_disk("alpha")
    else:
        host.init("alpha")
    if command is Command.CONSOLE:
        fingerprint = host.secrets.put("alpha", "rcon_password", SECRET)
        host.run("alpha", "secret-set", {"cvar": "rcon_password", "fingerprint": fingerprint})
        host.run("alpha", "start")
    before = host.executor.projections.instance("alpha").recorded_state
    args = dict(ARGS.get(command, {}))
    if command is Command.SECRET_SET:
        args["fingerprint"] = host.secrets.put("alpha", "rcon_password", SECRET)
    if command is Command.RESTORE:
        args["backup"] = host.run("alpha", "backup").command_id
    done = host.run("alpha", command.value, args)
    assert (done.command, done.outcome) == (command.value, Outcome.SUCCEEDED)
    instance = host.executor.projections.instance("alpha")
    assert instance.state == state_after(command, Outcome.SUCCEEDED, before)
    assert instance.needs_init == needs_init_after(command, Outcome.SUCCEEDED, False)


# --- the docs ------------------------------------------------------------------------------------


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


@pytest.mark.parametrize("command", Command, ids=str)
def test_docs_cli_shows_how_to_run_every_command(command):
    usage = f"l4d2ctl {command}" if command in ON_INSTALLATION else f"{' '.join(CLI_SPELLING[command])} NAME"
    assert usage in (DOCS / "cli.md").read_text()


@pytest.mark.parametrize("command", sorted(ON_INSTALLATION), ids=str)
def test_the_projections_fold_install_and_update_into_no_instance(command, ledger, tmp_path):
    host = FakeHost(ledger, root=tmp_path)
    done = host.run(INSTALLATION, command.value)
    assert (done.command, done.outcome) == (command.value, Outcome.SUCCEEDED)
    assert host.executor.projections.instances() == []


@pytest.mark.parametrize("command", [pytest.param(command, id=str(command)) for command in Command])
def test_docs_cli_names_every_command_as_history_and_audit_record_it(command):
    assert _mentions((DOCS / "cli.md").read_text(), command.value)


def test_docs_design_has_a_lifecycle_row_for_every_command():
    text = (DOCS / "design.md").read_text()
    table = text[text.index("| command | host steps |"):].split("\n\n")[0].splitlines()[2:]
    tabled = [name.strip() for row in table for name in row.split("|")[1].split(",")]
    assert sorted(tabled) == sorted(command.value for command in Command)


# --- the renderings ------------------------------------------------------------------------------


def test_every_outcome_has_an_exit_code():
    assert set(OUTCOME_EXIT_CODES) == set(Outcome)


def test_every_outcome_has_a_style():
    assert set(OUTCOME_STYLE) == set(Outcome)


def test_every_state_has_a_style_in_the_tables():
    assert set(STATE_STYLE) == set(State)
