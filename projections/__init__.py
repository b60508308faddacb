"""Read models derived from the ledger: instances, and commands (history and audit)."""

from .store import Projections
from .views import OUTCOMES, STATE_AFTER, SUMMARY_FIELDS, STATUS_FIELDS, CommandView, Fold, InstanceView

__all__ = ["OUTCOMES", "STATE_AFTER", "STATUS_FIELDS", "SUMMARY_FIELDS", "CommandView", "Fold", "InstanceView",
           "Projections"]
