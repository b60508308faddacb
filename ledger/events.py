"""The event types of the ledger, as small immutable pydantic models.

An event is an envelope (who, which instance, which command) around a typed
payload. `NewEvent` is what callers hand to the ledger; `RecordedEvent` is
what the ledger hands back, with the fields it assigned (seq, id, time, hashes).
"""

from __future__ import annotations

from typing import Any, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict

from .lifecycle import Command, Observation


class EventPayload(BaseModel):
    """Base of every payload: frozen, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CommandRequested(EventPayload):
    """Someone asked for a lifecycle command; for init, `args` holds the whole spec."""

    command: Command
    args: dict[str, Any] = {}
    retry_of: str | None = None
    replay_of: str | None = None


class CommandStarted(EventPayload):
    """An executor took the command up (on a simulated host, if `simulated`)."""

    pid: int
    host: str
    simulated: bool = False


class StepCompleted(EventPayload):
    """One host step of a command finished, with what it printed."""

    step: str
    output: list[str] = []


class CommandSucceeded(EventPayload):
    """Every step of the command finished."""


class CommandFailed(EventPayload):
    """A host step failed; the command stopped there."""

    step: str | None = None
    error: str
    output: list[str] = []
    stderr_tail: list[str] = []


class CommandRejected(EventPayload):
    """The recorded state did not allow the command; nothing touched the host."""

    reason: str


class CommandCancelled(EventPayload):
    """The command stopped between steps because a cancel was requested."""

    step: str | None = None


class CommandInterrupted(EventPayload):
    """An executor found the command unfinished after a crash; it last acted at `last_event_at`.

    Version 2: version 1 events may lack `last_event_at` (see `payloads.UPCASTERS`).
    """

    last_step: str | None = None
    last_event_at: str | None = None


class CancelRequested(EventPayload):
    """Someone asked to cancel a command that has not ended yet."""


class Observed(EventPayload):
    """systemd did something to an instance's unit that no command caused (a crash, a restart, an outside stop).

    `source` is where the fact came from (the journal entry's cursor), so that
    it is recorded once however often the executor reads the journal again.
    """

    kind: Observation
    detail: str
    observed_at: str
    source: str


Payload: TypeAlias = (
    CommandRequested
    | CommandStarted
    | StepCompleted
    | CommandSucceeded
    | CommandFailed
    | CommandRejected
    | CommandCancelled
    | CommandInterrupted
    | CancelRequested
    | Observed
)
"""Every payload an event can carry: the one list of payload models."""
PAYLOAD_TYPES: tuple[type[EventPayload], ...] = get_args(Payload)
"""The same models as a tuple, read off `Payload` so that the two cannot differ."""
EVENT_TYPES: dict[str, type[EventPayload]] = {cls.__name__: cls for cls in PAYLOAD_TYPES}


class NewEvent(BaseModel):
    """An event to append: the envelope a caller fills in, around its payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance: str
    command_id: str
    actor: str
    os_user: str
    payload: Payload
    request_key: str | None = None

    @property
    def type(self) -> str:
        """The event type's name, as stored in the `type` column."""
        return type(self.payload).__name__


class RecordedEvent(NewEvent):
    """An event as the ledger holds it, with the fields the ledger assigned."""

    seq: int
    id: str
    recorded_at: str
    prev_hash: str
    hash: str
