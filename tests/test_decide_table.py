"""What `decide` makes of every command in every recorded state: the plan's step names, or the rejection.

The table below is the specification, written from `commands/domain/steps.py`
(never copied from what `decide` returns). `decide` reads only the recorded
state, through the `RecordedState` protocol; here that is `Recorded`, a small
in-memory fake holding plain `InstanceView`s and `CommandView`s.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.domain.decide import decide
from commands.domain.errors import Rejected
from commands.domain.steps import Plan
from ledger.lifecycle import COMMAND_NAMES, ON_INSTALLATION, Command, Outcome, State
from projections import CommandView, InstanceView

from .fake_host import SPEC

NAME = "alpha"
PORT = SPEC["port"]
FINGERPRINT = "0123456789abcdef" * 2
UNKNOWN = None
"""The recorded state of an instance no init ever succeeded for."""
RECORDED_STATES: list[State | None] = [UNKNOWN, *State]


# --- the fake recorded state ---------------------------------------------------------------------


@dataclass
class Recorded:
    """An in-memory `RecordedState`: instances by name, commands by id (a fake, not a mock)."""

    instances: dict[str, InstanceView] = field(default_factory=dict)
    commands: dict[str, CommandView] = field(default_factory=dict)

    def instance(self, name: str) -> InstanceView:
        return self.instances.get(name) or InstanceView(name)

    def command(self, command_id: str) -> CommandView | None:
        return self.commands.get(command_id)

    def port_holder(self, port: int, other_than: str) -> InstanceView | None:
        return next((view for view in self.instances.values()
                     if view.port == port and view.name != other_than
                     and view.state is not None and view.state != State.DELETED), None)

    def succeeded_retry(self, command_id: str) -> CommandView | None:
        return next((view for view in self.commands.values()
                     if view.retry_of == command_id and view.outcome == Outcome.SUCCEEDED), None)

    def running_instances(self) -> list[str]:
        return sorted(view.name for view in self.instances.values() if view.state == State.RUNNING)

    def stopped_by(self, command_id: str) -> list[str]:
        stopped = {view.instance for view in self.commands.values() if view.part_of == command_id
                   and view.command == Command.STOP and view.outcome == Outcome.SUCCEEDED}
        return sorted(name for name in stopped if self.instance(name).state == State.STOPPED)

    def holding(self, *instances: InstanceView) -> Recorded:
        return Recorded({**self.instances, **{view.name: view for view in instances}}, dict(self.commands))


def an_instance(state: State, name: str = NAME, port: int = PORT, needs_init: bool | None = None) -> InstanceView:
    """An instance recorded in `state`, initialized from SPEC; it needs init exactly when reset, unless told."""
    return InstanceView(name, state=state.value, port=port, blueprint={**SPEC, "port": port},
                        needs_init=state is State.RESET if needs_init is None else needs_init)


def recorded(state: State | None, needs_init: bool | None = None) -> Recorded:
    """The recorded state with instance NAME in `state` (absent when unknown)."""
    return Recorded() if state is None else Recorded().holding(an_instance(state, needs_init=needs_init))


ARGS: dict[str, dict] = {
    Command.INIT: {"spec": SPEC},
    Command.ADOPT: {"spec": SPEC, "running": False},
    Command.CONSOLE: {"text": "status"},
    Command.SECRET_SET: {"cvar": "rcon_password", "fingerprint": FINGERPRINT},
    Command.SECRET_UNSET: {"cvar": "rcon_password"},
    Command.BACKUP: {"exclude": ["*.dem"], "keep": 2},
    Command.RESTORE: {"backup": "0123456789ab"},
}


def request(command: str, args: dict | None = None, instance: str = NAME) -> CommandView:
    """A requested command, with the args it needs (init: SPEC; secrets: a cvar, and a fingerprint to set)."""
    return CommandView(command_id="c0ffee000001", instance=instance, command=command,
                       args=ARGS.get(command, {}) if args is None else args, actor="alice", os_user="root",
                       requested_at="2024-05-01T12:00:00.000000Z", requested_seq=1)


def names(plan: Plan) -> tuple[list[str], list[str]]:
    return [step.name for step in plan.steps], [step.name for step in plan.undo]


# --- the expected step names, read from steps.py -------------------------------------------------

INIT = ["create directories", "write instance.env", "write server.cfg", "write spec.yaml"]
STOP = ["disable and stop unit", "unmount overlay"]
START = ["release overlay", "remove stale cfgs", "stage server.cfg", "stage alias cfgs",
         "copy cfgs into the upper layer", "enable and start unit", "wait until serving"]
CHECK = ["check whether running"]
PURGE = [*STOP, "remove instance files", "remove runtime files"]
UNDO = ["undo: disable and stop unit", "undo: unmount overlay"]
PURGE_NAMES = {"remove instance files", "remove runtime files"}


@dataclass(frozen=True)
class Steps:
    """Expected: a plan with these step names, and these undo step names."""

    steps: list[str]
    undo: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Refused:
    """Expected: `Rejected`, its reason containing this fragment; `why` names it in test ids."""

    why: str
    fragment: str


NOT_KNOWN = Refused("not-known", f"instance {NAME!r} is not known: init it first")
WAS_DELETED = Refused("deleted", f"instance {NAME!r} was deleted: init it again first")
IS_RUNNING = Refused("running", f"instance {NAME!r} is running: stop it first")
ADOPT = ["check the instance files", "check the unit"]


BACKUP = ["archive the upper layer", "keep the newest 2"]
RESTORE = ["restore the upper layer", "compare instance files"]
WHILE_RUNNING = Refused("running", f"instance {NAME!r} is running: stop it first")
FILES_GONE = Refused("deleted", f"instance {NAME!r} was deleted: its files are gone")


def on_installation(command: Command) -> Refused:
    return Refused("an-instance", f"{command} acts on the installation, not on instance {NAME!r}")


def not_running(state: State) -> Refused:
    return Refused("not-running", f"instance {NAME!r} is {state}, not running: the console needs a running server")


def already(state: State) -> Refused:
    return Refused("recorded", f"instance {NAME!r} is already recorded ({state}): there is nothing to adopt")


# Every command, every recorded state (a reset instance needs init, as a reset leaves it).
TABLE: dict[Command, dict[State | None, Steps | Refused]] = {
    Command.INIT: {
        UNKNOWN: Steps(INIT),
        State.INITIALIZED: Steps(INIT),
        State.RUNNING: IS_RUNNING,
        State.STOPPED: Steps(INIT),
        State.FAILED: Steps(INIT),
        State.RESET: Steps(INIT),
        State.DELETED: Steps(INIT),
    },
    Command.START: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: Steps(START, UNDO),
        State.RUNNING: Steps([*CHECK, *START], UNDO),
        State.STOPPED: Steps(START, UNDO),
        State.FAILED: Steps(START, UNDO),
        State.RESET: Steps([*INIT, *START], UNDO),
        State.DELETED: WAS_DELETED,
    },
    Command.RESTART: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: Steps([*STOP, *START], UNDO),
        State.RUNNING: Steps([*STOP, *START], UNDO),
        State.STOPPED: Steps([*STOP, *START], UNDO),
        State.FAILED: Steps([*STOP, *START], UNDO),
        State.RESET: Steps([*STOP, *INIT, *START], UNDO),
        State.DELETED: WAS_DELETED,
    },
    Command.STOP: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: Steps(STOP),
        State.RUNNING: Steps(STOP),
        State.STOPPED: Steps(STOP),
        State.FAILED: Steps(STOP),
        State.RESET: Steps(STOP),
        State.DELETED: WAS_DELETED,
    },
    Command.DELETE: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: Steps(PURGE),
        State.RUNNING: Steps(PURGE),
        State.STOPPED: Steps(PURGE),
        State.FAILED: Steps(PURGE),
        State.RESET: Steps(PURGE),
        State.DELETED: Steps(PURGE),
    },
    Command.RESET: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: Steps(PURGE),
        State.RUNNING: Steps(PURGE),
        State.STOPPED: Steps(PURGE),
        State.FAILED: Steps(PURGE),
        State.RESET: Steps(PURGE),
        State.DELETED: WAS_DELETED,
    },
    Command.SECRET_SET: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: Steps(["store secret"]),
        State.RUNNING: Steps(["store secret"]),
        State.STOPPED: Steps(["store secret"]),
        State.FAILED: Steps(["store secret"]),
        State.RESET: Steps(["store secret"]),
        State.DELETED: WAS_DELETED,
    },
    Command.SECRET_UNSET: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: Steps(["remove secret"]),
        State.RUNNING: Steps(["remove secret"]),
        State.STOPPED: Steps(["remove secret"]),
        State.FAILED: Steps(["remove secret"]),
        State.RESET: Steps(["remove secret"]),
        State.DELETED: WAS_DELETED,
    },
    Command.CONSOLE: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: not_running(State.INITIALIZED),
        State.RUNNING: Steps(["send over RCON"]),
        State.STOPPED: not_running(State.STOPPED),
        State.FAILED: not_running(State.FAILED),
        State.RESET: not_running(State.RESET),
        State.DELETED: not_running(State.DELETED),
    },
    Command.ADOPT: {
        UNKNOWN: Steps(ADOPT),
        State.INITIALIZED: already(State.INITIALIZED),
        State.RUNNING: already(State.RUNNING),
        State.STOPPED: already(State.STOPPED),
        State.FAILED: already(State.FAILED),
        State.RESET: already(State.RESET),
        State.DELETED: Steps(ADOPT),
    },
    Command.BACKUP: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: Steps(BACKUP),
        State.RUNNING: WHILE_RUNNING,
        State.STOPPED: Steps(BACKUP),
        State.FAILED: Steps(BACKUP),
        State.RESET: Refused("reset", f"instance {NAME!r} was reset: its upper layer is gone"),
        State.DELETED: FILES_GONE,
    },
    Command.RESTORE: {
        UNKNOWN: NOT_KNOWN,
        State.INITIALIZED: Steps(RESTORE),
        State.RUNNING: WHILE_RUNNING,
        State.STOPPED: Steps(RESTORE),
        State.FAILED: Steps(RESTORE),
        State.RESET: Steps(RESTORE),
        State.DELETED: FILES_GONE,
    },
    **{command: dict.fromkeys(RECORDED_STATES, on_installation(command))
       for command in (Command.INSTALL, Command.UPDATE)},
}


def _label(state: State | None) -> str:
    return "unknown" if state is None else state.value


def _expected(outcome: Steps | Refused) -> str:
    return f"rejected-as-{outcome.why}" if isinstance(outcome, Refused) else "planned"


ROWS = [pytest.param(state, command, expected, id=f"{command.value}-when-{_label(state)}-is-{_expected(expected)}")
        for command, by_state in TABLE.items() for state, expected in by_state.items()]


# --- the table -----------------------------------------------------------------------------------


def test_the_table_states_every_command_in_every_recorded_state():
    assert set(TABLE) == set(Command)
    for command, by_state in TABLE.items():
        assert list(by_state) == RECORDED_STATES, command


@pytest.mark.parametrize(("state", "command", "expected"), ROWS)
def test_decide_gives_the_tabled_plan_or_rejection(state, command, expected):
    if isinstance(expected, Refused):
        with pytest.raises(Rejected) as rejected:
            decide(request(command), recorded(state))
        assert expected.fragment in str(rejected.value)
    else:
        assert names(decide(request(command), recorded(state))) == (expected.steps, expected.undo)


@pytest.mark.parametrize(("state", "command", "expected"), ROWS)
def test_decide_is_pure_it_answers_alike_twice_and_leaves_the_recorded_state_as_it_was(state, command, expected):
    state_view = recorded(state)
    first, second = _answer(command, state_view), _answer(command, state_view)
    assert first == second
    assert state_view == recorded(state)


def _answer(command: Command, state: Recorded) -> tuple[list[str], list[str]] | str:
    try:
        return names(decide(request(command), state))
    except Rejected as rejected:
        return str(rejected)


def test_decide_takes_no_host_only_the_command_and_the_recorded_state():
    assert list(inspect.signature(decide).parameters) == ["command", "state"]


# --- starting: the undo, and re-initializing -----------------------------------------------------

STARTABLE = [State.INITIALIZED, State.RUNNING, State.STOPPED, State.FAILED, State.RESET]


@pytest.mark.parametrize("needs_init", [False, True], ids=["files-in-place", "needs-init"])
@pytest.mark.parametrize("command", [Command.START, Command.RESTART])
@pytest.mark.parametrize("state", STARTABLE, ids=_label)
def test_a_start_or_restart_reinitializes_exactly_when_the_instance_needs_init(state, command, needs_init):
    first = STOP if command is Command.RESTART else CHECK if state is State.RUNNING else []
    steps, _ = names(decide(request(command), recorded(state, needs_init=needs_init)))
    assert steps == [*first, *(INIT if needs_init else []), *START]


@pytest.mark.parametrize("needs_init", [False, True], ids=["initialized", "needs-init"])
def test_a_start_of_an_instance_recorded_running_first_checks_whether_it_runs(needs_init):
    steps, _ = names(decide(request(Command.START), recorded(State.RUNNING, needs_init=needs_init)))
    assert steps[0] == "check whether running"


@pytest.mark.parametrize("state", [State.INITIALIZED, State.STOPPED, State.FAILED, State.RESET], ids=_label)
def test_a_start_of_an_instance_not_recorded_running_does_not_check_first(state):
    steps, _ = names(decide(request(Command.START), recorded(state)))
    assert "check whether running" not in steps


@pytest.mark.parametrize(("state", "command"), [(state, command) for command in Command for state in RECORDED_STATES
                                                if isinstance(TABLE[command][state], Steps)],
                         ids=lambda value: _label(value) if not isinstance(value, Command) else value.value)
def test_only_a_start_or_restart_has_an_undo(state, command):
    _, undo = names(decide(request(command), recorded(state)))
    assert (undo == UNDO) if command in (Command.START, Command.RESTART) else (undo == [])


# --- what is never a plan ------------------------------------------------------------------------


@pytest.mark.parametrize("state", RECORDED_STATES, ids=_label)
def test_an_unknown_command_is_rejected_in_every_state(state):
    with pytest.raises(Rejected, match="'explode' is not a command this l4d2ctl knows; nothing was done"):
        decide(request("explode"), recorded(state))


@given(state=st.sampled_from(RECORDED_STATES),
       command=st.text(max_size=20).filter(lambda text: text not in COMMAND_NAMES),
       args=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
def test_no_unknown_command_ever_yields_a_plan_let_alone_a_purge(state, command, args):
    with pytest.raises(Rejected, match="is not a command this l4d2ctl knows"):
        decide(request(command, args), recorded(state))


@pytest.mark.parametrize("name", ["Alpha", "-alpha", "../alpha", "alpha/beta", "", "a" * 64, "alpha\n"],
                         ids=["upper-case", "leading-dash", "dot-dot", "slash", "empty", "too-long", "newline"])
@pytest.mark.parametrize("command", [*(name for name in COMMAND_NAMES if name not in ON_INSTALLATION)])
def test_a_malformed_instance_name_is_rejected_whatever_the_command(name, command):
    with pytest.raises(Rejected, match="instance name"):
        decide(request(command, instance=name), Recorded())


# --- init: the spec and the port -----------------------------------------------------------------

LIVE = [State.INITIALIZED, State.RUNNING, State.STOPPED, State.FAILED, State.RESET]


@pytest.mark.parametrize("holder", LIVE, ids=_label)
@pytest.mark.parametrize("state", [UNKNOWN, State.INITIALIZED, State.STOPPED, State.DELETED], ids=_label)
def test_an_init_is_rejected_when_another_live_instance_holds_its_port(state, holder):
    view = recorded(state).holding(an_instance(holder, name="bravo"))
    with pytest.raises(Rejected, match=f"^port {PORT} is already used by instance 'bravo' \\({holder.value}\\)$"):
        decide(request(Command.INIT), view)


def test_a_deleted_instance_does_not_hold_its_port():
    view = Recorded().holding(an_instance(State.DELETED, name="bravo"))
    assert names(decide(request(Command.INIT), view)) == (INIT, [])


def test_an_instance_does_not_hold_the_port_against_its_own_init():
    assert names(decide(request(Command.INIT), recorded(State.STOPPED))) == (INIT, [])


def test_an_init_on_another_port_is_not_held_up_by_an_instance_on_this_one():
    view = Recorded().holding(an_instance(State.RUNNING, name="bravo"))
    spec = {**SPEC, "port": PORT + 1}
    assert names(decide(request(Command.INIT, {"spec": spec}), view)) == (INIT, [])


@pytest.mark.parametrize("args", [{}, {"spec": None}, {"spec": {**SPEC, "port": 0}}, {"spec": {**SPEC, "colour": 1}}],
                         ids=["no-spec", "empty-spec", "port-zero", "unknown-key"])
def test_an_init_whose_spec_is_not_valid_is_rejected(args):
    with pytest.raises(Rejected, match="^the requested spec is not valid: "):
        decide(request(Command.INIT, args), Recorded())


def test_a_start_whose_stored_blueprint_is_not_valid_is_rejected_naming_it():
    broken = InstanceView(NAME, state=State.STOPPED.value, port=PORT, blueprint={"port": "27015"})
    with pytest.raises(Rejected, match=f"^the stored blueprint of {NAME!r} is not valid: "):
        decide(request(Command.START), Recorded().holding(broken))


# --- secrets: the cvar and the fingerprint -------------------------------------------------------


@pytest.mark.parametrize("fingerprint", [None, "", FINGERPRINT[:-1], FINGERPRINT.upper(), FINGERPRINT + "0", 42],
                         ids=["missing", "empty", "31-hex", "upper-case", "33-hex", "not-text"])
def test_a_secret_set_without_a_32_hex_fingerprint_is_rejected(fingerprint):
    args = {"cvar": "rcon_password"} | ({} if fingerprint is None else {"fingerprint": fingerprint})
    with pytest.raises(Rejected, match="no fingerprint"):
        decide(request(Command.SECRET_SET, args), recorded(State.STOPPED))


@pytest.mark.parametrize("command", [Command.SECRET_SET, Command.SECRET_UNSET])
@pytest.mark.parametrize("cvar", [None, "", "RCON", "9lives", "rcon password"],
                         ids=["missing", "empty", "upper-case", "leading-digit", "space"])
def test_a_secret_command_with_a_malformed_cvar_is_rejected(command, cvar):
    args = {**ARGS[command]} | ({"cvar": cvar} if cvar is not None else {})
    if cvar is None:
        del args["cvar"]
    with pytest.raises(Rejected, match="^cvar "):
        decide(request(command, args), recorded(State.STOPPED))
