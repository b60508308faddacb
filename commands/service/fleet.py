"""Several hosts' ledgers read side by side, from their replicas: the fleet's audit, read-only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from ledger import Ledger, LedgerError, verify_ledger
from ledger.lifecycle import EventType
from ledger.payloads import CommandStartedData
from projections import CommandView, Projections

from .replication import Litestream, validate_replica_url


def host_of(ledger: Ledger) -> str | None:
    """The host whose executor ran most of a ledger's commands (as its CommandStarted events say)."""
    hosts = Counter(cast(CommandStartedData, record.payload)["host"]
                    for record in ledger.records(types=(EventType.COMMAND_STARTED,)))
    return hosts.most_common(1)[0][0] if hosts else None


def audit_replicas(litestream: Litestream, db: Path, urls: Sequence[str],
                   filters: dict[str, Any]) -> list[tuple[str, str, CommandView]]:
    """Every replica's audit rows matching `filters`, each with the host it comes from and its replica's URL;
    by time requested across the fleet."""
    rows: list[tuple[str, str, CommandView]] = []
    for url in urls:
        with litestream.restored(db, validate_replica_url(url)) as replica:
            report = verify_ledger(replica)
            if not report.ok:
                raise LedgerError(f"the replica at {url} is broken at seq {report.first_bad_seq}: {report.reason}")
            projections = Projections(replica)
            projections.rebuild()  # folded from its chain: a copy's tables are not to be trusted
            host = host_of(replica) or url
            rows += [(host, url, command) for command in projections.audit(**filters)]
    return sorted(rows, key=lambda row: (row[2].requested_at, row[0]))
