"""Source A2S_INFO queries to the game servers on this host, through python-a2s."""

from __future__ import annotations

from typing import Any

QUERY_TIMEOUT = 1.0
LOCALHOST = "127.0.0.1"


class A2SQuery:
    """Asks a server on this host for its name, map and players."""

    def __init__(self, address: str = LOCALHOST, timeout: float = QUERY_TIMEOUT):
        self.address = address
        self.timeout = timeout

    def info(self, port: int) -> dict[str, Any] | None:
        """A2S_INFO from the server on `port`; None when nothing answers in time or the reply is malformed."""
        import a2s

        try:
            info = a2s.info((self.address, port), timeout=self.timeout)
        except (OSError, a2s.BrokenMessageError, a2s.BufferExhaustedError):
            return None
        return {"name": info.server_name, "map": info.map_name, "players": info.player_count,
                "max_players": info.max_players}
