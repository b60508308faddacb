"""The read side of the event vocabulary: every stored event decoded at one point into a typed record.

The write side validates payloads with the pydantic models of `events.py`;
what is stored is already valid, so reading trusts it and builds plain
typed dicts (no re-validation: a projection rebuild folds hundreds of
thousands of events a second). `decode` is the only place that parses a
stored payload: the projections, the typed reads and the CLI all go
through it.

Versions and upcasting. A stored event is never changed, so a payload's
shape changes only by adding a version:

1. Bump the type's entry in `VERSIONS` and change its pydantic model and
   its TypedDict here.
2. Add an upcaster `UPCASTERS[(type, old_version)]`: a pure function that
   turns a payload of the old version into one of the next, for every
   payload the old version allowed (a new field gets the value that means
   what the old events meant).
3. Payloads of version 1 carry no marker; later ones carry `"_v"`. Reading
   applies the upcasters in order, so every consumer sees only the current
   shape; a version newer than this l4d2ctl knows is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypedDict

from .errors import LedgerError
from .lifecycle import Command, Observation

VERSION_KEY = "_v"
_DECODER = json.JSONDecoder()  # raw_decode skips json.loads' wrappers: decoding is most of a rebuild


class CommandRequestedData(TypedDict):
    """Someone asked for a command; for init, `args` holds the whole spec."""

    command: Command
    args: dict[str, Any]
    retry_of: str | None
    replay_of: str | None


class CommandStartedData(TypedDict):
    """An executor took the command up."""

    pid: int
    host: str
    simulated: bool


class StepCompletedData(TypedDict):
    """One host step finished, with what it printed."""

    step: str
    output: list[str]


class CommandSucceededData(TypedDict):
    """Every step finished."""


class CommandFailedData(TypedDict):
    """A host step failed (or, with no step, the command could not start)."""

    step: str | None
    error: str
    output: list[str]
    stderr_tail: list[str]


class CommandRejectedData(TypedDict):
    """The recorded state did not allow the command."""

    reason: str


class CommandCancelledData(TypedDict):
    """The command stopped between steps on request."""

    step: str | None


class CommandInterruptedData(TypedDict):
    """The command was found unfinished after a crash."""

    last_step: str | None
    last_event_at: str | None


class CancelRequestedData(TypedDict):
    """Someone asked to cancel the command."""


class ObservedData(TypedDict):
    """systemd did something no command caused."""

    kind: Observation
    detail: str
    observed_at: str
    source: str


Payload = (CommandRequestedData | CommandStartedData | StepCompletedData | CommandSucceededData | CommandFailedData
           | CommandRejectedData | CommandCancelledData | CommandInterruptedData | CancelRequestedData | ObservedData)

PAYLOADS: dict[str, type] = {
    "CommandRequested": CommandRequestedData,
    "CommandStarted": CommandStartedData,
    "StepCompleted": StepCompletedData,
    "CommandSucceeded": CommandSucceededData,
    "CommandFailed": CommandFailedData,
    "CommandRejected": CommandRejectedData,
    "CommandCancelled": CommandCancelledData,
    "CommandInterrupted": CommandInterruptedData,
    "CancelRequested": CancelRequestedData,
    "Observed": ObservedData,
}
"""Every event type, by the name stored in the `type` column, and the shape of its payload."""

VERSIONS: dict[str, int] = {name: 1 for name in PAYLOADS} | {"CommandInterrupted": 2}
"""The current payload version of each event type."""


def _interrupted_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 interruptions may lack `last_event_at` (they predate it): unknown, so None."""
    return {"last_event_at": None} | payload


UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("CommandInterrupted", 1): _interrupted_v1,
}
"""(event type, version) -> the function that lifts such a payload to the next version."""


class EventRecord:
    """A stored event as readers see it: the envelope, and its payload decoded (on first use) to the current
    version.

    Decoding waits until a reader asks, so a fold that needs only the
    envelope of an event (a command started) never parses its payload; an
    unknown event type is refused at once all the same.
    """

    __slots__ = ("seq", "type", "instance", "command_id", "actor", "os_user", "recorded_at", "_text", "_payload")

    def __init__(self, seq: int, event_type: str, instance: str, command_id: str, actor: str, os_user: str,
                 recorded_at: str, text: str):
        if event_type not in VERSIONS:
            raise LedgerError(f"event seq {seq} has type {event_type!r}, which this l4d2ctl does not know "
                              f"(written by a newer one?); upgrade l4d2ctl to read this ledger")
        self.seq, self.type, self.instance, self.command_id = seq, event_type, instance, command_id
        self.actor, self.os_user, self.recorded_at = actor, os_user, recorded_at
        self._text: str = text
        self._payload: Payload | None = None

    @property
    def payload(self) -> Payload:
        """The payload in its type's current shape (`decode`)."""
        if self._payload is None:
            self._payload = decode(self.type, self._text, self.seq)
        return self._payload


RECORD_COLUMNS = ("seq", "type", "instance", "command_id", "actor", "os_user", "recorded_at", "payload")
"""The event columns a record is built from (not the hashes)."""


def version_marker(event_type: str) -> dict[str, int]:
    """What a new payload of `event_type` carries beside its fields: its version, when past 1."""
    version = VERSIONS[event_type]
    return {VERSION_KEY: version} if version > 1 else {}


def decode(event_type: str, text: str, seq: int) -> Payload:
    """The stored payload of event `seq`, parsed and lifted to its type's current version."""
    current = VERSIONS.get(event_type)
    if current is None:
        raise LedgerError(f"event seq {seq} has type {event_type!r}, which this l4d2ctl does not know "
                          f"(written by a newer one?); upgrade l4d2ctl to read this ledger")
    try:
        payload, end = _DECODER.raw_decode(text)
    except ValueError:
        payload, end = None, 0
    if not isinstance(payload, dict) or end != len(text):
        raise LedgerError(f"event seq {seq} ({event_type}) has a payload that is not a JSON object; "
                          f"run `l4d2ctl verify`")
    version = payload.pop(VERSION_KEY, 1)
    if not isinstance(version, int) or version > current:
        raise LedgerError(f"event seq {seq} ({event_type}) has payload version {version!r}; this l4d2ctl reads up "
                          f"to {current}: upgrade l4d2ctl to read this ledger")
    while version < current:
        payload = UPCASTERS[(event_type, version)](payload)
        version += 1
    return payload  # type: ignore[no-any-return]  # stored events were validated when they were appended
