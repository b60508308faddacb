"""Run a host command, streaming its lines, honouring cancellation and a timeout."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, BinaryIO

from .errors import Cancelled, HostError
from .protocols import StepIO

STDERR_TAIL = 20
COPY_CHUNK = 1 << 20
TERMINATE_GRACE = 5.0


@dataclass(frozen=True)
class RunResult:
    """How a command ended and every line it printed."""

    returncode: int
    stdout: list[str]
    stderr: list[str]


def run(argv: list[str], io: StepIO, *, timeout: float | None = None, poll: float = 0.1,
        input_text: str | None = None, keep: bool = True, umask: int = -1) -> RunResult:
    """Run `argv` (with `input_text` on its stdin, else nothing; with `umask`, that umask); each output line goes
    to `io`; a cancel or timeout ends the child.

    Raises `Cancelled` when `io.should_cancel()` turns true while it runs, and
    `HostError` when the program is missing or runs past `timeout` seconds.
    """
    try:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL if input_text is None else subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace", umask=umask,
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


def run_binary(argv: list[str], io: StepIO, *, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None,
               timeout: float | None = None) -> None:
    """Run `argv` with bytes in and out: its stdin read from `stdin` (a real file, handed over as is), its stdout
    copied into `stdout`; its stderr lines go to `io`. A non-zero exit raises `HostError` with the stderr tail;
    a cancel or `timeout` ends the child once its output stops or the deadline passes."""
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else stdin,
                                 stdout=subprocess.DEVNULL if stdout is None else subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=False)
    except OSError as error:
        raise HostError(f"{argv[0]}: {error.strerror}") from error
    stderr: list[str] = []
    reader = threading.Thread(target=_pump_bytes, args=(child.stderr, stderr, io), daemon=True)
    reader.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if stdout is not None and child.stdout is not None:
            while chunk := child.stdout.read(COPY_CHUNK):
                stdout.write(chunk)
                if io.should_cancel() or (deadline is not None and time.monotonic() > deadline):
                    _end(child)
                    raise Cancelled(f"{' '.join(argv)} cancelled") if io.should_cancel() else \
                        HostError(f"{' '.join(argv)} timed out after {timeout:g}s", stderr[-STDERR_TAIL:])
        child.wait(timeout=None if deadline is None else max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        _end(child)
        raise HostError(f"{' '.join(argv)} timed out after {timeout:g}s", stderr[-STDERR_TAIL:]) from None
    except BaseException:
        _end(child)
        raise
    reader.join()
    if child.returncode != 0:
        raise HostError(f"{' '.join(argv)} exited with status {child.returncode}", stderr[-STDERR_TAIL:])


def _pump_bytes(stream: IO[bytes], sink: list[str], io: StepIO) -> None:
    for raw in stream:
        line = raw.decode(errors="replace").rstrip("\n")
        sink.append(line)
        io.say(line)
    stream.close()


def _pump(stream: IO[str], sink: list[str] | deque[str], io: StepIO) -> None:
    for line in stream:
        line = line.rstrip("\n")
        sink.append(line)
        io.say(line)
    stream.close()


def _end(child: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    child.terminate()
    try:
        child.wait(timeout=TERMINATE_GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
