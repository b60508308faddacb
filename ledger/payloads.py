"""The read side of the event vocabulary: every stored event decoded at one point into a typed record.

The write side builds payloads with the frozen dataclasses of `events.py`;
what is stored is already valid, so reading trusts it and builds plain
typed dicts (no re-validation: a projection rebuild folds hundreds of
thousands of events a second). `decode` is the only place that parses a
stored payload: the projections, the typed reads and the CLI all go
through it.

Versions and upcasting. A stored event is never changed, so a payload's
shape changes only by adding a version:

1. Bump the type's entry in `VERSIONS` and change its dataclass and
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
from .lifecycle import Command, EventType, Observation

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
    """The command will not finish: found unfinished after a crash, or never carried out (`reason`)."""

    last_step: str | None
    last_event_at: str | None
    reason: str | None


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

E = EventType
PAYLOADS: dict[str, type] = {
    E.COMMAND_REQUESTED: CommandRequestedData,
    E.COMMAND_STARTED: CommandStartedData,
    E.STEP_COMPLETED: StepCompletedData,
    E.COMMAND_SUCCEEDED: CommandSucceededData,
    E.COMMAND_FAILED: CommandFailedData,
    E.COMMAND_REJECTED: CommandRejectedData,
    E.COMMAND_CANCELLED: CommandCancelledData,
    E.COMMAND_INTERRUPTED: CommandInterruptedData,
    E.CANCEL_REQUESTED: CancelRequestedData,
    E.OBSERVED: ObservedData,
}
"""Every event type and the shape of its payload."""

VERSIONS: dict[str, int] = {name: 1 for name in PAYLOADS} | {
    E.COMMAND_STARTED: 2, E.COMMAND_FAILED: 2, E.COMMAND_INTERRUPTED: 3}
"""The current payload version of each event type."""


def _with_defaults(**defaults: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An upcaster for fields added later with a default: payloads written before lack them."""
    return lambda payload: defaults | payload


UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    # Version 1 starts may predate `simulated` (only real hosts then).
    (E.COMMAND_STARTED, 1): _with_defaults(simulated=False),
    # Version 1 failures may predate `output` (nothing was kept of what the step printed).
    (E.COMMAND_FAILED, 1): _with_defaults(output=[]),
    # Version 1 interruptions may predate `last_event_at` (unknown).
    (E.COMMAND_INTERRUPTED, 1): _with_defaults(last_event_at=None),
    # Versions 1 and 2 interruptions were all found after a crash.
    (E.COMMAND_INTERRUPTED, 2): _with_defaults(reason=None),
}
"""(event type, version) -> the function that lifts such a payload to the next version."""

KNOWN_VALUES: dict[str, tuple[str, frozenset[str]]] = {
    E.COMMAND_REQUESTED: ("command", frozenset(Command)),
    E.OBSERVED: ("kind", frozenset(Observation)),
}
"""Payload fields whose values are vocabulary: a value this l4d2ctl does not know came from a newer one."""


def _newer(seq: int, what: str) -> LedgerError:
    return LedgerError(f"event seq {seq} {what}, which this l4d2ctl does not know (written by a newer one?); "
                       f"upgrade l4d2ctl to read this ledger")


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
            raise _newer(seq, f"has type {event_type!r}")
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
        raise _newer(seq, f"has type {event_type!r}")
    try:
        payload, end = _DECODER.raw_decode(text)
    except ValueError:
        payload, end = None, 0
    if not isinstance(payload, dict) or end != len(text):
        raise LedgerError(f"event seq {seq} ({event_type}) has a payload that is not a JSON object; "
                          f"run `l4d2ctl verify`")
    version = payload.pop(VERSION_KEY, 1)
    if type(version) is not int or version < 1:
        raise LedgerError(f"event seq {seq} ({event_type}) has payload version {version!r}; run `l4d2ctl verify`")
    if version > current:
        raise _newer(seq, f"({event_type}) has payload version {version}")
    while version < current:
        payload = UPCASTERS[(event_type, version)](payload)
        version += 1
    known = KNOWN_VALUES.get(event_type)
    if known is not None and payload.get(known[0]) not in known[1]:
        raise _newer(seq, f"({event_type}) has {known[0]} {payload.get(known[0])!r}")
    return payload  # type: ignore[no-any-return]  # stored events were validated when they were appended
