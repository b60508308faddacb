"""Rich renderings of what the projections hold, for people (scripts use --json)."""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.table import Column, Table

from ledger.lifecycle import UNDO_PREFIX, Outcome, State
from ledger.payloads import CommandFailedData
from projections import CommandView
from projections.views import StepView

from ..domain.text_rules import printable
from .progress import OUTCOME_STYLE

# Columns never cut (an id must stay copyable, a state readable), each at least as wide as its longest value.
WHOLE = {"state": max(map(len, State)), "id": 12, "outcome": 2 + max(map(len, OUTCOME_STYLE))}
# Columns that may fold, but not below this: a port, a date (its time folds below it).
NARROWEST = {"port": 5, "requested (UTC)": 10, "updated (UTC)": 10, "set (UTC)": 10}
# Columns kept whole before any other that may fold, up to this width: what a row is about.
NAMES = {"name", "instance"}
NAME_WHOLE_UP_TO = 24
# No column that folds gets narrower: a wide character (CJK, an emoji) takes two cells.
FOLD_FLOOR = 2
# How narrow the widest columns fold, one after another, before the others are cut too.
COMFORT = 16


class FittedTable(Table):
    """A table that fits the console's width by a rule of its own: ids, states and outcomes whole; every other
    column whole too when it is among the narrow ones, while the widest share what is left, each not below its
    floor (a name whole, a date as a date) unless even that does not fit. Rich's own shrinking evens out the
    columns that fold, which can take one below its narrowest; rich then widens it again past the edge, and
    the console cuts off the last column's characters (an id in a detail, a letter of every line)."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self._fit(console, options)
        yield from super().__rich_console__(console, options)

    def _fit(self, console: Console, options: ConsoleOptions) -> None:
        """Give each column its width for `options.max_width`, trying floors in turn, from names whole and every
        other column at its narrowest to every column that folds at FOLD_FLOOR; when even the columns never cut
        do not fit, the table keeps its width and the console cuts its right edge."""
        overhead = self._extra_width + sum(map(self._get_padding_width, range(len(self.columns))))
        room = options.max_width - overhead
        cells = [max((console.measure(cell, options=options).maximum for cell in column.cells), default=0)
                 for column in self.columns]
        # A header folds at its spaces at no cost; it is shown whole only with room to spare.
        natural = [max(width, *map(cell_len, str(column.header).split() or [""]))
                   for column, width in zip(self.columns, cells, strict=True)]
        least: list[int] = []
        for floor in _floors(self.columns, natural):
            least = [width if column.no_wrap else min(width, narrowest)
                     for column, width, narrowest in zip(self.columns, natural, floor, strict=True)]
            if sum(least) <= room:
                break
        widths = _shared(least, natural, max(room, sum(least)))
        for index, column in enumerate(self.columns):
            spare = room - sum(widths)
            if spare > 0:
                widths[index] = max(widths[index], min(widths[index] + spare, cell_len(str(column.header))))
        for column, width in zip(self.columns, widths, strict=True):
            column.width = width
        self.width = sum(widths) + overhead if sum(least) > room else None  # rich would shrink it its own way


def _floors(columns: list[Column], natural: list[int]) -> list[list[int]]:
    """The narrowest widths to try, in turn, for the columns that fold (given their natural widths): names whole
    and the rest at their narrowest; names whole, dates and ports at theirs, the rest at FOLD_FLOOR; every
    column at its narrowest; dates and ports at theirs, the rest at FOLD_FLOOR; everything at FOLD_FLOOR. A name
    folds before a date or a port is cut to pieces."""
    narrowest = [max(column.min_width or FOLD_FLOOR, FOLD_FLOOR) for column in columns]
    named = [max(min(width, NAME_WHOLE_UP_TO), floor) if column.header in NAMES else floor
             for column, width, floor in zip(columns, natural, narrowest, strict=True)]
    dated = [floor if column.header in NARROWEST else FOLD_FLOOR for column, floor in zip(columns, narrowest,
                                                                                           strict=True)]
    named_and_dated = [name if column.header in NAMES else date
                       for column, name, date in zip(columns, named, dated, strict=True)]
    return [named, named_and_dated, narrowest, dated, [FOLD_FLOOR] * len(columns)]


def _shared(least: list[int], natural: list[int], room: int) -> list[int]:
    """Widths within `room` (which holds `least`). First the widest columns fold, one after another, each down
    to a comfortable width (COMFORT, or less when it never was wider): most rows stay whole and a long detail
    takes the folding. If that is not enough, the columns still widest share the cut, each not below its
    least, and what is left of the room goes a character each to the widest of them."""
    comfortable = [max(floor, min(width, COMFORT)) for floor, width in zip(least, natural, strict=True)]
    widths, excess = list(natural), sum(natural) - room
    for index in sorted(range(len(widths)), key=lambda index: -natural[index]):
        cut = min(max(excess, 0), widths[index] - comfortable[index])
        widths[index] -= cut
        excess -= cut
    if excess <= 0:
        return widths

    def at(level: int) -> list[int]:
        return [max(floor, min(width, level)) for floor, width in zip(least, comfortable, strict=True)]

    level = 0
    while level < max(comfortable) and sum(at(level + 1)) <= room:
        level += 1
    widths = at(level)
    cut_short = sorted((index for index, width in enumerate(widths) if width < comfortable[index]),
                       key=lambda index: -comfortable[index])
    for index in cut_short[:room - sum(widths)]:
        widths[index] += 1
    return widths


def _table(title: str, columns: list[str]) -> Table:
    """A table that stays readable at 80 columns: light borders; ids, states and outcomes never cut, the rest folds."""
    table = FittedTable(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                        collapse_padding=True)
    for column in columns:
        narrowest = WHOLE.get(column, NARROWEST.get(column, min(len(column), 8)))
        table.add_column(column, no_wrap=column in WHOLE, min_width=narrowest, overflow="fold")
    return table


STATE_STYLE = {State.RUNNING: "green", State.INITIALIZED: "cyan", State.STOPPED: "yellow", State.FAILED: "red",
               State.RESET: "magenta", State.DELETED: "dim"}


def _text(value: object) -> str:
    return "" if value is None else escape(printable(str(value)))


def _when(moment: str | None) -> str:
    return "" if moment is None else moment[:19].replace("T", " ")


def _outcome(outcome: str | None) -> str:
    if outcome is None:
        return ""
    mark, colour = OUTCOME_STYLE[Outcome(outcome)]
    return f"[{colour}]{mark} {outcome}[/{colour}]"


def status_table(instances: list[dict[str, Any]]) -> Table:
    """Instances (status objects) and their recorded state; with live fields, unit, server and drift too."""
    live = bool(instances) and "unit" in instances[0]
    columns = ["name", "state", "port"] + (["unit", "server", "drift"] if live else
                                            ["last command", "id", "outcome", "by", "updated (UTC)"])
    table = _table("Instances" + (" (recorded state, and live)" if live else " (recorded state)"), columns)
    for instance in instances:
        colour = "white" if instance["state"] is None else STATE_STYLE[State(instance["state"])]
        cells = [_text(instance["name"]), f"[{colour}]{instance['state']}[/{colour}]", _text(instance["port"])]
        if not live:
            cells += [_text(instance["last_command"]), _text(instance["last_command_id"]),
                      _outcome(instance["last_outcome"]), _text(instance["last_actor"]), _when(instance["updated_at"])]
        else:
            query = instance["query"]
            server = f"{_text(query['map'])} {query['players']}/{query['max_players']}" if query else "—"
            drift = "; ".join(instance["drift"])
            cells += [instance["unit"], server, f"[red]{_text(drift)}[/red]" if drift else "[green]none[/green]"]
        table.add_row(*cells)
    return table


def commands_table(title: str, commands: list[CommandView], *, with_instance: bool) -> Table:
    """Commands oldest first: when, what, who (and the real OS user), how it ended."""
    columns = ["requested (UTC)", "command", "id", *(["instance"] if with_instance else []), "actor (os user)",
               "outcome", "detail"]
    table = _table(title, columns)
    for command in commands:
        links = [f"retry of {command.retry_of}"] if command.retry_of else []
        links += [f"replay of {command.replay_of}"] if command.replay_of else []
        detail = "; ".join([*links, *([printable(command.error)] if command.error else [])])
        who = command.actor if command.actor == command.os_user else f"{command.actor} ({command.os_user})"
        table.add_row(_when(command.requested_at), command.command, command.command_id,
                      *([_text(command.instance)] if with_instance else []), _text(who),
                      _outcome(command.outcome), escape(detail))
    return table


def _print_step(console: Console, step: StepView) -> None:
    console.print(f"  [green]✓[/green] {_text(step['step'])}  [dim]{_when(step['at'])}[/dim]", highlight=False)
    for line in step["output"]:
        console.print(f"      [dim]{_text(line)}[/dim]", highlight=False)


def print_command(console: Console, command: CommandView, steps: list[StepView],
                  failure: CommandFailedData | None = None) -> None:
    """One command in full: who asked, when it ran, every step with its output, how it ended."""
    console.print(f"[bold]{command.command} {_text(command.instance)}[/bold]  command {command.command_id}",
                  highlight=False)
    console.print(f"  requested {_when(command.requested_at)} by {_text(command.actor)} "
                  f"(os user {_text(command.os_user)})", highlight=False)
    for label, value in (("retry of", command.retry_of), ("replay of", command.replay_of),
                         ("started", _when(command.started_at)), ("finished", _when(command.finished_at))):
        if value:
            console.print(f"  {label} {value}", highlight=False)
    for key, value in sorted(command.args.items()):
        shown = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
        console.print(f"  {_text(key)}: {_text(shown)}", highlight=False)
    done = [step for step in steps if not step["step"].startswith(UNDO_PREFIX)]
    undone = [step for step in steps if step["step"].startswith(UNDO_PREFIX)]
    for step in done:
        _print_step(console, step)
    if failure:
        console.print(f"  [red]✗[/red] {_text(failure['step'])}", highlight=False)
        tail = [line for line in failure["stderr_tail"] if line not in failure["output"]]
        for line in failure["output"] + tail:
            console.print(f"      [dim]{_text(line)}[/dim]", highlight=False)
    for step in undone:
        _print_step(console, step)
    detail = f": {_text(command.error)}" if command.error else ""
    console.print(f"  {_outcome(command.outcome)}{detail}", highlight=False)


def print_secrets(console: Console, name: str, secrets: list[dict[str, str]]) -> None:
    """An instance's secret cvars: fingerprint, when set, by whom (values are never known here)."""
    if not secrets:
        console.print(f"{name} has no secrets set (`l4d2ctl secret set {name} rcon_password` sets one)")
        return
    table = _table(f"Secrets of {name}", ["cvar", "fingerprint", "set (UTC)", "by"])
    for secret in secrets:
        table.add_row(secret["cvar"], secret["fingerprint"], _when(secret["set_at"]), _text(secret["actor"]))
    console.print(table)


def print_backups(console: Console, name: str, backups: list[dict[str, Any]]) -> None:
    """An instance's backups, oldest first: id, when taken, size, sha256 (and a manifest that cannot be read)."""
    if not backups:
        console.print(f"{name} has no backups (`l4d2ctl backup {name}` takes one while it is stopped)")
        return
    table = _table(f"Backups of {name}", ["id", "taken (UTC)", "size", "sha256"])
    for backup in backups:
        if backup.get("error"):
            table.add_row(_text(backup["id"]), "-", "-", _text(backup["error"]))
            continue
        table.add_row(_text(backup["id"]), _when(backup["taken_at"]), f"{backup['size']:,}", _text(backup["sha256"]))
    console.print(table)
