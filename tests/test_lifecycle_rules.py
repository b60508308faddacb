"""The lifecycle's one state machine, row by row: which command each state allows, and what each outcome leaves."""

from __future__ import annotations

import pytest

from ledger.lifecycle import (
    INSTALLATION,
    Command,
    Observation,
    Outcome,
    State,
    needs_init_after,
    refusal,
    state_after,
    state_observed,
)

C, S, OUT = Command, State, Outcome
# The commands that change an instance's secret values, never its state.
SECRET_COMMANDS = (Command.SECRET_SET, Command.SECRET_UNSET)
# The commands that never change an instance's state.
STATELESS = (*SECRET_COMMANDS, Command.CONSOLE, Command.BACKUP, Command.RESTORE)
# The commands on the installation: never allowed on an instance, and they leave no instance state.
ON_THE_INSTALLATION = {C.INSTALL, C.UPDATE}
# Adopt is for what nothing is recorded for; the console, for a running server.
RECORDED_ONLY = {C.ADOPT, C.CONSOLE, *ON_THE_INSTALLATION}
ALLOWED = {
    None: {C.INIT, C.ADOPT},
    S.INITIALIZED: set(C) - RECORDED_ONLY,
    S.RUNNING: set(C) - {C.INIT, C.ADOPT, C.BACKUP, C.RESTORE, *ON_THE_INSTALLATION},
    S.STOPPED: set(C) - RECORDED_ONLY,
    S.FAILED: set(C) - RECORDED_ONLY,
    S.RESET: set(C) - RECORDED_ONLY - {C.BACKUP},
    S.DELETED: {C.INIT, C.DELETE, C.ADOPT},
}


@pytest.mark.parametrize("state", list(ALLOWED))
@pytest.mark.parametrize("command", list(Command))
def test_each_state_allows_exactly_its_commands(state, command):
    reason = refusal(command, state, "alpha")
    assert (reason is None) == (command in ALLOWED[state]), reason


def test_init_of_a_running_instance_says_stop_it_first():
    assert refusal(C.INIT, S.RUNNING, "alpha") == "instance 'alpha' is running: stop it first"


SUCCEEDED = {C.INIT: S.INITIALIZED, C.START: S.RUNNING, C.RESTART: S.RUNNING, C.STOP: S.STOPPED,
             C.DELETE: S.DELETED, C.RESET: S.RESET, C.ADOPT: S.INITIALIZED}


@pytest.mark.parametrize("before", [None, *State])
@pytest.mark.parametrize("command", [command for command in Command
                                     if command not in (*STATELESS, *ON_THE_INSTALLATION)])
def test_a_success_leaves_the_commands_state_and_a_stop_keeps_a_reset_instance_reset(command, before):
    expected = S.RESET if (command, before) == (C.STOP, S.RESET) else SUCCEEDED[command]
    assert state_after(command, OUT.SUCCEEDED, before) is expected


@pytest.mark.parametrize("command", sorted(ON_THE_INSTALLATION))
def test_install_and_update_are_allowed_on_the_installation_alone_and_leave_no_instance_state(command):
    assert refusal(command, None, INSTALLATION) is None
    assert refusal(command, None, "alpha") == f"{command} acts on the installation, not on instance 'alpha'"
    with pytest.raises(ValueError, match="leaves no instance state"):
        state_after(command, OUT.SUCCEEDED, None)


@pytest.mark.parametrize("before", [None, S.DELETED])
def test_an_adopt_that_found_its_unit_running_records_it_running(before):
    assert state_after(C.ADOPT, OUT.SUCCEEDED, before, running=True) is S.RUNNING


@pytest.mark.parametrize("before", list(State))
@pytest.mark.parametrize("command", STATELESS)
def test_a_secret_or_console_command_never_changes_the_state(command, before):
    assert state_after(command, OUT.SUCCEEDED, before) is before
    assert state_after(command, OUT.FAILED, before) is before


@pytest.mark.parametrize("command", SECRET_COMMANDS)
def test_a_secret_command_of_an_unknown_or_deleted_instance_is_refused(command):
    assert refusal(command, None, "alpha") == "instance 'alpha' is not known: init it first"
    assert refusal(command, S.DELETED, "alpha") == "instance 'alpha' was deleted: init it again first"
    assert refusal(command, S.RUNNING, "alpha") is None


@pytest.mark.parametrize("before", [S.INITIALIZED, S.STOPPED, S.RUNNING, S.RESET])
@pytest.mark.parametrize("command", [C.START, C.RESTART])
def test_a_start_or_restart_that_failed_was_undone_and_is_failed(command, before):
    assert state_after(command, OUT.FAILED, before) is S.FAILED


@pytest.mark.parametrize("before", [S.INITIALIZED, S.STOPPED, S.RUNNING])
def test_a_cancelled_restart_was_undone_after_its_stop_and_is_stopped(before):
    assert state_after(C.RESTART, OUT.CANCELLED, before) is S.STOPPED


@pytest.mark.parametrize("outcome", [OUT.FAILED, OUT.CANCELLED, OUT.REJECTED, OUT.INTERRUPTED])
@pytest.mark.parametrize("command", [C.INIT, C.STOP, C.DELETE, C.RESET])
def test_other_unsuccessful_outcomes_change_nothing(command, outcome):
    for before in [None, *State]:
        assert state_after(command, outcome, before) is before


@pytest.mark.parametrize("outcome", [OUT.REJECTED, OUT.INTERRUPTED])
def test_a_start_rejected_or_interrupted_changes_nothing(outcome):
    assert state_after(C.START, outcome, S.STOPPED) is S.STOPPED


@pytest.mark.parametrize("outcome", [OUT.PENDING, OUT.RUNNING, OUT.OBSERVED])
def test_an_unfinished_outcome_has_no_state_after(outcome):
    with pytest.raises(ValueError):
        state_after(C.START, outcome, S.STOPPED)


OBSERVED = {Observation.CRASHED: None, Observation.RESTARTED: S.RUNNING, Observation.STARTED_OUTSIDE: S.RUNNING,
            Observation.STOPPED_OUTSIDE: S.STOPPED, Observation.GAVE_UP: S.FAILED}


@pytest.mark.parametrize("before", [S.INITIALIZED, S.RUNNING, S.STOPPED, S.FAILED])
@pytest.mark.parametrize("observation", list(Observation))
def test_an_observation_moves_an_instance_that_exists_on_the_host(observation, before):
    assert state_observed(observation, before) is (OBSERVED[observation] or before)


@pytest.mark.parametrize("before", [None, S.RESET, S.DELETED])
@pytest.mark.parametrize("observation", list(Observation))
def test_an_observation_never_moves_an_unknown_reset_or_deleted_instance(observation, before):
    assert state_observed(observation, before) is before


def test_a_reset_makes_the_next_start_initialize_until_a_start_succeeds():
    flag = needs_init_after(C.RESET, OUT.SUCCEEDED, False)
    assert flag
    assert needs_init_after(C.STOP, OUT.SUCCEEDED, flag)
    assert needs_init_after(C.START, OUT.FAILED, flag), "a start that failed may have stopped half-way"
    assert not needs_init_after(C.START, OUT.SUCCEEDED, flag)
    assert not needs_init_after(C.INIT, OUT.SUCCEEDED, flag)
