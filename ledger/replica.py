"""A replica of the ledger against the local one: the local chain must extend the replica's, event for event.

A replica is a copy the host cannot rewrite (Litestream ships it off the
host). Someone who can write the local file can truncate its newest events, or
rewrite it from some seq on with every hash recomputed, and `verify` of the
local file alone cannot tell. Compared with the replica, both show: the local
ledger may be ahead of the replica by what was not shipped yet, never behind
it, and never different at a seq the replica has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import zip_longest

from .store import Ledger, parse_time


@dataclass(frozen=True)
class ReplicaComparison:
    """What the replica holds (its chain verified first: `events` is its head seq), how far the local ledger is
    ahead of it, and the first seq where they part."""

    events: int
    head_seq: int
    local_head_seq: int
    lag_seconds: float
    first_differing_seq: int | None = None
    reason: str | None = None

    @property
    def extends(self) -> bool:
        """Whether the local chain holds every event of the replica, unchanged."""
        return self.first_differing_seq is None

    @property
    def lag_events(self) -> int:
        """How many events the local ledger has that the replica does not have yet."""
        return max(self.local_head_seq - self.head_seq, 0)


def compare_with_replica(local: Ledger, replica: Ledger) -> ReplicaComparison:
    """Walk both chains side by side: the first seq the replica has where the local ledger's hash is not the
    replica's (a rewrite) or is missing (a truncation), and the lag in events and seconds."""
    local_head, _ = local.head()
    replica_head, _ = replica.head()
    for mine, theirs in zip_longest(_hashes(local), _hashes(replica)):
        if theirs is None:
            break
        if mine is None:
            return ReplicaComparison(replica_head, replica_head, local_head, 0.0, theirs[0],
                                     f"the local ledger ends at seq {local_head}, the replica at seq {replica_head}: "
                                     f"events were removed from the local ledger")
        if mine != theirs:
            seq = min(mine[0], theirs[0])
            why = ("the replica holds another ledger (their first events differ): is this the replica of this host?"
                   if seq == 1 else f"seq {seq} differs from the replica's: the local ledger was rewritten from "
                                    f"there on")
            return ReplicaComparison(replica_head, replica_head, local_head, 0.0, seq, why)
    return ReplicaComparison(replica_head, replica_head, local_head,
                             _seconds_between(replica, replica_head, local, local_head))


def _hashes(ledger: Ledger) -> Iterator[tuple[int, str]]:
    return ((row["seq"], row["hash"]) for row in ledger.rows(columns=("seq", "hash")))


def _seconds_between(replica: Ledger, replica_head: int, local: Ledger, local_head: int) -> float:
    """How much later the local head was recorded than the replica's (0 when not ahead)."""
    if local_head <= replica_head or replica_head == 0:
        return 0.0
    return (_recorded_at(local, local_head) - _recorded_at(replica, replica_head)).total_seconds()


def _recorded_at(ledger: Ledger, seq: int) -> datetime:
    row = next(ledger.rows(columns=("recorded_at",), after_seq=seq - 1))
    return parse_time(row["recorded_at"])
