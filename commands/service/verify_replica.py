"""What a replica proves and restores: the local chain checked against it, and a lost ledger brought back from it."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import Ledger, LedgerError, utc_now, verify_ledger
from ledger.replica import compare_with_replica
from projections import Projections

from ..domain.errors import InvalidInput
from .observe import JOURNAL_POSITION, RECONCILE_POSITION
from .replication import Litestream


def check_replica(litestream: Litestream, local: Ledger, db: Path, url: str) -> dict[str, Any]:
    """Restore the replica, verify its own chain, and compare the local chain with it: the `replica` object of
    `verify --json` (`first_differing_seq` set when the local ledger lacks or changed what the replica has)."""
    with litestream.restored(db, url) as replica:
        own = verify_ledger(replica)
        if not own.ok:
            raise LedgerError(f"the replica at {url} is itself broken at seq {own.first_bad_seq}: {own.reason}")
        compared = compare_with_replica(local, replica)
    return {"events": compared.events, "head_seq": compared.head_seq, "lag_events": compared.lag_events,
            "lag_seconds": round(compared.lag_seconds, 3), "first_differing_seq": compared.first_differing_seq,
            "reason": compared.reason}


@dataclass(frozen=True)
class Restored:
    """What restore-ledger brought back."""

    events: int


def restore_ledger(litestream: Litestream, db: Path, url: str) -> Restored:
    """Restore the replica into `db` (refused when anything is there), only once its chain verifies; rebuild the
    projections; forget the old host's journal position and mark the ledger for the executor's reconcile.

    The copy is made beside `db` and linked into place last, so a restore cut
    short leaves no ledger behind, and one that races another never
    overwrites it.
    """
    for path in (db, db.with_name(db.name + "-wal")):
        if os.path.lexists(path):
            raise InvalidInput(f"--db {db}: {path} exists; restore-ledger never overwrites a ledger (move it away, "
                               f"or restore into another --db)")
    if not db.parent.is_dir():
        raise InvalidInput(f"--db {db}: its directory {db.parent} does not exist")
    copy = db.with_name(f".{db.name}.restoring-{secrets.token_hex(4)}")
    try:
        litestream.restore(db, url, copy)
        ledger = Ledger.open(copy, create=False)
        try:
            report = verify_ledger(ledger)
            if not report.ok:
                raise LedgerError(f"the replica at {url} is broken at seq {report.first_bad_seq}: {report.reason}; "
                                  f"nothing was restored")
            ledger.forget_position(JOURNAL_POSITION)  # the old host's journal: nothing of it is on this host
            ledger.set_position(RECONCILE_POSITION, utc_now())
            Projections(ledger).rebuild()
        finally:
            ledger.close()
        os.chmod(copy, 0o660)
        os.link(copy, db)
    finally:
        for leftover in (copy, copy.with_name(copy.name + "-wal"), copy.with_name(copy.name + "-shm")):
            if os.path.lexists(leftover):
                os.unlink(leftover)
    return Restored(report.events)
