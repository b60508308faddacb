"""Instance units: started and stopped through the privileged helper, asked about with systemctl and journalctl."""

from __future__ import annotations

import os
from datetime import datetime

from .batches import Batcher
from .errors import HostError
from .helper import MAX_BATCH, HelperClient, pass_on
from .journal import JOURNALCTL
from .protocols import StepIO, UnitStatus, unit_name
from .runner import run, run_checked

SYSTEMCTL = "/usr/bin/systemctl"
SYSTEMCTL_TIMEOUT = 300.0
QUERY_TIMEOUT = 30.0
JOURNAL_LINES = 15
STATUS_PROPERTIES = ("ActiveState", "SubState", "UnitFileState", "NRestarts")


def property_blocks(lines: list[str]) -> list[dict[str, str]]:
    """`systemctl show` output for several units: one dict of KEY=VALUE properties per unit (blank lines between)."""
    blocks: list[dict[str, str]] = [{}]
    for line in lines:
        if not line:
            blocks.append({})
            continue
        key, _, value = line.partition("=")
        blocks[-1][key] = value
    return [block for block in blocks if block]


def unit_status(properties: dict[str, str]) -> UnitStatus:
    """A unit's status from its `systemctl show` properties (what is missing reads as unknown)."""
    restarts = properties.get("NRestarts", "0")
    return UnitStatus(active_state=properties.get("ActiveState", "unknown"),
                      sub_state=properties.get("SubState", "unknown"),
                      enabled=properties.get("UnitFileState") == "enabled",
                      restarts=int(restarts) if restarts.isdigit() else 0)


def systemd_is_running(run_dir: str = "/run/systemd/system") -> bool:
    """Whether systemd is this machine's init (the check sd_booted(3) makes)."""
    return os.path.isdir(run_dir)


class SystemctlServiceControl:
    """left4me-server@NAME.service: `left4me-host start|stop NAME...` to change it, `systemctl show` to ask.

    Starts (and stops) that commands running at the same time ask for share
    one helper run (`Batcher`): a fleet's start runs sudo, the helper and
    systemctl a few times, not once per instance. Such a run is not cut
    short by one command's cancel; the command sees its cancel after the step.
    Their questions share runs too: twenty starts waiting for their servers
    ask systemd about their units in one `systemctl show` a round, not twenty
    (asked at once, without waiting for company).
    """

    def __init__(self, client: HelperClient):
        self.client = client
        self._starts = client.batcher("start", timeout=SYSTEMCTL_TIMEOUT)
        self._stops = client.batcher("stop", timeout=SYSTEMCTL_TIMEOUT)
        self._statuses = Batcher(self._statuses_of, MAX_BATCH, quiet=0.0, most=0.0, source="systemctl show")

    def enable_now(self, name: str, io: StepIO) -> None:
        """Clear a failed state (and its start limit), then enable and start the unit; its ExecStartPre mounts.

        When the unit fails to start, its last journal lines join the error, so
        the recorded command says why (a missing overlay, a crashing server).
        """
        try:
            pass_on(self._starts.run(name), "start", name, io)
        except HostError as error:
            raise HostError(str(error), error.stderr_tail + [f"journal: {line}" for line in self.journal_tail(name)]) \
                from None

    def disable_now(self, name: str, io: StepIO) -> None:
        """Disable and stop the unit; its ExecStopPost unmounts the overlay."""
        pass_on(self._stops.run(name), "stop", name, io)

    def status(self, name: str) -> UnitStatus:
        """ActiveState, SubState, whether enabled, and NRestarts, from `systemctl show`."""
        return self._statuses.run(name)

    def _statuses_of(self, names: list[str]) -> dict[str, UnitStatus]:
        """The status of each named instance's unit, from one `systemctl show` (a block of properties per unit,
        blank lines between, each block named by its `Id`)."""
        units = {unit_name(name): name for name in names}
        result = run_checked([SYSTEMCTL, "show", *(f"--property={p}" for p in ("Id", *STATUS_PROPERTIES)), *units],
                             StepIO(), timeout=QUERY_TIMEOUT)
        return {units[block["Id"]]: unit_status(block) for block in property_blocks(result.stdout)
                if block.get("Id") in units}

    def console(self, name: str, text: str, io: StepIO) -> None:
        """Through the helper: only root reads the rcon_password, and it never leaves the helper."""
        self.client.call("rcon", name, input_text=text + "\n", io=io, timeout=QUERY_TIMEOUT)

    def logs(self, name: str, lines: int, since: datetime | None, follow: bool, io: StepIO) -> None:
        """The unit's journal through the helper (an operator may not read the system journal otherwise)."""
        since_argument = "-" if since is None else f"@{int(since.timestamp())}"
        self.client.call("logs", name, str(lines), since_argument, "follow" if follow else "once", io=io,
                         timeout=None if follow else QUERY_TIMEOUT, keep=False)

    def journal_tail(self, name: str) -> list[str]:
        """The unit's last journal lines (empty when the journal cannot be read: they only add to an error)."""
        try:
            return run([JOURNALCTL, "--unit", unit_name(name), "--lines", str(JOURNAL_LINES), "--no-pager",
                        "--output", "cat"], StepIO(), timeout=QUERY_TIMEOUT).stdout
        except HostError:
            return []
