"""Read models derived from the ledger: commands, instances (and history and audit from them)."""

from .views import STATE_AFTER, CommandView, InstanceView, LedgerView

__all__ = ["STATE_AFTER", "CommandView", "InstanceView", "LedgerView"]
