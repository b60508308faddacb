"""What touches the machine: filesystem, overlay mounts, systemd units; real and fake."""

from .errors import Cancelled, HostError
from .protocols import Filesystem, Host, Mounter, ServiceControl, StepIO, unit_name

__all__ = ["Cancelled", "Filesystem", "Host", "HostError", "Mounter", "ServiceControl", "StepIO", "unit_name"]
