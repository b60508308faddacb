"""`l4d2ctl executor`: hold the executor lock and drain the queue, once or until told to stop."""

from __future__ import annotations

import signal
from typing import cast

from rich.console import Console
from rich.markup import escape

from ledger import LedgerError
from ledger.lifecycle import EventType
from ledger.payloads import (
    CommandCancelledData,
    CommandFailedData,
    CommandRejectedData,
    EventRecord,
    ObservedData,
    StepCompletedData,
)

from ..domain.text_rules import printable
from ..service.executor import Executor
from ..service.executor_lock import ExecutorLock
from ..service.notify import Notifier, hook_argv
from .app import App

LOCK_WAIT_SECONDS = 5.0
"""How long a starting executor waits for the executor lock before it takes the holder for another executor."""


def describe(event: EventRecord) -> str | None:
    """What the executor's log says about an event it recorded (None: not worth a line), as rich markup."""
    payload = event.payload
    match event.type:
        case EventType.COMMAND_REQUESTED | EventType.CANCEL_REQUESTED:
            return None
        case EventType.COMMAND_STARTED | EventType.COMMAND_SUCCEEDED | EventType.COMMAND_INTERRUPTED:
            return event.type
        case EventType.STEP_COMPLETED | EventType.COMMAND_CANCELLED:
            step = cast(StepCompletedData | CommandCancelledData, payload)["step"]
            return f"{event.type}{_at_step(step)}"
        case EventType.COMMAND_FAILED:
            failed = cast(CommandFailedData, payload)
            return f"{event.type}{_at_step(failed['step'])}: {escape(printable(failed['error']))}"
        case EventType.COMMAND_REJECTED:
            return f"{event.type}: {escape(printable(cast(CommandRejectedData, payload)['reason']))}"
        case EventType.OBSERVED:
            observed = cast(ObservedData, payload)
            return f"observed {observed['kind']}: {escape(printable(observed['detail']))}"
        case _:
            raise ValueError(f"{event.type!r} is not an event type this l4d2ctl knows")


def _at_step(step: str | None) -> str:
    return escape(f" at step {step!r}") if step else ""


def serve(app: App, once: bool, jobs: int, notify_exec: str | None = None) -> None:
    """Run the executor for the app's ledger, `jobs` commands at most at once, running the `notify_exec` hook
    for every failed command and observation; refuses while another executor holds the lock."""
    hook = hook_argv(notify_exec) if notify_exec is not None else None
    host = app.host()
    lock = ExecutorLock(app.settings.db)
    ledger = app.ledger(create=True)
    if not lock.acquire_within(LOCK_WAIT_SECONDS):
        raise LedgerError(f"another executor (pid {lock.holder() or 'unknown'}) holds {lock.path}")
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    console = Console(stderr=True)
    prefix = "\\[simulated] " if host.simulated else ""

    def report(event: EventRecord) -> None:
        what = describe(event)
        if what is not None:
            console.print(f"{prefix}{event.recorded_at} {event.command_id} {event.instance}: {what}",
                          soft_wrap=True, highlight=False)

    def warn(message: str) -> None:
        console.print(f"{prefix}warning: {escape(message)}", soft_wrap=True, highlight=False)

    projections = app.projections()
    notifier = Notifier(hook, warn) if hook is not None else None
    alert = notifier.observer(projections) if notifier is not None else (lambda event: None)

    def observe(event: EventRecord) -> None:
        report(event)
        alert(event)

    try:
        worker = Executor(ledger, host, projections=projections, observer=observe, warn=warn, jobs=jobs,
                          lock_held=lock.still_ours)
        worker.recover()
        worker.serve(once, stopping=lambda: bool(stopping))
    finally:
        if notifier is not None:
            notifier.close()
        lock.release()
