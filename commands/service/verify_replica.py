"""What a replica proves and restores: the local chain checked against it (and the replica's latest state against
its own history), and a lost ledger brought back from it."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import Ledger, LedgerError, utc_now, verify_ledger
from ledger.replica import ReplicaComparison, compare_with_replica
from projections import Projections

from ..domain.errors import InvalidInput
from .observe import JOURNAL_FROM_POSITION, JOURNAL_POSITION, RECONCILE_POSITION
from .replication import Litestream

# How many earlier states of the replica `verify --replica` restores and checks the latest against: the newest
# few (a change right after they shipped), and the rest spread over what Litestream still keeps.
NEWEST_CHECKED = 8
SPREAD_CHECKED = 8


def history_points(txids: list[str]) -> list[str]:
    """The earlier transactions to check the replica's latest state against (all but the latest)."""
    earlier = txids[:-1]
    newest = earlier[-NEWEST_CHECKED:]
    rest = earlier[:-NEWEST_CHECKED] if len(earlier) > NEWEST_CHECKED else []
    step = max(len(rest) / SPREAD_CHECKED, 1)
    spread = [rest[int(index * step)] for index in range(min(SPREAD_CHECKED, len(rest)))]
    return sorted(set(spread + newest))


def check_replica(litestream: Litestream, local: Ledger, db: Path, url: str) -> dict[str, Any]:
    """The `replica` object of `verify --json`: the replica's latest state verified and extending every earlier
    state it still keeps (so a change to the local ledger that Litestream shipped is caught too, as long as the
    replica keeps a state from before it), and the local chain extending the latest state."""
    txids = litestream.txids(db, url)
    if not txids:
        raise LedgerError(f"the replica at {url} holds no ledger (nothing was ever replicated there)")
    with litestream.restored(db, url) as latest:
        own = verify_ledger(latest)
        if not own.ok:
            raise LedgerError(f"the replica at {url} is itself broken at seq {own.first_bad_seq}: {own.reason}")
        compared = compare_with_replica(local, latest)
        checked = 0
        for txid in history_points(txids):
            try:
                with litestream.restored(db, url, txid) as earlier:
                    past = compare_with_replica(latest, earlier)
            except LedgerError:
                continue  # compacted away between the listing and the restore
            checked += 1
            if past.first_differing_seq is not None and (compared.first_differing_seq is None
                                                         or past.first_differing_seq < compared.first_differing_seq):
                compared = ReplicaComparison(compared.events, compared.head_seq, compared.local_head_seq, 0.0,
                                             past.first_differing_seq,
                                             f"the replica's own history changed at seq {past.first_differing_seq} "
                                             f"(its state at Litestream transaction {txid} differs from its latest):"
                                             f" a change to the ledger was shipped after it")
    extends = compared.extends
    return {"events": compared.events, "head_seq": compared.head_seq,
            "lag_events": compared.lag_events if extends else None,
            "lag_seconds": round(compared.lag_seconds, 3) if extends else None,
            "history_checked": checked, "first_differing_seq": compared.first_differing_seq,
            "reason": compared.reason}


def replicate_checked(litestream: Litestream, local: Ledger, db: Path, url: str) -> int:
    """Run Litestream for the ledger, holding the replicate lock, once the local chain is found to extend what the
    replica holds (a replica of another ledger, or one this ledger no longer extends, is refused: Litestream
    would replace its history); Litestream's exit status."""
    with replicating(db):
        if litestream.txids(db, url):
            compared = check_replica(litestream, local, db, url)
            if compared["first_differing_seq"] is not None:
                raise LedgerError(f"the local ledger does not extend replica {url} ({compared['reason']}): "
                                  f"replicating would replace its history; nothing was replicated")
        _own_meta_directory(db)
        return litestream.replicate(db, url)


def _own_meta_directory(db: Path) -> None:
    """Litestream's directory beside the ledger (`.NAME-litestream`), made here when missing; one that is a
    symlink, or not this user's or root's, is refused: Litestream (root's, in the unit) would write through it."""
    meta = db.with_name(f".{db.name}-litestream")
    try:
        os.mkdir(meta, 0o770)
    except FileExistsError:
        pass
    info = os.lstat(meta)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (0, os.geteuid()):
        raise LedgerError(f"{meta} is not a directory of this user's or root's: refusing to let Litestream write "
                          f"through it (move it away)")


@dataclass(frozen=True)
class Restored:
    """What restore-ledger brought back."""

    events: int


def replicate_lock(db: Path) -> Path:
    """The lock one `replicate` of this ledger holds while it runs: two Litestreams must never share a replica."""
    return db.with_name(db.name + ".replicate.lock")


@contextmanager
def replicating(db: Path) -> Iterator[None]:
    """Hold the ledger's replicate lock (`LedgerError` when another `replicate` holds it)."""
    fd = os.open(replicate_lock(db), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o660)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LedgerError(f"another `l4d2ctl replicate` runs for {db} (it holds {replicate_lock(db)}): two "
                              f"Litestreams must never write one replica") from None
        yield
    finally:
        os.close(fd)


def restore_ledger(litestream: Litestream, db: Path, url: str) -> Restored:
    """Restore the replica into `db` (refused when anything is there), only once its chain verifies; rebuild the
    projections; have the journal read from now on and the executor reconcile the units first.

    The copy is made in a private directory beside `db` and linked into
    place last: a restore cut short leaves nothing behind, and one that races
    another never overwrites it.
    """
    for path in (db, db.with_name(db.name + "-wal")):
        if os.path.lexists(path):
            raise InvalidInput(f"--db {db}: {path} exists; restore-ledger never overwrites a ledger (move it away, "
                               f"or restore into another --db)")
    if not db.parent.is_dir():
        raise InvalidInput(f"--db {db}: its directory {db.parent} does not exist")
    if os.path.lexists(replicate_lock(db)):
        with replicating(db):  # refused while a replicate runs for this path
            pass
    private = Path(tempfile.mkdtemp(prefix=f".{db.name}.restoring-", dir=db.parent))
    try:
        copy = private / db.name
        litestream.restore(db, url, copy)
        with Ledger.open(copy, create=False) as ledger:
            report = verify_ledger(ledger)
            if not report.ok:
                raise LedgerError(f"the replica at {url} is broken at seq {report.first_bad_seq}: {report.reason}; "
                                  f"nothing was restored")
            ledger.forget_position(JOURNAL_POSITION)  # the old journal's cursor: read this host's from now on
            now = utc_now()
            ledger.set_position(JOURNAL_FROM_POSITION, now)
            ledger.set_position(RECONCILE_POSITION, now)
            Projections(ledger).rebuild()
        os.chmod(copy, 0o660)
        try:
            os.link(copy, db)
        except FileExistsError:
            raise InvalidInput(f"--db {db}: a ledger appeared there while restoring; nothing was overwritten") \
                from None
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return Restored(report.events)
