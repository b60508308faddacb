"""The composition root of one l4d2ctl invocation: settings in, ledger, projections and host out, each built once.

Click keeps the `App` in `ctx.obj`; every command asks it for what it
needs. The ledger opens on first use (creating the file only for commands
that write), the projections are brought up to date once, and the host
adapters are built only by commands that act on the host, before anything
is appended.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from host_adapters.protocols import HostKind
from ledger import Ledger

from ..domain.errors import InvalidInput
from ..domain.text_rules import shown
from .edge import hint
from .settings import Settings

if TYPE_CHECKING:
    from host_adapters import Host
    from projections import Projections


class App:
    """What one invocation works with; closes the ledger when the click context closes."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._ledger: Ledger | None = None
        self._creating = False
        self._projections: Projections | None = None
        self._synced = False
        self._host: Host | None = None

    def ledger(self, *, create: bool = False) -> Ledger:
        """The ledger, opened once; `create` makes the file when it is missing (commands that write).

        A ledger first opened for reading and then wanted for writing is opened again with `create`:
        a missing file reads as an empty ledger in memory, which must never take an append.
        """
        if self._ledger is not None and create and not self._creating:
            self._ledger.close()
            self._ledger, self._projections, self._synced = None, None, False
        if self._ledger is None:
            self._ledger = Ledger.open(self.settings.db, create=create, busy_timeout=self.settings.lock_timeout)
            self._creating = create
            context = click.get_current_context(silent=True)
            if context is not None:
                context.call_on_close(self._ledger.close)
        return self._ledger

    def projections(self) -> Projections:
        """The projections over the ledger, brought up to date once per invocation."""
        from projections import Projections

        if self._projections is None:
            self._projections = Projections(self.ledger())
        if not self._synced:
            self._projections.sync()
            self._synced = True
        return self._projections

    def read(self) -> Projections:
        """The projections for a reading command; a missing ledger reads as empty, with a hint on stderr."""
        if self.ledger_to_read_missing():
            hint(f"no ledger at {self.settings.db} yet: nothing is recorded there (a first command, e.g. "
                 f"`l4d2ctl init NAME --spec FILE`, creates it; is --root/--db right?)")
        return self.projections()

    def ledger_missing(self) -> bool:
        """Whether nothing is at the ledger's path (one this user may not look at is the ledger's to report)."""
        try:
            os.stat(self.settings.db)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return False

    def ledger_to_read_missing(self) -> bool:
        """`ledger_missing` for a read or a `verify`, which take a ledger not there yet as empty; but not one
        whose directory is not there either (`InvalidInput`): that is a mistyped --root or --db, which a
        read, or a `verify` run by cron, must not pass over as an empty ledger."""
        missing = self.ledger_missing()
        if missing and not os.path.isdir(os.path.dirname(os.path.abspath(self.settings.db))):
            raise InvalidInput(f"no ledger at {shown(str(self.settings.db))}, and no such directory: is --root/--db "
                               f"right?")
        return missing

    def check_host(self) -> None:
        """Refuse, before anything is written, a root unsafe for the unit's environment, or systemd where none
        runs."""
        from host_adapters.systemd import systemd_is_running

        # The path the unit's environment will name is the resolved one (a symlinked root resolves elsewhere).
        for root in dict.fromkeys((str(self.settings.root), os.path.realpath(self.settings.root))):
            if any(char in root for char in ":,\\") or not root.isprintable():
                raise InvalidInput(f"--root {shown(root)}: must not contain ':', ',', '\\' or control characters")
        if self.settings.host == HostKind.SYSTEMD and not systemd_is_running():
            raise InvalidInput("systemd is not running on this machine; use --host simulated "
                               "(or L4D2CTL_HOST=simulated)")

    def host(self) -> Host:
        """The host adapters the settings ask for, built once (and checked first)."""
        from host_adapters.factory import build_host

        if self._host is None:
            self.check_host()
            settings = self.settings
            self._host = build_host(settings.host, settings.root, settings.helper, settings.steamcmd)
        return self._host
