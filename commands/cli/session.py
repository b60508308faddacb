"""One lifecycle invocation from the CLI: who asks, and how its commands are appended, seen through and shown."""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

import click

from host_adapters.protocols import HostKind
from ledger.lifecycle import Outcome
from projections import CommandView

from ..domain.errors import InvalidInput, Rejected
from ..domain.text_rules import shown
from ..service.command_ids import known_command
from ..service.executor_lock import ExecutorLock
from ..service.identity import os_user
from ..service.requests import Requester, append_cancel, append_command, resolve_actor, see_through
from .app import App
from .edge import EXIT_OK, EXIT_REJECTED, exit_code_of
from .progress import CommandPrinter, StdoutConsole


class Session:
    """Appends commands for one requester and sees them through, showing progress."""

    def __init__(self, app: App, as_json: bool):
        self.app = app
        self.settings = app.settings
        self.requester = Requester(resolve_actor(self.settings.actor, dict(os.environ), os_user()), os_user())
        app.check_host()
        if not (self.settings.root / "installation").is_dir():
            raise InvalidInput(f"--root {shown(str(self.settings.root))} has no installation/ (the shared game): is "
                               f"it the host root you meant? Put the game there first (see the README, 'Filling the "
                               f"host'); nothing was recorded")
        self.console = StdoutConsole()
        self.printer = CommandPrinter(self.console, simulated=self.settings.host == HostKind.SIMULATED, as_json=as_json)
        self.ledger = app.ledger(create=True)
        self.projections = app.projections()

    def request(self, instance: str, command: str, args: dict[str, Any] | None = None, *, request_id: str | None,
                no_wait: bool, **links: str) -> int:
        """Append a command (once per request id) and follow it; return its exit code.

        The host is built first: a host that cannot be built records nothing.
        """
        self.app.host()
        command_id, created = append_command(self.ledger, self.requester, instance, command, args,
                                             request_key=request_id, **links)
        return self.follow(command_id, created, no_wait)

    def cancel(self, command_id: str, no_wait: bool) -> int:
        """Record a cancel request for a command that has not ended, and follow that command.

        Exit 0 once it ended cancelled (or, with `no_wait`, once the request is
        recorded); 3 when it had already finished, or finished otherwise first.
        """
        target = self.known_command(command_id)
        if target.finished:
            raise Rejected(f"command {target.command_id} already ended ({target.outcome})")
        append_cancel(self.ledger, self.requester, target)
        command = self.see(target.command_id, True, no_wait)
        if command.finished and command.outcome != Outcome.CANCELLED:
            return EXIT_REJECTED
        return EXIT_OK

    def follow(self, command_id: str, created: bool, no_wait: bool) -> int:
        """Show the command, see it through unless `no_wait`, and return its exit code."""
        return exit_code_of(self.see(command_id, created, no_wait).outcome)

    def see(self, command_id: str, created: bool, no_wait: bool) -> CommandView:
        """Show the command, see it through unless `no_wait`, and return it as it ended (or stands)."""
        self.projections.sync()
        command = self.projections.recorded_command(command_id)
        if no_wait:
            if not command.finished and not self._executor_running():
                click.echo("l4d2ctl: no executor is running: this command runs when `l4d2ctl executor` starts, or "
                           "when the next command that waits runs the queue", err=True)
            self.printer.queued(command)
            return command
        self.printer.requested(command, created)
        if not command.finished:
            waiting = self.console.status("waiting for the executor…") if self.console.is_terminal else nullcontext()
            with waiting:
                command = see_through(self.projections, ExecutorLock(self.settings.db), self.app.host, command_id,
                                      observer=self.printer.observe, on_line=self.printer.on_line)
        self.printer.finished(command)
        return command

    def _executor_running(self) -> bool:
        """Whether some process holds the executor lock right now."""
        lock = ExecutorLock(self.settings.db)
        if lock.try_acquire():
            lock.release()
            return False
        return True

    def known_command(self, command_id: str) -> CommandView:
        """The recorded command with this id (`InvalidInput` if malformed, `Rejected` if absent)."""
        return known_command(self.projections, command_id)

