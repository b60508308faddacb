"""Walk the hash chain and SQLite's own integrity check, and say where it breaks."""

from __future__ import annotations

from dataclasses import dataclass

from .chain import GENESIS_HASH, event_hash
from .store import Ledger


@dataclass(frozen=True)
class ChainReport:
    """What `verify` found: whether the ledger holds, how many events, the first bad seq."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str | None = None


def verify_ledger(ledger: Ledger) -> ChainReport:
    """Re-walk every event from genesis, checking seq continuity, links and hashes.

    Names the first seq where the chain no longer holds: a missing seq for a
    deleted event, the edited event for a changed one, and for a forged event
    whose own hash was made to fit, the event after it.
    """
    problems = ledger.integrity_problems()
    if problems:
        return ChainReport(False, 0, None, f"SQLite integrity check: {problems[0]}")
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    for row in ledger.rows():
        seq = row["seq"]
        if seq != expected_seq:
            return ChainReport(False, count, expected_seq, f"seq {expected_seq} is missing")
        if row["prev_hash"] != prev_hash:
            return ChainReport(False, count, seq, f"seq {seq} does not link to seq {seq - 1}")
        if event_hash(prev_hash, row) != row["hash"]:
            return ChainReport(False, count, seq, f"seq {seq} does not match its hash")
        expected_seq, prev_hash, count = seq + 1, row["hash"], count + 1
    return ChainReport(True, count)
