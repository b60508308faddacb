"""Who this process runs as: recorded beside every event as the OS user behind it."""

from __future__ import annotations

import os
import pwd


def os_user() -> str:
    """The effective user of this process, by name (its uid where it has none)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
