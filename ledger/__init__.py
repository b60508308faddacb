"""The event store: an append-only SQLite table of hash-chained events.

The pydantic event models load on first use, so that commands which only
read the ledger start fast.
"""

from importlib import import_module
from typing import Any

from .errors import ChainBroken, LedgerError, LedgerLocked, SchemaTooNew
from .lifecycle import COMMAND_NAMES, TERMINAL_TYPES, Command, EventType, Observation, Outcome, State
from .store import Ledger, format_time, parse_time, utc_now
from .verify import ChainReport, verify_ledger

_MODELS = (
    "EVENT_TYPES",
    "CancelRequested",
    "CommandCancelled",
    "CommandFailed",
    "CommandInterrupted",
    "CommandRejected",
    "CommandRequested",
    "CommandStarted",
    "CommandSucceeded",
    "NewEvent",
    "Observed",
    "RecordedEvent",
    "StepCompleted",
)


def __getattr__(name: str) -> Any:
    """Load the event models on first access (PEP 562)."""
    if name in _MODELS:
        return getattr(import_module(".events", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COMMAND_NAMES",
    "Command",
    "EventType",
    "Observation",
    "Outcome",
    "State",
    "TERMINAL_TYPES",
    "ChainReport",
    "Ledger",
    "LedgerError",
    "ChainBroken",
    "LedgerLocked",
    "SchemaTooNew",
    "format_time",
    "parse_time",
    "utc_now",
    "verify_ledger",
    *_MODELS,
]
