"""Run a host command, streaming its lines, honouring cancellation and a timeout."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import IO

from .errors import Cancelled, HostError
from .protocols import StepIO

STDERR_TAIL = 20
TERMINATE_GRACE = 5.0


@dataclass(frozen=True)
class RunResult:
    """How a command ended and every line it printed."""

    returncode: int
    stdout: list[str]
    stderr: list[str]


def run(argv: list[str], io: StepIO, *, timeout: float | None = None, poll: float = 0.1,
        input_text: str | None = None, keep: bool = True) -> RunResult:
    """Run `argv` (with `input_text` on its stdin, else nothing); each output line goes to `io`; a cancel or
    timeout ends the child.

    Raises `Cancelled` when `io.should_cancel()` turns true while it runs, and
    `HostError` when the program is missing or runs past `timeout` seconds.
    """
    try:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL if input_text is None else subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace",
        )
    except OSError as error:
        raise HostError(f"{argv[0]}: {error.strerror}") from error
    if input_text is not None and child.stdin is not None:
        try:
            child.stdin.write(input_text)
            child.stdin.close()
        except BrokenPipeError:
            pass
    # Without `keep` (a stream that may never end: `logs -f`), lines only pass through to `io`, and only the
    # stderr tail an error needs is kept.
    stdout: list[str] | deque[str] = [] if keep else deque(maxlen=0)
    stderr: list[str] | deque[str] = [] if keep else deque(maxlen=STDERR_TAIL)
    readers = [
        threading.Thread(target=_pump, args=(child.stdout, stdout, io), daemon=True),
        threading.Thread(target=_pump, args=(child.stderr, stderr, io), daemon=True),
    ]
    for reader in readers:
        reader.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            child.wait(timeout=poll)
            break
        except subprocess.TimeoutExpired:
            if io.should_cancel():
                _end(child)
                raise Cancelled(f"{' '.join(argv)} cancelled") from None
            if deadline is not None and time.monotonic() > deadline:
                _end(child)
                raise HostError(f"{' '.join(argv)} timed out after {timeout:g}s", list(stderr)[-STDERR_TAIL:]) from None
    for reader in readers:
        reader.join()
    return RunResult(child.returncode, list(stdout), list(stderr))


def run_checked(argv: list[str], io: StepIO, *, timeout: float | None = None,
                input_text: str | None = None, keep: bool = True) -> RunResult:
    """Like `run`, but a non-zero exit raises `HostError` carrying the stderr tail."""
    result = run(argv, io, timeout=timeout, input_text=input_text, keep=keep)
    if result.returncode != 0:
        raise HostError(f"{' '.join(argv)} exited with status {result.returncode}", result.stderr[-STDERR_TAIL:])
    return result


def _pump(stream: IO[str], sink: list[str] | deque[str], io: StepIO) -> None:
    for line in stream:
        line = line.rstrip("\n")
        sink.append(line)
        io.say(line)
    stream.close()


def _end(child: subprocess.Popen[str]) -> None:
    child.terminate()
    try:
        child.wait(timeout=TERMINATE_GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
