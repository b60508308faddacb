"""Instance units through systemctl, optionally behind a command prefix such as a sudo helper."""

from __future__ import annotations

import os

from .errors import HostError
from .protocols import StepIO, unit_name
from .runner import run, run_checked

SYSTEMCTL_TIMEOUT = 300.0
JOURNAL_LINES = 15


def systemd_is_running(run_dir: str = "/run/systemd/system") -> bool:
    """Whether systemd is this machine's init (the check sd_booted(3) makes)."""
    return os.path.isdir(run_dir)


class SystemctlServiceControl:
    """`systemctl enable --now` / `disable --now` / `is-active` on left4me-server@NAME.service."""

    def __init__(self, command_prefix: list[str] | None = None):
        self.command_prefix = command_prefix or []

    def enable_now(self, name: str, io: StepIO) -> None:
        """Enable and start the unit; its ExecStartPre mounts the overlay.

        When the unit fails to start, its last journal lines join the error, so
        the recorded command says why (a missing overlay, a crashing server).
        """
        try:
            run_checked([*self.command_prefix, "systemctl", "enable", "--now", unit_name(name)], io,
                        timeout=SYSTEMCTL_TIMEOUT)
        except HostError as error:
            journal = run(["journalctl", "--unit", unit_name(name), "--lines", str(JOURNAL_LINES), "--no-pager",
                           "--output", "cat"], StepIO(), timeout=30)
            raise HostError(str(error), error.stderr_tail + [f"journal: {line}" for line in journal.stdout]) from None

    def disable_now(self, name: str, io: StepIO) -> None:
        """Disable and stop the unit; its ExecStopPost unmounts the overlay."""
        run_checked([*self.command_prefix, "systemctl", "disable", "--now", unit_name(name)], io,
                    timeout=SYSTEMCTL_TIMEOUT)

    def is_active(self, name: str) -> bool:
        """Whether systemd reports the unit active."""
        return run(["systemctl", "is-active", "--quiet", unit_name(name)], StepIO(), timeout=30).returncode == 0
