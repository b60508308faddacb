"""`l4d2ctl executor`: hold the executor lock and drain the queue, once or until told to stop."""

from __future__ import annotations

import json
import signal

from rich.console import Console
from rich.markup import escape

from ledger import LedgerError

from ..service.executor import Executor
from ..service.executor_lock import ExecutorLock
from ..domain.text_rules import printable
from .app import App

REPORTED = ("CommandStarted", "StepCompleted", "CommandSucceeded", "CommandFailed", "CommandRejected",
            "CommandCancelled", "CommandInterrupted", "Observed")


def serve(app: App, once: bool) -> None:
    """Run the executor for the app's ledger; refuses while another executor holds the lock."""
    host = app.host()
    lock = ExecutorLock(app.settings.db)
    ledger = app.ledger(create=True)
    if not lock.try_acquire():
        raise LedgerError(f"another executor (pid {lock.holder() or 'unknown'}) holds {lock.path}")
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    console = Console(stderr=True)
    prefix = "\\[simulated] " if host.simulated else ""

    def report(row: dict) -> None:
        if row["type"] in REPORTED:
            payload = json.loads(row["payload"])
            what = row["type"]
            if what == "Observed":
                what = f"observed {payload['kind']}: {escape(printable(payload['detail']))}"
            elif payload.get("step") or payload.get("error") or payload.get("reason"):
                step = f" at step {payload['step']!r}" if payload.get("step") else ""
                why = payload.get("error") or payload.get("reason") or ""
                what = f"{what}{escape(step)}: {escape(printable(why))}" if why else f"{what}{escape(step)}"
            console.print(f"{prefix}{row['recorded_at']} {row['command_id']} {row['instance']}: {what}",
                          soft_wrap=True, highlight=False)

    def warn(message: str) -> None:
        console.print(f"{prefix}warning: {escape(message)}", soft_wrap=True, highlight=False)

    try:
        worker = Executor(ledger, host, projections=app.projections(), observer=report, warn=warn)
        worker.recover()
        worker.serve(once, stopping=lambda: bool(stopping))
    finally:
        lock.release()
