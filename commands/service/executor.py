"""The executor: takes requested commands in seq order, decides each, runs its steps, records what happened.

Exactly one runs per ledger (the caller holds `ExecutorLock`). Everything it
does to the host goes through the adapters it is given; everything it learns
goes into the ledger before it moves on.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from host_adapters import Cancelled, Host, HostError, StepIO
from ledger import (
    CommandCancelled,
    CommandFailed,
    CommandInterrupted,
    CommandRejected,
    CommandStarted,
    CommandSucceeded,
    Ledger,
    LedgerError,
    NewEvent,
    StepCompleted,
)
from ledger.events import EventPayload
from ledger.lifecycle import EventType
from ledger.payloads import EventRecord
from projections import CommandView, Projections

from ..domain.decide import decide
from ..domain.errors import Rejected
from ..domain.steps import NothingToDo, Plan, Step
from .identity import os_user
from .observe import UnitWatcher

Observer = Callable[[EventRecord], None]
LineSink = Callable[[CommandView, str, str], None]
Warn = Callable[[str], None]
# While the queue is empty, how often the journal is read for observations (before a command: always).
WATCH_INTERVAL = 1.0


class Executor:
    """Applies requested commands to the host, one at a time, in ledger order."""

    def __init__(
        self,
        ledger: Ledger,
        host: Host,
        *,
        projections: Projections | None = None,
        observer: Observer = lambda event: None,
        on_line: LineSink = lambda command, step, line: None,
        warn: Warn = lambda message: None,
    ):
        self.ledger = ledger
        self.host = host
        self.projections = Projections(ledger) if projections is None else projections
        self.observer = observer
        self.on_line = on_line
        self.warn = warn
        self.os_user = os_user()
        self.watcher = UnitWatcher(ledger, self.projections, host.journal, self.os_user)
        self._watched_at: float | None = None

    def recover(self) -> list[str]:
        """Mark every command found started but unfinished as interrupted; return their ids.

        Only an executor holding the lock may call this: a started command with
        no outcome then belongs to an executor that died.
        """
        self.projections.sync()
        interrupted = self.projections.running()
        for command in interrupted:
            steps = self.projections.steps(command.command_id)
            self._record(command, CommandInterrupted(last_step=steps[-1]["step"] if steps else None,
                                                     last_event_at=steps[-1]["at"] if steps else command.started_at))
        return [command.command_id for command in interrupted]

    def run_pending(self, until: Callable[[], bool] = lambda: False) -> int:
        """Run requested commands in seq order until none is left or `until()` holds; return how many ran."""
        ran = 0
        while True:
            self.projections.sync()
            command = None if until() else self.projections.next_pending()
            self.watch(force=command is not None)
            if command is None:
                return ran
            self.execute(command)
            ran += 1

    def serve(self, once: bool, stopping: Callable[[], bool], idle: float = 0.2) -> int:
        """Drain the queue; unless `once`, keep draining as commands arrive until `stopping()`. Returns how many
        commands ran."""
        ran = self.run_pending(until=stopping)
        while not once and not stopping():
            time.sleep(idle)
            ran += self.run_pending(until=stopping)
        return ran

    def watch(self, force: bool = True) -> None:
        """Record what systemd did on its own since the last look (unless `force`, at most every WATCH_INTERVAL).

        Before every command the ledger catches up with the journal, so an
        observation lands before the command that follows it. A journal that
        cannot be read is reported and read again next time: nothing is lost.
        """
        now = time.monotonic()
        if not force and self._watched_at is not None and now - self._watched_at < WATCH_INTERVAL:
            return
        self._watched_at = now
        try:
            events = self.watcher.catch_up()
        except (HostError, LedgerError) as error:
            self.warn(f"cannot record observations from the journal (will retry): {error}")
            return
        for event in events:
            self.observer(event)

    def execute(self, command: CommandView) -> None:
        """Decide one command, run its steps, and record each step and the outcome."""
        if self._cancel_requested(command):
            self._record(command, CommandCancelled(step=None))
            return
        try:
            plan = decide(command, self.projections)
        except Rejected as rejection:
            self._record(command, CommandRejected(reason=str(rejection)))
            return
        self._record(command, CommandStarted(pid=os.getpid(), host=socket.gethostname(), simulated=self.host.simulated))
        for step in plan.steps:
            if self._cancel_requested(command):
                self._end(command, plan, CommandCancelled(step=step.name))
                return
            io = self._io(command, step, cancellable=True)
            try:
                step.action(self.host, io)
            except NothingToDo as done:
                io.say(str(done))
                self._record(command, StepCompleted(step=step.name, output=io.lines), durable=False)
                break
            except Cancelled:
                self._end(command, plan, CommandCancelled(step=step.name))
                return
            except HostError as error:
                self._end(command, plan, CommandFailed(step=step.name, error=str(error), output=io.lines,
                                                       stderr_tail=error.stderr_tail))
                return
            except Exception as error:  # whatever else a step raises ends its command as failed, recorded
                self._end(command, plan, CommandFailed(step=step.name, error=f"{error.__class__.__name__}: {error}",
                                                       output=io.lines))
                return
            self._record(command, StepCompleted(step=step.name, output=io.lines), durable=False)
        self._record(command, CommandSucceeded())

    def _end(self, command: CommandView, plan: Plan, outcome: EventPayload) -> None:
        """End a command that stopped short: run its undo steps (each recorded), then record the outcome.

        Undo steps tolerate failures and are not cancellable: a start that was
        cancelled must still not leave its unit running.
        """
        for step in plan.undo:
            io = self._io(command, step, cancellable=False)
            step.action(self.host, io)
            self._record(command, StepCompleted(step=step.name, output=io.lines), durable=False)
        self._record(command, outcome)

    def _io(self, command: CommandView, step: Step, cancellable: bool) -> StepIO:
        return StepIO(
            emit=lambda line: self.on_line(command, step.name, line),
            should_cancel=(lambda: self._cancel_requested(command)) if cancellable else (lambda: False),
        )

    def _cancel_requested(self, command: CommandView) -> bool:
        cancels = self.ledger.rows(command_id=command.command_id, types=(EventType.CANCEL_REQUESTED,), columns=("seq",))
        return next(cancels, None) is not None

    def _record(self, command: CommandView, payload: EventPayload, *, durable: bool = True) -> None:
        """Append one event of `command` and bring the projections up to date, in one transaction.

        Two commits per command are durable: `CommandStarted`, before the host
        is touched, and the outcome, before it is reported. A step's event in
        between is not synced on its own: a power cut may lose it, which leaves
        the command started without an outcome, hence interrupted at the next
        start, and a retry converges since every step is idempotent; the
        outcome's sync makes every step before it durable.
        """
        event = NewEvent(
            instance=command.instance,
            command_id=command.command_id,
            actor=command.actor,
            os_user=self.os_user,
            payload=payload,
        )
        with self.ledger.transaction(durable=durable):
            self.ledger.append([event])
            events = self.projections.sync()
        for event in events:
            self.observer(event)
