"""Read models derived from the ledger: instances, and commands (history and audit)."""

from .store import Projections
from .views import STATUS_FIELDS, SUMMARY_FIELDS, CommandView, Fold, InstanceView

__all__ = ["STATUS_FIELDS", "SUMMARY_FIELDS", "CommandView", "Fold", "InstanceView",
           "Projections"]
