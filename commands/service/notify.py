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
from typing import IO, Any

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
    be named by its absolute path (the executor often runs as root, and looks nothing up in PATH) and be an
    executable file now, so that a typo shows when the executor starts, not at the first alert."""
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise InvalidInput(f"--notify-exec {shown(command)}: {error}") from None
    if not argv or not os.path.isabs(argv[0]):
        raise InvalidInput(f"--notify-exec {shown(command)}: name the program by its absolute path")
    if not os.path.isfile(argv[0]) or not os.access(argv[0], os.X_OK):
        raise InvalidInput(f"--notify-exec {shown(command)}: {shown(argv[0])} is not an executable file")
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
        """Let the hook take the rows queued so far, for at most one more timeout in all (the executor is
        stopping, and its service manager will not wait for ever), then say what was not sent."""
        self._rows.put(None)
        self._thread.join(self.timeout)
        if self._thread.is_alive():
            self.warn(f"notify: stopping with {self._rows.qsize()} rows not sent to {self.argv[0]}")

    def _run(self) -> None:
        while (row := self._rows.get()) is not None:
            self._send(row)

    def _send(self, row: dict[str, Any]) -> None:
        what = f"notify {self.argv[0]} of command {row['command_id']} ({row['command']} {row['instance']})"
        try:
            child = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        except OSError as error:
            self.warn(f"{what}: cannot run it: {error.strerror}")
            return
        said = bytearray()
        # What the hook prints is read and dropped beyond the little the log line shows: a hook printing
        # without end must not fill the executor's memory.
        reader = threading.Thread(target=_keep_start, args=(child.stderr, said), daemon=True)
        reader.start()
        try:
            if child.stdin is not None:
                child.stdin.write((json.dumps(row) + "\n").encode())
                child.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = child.wait(self.timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            self.warn(f"{what}: no exit within {self.timeout:g}s; it was killed")
            return
        reader.join(1)
        if code != 0:
            text = printable(said.decode("utf-8", "replace").strip())[:NOTIFY_OUTPUT]
            self.warn(f"{what}: exited with status {code}" + (f": {text}" if text else ""))


def _keep_start(stream: IO[bytes] | None, kept: bytearray) -> None:
    """Read `stream` to its end, keeping only its first NOTIFY_OUTPUT bytes."""
    if stream is None:
        return
    with stream:
        for chunk in iter(lambda: stream.read(4096), b""):
            if len(kept) < NOTIFY_OUTPUT:
                kept.extend(chunk[:NOTIFY_OUTPUT - len(kept)])
