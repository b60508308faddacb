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
    from .executor import Executor, LineSink, Observer, Warn

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
    request: Callable[[], Sequence[str]],
    *,
    announce: Callable[[Sequence[str]], None] = lambda command_ids: None,
    observer: Observer = lambda event: None,
    on_line: LineSink = lambda command, step, line: None,
    warn: Warn = lambda message: None,
) -> list[CommandView]:
    """Record what `request` appends (it returns the ids of the commands it is about), `announce` those ids once
    that is committed, and wait until every one of the commands ends, driving the queue whenever no executor
    is running; return them as they ended.

    When the executor lock is free this process becomes the executor: it
    marks crashed commands interrupted, records the requests together with
    the decisions it can take on them at once (one sync before the host is
    touched: `Executor.take_up_requested`), then runs every requested command
    in seq order up to and including the last of these, none requested after
    them (their events reach `observer` as they are recorded, what it waits
    out or could not do reaches `warn`). Otherwise the requests are committed
    on their own, and it follows the ledger, handing `observer` these
    commands' events as another executor records them.
    """
    if not projections.ledger.readonly and lock.try_acquire():  # a read-only ledger refuses the request below
        try:
            executor = _executor(projections, lock, host, observer, on_line, warn)
            command_ids = executor.take_up_requested(request, announce)
            _run_until_finished(executor, command_ids)
        finally:
            lock.release()
        return _follow(projections, lock, host, command_ids, projections.ledger.head()[0], observer, on_line, warn)
    with projections.ledger.transaction():  # the projections take the requests in the same commit
        command_ids = list(request())
        projections.sync()
        # What another executor does from here on for those of these commands that had not ended is news
        # (judged under the write lock: it cannot have taken them up yet).
        commands = [projections.recorded_command(command_id) for command_id in command_ids]
        seen = min((command.requested_seq for command in commands if not command.finished),
                   default=projections.ledger.head()[0])
    announce(command_ids)
    return _follow(projections, lock, host, command_ids, seen, observer, on_line, warn)


def _executor(projections: Projections, lock: ExecutorLock, host: Callable[[], Host], observer: Observer,
              on_line: LineSink, warn: Warn) -> Executor:
    """This process as the executor, once it holds the lock: crashed commands are marked interrupted first."""
    from .executor import Executor

    executor = Executor(projections.ledger, host(), projections=projections, observer=observer, on_line=on_line,
                        warn=warn, lock_held=lock.still_ours)
    executor.recover()
    return executor


def _run_until_finished(executor: Executor, command_ids: Sequence[str]) -> None:
    """Run the queue, up to the last of `command_ids` and no further, until each of them has ended."""
    projections = executor.projections
    last = max((projections.recorded_command(command_id).requested_seq for command_id in command_ids), default=0)
    executor.run_pending(until=lambda: _all_finished(projections, command_ids), upto_seq=last)


def _follow(projections: Projections, lock: ExecutorLock, host: Callable[[], Host], command_ids: Sequence[str],
            seen: int, observer: Observer, on_line: LineSink, warn: Warn) -> list[CommandView]:
    """Wait until every command in `command_ids` ends, handing `observer` their events recorded after `seen`
    by another executor, and becoming the executor whenever the lock is free."""
    wanted = set(command_ids)

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
                _run_until_finished(_executor(projections, lock, host, observer, on_line, warn), command_ids)
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
