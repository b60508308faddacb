"""Decide a requested command against the recorded state: the host steps to run, or a rejection."""

from __future__ import annotations

from projections import CommandView, Projections

from .errors import InvalidInput, Rejected
from .names import validate_name
from .spec import Spec, parse_spec
from .steps import Step, init_steps, purge_steps, start_steps, stop_steps

RETRYABLE = ("failed", "interrupted", "cancelled")


def decide(command: CommandView, state: Projections) -> list[Step]:
    """The steps `command` takes on the host, given the state the projections record; `Rejected` if none are allowed."""
    _check_links(command, state)
    try:
        name = validate_name(command.instance)
    except InvalidInput as error:
        raise Rejected(str(error)) from None
    instance = state.instance(name)
    if command.command == "init":
        spec = _stored_spec(command.args.get("spec"), "the requested spec")
        _check_port_free(name, spec.port, state)
        return init_steps(name, spec)
    if not instance.known:
        raise Rejected(f"instance {name!r} is not known: init it first")
    if instance.state == "deleted" and command.command != "delete":
        raise Rejected(f"instance {name!r} was deleted: init it again first")
    if command.command == "start":
        blueprint = _stored_spec(instance.blueprint, f"the stored blueprint of {name!r}")
        return start_steps(name, blueprint, reinitialize=instance.state == "reset")
    if command.command == "stop":
        return stop_steps(name)
    return purge_steps(name)


def _check_links(command: CommandView, view: Projections) -> None:
    if command.retry_of is not None:
        original = view.command(command.retry_of)
        if original is None or original.outcome not in RETRYABLE:
            outcome = original.outcome if original else "unknown"
            raise Rejected(f"command {command.retry_of} is {outcome}; only {', '.join(RETRYABLE)} commands can be retried")
    if command.replay_of is not None:
        original = view.command(command.replay_of)
        if original is None or not original.finished:
            outcome = original.outcome if original else "unknown"
            raise Rejected(f"command {command.replay_of} is {outcome}; only finished commands can be replayed")


def _stored_spec(document: object, what: str) -> Spec:
    try:
        return parse_spec(document)
    except InvalidInput as error:
        raise Rejected(f"{what} is not valid: {error}") from None


def _check_port_free(name: str, port: int, view: Projections) -> None:
    other = view.port_holder(port, other_than=name)
    if other is not None:
        raise Rejected(f"port {port} is already used by instance {other.name!r} ({other.state})")
