"""`status --live`: what systemd and the servers themselves say, beside what the ledger recorded."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from host_adapters import Host, UnitStatus
from ledger.lifecycle import State
from projections import InstanceView

# Unit states in which systemd is running the server, or about to run it again.
UNIT_UP = ("active", "activating", "reloading", "deactivating")


def drift(recorded: str | None, unit: UnitStatus, query: dict[str, Any] | None) -> list[str]:
    """Where the host disagrees with the ledger, in words."""
    found = []
    if recorded == State.RUNNING and not unit.active:
        found.append(f"recorded running, unit {unit.describe()}")
    if recorded != State.RUNNING and unit.active_state in UNIT_UP:
        found.append(f"recorded {recorded}, unit {unit.describe()}")
    if unit.active and query is None:
        found.append("unit active, server not answering")
    return found


def live_status(instances: list[InstanceView], host: Host) -> list[dict[str, Any]]:
    """Each instance's status object plus its unit state, its query answer and any drift."""
    def one(instance: InstanceView) -> dict[str, Any]:
        unit = host.services.status(instance.name)
        query = host.query.info(instance.port) if unit.active and instance.port is not None else None
        return instance.summary() | {"unit": unit.describe(), "enabled": unit.enabled, "restarts": unit.restarts,
                                     "query": query, "drift": drift(instance.state, unit, query)}

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, instances))
