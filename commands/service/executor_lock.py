"""The one-executor-per-ledger lock: an fcntl lock on a file beside the ledger, gone with its process."""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import time
from datetime import datetime, timezone

from ledger import LedgerError


def executor_alive(pid: int, host: str, started_at: datetime) -> bool:
    """Whether the executor that started a command (`pid` on `host`, at `started_at`) still runs: a process of
    this host with that pid, started no later than the command. A lock file deleted while its executor ran
    lets another take the lock; this is how the newcomer tells a live executor's commands from a dead one's.
    (After a reboot a pid may be reused, but never by a process older than the command.)"""
    if host != socket.gethostname():
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat_file:
            ticks = int(stat_file.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as boot_file:
            boot = next(int(line.split()[1]) for line in boot_file if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    process_start = datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), timezone.utc)
    return process_start <= started_at


class ExecutorLock:
    """An exclusive, non-blocking flock on `<ledger>.executor.lock`, recording the holder's pid."""

    def __init__(self, ledger_path: str | os.PathLike[str]):
        self.path = f"{os.fspath(ledger_path)}.executor.lock"
        self._descriptor: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process now holds it."""
        if self._descriptor is not None:
            return True
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o660)
        except OSError as error:
            raise LedgerError(f"executor lock {self.path}: {error.strerror}") from error
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise LedgerError(f"executor lock {self.path}: not a regular file (something else was put there)")
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor
        return True

    def acquire_within(self, seconds: float, poll: float = 0.05) -> bool:
        """Take the lock, waiting up to `seconds` for a holder to let go: a CLI that only probes whether an
        executor runs holds it for an instant, and one that ran the queue itself lets go when its commands end,
        so a starting executor must not take either for a rival. True when this process now holds it."""
        deadline = time.monotonic() + seconds
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def still_ours(self) -> bool:
        """Whether the file at the lock's path is still the one this process locked: a lock file deleted or
        replaced (it looks like a stale pidfile) would let a second executor take a lock of its own."""
        if self._descriptor is None:
            return False
        try:
            there = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(self._descriptor)
        return (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Let the lock go (closing the file releases the flock)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def holder(self) -> str | None:
        """The pid recorded by the last holder, if the file says one."""
        try:
            with open(self.path) as file:
                return file.read().strip() or None
        except OSError:
            return None
