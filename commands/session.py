"""One lifecycle invocation from the CLI: who asks, the ledger, the host, and how progress is shown."""

from __future__ import annotations

import os
from contextlib import nullcontext

import click
from rich.console import Console

from host_adapters import Host
from host_adapters.factory import build_host
from host_adapters.systemd import systemd_is_running
from ledger import Ledger
from projections import CommandView, Projections

from ledger.lifecycle import Outcome

from .cli_edge import EXIT_OK, EXIT_REJECTED, exit_code_of
from .cli_output import CommandPrinter
from .command_ids import known_command
from .errors import InvalidInput, Rejected
from .executor_lock import ExecutorLock
from .requests import Requester, append_cancel, append_command, resolve_actor, see_through
from .settings import Settings, os_user
from .text_rules import shown


class Session:
    """Appends commands for one requester and sees them through, showing progress."""

    def __init__(self, settings: Settings, as_json: bool):
        self.settings = settings
        self.requester = Requester(resolve_actor(settings.actor, dict(os.environ), os_user()), os_user())
        check_host(settings)
        if not (settings.root / "installation").is_dir():
            raise InvalidInput(f"--root {shown(str(settings.root))} has no installation/ (the shared game): is it "
                               f"the host root you meant? Put the game there first (see the README, 'Filling the "
                               f"host'); nothing was recorded")
        self.console = Console()
        self.printer = CommandPrinter(self.console, simulated=settings.host == "simulated", as_json=as_json)
        self.ledger = Ledger.open(settings.db, busy_timeout=settings.lock_timeout)
        self.projections = Projections(self.ledger)
        self._host: Host | None = None

    def host(self) -> Host:
        """The host adapters, built once, before anything is appended: a host that cannot be built records nothing."""
        if self._host is None:
            self._host = host_for(self.settings)
        return self._host

    def request(self, instance: str, command: str, args: dict | None = None, *, request_id: str | None,
                no_wait: bool, **links: str) -> int:
        """Append a command (once per request id) and follow it; return its exit code."""
        self.host()
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
        command = self.projections.command(command_id)
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
                command = see_through(self.ledger, ExecutorLock(self.settings.db), self.host, command_id,
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


def check_host(settings: Settings) -> None:
    """Refuse, before anything is written, a root unsafe for instance.env, or systemd where none runs."""
    root = str(settings.root)
    if any(char in root for char in ":,\\") or not root.isprintable():
        raise InvalidInput(f"--root {shown(root)}: must not contain ':', ',', '\\' or control characters")
    if settings.host == "systemd" and not systemd_is_running():
        raise InvalidInput("systemd is not running on this machine; use --host simulated (or L4D2CTL_HOST=simulated)")


def host_for(settings: Settings) -> Host:
    """The host adapters the settings ask for (built only when a command is about to run)."""
    check_host(settings)
    return build_host(settings.host, settings.root, settings.helper)
