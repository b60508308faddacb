"""Pure folds of the event stream: every command's story, and every instance's recorded state.

`Fold.apply` takes one decoded event record at a time (as `Ledger.records`
yields them) and updates the commands and instances it holds. A rebuild folds
from seq 1 into empty mappings; an incremental update folds the new events
into mappings that load rows from the materialized tables on demand. The
same code serves both, so the two cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, TypeVar, cast

from ledger.lifecycle import (
    ON_INSTALLATION,
    PART_OF,
    TERMINAL_TYPES,
    UNFINISHED,
    Command,
    EventType,
    Observation,
    Outcome,
    State,
    needs_init_after,
    state_after,
    state_observed,
)
from ledger.payloads import (
    CommandCancelledData,
    CommandFailedData,
    CommandInterruptedData,
    CommandRejectedData,
    CommandRequestedData,
    EventRecord,
    ObservedData,
)


@dataclass
class CommandView:
    """One command from request to outcome: who, what, when, how it ended."""

    command_id: str
    instance: str
    command: str
    args: dict[str, Any]
    actor: str
    os_user: str
    requested_at: str
    requested_seq: int
    retry_of: str | None = None
    replay_of: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    outcome: str = Outcome.PENDING
    error: str | None = None
    cancel_requested_by: str | None = None
    active_until: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the command has reached its one terminal outcome (an observation is final from the start)."""
        return self.outcome not in UNFINISHED

    @property
    def part_of(self) -> str | None:
        """The command this one ran as part of (an update's stops and starts), if any."""
        link = self.args.get(PART_OF)
        return link if isinstance(link, str) else None

    def summary(self) -> dict[str, Any]:
        """The command as the history/audit JSON object of docs/cli.md."""
        return {**{key: getattr(self, key) for key in SUMMARY_FIELDS}, PART_OF: self.part_of}

    def as_row(self) -> dict[str, Any]:
        """The command as a row of the `commands` table."""
        return {**vars(self), "args": json.dumps(self.args, sort_keys=True)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CommandView:
        """A command from a row of the `commands` table."""
        return cls(**(row | {"args": json.loads(row["args"])}))


class StepView(TypedDict):
    """One completed step of a command: its name, when it ended, what it printed."""

    step: str
    at: str
    output: list[str]


SUMMARY_FIELDS = ("command_id", "instance", "command", "actor", "os_user", "requested_at", "started_at",
                  "finished_at", "outcome", "error", "retry_of", "replay_of")


@dataclass
class InstanceView:
    """An instance's recorded state, blueprint and last command."""

    name: str
    state: str | None = None
    port: int | None = None
    blueprint: dict[str, Any] | None = None
    last_command_id: str | None = None
    last_command: str | None = None
    last_outcome: str | None = None
    last_actor: str | None = None
    updated_at: str | None = None
    needs_init: bool = False
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        """Whether an init of this instance ever succeeded."""
        return self.state is not None

    @property
    def recorded_state(self) -> State | None:
        """The recorded state as the lifecycle's word (None for an unknown instance)."""
        return _state(self.state)

    def summary(self) -> dict[str, Any]:
        """The instance as the status JSON object of docs/cli.md."""
        return {key: getattr(self, key) for key in STATUS_FIELDS}

    def as_row(self) -> dict[str, Any]:
        """The instance as a row of the `instances` table."""
        blueprint = None if self.blueprint is None else json.dumps(self.blueprint, sort_keys=True)
        return {**vars(self), "blueprint": blueprint, "secrets": json.dumps(self.secrets, sort_keys=True)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> InstanceView:
        """An instance from a row of the `instances` table."""
        blueprint = row["blueprint"]
        return cls(**(row | {"blueprint": None if blueprint is None else json.loads(blueprint),
                             "needs_init": bool(row["needs_init"]), "secrets": json.loads(row["secrets"] or "{}")}))


STATUS_FIELDS = ("name", "state", "port", "last_command_id", "last_command", "last_outcome", "last_actor",
                 "updated_at")


V = TypeVar("V")


class FoldMapping(Protocol[V]):
    """What the fold needs of where it keeps commands (by id) or instances (by name): a plain dict when rebuilding,
    a mapping that loads rows from the tables on first use when syncing (`projections.store.LoadingMap`)."""

    def get(self, key: str, /) -> V | None:
        """The value held for `key`, or None."""
        ...

    def __setitem__(self, key: str, value: V, /) -> None:
        """Hold `value` for `key`."""
        ...


class Fold:
    """Folds event records into commands and instances held in mappings keyed by id and name.

    Each event type has its one handler in `HANDLERS`; a type that changes
    neither a command nor an instance (a completed step) maps to `_ignore`.
    """

    def __init__(self, commands: FoldMapping[CommandView], instances: FoldMapping[InstanceView]):
        self.commands = commands
        self.instances = instances

    def apply(self, event: EventRecord) -> None:
        """Fold one event record in."""
        HANDLERS[event.type](self, event)

    def _requested(self, event: EventRecord) -> None:
        payload = cast(CommandRequestedData, event.payload)
        self.commands[event.command_id] = CommandView(
            command_id=event.command_id, instance=event.instance, command=payload["command"], args=payload["args"],
            actor=event.actor, os_user=event.os_user, requested_at=event.recorded_at, requested_seq=event.seq,
            retry_of=payload["retry_of"], replay_of=payload["replay_of"],
        )

    def _started(self, event: EventRecord) -> None:
        command = self._unfinished(event)
        if command is not None:
            command.outcome, command.started_at = Outcome.RUNNING, event.recorded_at

    def _cancel_requested(self, event: EventRecord) -> None:
        command = self._unfinished(event)
        if command is not None:
            command.cancel_requested_by = command.cancel_requested_by or event.actor

    def _ignore(self, event: EventRecord) -> None:
        """A step completed: read from the ledger when wanted (`Projections.steps`), never folded."""

    def _finished(self, event: EventRecord) -> None:
        command = self._unfinished(event)
        if command is None:
            return
        outcome = TERMINAL_TYPES[event.type]
        command.outcome, command.finished_at = outcome, event.recorded_at
        # Until when the command acted on the host: an interrupted one, until its last recorded event.
        interrupted_at = cast(CommandInterruptedData, event.payload)["last_event_at"] \
            if outcome is Outcome.INTERRUPTED else None
        command.active_until = interrupted_at or event.recorded_at
        command.error = _error_of(outcome, event, command)
        name = Command(command.command)
        if name in ON_INSTALLATION:
            return
        instance = self.instances.get(command.instance)
        if instance is None:
            instance = self.instances[command.instance] = InstanceView(command.instance)
        if outcome is Outcome.SUCCEEDED:
            _record_success(instance, name, command, event.recorded_at)
        instance.state = state_after(name, outcome, _state(instance.state), started=command.started_at is not None,
                                     running=command.args.get("running") is True)
        instance.needs_init = needs_init_after(name, outcome, instance.needs_init)
        _touch(instance, command, event.recorded_at)

    def _observed(self, event: EventRecord) -> None:
        """An observation: a final row of its own in history and audit, and maybe a new state.

        It moves the state only when it is newer than what the instance last
        recorded: an observation read from the journal after a later command
        ended (the host moved on since) goes into history, not into the state.
        """
        payload = cast(ObservedData, event.payload)
        observed_at = payload["observed_at"]
        view = self.commands[event.command_id] = CommandView(
            command_id=event.command_id, instance=event.instance, command=payload["kind"], args={},
            actor=event.actor, os_user=event.os_user, requested_at=event.recorded_at, requested_seq=event.seq,
            started_at=observed_at, finished_at=observed_at, outcome=Outcome.OBSERVED, error=payload["detail"],
            active_until=observed_at,
        )
        instance = self.instances.get(event.instance)
        if instance is None or not instance.known or (instance.updated_at or "") > observed_at:
            return
        instance.state = state_observed(Observation(payload["kind"]), _state(instance.state))
        _touch(instance, view, observed_at)

    def _unfinished(self, event: EventRecord) -> CommandView | None:
        """The command an event belongs to, unless it is unknown or already ended (its outcome is final)."""
        command = self.commands.get(event.command_id)
        return None if command is None or command.finished else command


HANDLERS: dict[str, Callable[[Fold, EventRecord], None]] = {
    EventType.COMMAND_REQUESTED: Fold._requested,
    EventType.COMMAND_STARTED: Fold._started,
    EventType.CANCEL_REQUESTED: Fold._cancel_requested,
    EventType.STEP_COMPLETED: Fold._ignore,
    EventType.OBSERVED: Fold._observed,
    **{event_type: Fold._finished for event_type in TERMINAL_TYPES},
}
"""Every event type and how the fold takes it: one table, checked against the vocabulary by the tests."""

FOLDED_TYPES = tuple(event_type for event_type, handler in HANDLERS.items() if handler is not Fold._ignore)
"""The event types that change a command or an instance: what a rebuild reads."""


def _record_success(instance: InstanceView, name: Command, command: CommandView, at: str) -> None:
    """What a succeeded command leaves recorded beside the state: the blueprint, the secrets' fingerprints."""
    match name:
        case Command.INIT | Command.ADOPT:
            instance.blueprint = command.args["spec"]
            instance.port = instance.blueprint["port"]
        case Command.SECRET_SET:
            instance.secrets = {**instance.secrets, command.args["cvar"]: {
                "fingerprint": command.args["fingerprint"], "set_at": at, "actor": command.actor,
                "command_id": command.command_id}}
        case Command.SECRET_UNSET:
            instance.secrets = {cvar: entry for cvar, entry in instance.secrets.items()
                                if cvar != command.args["cvar"]}
        case Command.DELETE | Command.RESET:
            instance.secrets = {}
        case (Command.START | Command.STOP | Command.RESTART | Command.CONSOLE | Command.BACKUP | Command.RESTORE
              | Command.INSTALL | Command.UPDATE):
            pass
        case _:
            raise ValueError(f"{name!r} is not a lifecycle command")


def _state(value: str | None) -> State | None:
    return None if value is None else State(value)


def _touch(instance: InstanceView, command: CommandView, at: str) -> None:
    """Make `command` the instance's last word, at `at`."""
    instance.last_command_id = command.command_id
    instance.last_command = command.command
    instance.last_outcome = command.outcome
    instance.last_actor = command.actor
    instance.updated_at = at


def _error_of(outcome: Outcome, event: EventRecord, command: CommandView) -> str | None:
    """The error line of a finished command (None when it succeeded: its payload is never decoded)."""
    payload = None if outcome is Outcome.SUCCEEDED else event.payload
    match outcome:
        case Outcome.FAILED:
            failed = cast(CommandFailedData, payload)
            return f"{failed['step']}: {failed['error']}" if failed["step"] else failed["error"]
        case Outcome.REJECTED:
            return cast(CommandRejectedData, payload)["reason"]
        case Outcome.CANCELLED:
            step = cast(CommandCancelledData, payload)["step"]
            where = f" at step {step!r}" if step else ""
            return f"cancelled by {command.cancel_requested_by or 'request'}{where}"
        case Outcome.INTERRUPTED:
            interrupted = cast(CommandInterruptedData, payload)
            after = f" after step {interrupted['last_step']!r}" if interrupted["last_step"] else ""
            return interrupted["reason"] or f"executor stopped unexpectedly{after}"
        case Outcome.SUCCEEDED:
            return None
        case _:
            raise ValueError(f"{outcome!r} does not end a command")
