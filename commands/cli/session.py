"""One lifecycle invocation from the CLI: who asks, and how its commands are appended, seen through and shown."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cached_property
from typing import TYPE_CHECKING, Any

from host_adapters.errors import HostError
from host_adapters.protocols import HostKind
from ledger import LedgerError
from ledger.lifecycle import Command, Outcome
from projections import CommandView

from ..domain.errors import InvalidInput, Rejected
from ..domain.text_rules import shown
from ..service.command_ids import known_command
from ..service.executor_lock import ExecutorLock
from ..service.identity import os_user
from ..service.requests import Requester, append_cancel, append_command, resolve_actor, see_through
from .app import App
from .edge import EXIT_OK, EXIT_REJECTED, exit_code_of, hint, worst_exit_code
from .stdout import Stdout

if TYPE_CHECKING:
    from rich.console import Console

    from ..service.executor import LineSink, Observer
    from .progress import BatchPrinter, CommandPrinter


class Session:
    """Appends commands for one requester and sees them through, showing progress."""

    def __init__(self, app: App, as_json: bool):
        self.app = app
        self.settings = app.settings
        self.requester = Requester(resolve_actor(self.settings.actor, dict(os.environ), os_user()), os_user())
        app.check_host()
        if not (self.settings.root / "installation").is_dir():
            raise InvalidInput(f"--root {shown(str(self.settings.root))} has no installation/ (the shared game): is "
                               f"it the host root you meant? The host's install script creates it, then `l4d2ctl "
                               f"install` fills it (see the README, 'Filling the host'); nothing was recorded")
        self.as_json = as_json
        self.stdout = Stdout()
        self.ledger = app.ledger(create=True)
        self.projections = app.projections()
        self._again: set[str] = set()  # commands a request id had already recorded

    @cached_property
    def console(self) -> Console:
        """The console progress goes to (rich loads only for a call that shows progress)."""
        from .progress import OutputConsole

        return OutputConsole()

    @cached_property
    def printer(self) -> CommandPrinter:
        """What shows one command's progress."""
        from .progress import CommandPrinter

        return CommandPrinter(self.console, self.stdout, simulated=self.simulated, as_json=self.as_json)

    @cached_property
    def batch(self) -> BatchPrinter:
        """What shows a bulk call's progress."""
        from .progress import BatchPrinter

        return BatchPrinter(self.console, self.stdout, simulated=self.simulated, as_json=self.as_json,
                            recorded=lambda command_id: self.projections.recorded_command(command_id))

    @property
    def simulated(self) -> bool:
        """Whether the commands run on the simulated host (each line says so)."""
        return self.settings.host == HostKind.SIMULATED

    def request(self, instance: str, command: str, args: dict[str, Any] | None = None, *, request_id: str | None,
                no_wait: bool, **links: str) -> int:
        """Append a command (once per request id) and follow it; return its exit code.

        Unless `no_wait`, the host is built first: a host that cannot be built
        records nothing. A queued command is run by the executor, with its own host.
        """
        def append() -> list[str]:
            command_id, created = append_command(self.ledger, self.requester, instance, command, args,
                                                 request_key=request_id, **links)
            if not created:
                self._again.add(command_id)
            return [command_id]

        if not no_wait:
            self.app.host()
        return exit_code_of(self.see(append, no_wait).outcome)

    def request_each(self, instances: Sequence[str], command: Command, *, request_id: str | None,
                     no_wait: bool) -> int:
        """Append one command per instance, all in one transaction, and see them through; the worst exit code.

        With a request id KEY, each instance's command is keyed `KEY/NAME`: a
        repeated call makes no second command for any of them.
        """
        def append() -> list[str]:
            return [append_command(self.ledger, self.requester, name, command,
                                   request_key=None if request_id is None else f"{request_id}/{name}")[0]
                    for name in instances]

        if no_wait:
            commands = self._queued(append)
            self.stdout.queued(commands, as_json=self.as_json, as_list=True)
            return EXIT_OK
        self.app.host()
        commands = self._through(append, lambda command_ids: self.batch.requested(command, [
            self.projections.recorded_command(command_id) for command_id in command_ids]), self.batch.observe)
        self.batch.finished(commands)
        return worst_exit_code(command.outcome for command in commands)

    def cancel(self, command_id: str, no_wait: bool) -> int:
        """Record a cancel request for a command that has not ended, and follow that command.

        Exit 0 once it ended cancelled (or, with `no_wait`, once the request is
        recorded), also when it had been cancelled before (nothing is recorded
        then); 3 when it had finished otherwise, or finishes otherwise first.
        The host is built only if this process has to run the queue: a broken
        helper never blocks cancelling what an executor service runs.
        """
        target = self.known_command(command_id)
        if target.outcome == Outcome.CANCELLED:  # asked again: it already is what is asked for
            if no_wait:
                self.stdout.queued([target], as_json=self.as_json, as_list=False)
            else:
                self.printer.finished(target)
            return EXIT_OK
        self._unfinished(command_id)  # refused before anything is built or recorded

        def append() -> list[str]:
            """Record the cancel, asking again inside the transaction that records it: the command may have ended
            meanwhile (marked interrupted by this process's recovery, say)."""
            self.projections.sync()
            target = self._unfinished(command_id)
            append_cancel(self.ledger, self.requester, target)
            return [target.command_id]

        command = self.see(append, no_wait)
        if command.finished and command.outcome != Outcome.CANCELLED:
            return EXIT_REJECTED
        return EXIT_OK

    def see(self, append: Callable[[], list[str]], no_wait: bool) -> CommandView:
        """Record what `append` appends about one command (it gives that command's id), show the command, see it
        through unless `no_wait`, and return it as it ended (or stands)."""
        if no_wait:
            (command,) = self._queued(append)
            self.stdout.queued([command], as_json=self.as_json, as_list=False)
            return command
        def show(command_ids: Sequence[str]) -> None:
            (command_id,) = command_ids
            self.printer.requested(self.projections.recorded_command(command_id), command_id not in self._again)

        (command,) = self._through(append, show, self.printer.observe, self.printer.on_line)
        self.printer.finished(command)
        return command

    def _through(self, append: Callable[[], list[str]], show: Callable[[Sequence[str]], None], observer: Observer,
                 on_line: LineSink = lambda command, step, line: None) -> list[CommandView]:
        """Record what `append` appends and see its commands through (`requests.see_through`), `show`ing them
        once they are recorded; a ledger failure after that also says they stay queued."""
        recorded: list[str] = []

        def announce(command_ids: Sequence[str]) -> None:
            recorded.extend(command_ids)
            show(command_ids)

        with _queued_on_failure(recorded), self._waiting():
            return see_through(self.projections, ExecutorLock(self.settings.db), self.app.host, append,
                               announce=announce, observer=observer, on_line=on_line, warn=_warning)

    def _queued(self, append: Callable[[], list[str]]) -> list[CommandView]:
        """With --no-wait: record what `append` appends, in one durable commit with the projections' fold of it,
        and give the commands it is about (saying on stderr when nothing will run them yet)."""
        with self.ledger.transaction():  # the projections take the requests in the same commit
            command_ids = append()
            self.projections.sync()
        with _queued_on_failure(command_ids):
            commands = [self.projections.recorded_command(command_id) for command_id in command_ids]
            self._hint_without_executor(commands)
        return commands

    def _waiting(self) -> AbstractContextManager[object]:
        """A spinner while nothing is printed yet, on a terminal only."""
        return self.console.status("waiting for the executor…") if self.console.is_terminal else nullcontext()

    def _hint_without_executor(self, commands: Sequence[CommandView]) -> None:
        """With --no-wait: say on stderr when nothing will run the queued commands yet."""
        if not all(command.finished for command in commands) and not self._executor_running():
            hint("no executor is running: this command runs when `l4d2ctl executor` starts, or when the next "
                 "command that waits runs the queue")

    def _executor_running(self) -> bool:
        """Whether some process holds the executor lock right now."""
        lock = ExecutorLock(self.settings.db)
        if lock.try_acquire():
            lock.release()
            return False
        return True

    def _unfinished(self, command_id: str) -> CommandView:
        """The recorded command with this id, refused (`Rejected`) when it already ended."""
        target = self.known_command(command_id)
        if target.finished:
            raise Rejected(f"command {target.command_id} already ended ({target.outcome})")
        return target

    def known_command(self, command_id: str) -> CommandView:
        """The recorded command with this id (`InvalidInput` if malformed, `Rejected` if absent)."""
        return known_command(self.projections, command_id)


def _warning(message: str) -> None:
    """What this process, as the executor, waited out or could not do: one line on stderr as it happens, so a
    wait is never silent (the command goes on)."""
    hint(f"warning: {message}")


@contextmanager
def _queued_on_failure(command_ids: Sequence[str]) -> Iterator[None]:
    """A ledger or host failure once the commands were recorded (`command_ids` filled; a host built only then, to
    run the queue when the executor that ran it stopped): the one error line also says that they are recorded
    and that the next executor takes them up, and how to find them, so that nothing runs later unseen."""
    try:
        yield
    except (LedgerError, HostError) as error:
        if not command_ids:  # nothing was recorded
            raise
        first, more = command_ids[0], len(command_ids) - 1
        recorded = f"command {first}" if not more else f"commands {first} and {more} more"
        error.args = (f"{error} — recorded as {recorded}, which the next executor takes up (`l4d2ctl show {first}`)",)
        raise  # the same error, all it carries kept (a host error's stderr tail), with the longer line
