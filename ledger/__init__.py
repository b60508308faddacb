"""The event store: an append-only SQLite table of hash-chained events."""

from .errors import LedgerError, LedgerLocked, SchemaTooNew
from .events import (
    EVENT_TYPES,
    TERMINAL_TYPES,
    CancelRequested,
    CommandCancelled,
    CommandFailed,
    CommandInterrupted,
    CommandRejected,
    CommandRequested,
    CommandStarted,
    CommandSucceeded,
    NewEvent,
    RecordedEvent,
    StepCompleted,
)
from .store import Ledger, format_time, utc_now
from .verify import ChainReport, verify_ledger

__all__ = [
    "EVENT_TYPES",
    "TERMINAL_TYPES",
    "CancelRequested",
    "ChainReport",
    "CommandCancelled",
    "CommandFailed",
    "CommandInterrupted",
    "CommandRejected",
    "CommandRequested",
    "CommandStarted",
    "CommandSucceeded",
    "Ledger",
    "LedgerError",
    "LedgerLocked",
    "NewEvent",
    "RecordedEvent",
    "SchemaTooNew",
    "StepCompleted",
    "format_time",
    "utc_now",
    "verify_ledger",
]
