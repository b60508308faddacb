"""`status --live`: what systemd and the servers themselves say, beside what the ledger recorded."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from host_adapters import ServiceControl
from projections import InstanceView

QUERY_TIMEOUT = 1.0


def query_server(port: int | None, host: str = "127.0.0.1") -> dict[str, Any] | None:
    """A2S_INFO from the server on `port`: its map and players; None when it does not answer."""
    import a2s

    if port is None:
        return None
    try:
        info = a2s.info((host, port), timeout=QUERY_TIMEOUT)
    except (OSError, a2s.BrokenMessageError, a2s.BufferExhaustedError):
        return None
    return {"name": info.server_name, "map": info.map_name, "players": info.player_count,
            "max_players": info.max_players}


def drift(recorded: str | None, unit_active: bool, query: dict | None) -> list[str]:
    """Where the host disagrees with the ledger, in words."""
    found = []
    if recorded == "running" and not unit_active:
        found.append("recorded running, unit inactive")
    if recorded != "running" and unit_active:
        found.append(f"recorded {recorded}, unit active")
    if unit_active and query is None:
        found.append("unit active, server not answering")
    return found


def live_status(instances: list[InstanceView], services: ServiceControl) -> list[dict[str, Any]]:
    """Each instance's status object plus its unit state, its query answer and any drift."""
    def one(instance: InstanceView) -> dict[str, Any]:
        active = services.is_active(instance.name)
        query = query_server(instance.port) if active else None
        return instance.summary() | {"unit": "active" if active else "inactive", "query": query,
                                     "drift": drift(instance.state, active, query)}

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, instances))
