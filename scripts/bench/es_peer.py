"""The peer side of the commands benchmark: an instance aggregate in the eventsourcing package's own idiom."""

from __future__ import annotations

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Instance(Aggregate):
    """A server instance: decides start/stop against its state, records one event each."""

    @event("Initialized")
    def __init__(self, name: str, port: int):
        self.name, self.port, self.state = name, port, "initialized"

    def start(self) -> None:
        """Start, unless deleted."""
        if self.state == "deleted":
            raise ValueError(f"{self.name} was deleted")
        self._started()

    @event("Started")
    def _started(self) -> None:
        self.state = "running"

    def stop(self) -> None:
        """Stop, unless deleted."""
        if self.state == "deleted":
            raise ValueError(f"{self.name} was deleted")
        self._stopped()

    @event("Stopped")
    def _stopped(self) -> None:
        self.state = "stopped"


class Servers(Application):
    """The application whose repository loads and saves instances."""
