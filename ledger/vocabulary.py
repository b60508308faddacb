"""The ledger's words that need no models: command names and the outcome each terminal event means.

Kept apart from the pydantic models so that reading the ledger stays cheap to import.
"""

from __future__ import annotations

COMMAND_NAMES = ("init", "start", "stop", "delete", "reset")

TERMINAL_TYPES: dict[str, str] = {
    "CommandSucceeded": "succeeded",
    "CommandFailed": "failed",
    "CommandRejected": "rejected",
    "CommandCancelled": "cancelled",
    "CommandInterrupted": "interrupted",
}
