"""Decide a requested command against the recorded state: the plan of host steps, or a rejection.

Which command a state allows comes from the lifecycle's one state machine
(`ledger.lifecycle.refusal`); what is decided here is what the allowed
command does on the host, given the recorded blueprint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ledger.lifecycle import COMMAND_NAMES, ON_INSTALLATION, RETRYABLE, Command, State, refusal
from projections import CommandView, InstanceView

from .errors import InvalidInput, Rejected
from .names import KEEP_MAX, validate_console_text, validate_cvar, validate_excludes, validate_name
from .steps import (
    Plan,
    adopt_steps,
    backup_plan,
    console_plan,
    init_steps,
    install_plan,
    purge_plan,
    restart_plan,
    restore_plan,
    running_plan,
    secret_set_plan,
    secret_unset_plan,
    start_plan,
    stop_plan,
    update_plan,
)
from .text_rules import BACKUP_ID_PATTERN, FINGERPRINT_PATTERN

if TYPE_CHECKING:  # the spec models (pydantic, YAML) load only for a decision that reads a spec: not a stop's
    from .spec import Spec


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

    def running_instances(self) -> list[str]:
        """The instances recorded running, by name."""

    def stopped_by(self, command_id: str) -> list[str]:
        """The instances a stop run as part of `command_id` stopped, and that are recorded stopped still."""


def decide(command: CommandView, state: RecordedState) -> Plan:
    """The plan `command` carries out on the host, given the recorded state; `Rejected` if none is allowed."""
    _check_links(command, state)
    if command.command not in COMMAND_NAMES:
        raise Rejected(_unknown(command))
    kind = Command(command.command)
    if kind in ON_INSTALLATION:
        return _on_installation(kind, command, state)
    try:
        name = validate_name(command.instance)
    except InvalidInput as error:
        raise Rejected(str(error)) from None
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
        case Command.BACKUP:
            return backup_plan(name, command.command_id, _excludes(command), _keep(command))
        case Command.RESTORE:
            return restore_plan(name, _backup_id(command))
        case _:
            raise Rejected(_unknown(command))


def _on_installation(kind: Command, command: CommandView, state: RecordedState) -> Plan:
    """Install refuses while instances run on the installation; update stops them first and starts them again
    after, and its retry also starts again those its original stopped and left stopped."""
    reason = refusal(kind, None, command.instance)
    if reason is not None:
        raise Rejected(reason)
    running = state.running_instances()
    match kind:
        case Command.INSTALL if running:
            raise Rejected(f"instances run on the installation ({', '.join(running)}): `l4d2ctl update` stops and "
                           f"starts them around the change")
        case Command.INSTALL:
            return install_plan(command.os_user)
        case Command.UPDATE:
            left_stopped = state.stopped_by(command.retry_of) if command.retry_of is not None else []
            return update_plan(sorted({*running, *left_stopped}), command.os_user)
        case _:
            raise Rejected(_unknown(command))


def _excludes(command: CommandView) -> list[str]:
    excludes = command.args.get("exclude", [])
    try:
        if not isinstance(excludes, list) or not all(isinstance(glob, str) for glob in excludes):
            raise InvalidInput("exclude: not a list of globs")
        return validate_excludes(excludes)
    except InvalidInput as error:
        raise Rejected(str(error)) from None


def _keep(command: CommandView) -> int | None:
    keep = command.args.get("keep")
    if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or not 1 <= keep <= KEEP_MAX):
        raise Rejected(f"--keep {keep!r}: must be 1-{KEEP_MAX}")
    return keep


def _backup_id(command: CommandView) -> str:
    backup = command.args.get("backup")
    if not isinstance(backup, str) or not BACKUP_ID_PATTERN.fullmatch(backup):
        raise Rejected(f"backup id {backup!r}: must be the 12 hex digits `l4d2ctl backups` lists")
    return backup


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
    from .spec import parse_spec

    try:
        return parse_spec(document)
    except InvalidInput as error:
        raise Rejected(f"{what} is not valid: {error}") from None


def _check_port_free(name: str, port: int, view: RecordedState) -> None:
    other = view.port_holder(port, other_than=name)
    if other is not None:
        raise Rejected(f"port {port} is already used by instance {other.name!r} ({other.state})")
