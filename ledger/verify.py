"""Walk the hash chain and SQLite's own integrity check, and say where it breaks."""

from __future__ import annotations

from dataclasses import dataclass

from .chain import walk_chain
from .store import Ledger


@dataclass(frozen=True)
class ChainReport:
    """What `verify` found: whether the ledger holds, how many events, the first bad seq."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str | None = None


def verify_ledger(ledger: Ledger) -> ChainReport:
    """Re-walk every event from genesis (`walk_chain`), after SQLite's own integrity check.

    On a ledger this user may write, what the walk found is remembered: a break
    (or a failed integrity check) makes every later append refuse until a
    walk holds again (say, after the file is restored), and a whole chain
    becomes the point appends check from.
    """
    problems = ledger.integrity_problems()
    if problems:
        if not ledger.readonly:
            ledger.remember_failed_integrity()
        return ChainReport(False, 0, None, f"SQLite integrity check: {problems[0]}")
    walk = walk_chain(ledger.rows())
    if not ledger.readonly:
        ledger.remember_chain_walk(walk)
    return ChainReport(walk.first_bad_seq is None, walk.events, walk.first_bad_seq, walk.reason)
