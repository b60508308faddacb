"""Decide a requested command against the recorded state: the plan of host steps, or a rejection.

Which command a state allows comes from the lifecycle's one state machine
(`ledger.lifecycle.refusal`); what is decided here is what the allowed
command does on the host, given the recorded blueprint.
"""

from __future__ import annotations

from typing import Protocol

from ledger.lifecycle import COMMAND_NAMES, RETRYABLE, Command, State, refusal
from projections import CommandView, InstanceView

from .errors import InvalidInput, Rejected
from .names import validate_console_text, validate_cvar, validate_name
from .spec import Spec, parse_spec
from .steps import (
    Plan,
    adopt_steps,
    console_plan,
    init_steps,
    purge_plan,
    restart_plan,
    running_plan,
    secret_set_plan,
    secret_unset_plan,
    start_plan,
    stop_plan,
)
from .text_rules import FINGERPRINT_PATTERN


class RecordedState(Protocol):
    """What a decision reads: the recorded instances and commands."""

    def instance(self, name: str) -> InstanceView:
        """The recorded view of an instance (unknown when nothing succeeded for it)."""

    def command(self, command_id: str) -> CommandView | None:
        """One command by id."""

    def port_holder(self, port: int, other_than: str) -> InstanceView | None:
        """A live instance other than `other_than` that uses `port`."""

    def succeeded_retry(self, command_id: str) -> CommandView | None:
        """A retry of `command_id` that succeeded, if one did."""


def decide(command: CommandView, state: RecordedState) -> Plan:
    """The plan `command` carries out on the host, given the recorded state; `Rejected` if none is allowed."""
    _check_links(command, state)
    try:
        name = validate_name(command.instance)
    except InvalidInput as error:
        raise Rejected(str(error)) from None
    if command.command not in COMMAND_NAMES:
        raise Rejected(_unknown(command))
    kind = Command(command.command)
    instance = state.instance(name)
    recorded = instance.recorded_state
    reason = refusal(kind, recorded, name)
    if reason is not None:
        raise Rejected(reason)
    match kind:
        case Command.INIT:
            spec = _stored_spec(command.args.get("spec"), "the requested spec")
            _check_port_free(name, spec.port, state)
            return Plan(init_steps(name, spec))
        case Command.ADOPT:
            spec = _stored_spec(command.args.get("spec"), "the spec found on disk")
            _check_port_free(name, spec.port, state)
            return Plan(adopt_steps(name, spec, running=command.args.get("running") is True))
        case Command.START if recorded is State.RUNNING:
            return running_plan(name, _blueprint(instance), reinitialize=instance.needs_init)
        case Command.START:
            return start_plan(name, _blueprint(instance), reinitialize=instance.needs_init)
        case Command.RESTART:
            return restart_plan(name, _blueprint(instance), reinitialize=instance.needs_init)
        case Command.STOP:
            return stop_plan(name)
        case Command.DELETE | Command.RESET:
            return purge_plan(name)
        case Command.SECRET_SET:
            return secret_set_plan(name, _cvar(command), _fingerprint(command))
        case Command.SECRET_UNSET:
            return secret_unset_plan(name, _cvar(command))
        case Command.CONSOLE:
            return console_plan(name, _console_text(command))
        case _:
            raise Rejected(_unknown(command))


def _unknown(command: CommandView) -> str:
    return f"{command.command!r} is not a command this l4d2ctl knows; nothing was done"


def _cvar(command: CommandView) -> str:
    cvar = command.args.get("cvar")
    try:
        if not isinstance(cvar, str):
            raise InvalidInput(f"cvar {cvar!r}: not a name")
        return validate_cvar(cvar)
    except InvalidInput as error:
        raise Rejected(str(error)) from None


def _console_text(command: CommandView) -> str:
    text = command.args.get("text")
    try:
        if not isinstance(text, str):
            raise InvalidInput("no console command was given")
        return validate_console_text(text)
    except InvalidInput as error:
        raise Rejected(str(error)) from None


def _fingerprint(command: CommandView) -> str:
    fingerprint = command.args.get("fingerprint")
    if not isinstance(fingerprint, str) or not FINGERPRINT_PATTERN.fullmatch(fingerprint):
        raise Rejected("no value was handed over for this secret (no fingerprint): set it again")
    return fingerprint


def _blueprint(instance: InstanceView) -> Spec:
    return _stored_spec(instance.blueprint, f"the stored blueprint of {instance.name!r}")


def _check_links(command: CommandView, view: RecordedState) -> None:
    if command.retry_of is not None:
        original = view.command(command.retry_of)
        if original is None or original.outcome not in RETRYABLE:
            raise Rejected(f"command {command.retry_of} {_stands(original)}; only {', '.join(RETRYABLE)} commands "
                           f"can be retried")
        fixed = view.succeeded_retry(command.retry_of)
        if fixed is not None and fixed.command_id != command.command_id:
            raise Rejected(f"command {command.retry_of} was already retried successfully by {fixed.command_id}; "
                           f"replay it to run it once more")
    if command.replay_of is not None:
        original = view.command(command.replay_of)
        if original is None or not original.finished:
            raise Rejected(f"command {command.replay_of} {_stands(original)}; only finished commands can be replayed")


def _stands(command: CommandView | None) -> str:
    """Where a command stands, in words: `is not recorded`, `is still pending`, `ended succeeded`..."""
    if command is None:
        return "is not recorded"
    return f"ended {command.outcome}" if command.finished else f"is still {command.outcome}"


def _stored_spec(document: object, what: str) -> Spec:
    try:
        return parse_spec(document)
    except InvalidInput as error:
        raise Rejected(f"{what} is not valid: {error}") from None


def _check_port_free(name: str, port: int, view: RecordedState) -> None:
    other = view.port_holder(port, other_than=name)
    if other is not None:
        raise Rejected(f"port {port} is already used by instance {other.name!r} ({other.state})")
