"""What a person sees while a lifecycle command runs: its steps as they complete, and its outcome."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from typing import cast

from rich.console import Console
from rich.markup import escape

from ledger.lifecycle import TERMINAL_TYPES, Command, EventType, Outcome
from ledger.payloads import CommandFailedData, EventRecord, StepCompletedData
from projections import CommandView

from ..domain.text_rules import printable
from .stdout import Stdout, silence

OUTCOME_STYLE = {
    Outcome.SUCCEEDED: ("✓", "green"),
    Outcome.FAILED: ("✗", "red"),
    Outcome.REJECTED: ("✗", "yellow"),
    Outcome.CANCELLED: ("■", "yellow"),
    Outcome.INTERRUPTED: ("✗", "red"),
    Outcome.PENDING: ("…", "cyan"),
    Outcome.RUNNING: ("…", "cyan"),
    Outcome.OBSERVED: ("◆", "magenta"),
}


class OutputConsole(Console):
    """A console for a command's progress (stdout) or its reasons (stderr): when its reader goes away
    (`| head -1`) it falls silent instead of exiting (rich's default), so the command runs to its outcome and
    exit code all the same."""

    def on_broken_pipe(self) -> None:
        """Drop the rest of the output; never stop the command."""
        self.quiet = True
        silence(sys.stderr if self.stderr else sys.stdout)


class CommandPrinter:
    """Prints one command's progress for people; in JSON mode stays silent until the end."""

    def __init__(self, console: Console, stdout: Stdout, *, simulated: bool, as_json: bool):
        self.console = console
        self.stdout = stdout
        self.errors = OutputConsole(stderr=True)
        self.prefix = "[dim]\\[simulated][/dim] " if simulated else ""
        self.as_json = as_json
        self.command_id: str | None = None
        self._streamed: set[str] = set()

    def line(self, markup: str) -> None:
        """One line of output, marked as simulated when the host is."""
        if not self.as_json:
            self.stdout.write(lambda: self.console.print(f"{self.prefix}{markup}", soft_wrap=True, highlight=False))

    def requested(self, command: CommandView, created: bool) -> None:
        """Announce the command this invocation is about."""
        self.command_id = command.command_id
        again = "" if created else " [dim](already requested with this request id)[/dim]"
        self.line(f"[bold]{command.command} {escape(command.instance)}[/bold]  command {command.command_id}, "
                  f"by {escape(printable(command.actor))}{again}")

    def on_line(self, command: CommandView, step: str, line: str) -> None:
        """A line a step printed while it ran."""
        if command.command_id == self.command_id:
            self._streamed.add(step)
            self.line(f"    [dim]{escape(printable(line))}[/dim]")

    def observe(self, event: EventRecord) -> None:
        """An event just recorded: show it if it belongs to this command."""
        if event.command_id != self.command_id:
            return
        if event.type == EventType.STEP_COMPLETED:
            step = cast(StepCompletedData, event.payload)
            self.line(f"  [green]✓[/green] {escape(step['step'])}")
            if step["step"] not in self._streamed:
                for output in step["output"]:
                    self.line(f"    [dim]{escape(printable(output))}[/dim]")
        elif event.type == EventType.CANCEL_REQUESTED:
            self.line(f"  [yellow]cancel requested by {escape(printable(event.actor))}[/yellow]")
        elif event.type == EventType.COMMAND_FAILED:
            failed = cast(CommandFailedData, event.payload)
            if failed["step"]:
                self.line(f"  [red]✗[/red] {escape(failed['step'])} [dim](failed; anything undone is above)[/dim]")

    def finished(self, command: CommandView) -> None:
        """The outcome, as a line for people or the history object as JSON; and why, if it did not succeed."""
        if self.as_json:
            self.stdout.queued([command], as_json=True, as_list=False)
            self.reason(command)
            return
        mark, colour = OUTCOME_STYLE[Outcome(command.outcome)]
        self.line(f"[{colour}]{mark} {command.command} {escape(command.instance)} {command.outcome}[/{colour}]")
        self.reason(command)

    def reason(self, command: CommandView) -> None:
        """Why a command did not succeed, as one line on stderr (nothing for one that did).

        The step stream stays on stdout (flushed by `line`, so the outcome line
        comes first even where stdout is a pipe); a script that drops stdout
        still learns why from stderr.
        """
        if command.error is not None:
            self.errors.print(f"{self.prefix}l4d2ctl: {command.command} {escape(command.instance)} "
                              f"{command.outcome}: {escape(printable(command.error))}", soft_wrap=True,
                              highlight=False)


class BatchPrinter:
    """Prints a bulk call's progress: one line per command as it ends, then a summary (JSON: one list)."""

    def __init__(self, console: Console, stdout: Stdout, *, simulated: bool, as_json: bool,
                 recorded: Callable[[str], CommandView]):
        self.single = CommandPrinter(console, stdout, simulated=simulated, as_json=as_json)
        self.as_json = as_json
        self.recorded = recorded
        self.command_ids: set[str] = set()
        self._shown: set[str] = set()

    def requested(self, kind: Command, commands: Sequence[CommandView]) -> None:
        """Announce the batch: the command and how many instances."""
        self.command_ids = {command.command_id for command in commands}
        actor = escape(printable(commands[0].actor))
        self.single.line(f"[bold]{kind} {len(commands)} instances[/bold], by {actor}")

    def observe(self, event: EventRecord) -> None:
        """An event just recorded: a line when it ends one of the batch's commands."""
        if event.command_id in self.command_ids and event.type in TERMINAL_TYPES:
            self._ended(self.recorded(event.command_id))

    def _ended(self, command: CommandView) -> None:
        """The line of one command of the batch that ended (once per command)."""
        if command.command_id in self._shown:
            return
        self._shown.add(command.command_id)
        mark, colour = OUTCOME_STYLE[Outcome(command.outcome)]
        why = "" if command.error is None else f" [dim]— {escape(printable(command.error))}[/dim]"
        self.single.line(f"  [{colour}]{mark}[/{colour}] {command.command} {escape(command.instance)} "
                         f"{command.outcome}{why}")

    def finished(self, commands: Sequence[CommandView]) -> None:
        """The summary: how many ended how (the list of command objects, with --json); and why each that did not
        succeed did not."""
        if self.as_json:
            self.single.stdout.queued(commands, as_json=True, as_list=True)
            for command in commands:
                self.single.reason(command)
            return
        for command in commands:  # those that had ended before this call (the same request id again)
            self._ended(command)
        counts = Counter(command.outcome for command in commands)
        parts = [f"{counts[outcome]} {outcome}" for outcome in Outcome if counts[outcome]]
        worst = next((outcome for outcome in (Outcome.FAILED, Outcome.INTERRUPTED, Outcome.CANCELLED,
                                              Outcome.REJECTED) if counts[outcome]), Outcome.SUCCEEDED)
        mark, colour = OUTCOME_STYLE[worst]
        self.single.line(f"[{colour}]{mark} {len(commands)} commands: {', '.join(parts)}[/{colour}]")
        for command in commands:
            self.single.reason(command)
