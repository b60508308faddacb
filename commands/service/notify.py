"""Alerts: `executor --notify-exec CMD` runs CMD for every failed command and every observation.

CMD gets the row's JSON object (as `history --json` prints it) on stdin. It
runs in a thread of its own, one row at a time, each within a timeout: a hook
that fails, hangs or prints garbage is reported in the executor's log and
never holds up or breaks the executor. Rows wait in a bounded queue; when a
hook cannot keep up, the rows it misses are reported, not kept without end.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from ledger.lifecycle import EventType
from ledger.payloads import EventRecord
from projections import Projections

from ..domain.errors import InvalidInput
from ..domain.text_rules import printable, shown

NOTIFY_TIMEOUT = 10.0
NOTIFY_QUEUE = 100
# What a hook's output may add to the executor's log line about it.
NOTIFY_OUTPUT = 200
# The events whose rows are news for whoever watches the servers.
ALERTING = (EventType.COMMAND_FAILED, EventType.OBSERVED)


def hook_argv(command: str) -> list[str]:
    """The hook's argv from `--notify-exec CMD`: split as a shell would, but run without one; the program must
    be named by its absolute path (the executor often runs as root, and looks nothing up in PATH)."""
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise InvalidInput(f"--notify-exec {shown(command)}: {error}") from None
    if not argv or not os.path.isabs(argv[0]):
        raise InvalidInput(f"--notify-exec {shown(command)}: name the program by its absolute path")
    return argv


class Notifier:
    """Runs the hook for each row handed to `submit`, in order, in a thread of its own."""

    def __init__(self, argv: list[str], warn: Callable[[str], None], timeout: float = NOTIFY_TIMEOUT,
                 capacity: int = NOTIFY_QUEUE):
        self.argv = argv
        self.warn = warn
        self.timeout = timeout
        self._rows: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="l4d2ctl notify", daemon=True)
        self._thread.start()

    def observer(self, projections: Projections) -> Callable[[EventRecord], None]:
        """An executor observer that submits the row of every failed command and every observation."""

        def observe(event: EventRecord) -> None:
            if event.type in ALERTING:
                self.submit(projections.recorded_command(event.command_id).summary())

        return observe

    def submit(self, row: dict[str, Any]) -> None:
        """Queue a row for the hook; when the queue is full, say which row the hook will not get."""
        try:
            self._rows.put_nowait(row)
        except queue.Full:
            self.warn(f"notify: {self._rows.maxsize} rows are waiting for {self.argv[0]}; "
                      f"command {row['command_id']} ({row['command']} {row['instance']}) is not sent")

    def close(self) -> None:
        """Let the hook take every row queued so far (each within its timeout), then stop."""
        self._rows.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (row := self._rows.get()) is not None:
            self._send(row)

    def _send(self, row: dict[str, Any]) -> None:
        what = f"notify {self.argv[0]} of command {row['command_id']} ({row['command']} {row['instance']})"
        try:
            result = subprocess.run(self.argv, input=json.dumps(row) + "\n", capture_output=True, text=True,
                                    errors="replace", timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            self.warn(f"{what}: no exit within {self.timeout:g}s; it was killed")
            return
        except OSError as error:
            self.warn(f"{what}: cannot run it: {error.strerror}")
            return
        if result.returncode != 0:
            said = printable((result.stderr or result.stdout).strip())[:NOTIFY_OUTPUT]
            self.warn(f"{what}: exited with status {result.returncode}" + (f": {said}" if said else ""))
