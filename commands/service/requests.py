"""Appending a command to the ledger, and seeing it through to its outcome."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from host_adapters import Host
from ledger import CancelRequested, CommandRequested, EventType, Ledger, NewEvent
from projections import CommandView, Projections

from ..domain.errors import InvalidInput
from ..domain.text_rules import shown
from .command_ids import new_command_id
from .executor_lock import ExecutorLock

if TYPE_CHECKING:  # the executor (its decisions, the spec models) loads only for a caller that waits
    from .executor import LineSink, Observer

FOLLOW_POLL = 0.05
ACTOR_MAX = 64


@dataclass(frozen=True)
class Requester:
    """Who is asking: the actor they claim (or are) and the OS user actually running l4d2ctl."""

    actor: str
    os_user: str


def resolve_actor(explicit: str | None, environ: dict[str, str], os_user: str) -> str:
    """The actor to record: `--actor`/L4D2CTL_ACTOR if given, else SUDO_USER, else the OS user."""
    actor = explicit if explicit is not None else environ.get("SUDO_USER") or os_user
    if not actor or len(actor) > ACTOR_MAX or not actor.isprintable() or actor != actor.strip():
        raise InvalidInput(f"--actor {shown(actor)}: must be 1-{ACTOR_MAX} printable characters")
    return actor


def append_command(
    ledger: Ledger,
    requester: Requester,
    instance: str,
    command: str,
    args: dict[str, Any] | None = None,
    *,
    retry_of: str | None = None,
    replay_of: str | None = None,
    request_key: str | None = None,
) -> tuple[str, bool]:
    """Record a CommandRequested; with a request key, only once. Returns the command id and whether it is new."""
    payload = CommandRequested(command=command, args=args or {}, retry_of=retry_of, replay_of=replay_of)
    event = NewEvent(
        instance=instance,
        command_id=new_command_id(),
        actor=requester.actor,
        os_user=requester.os_user,
        request_key=request_key,
        payload=payload,
    )
    if request_key is None:
        return ledger.append([event])[0].command_id, True
    recorded, created = ledger.append_requested(event)
    if not created and (recorded.instance, recorded.payload) != (instance, payload):
        first = recorded.payload
        if not isinstance(first, CommandRequested):
            raise InvalidInput(f"--request-id {shown(request_key)} is the key of a recorded {recorded.type} of "
                               f"{recorded.instance} (seq {recorded.seq}), not of a command; this is {command} "
                               f"{instance}: nothing was recorded")
        raise InvalidInput(f"--request-id {shown(request_key)} was first used for {first.command} {recorded.instance} "
                           f"(command {recorded.command_id}{_differs(first, payload)}); "
                           f"this is {command} {instance}: nothing was recorded")
    return recorded.command_id, created


def _differs(first: CommandRequested, now: CommandRequested) -> str:
    """When the command and instance match, which of its arguments or links differ."""
    fields = [name for name in ("args", "retry_of", "replay_of") if getattr(first, name) != getattr(now, name)]
    return f", with other {' and '.join(fields)}" if fields and first.command == now.command else ""


def append_cancel(ledger: Ledger, requester: Requester, command: CommandView) -> None:
    """Record that `requester` asked to cancel `command`."""
    ledger.append([
        NewEvent(instance=command.instance, command_id=command.command_id, actor=requester.actor,
                 os_user=requester.os_user, payload=CancelRequested())
    ])


def see_through(
    projections: Projections,
    lock: ExecutorLock,
    host: Callable[[], Host],
    command_ids: Sequence[str],
    *,
    observer: Observer = lambda event: None,
    on_line: LineSink = lambda command, step, line: None,
) -> list[CommandView]:
    """Wait until every command in `command_ids` ends, driving the queue whenever no executor is running.

    When the executor lock is free this process becomes the executor: it
    marks crashed commands interrupted, then runs every requested command in
    seq order up to and including the last of these, none requested after
    them (their events reach `observer` as they are recorded). Otherwise it follows the ledger, handing
    `observer` these commands' events as another executor records them.
    """
    from .executor import Executor

    projections.sync()
    wanted = set(command_ids)
    # What another executor did for these commands so far is news too.
    requested = [projections.recorded_command(command_id).requested_seq for command_id in command_ids]
    seen, last = min(requested), max(requested)

    def catch_up() -> None:
        """Hand `observer` these commands' events that another executor recorded since the last look."""
        nonlocal seen
        for event in projections.ledger.records(after_seq=seen):
            seen = event.seq
            if event.command_id in wanted and event.type != EventType.COMMAND_REQUESTED:
                observer(event)

    while not _all_finished(projections, command_ids):
        if lock.try_acquire():
            try:
                catch_up()
                executor = Executor(projections.ledger, host(), projections=projections, observer=observer,
                                    on_line=on_line, lock_held=lock.still_ours)
                executor.recover()
                executor.run_pending(until=lambda: _all_finished(projections, command_ids), upto_seq=last)
            finally:
                lock.release()
            seen = projections.ledger.head()[0]
            continue
        time.sleep(FOLLOW_POLL)
        projections.sync()
        catch_up()
    catch_up()
    return [projections.recorded_command(command_id) for command_id in command_ids]


def _all_finished(projections: Projections, command_ids: Sequence[str]) -> bool:
    return all(projections.recorded_command(command_id).finished for command_id in command_ids)
