"""The event types of the ledger, as small immutable models (frozen dataclasses).

An event is an envelope (who, which instance, which command) around a typed
payload. `NewEvent` is what callers hand to the ledger; `RecordedEvent` is
what the ledger hands back, with the fields it assigned (seq, id, time, hashes).

Plain dataclasses, not pydantic: appending a command is the path a `--no-wait`
call takes, and it must not pay for importing a validation library. Callers
are l4d2ctl's own code, typed statically; an unknown field is a TypeError and
an unknown command or observation kind a ValueError, before anything is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeAlias, get_args

from .lifecycle import Command, Observation


@dataclass(frozen=True, kw_only=True)
class EventPayload:
    """Base of every payload: frozen, keyword-only, no fields beyond those declared."""

    def as_json(self) -> dict[str, Any]:
        """The payload as the JSON object the ledger stores: its fields by name. Shallow, unlike
        `dataclasses.asdict`, which deep-copies every value on the path of every append (a tenth of an append's
        time), for a dict that is serialised at once and never kept; no payload field holds a dataclass."""
        return {name: getattr(self, name) for name in self._field_names()}

    @classmethod
    @cache
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(each.name for each in dataclasses.fields(cls))


@dataclass(frozen=True, kw_only=True)
class CommandRequested(EventPayload):
    """Someone asked for a lifecycle command; for init, `args` holds the whole spec."""

    command: Command
    args: dict[str, Any] = field(default_factory=dict)
    retry_of: str | None = None
    replay_of: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", Command(self.command))


@dataclass(frozen=True, kw_only=True)
class CommandStarted(EventPayload):
    """An executor took the command up (on a simulated host, if `simulated`)."""

    pid: int
    host: str
    simulated: bool = False


@dataclass(frozen=True, kw_only=True)
class StepCompleted(EventPayload):
    """One host step of a command finished, with what it printed."""

    step: str
    output: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class CommandSucceeded(EventPayload):
    """Every step of the command finished."""


@dataclass(frozen=True, kw_only=True)
class CommandFailed(EventPayload):
    """A host step failed; the command stopped there."""

    step: str | None = None
    error: str
    output: list[str] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class CommandRejected(EventPayload):
    """The recorded state did not allow the command; nothing touched the host."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class CommandCancelled(EventPayload):
    """The command stopped between steps because a cancel was requested."""

    step: str | None = None


@dataclass(frozen=True, kw_only=True)
class CommandInterrupted(EventPayload):
    """The command will not finish: an executor found it unfinished after a crash (it last acted at
    `last_event_at`), or could not carry it out at all and says why in `reason` (None after a crash).

    Version 3: version 1 events may lack `last_event_at`, and versions 1 and 2 `reason` (see
    `payloads.UPCASTERS`).
    """

    last_step: str | None = None
    last_event_at: str | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class CancelRequested(EventPayload):
    """Someone asked to cancel a command that has not ended yet."""


@dataclass(frozen=True, kw_only=True)
class Observed(EventPayload):
    """systemd did something to an instance's unit that no command caused (a crash, a restart, an outside stop).

    `source` is where the fact came from (the journal entry's cursor), so that
    it is recorded once however often the executor reads the journal again.
    """

    kind: Observation
    detail: str
    observed_at: str
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Observation(self.kind))


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


@dataclass(frozen=True, kw_only=True)
class NewEvent:
    """An event to append: the envelope a caller fills in, around its payload."""

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


@dataclass(frozen=True, kw_only=True)
class RecordedEvent(NewEvent):
    """An event as the ledger holds it, with the fields the ledger assigned."""

    seq: int
    id: str
    recorded_at: str
    prev_hash: str
    hash: str
