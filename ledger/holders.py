"""Who has a ledger file open: for telling an operator which process holds a lock."""

from __future__ import annotations

import os


def processes_with_open(path: str, proc: str = "/proc") -> list[str]:
    """Other processes that have `path` (or its -wal/-shm) open, as 'pid N (command)'.

    Reads /proc; processes of other users are invisible to an unprivileged
    caller, so an empty answer means "none that this user can see".
    """
    real = os.path.realpath(path)
    targets = {real, f"{real}-wal", f"{real}-shm"}
    found = []
    for entry in os.listdir(proc) if os.path.isdir(proc) else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            descriptors = os.listdir(f"{proc}/{entry}/fd")
            if any(os.readlink(f"{proc}/{entry}/fd/{fd}") in targets for fd in descriptors):
                with open(f"{proc}/{entry}/comm") as comm:
                    found.append(f"pid {entry} ({comm.read().strip()})")
        except OSError:
            continue
    return found
