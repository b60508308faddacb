"""What touches the machine: filesystem, overlay mounts, systemd units, the journal, A2S; real and simulated."""

from .errors import Cancelled, HostError
from .protocols import (
    CFG_DIR,
    Filesystem,
    Host,
    HostKind,
    JournalRead,
    Mounter,
    RuntimeTree,
    SecretStore,
    ServerQuery,
    ServiceControl,
    StepIO,
    UnitEntry,
    UnitEvent,
    UnitJournal,
    UnitStatus,
    unit_name,
)

__all__ = ["CFG_DIR", "Cancelled", "Filesystem", "Host", "HostError", "HostKind", "JournalRead", "Mounter",
           "RuntimeTree", "SecretStore", "ServerQuery", "ServiceControl", "StepIO", "UnitEntry", "UnitEvent",
           "UnitJournal", "UnitStatus", "unit_name"]
