"""The hash chain: one canonical serialisation of an event, and its SHA-256 link.

Appending and verifying both go through `event_hash`, so the two can never
disagree about what an event's bytes are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

GENESIS_HASH = "0" * 64

HASHED_FIELDS = (
    "seq",
    "id",
    "type",
    "instance",
    "command_id",
    "actor",
    "os_user",
    "recorded_at",
    "request_key",
    "payload",
)


class EventRow(Protocol):
    """A stored event row read by column name: a `sqlite3.Row` as `Ledger.rows` yields it, or a plain dict."""

    def __getitem__(self, column: str, /) -> Any:
        """The value of one column."""
        ...

    def keys(self) -> Iterable[str]:
        """The row's column names (what `dict(row)` reads)."""
        ...


def canonical_json(value: Any) -> str:
    """Serialise a JSON value one way only: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, row: EventRow) -> str:
    """The hash of an event row: SHA-256 over the previous hash and the row's hashed fields."""
    body = canonical_json({field: row[field] for field in HASHED_FIELDS})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainWalk:
    """How far a walk along the chain got: events that held, the last good link, and the first break if any."""

    events: int
    last_seq: int
    last_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


def walk_chain(rows: Iterable[EventRow], after_seq: int = 0, after_hash: str = GENESIS_HASH) -> ChainWalk:
    """Walk rows that follow seq `after_seq` (whose hash is `after_hash`), checking seq continuity, links and hashes.

    Names the first seq where the chain no longer holds: a missing seq for a
    deleted event, the edited event for a changed one, and for a forged event
    whose own hash was made to fit, the event after it. `verify` walks from
    genesis; an append walks only from the last point it verified.
    """
    expected_seq, prev_hash, count = after_seq + 1, after_hash, 0
    for row in rows:
        seq = row["seq"]
        if seq != expected_seq:
            return ChainWalk(count, expected_seq - 1, prev_hash, expected_seq, f"seq {expected_seq} is missing")
        if row["prev_hash"] != prev_hash:
            return ChainWalk(count, seq - 1, prev_hash, seq, f"seq {seq} does not link to seq {seq - 1}")
        if event_hash(prev_hash, row) != row["hash"]:
            return ChainWalk(count, seq - 1, prev_hash, seq, f"seq {seq} does not match its hash")
        expected_seq, prev_hash, count = seq + 1, row["hash"], count + 1
    return ChainWalk(count, expected_seq - 1, prev_hash)
