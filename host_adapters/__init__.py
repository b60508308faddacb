"""What touches the machine: filesystem, overlay mounts, systemd units; real and fake."""

from .errors import Cancelled, HostError
from .protocols import (
    Filesystem,
    Host,
    JournalRead,
    Mounter,
    ServerQuery,
    ServiceControl,
    StepIO,
    UnitEntry,
    UnitEvent,
    UnitJournal,
    UnitStatus,
    unit_name,
)

__all__ = ["Cancelled", "Filesystem", "Host", "HostError", "JournalRead", "Mounter", "ServerQuery", "ServiceControl", "StepIO",
           "UnitEntry", "UnitEvent", "UnitJournal", "UnitStatus", "unit_name"]
