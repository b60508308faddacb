"""The `l4d2ctl` command line, built with click; the contract is shared/CLI.md."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
from pathlib import Path

import click
from rich.console import Console

from host_adapters import Host, HostError, HostUnavailable
from host_adapters.factory import build_host
from ledger import Ledger, LedgerError, verify_ledger
from projections import CommandView

from .cli_edge import EXIT_LEDGER, EXIT_OK, L4d2ctlGroup, exit_code_of
from .cli_output import CommandPrinter
from .errors import InvalidInput, Rejected
from .executor import Executor
from .executor_lock import ExecutorLock
from .names import validate_name
from .requests import (
    Requester,
    append_cancel,
    append_command,
    current_view,
    executor_loop,
    resolve_actor,
    see_through,
)
from .settings import DEFAULT_ROOT, Settings, os_user
from .spec import load_spec
from .text_rules import printable

COMMAND_ID = re.compile(r"[0-9a-f]{12}")
REQUEST_ID_MAX = 200


@click.group(cls=L4d2ctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="LEFT4ME_ROOT", default=DEFAULT_ROOT, show_default=True,
              help="Host root holding installation/, overlays/, instances/, runtime/.")
@click.option("--db", envvar="L4D2CTL_DB", help="Ledger file (default: <root>/ledger.db).")
@click.option("--actor", envvar="L4D2CTL_ACTOR", help="Who to record as acting (default: the invoking user).")
@click.option("--host", "host", envvar="L4D2CTL_HOST", type=click.Choice(["systemd", "simulated"]),
              default="systemd", show_default=True, help="Drive real systemd, or simulate mounts and units.")
@click.pass_context
def cli(ctx: click.Context, root: str, db: str | None, actor: str | None, host: str) -> None:
    """Event-sourced lifecycle control for Left 4 Dead 2 dedicated servers."""
    ctx.obj = Settings.from_options(root, db, actor, host)


def lifecycle(function):
    """The options every lifecycle command shares: --no-wait, --json, --request-id."""

    @click.option("--no-wait", is_flag=True, help="Print the command id and return without waiting.")
    @click.option("--json", "as_json", is_flag=True, help="Print the command as a JSON object.")
    @click.option("--request-id", help="Idempotency key: the same key never makes a second command.")
    @functools.wraps(function)
    def wrapper(*args, request_id: str | None, **kwargs):
        if request_id is not None and (not request_id or len(request_id) > REQUEST_ID_MAX or not request_id.isprintable()):
            raise InvalidInput(f"--request-id: must be 1-{REQUEST_ID_MAX} printable characters")
        return function(*args, request_id=request_id, **kwargs)

    return wrapper


class Session:
    """One lifecycle invocation: who asks, the ledger, the host, and how progress is shown."""

    def __init__(self, settings: Settings, as_json: bool):
        self.settings = settings
        self.requester = Requester(resolve_actor(settings.actor, dict(os.environ), os_user()), os_user())
        self.host = _host(settings)
        self.printer = CommandPrinter(Console(), simulated=self.host.simulated, as_json=as_json)
        self.ledger = Ledger.open(settings.db)

    def follow(self, command_id: str, created: bool, no_wait: bool) -> int:
        """Show the command, see it through unless `no_wait`, and return its exit code."""
        view = current_view(self.ledger)
        self.printer.requested(view.commands[command_id], created)
        if no_wait:
            command = view.commands[command_id]
        else:
            command = see_through(self.ledger, ExecutorLock(self.settings.db), lambda: self.host, command_id,
                                  observer=self.printer.observe, on_line=self.printer.on_line)
        self.printer.finished(command)
        return exit_code_of(command.outcome)

    def request(self, instance: str, command: str, args: dict | None = None, *, request_id: str | None,
                no_wait: bool, **links: str) -> int:
        """Append a command (once per request id) and follow it."""
        command_id, created = append_command(self.ledger, self.requester, instance, command, args,
                                             request_key=request_id, **links)
        return self.follow(command_id, created, no_wait)

    def known_command(self, command_id: str) -> CommandView:
        """The recorded command with this id; `Rejected` when the ledger has none."""
        if not COMMAND_ID.fullmatch(command_id):
            raise InvalidInput(f"command id {printable(command_id)!r}: must be 12 hex digits")
        command = current_view(self.ledger).commands.get(command_id)
        if command is None:
            raise Rejected(f"no command {command_id} in ledger {self.settings.db}")
        return command


def _host(settings: Settings) -> Host:
    root = str(settings.root)
    if any(char in root for char in ":,\\") or not root.isprintable():
        raise InvalidInput(f"--root {printable(root)!r}: must not contain ':', ',', '\\' or control characters")
    try:
        return build_host(settings.host, settings.root)
    except HostUnavailable as error:
        raise InvalidInput(str(error)) from None


@cli.command()
@click.argument("name")
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The instance's YAML spec.")
@lifecycle
@click.pass_obj
def init(settings: Settings, name: str, spec_path: Path, no_wait: bool, as_json: bool, request_id: str | None) -> int:
    """Create an instance from a spec (or update its blueprint)."""
    validate_name(name)
    spec = load_spec(spec_path)
    return Session(settings, as_json).request(name, "init", {"spec": spec.to_document()},
                                              request_id=request_id, no_wait=no_wait)


def _simple_lifecycle(command: str, summary: str) -> None:
    @cli.command(name=command, help=summary)
    @click.argument("name")
    @lifecycle
    @click.pass_obj
    def run(settings: Settings, name: str, no_wait: bool, as_json: bool, request_id: str | None) -> int:
        validate_name(name)
        return Session(settings, as_json).request(name, command, request_id=request_id, no_wait=no_wait)


_simple_lifecycle("start", "Stage the instance's cfg files and start its unit (re-initializing after a reset).")
_simple_lifecycle("stop", "Stop and disable the instance's unit and unmount its overlay.")
_simple_lifecycle("delete", "Stop the instance and remove its files; only a new init brings it back.")
_simple_lifecycle("reset", "Stop the instance and remove its files; the next start re-initializes it.")


def _rerun(command: str, link: str, summary: str) -> None:
    @cli.command(name=command, help=summary)
    @click.argument("command_id")
    @lifecycle
    @click.pass_obj
    def run(settings: Settings, command_id: str, no_wait: bool, as_json: bool, request_id: str | None) -> int:
        session = Session(settings, as_json)
        original = session.known_command(command_id)
        return session.request(original.instance, original.command, original.args, request_id=request_id,
                               no_wait=no_wait, **{link: original.command_id})


_rerun("retry", "retry_of", "Re-run a failed, interrupted or cancelled command.")
_rerun("replay", "replay_of", "Re-run any finished command with the same arguments.")


@cli.command()
@click.argument("command_id")
@click.option("--no-wait", is_flag=True, help="Return once the cancel is recorded.")
@click.option("--json", "as_json", is_flag=True, help="Print the cancelled command as a JSON object.")
@click.pass_obj
def cancel(settings: Settings, command_id: str, no_wait: bool, as_json: bool) -> int:
    """Ask a pending or running command to stop between steps; exits with its outcome."""
    session = Session(settings, as_json)
    target = session.known_command(command_id)
    if target.finished:
        raise Rejected(f"command {command_id} already ended ({target.outcome})")
    append_cancel(session.ledger, session.requester, target)
    return session.follow(command_id, True, no_wait)


@cli.command()
@click.option("--once", is_flag=True, help="Drain the queue, then exit.")
@click.pass_obj
def executor(settings: Settings, once: bool) -> int:
    """Run the executor: take requested commands in ledger order and apply them to the host."""
    host = _host(settings)
    lock = ExecutorLock(settings.db)
    with Ledger.open(settings.db) as ledger:
        if not lock.try_acquire():
            raise LedgerError(f"another executor (pid {lock.holder() or 'unknown'}) holds {lock.path}")
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        console = Console(stderr=True)
        prefix = "\\[simulated] " if host.simulated else ""

        def report(row: dict) -> None:
            if row["type"] in ("CommandStarted", "CommandSucceeded", "CommandFailed", "CommandRejected",
                               "CommandCancelled", "CommandInterrupted"):
                console.print(f"{prefix}{row['recorded_at']} {row['command_id']} {row['instance']}: {row['type']}",
                              soft_wrap=True, highlight=False)

        try:
            worker = Executor(ledger, host, observer=report)
            worker.recover()
            executor_loop(worker, once, stopping=lambda: bool(stopping))
        finally:
            lock.release()
    return EXIT_OK


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print {ok, events, first_bad_seq} as JSON.")
@click.pass_obj
def verify(settings: Settings, as_json: bool) -> int:
    """Re-walk the hash chain and run SQLite's integrity check (exit 4 on a break)."""
    with Ledger.open(settings.db, create=False) as ledger:
        report = verify_ledger(ledger)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "events": report.events,
                               "first_bad_seq": report.first_bad_seq, "reason": report.reason}))
    elif report.ok:
        Console(soft_wrap=True).print(f"[green]✓[/green] ledger {settings.db}: {report.events} events, chain intact")
    else:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]✗[/red] ledger {settings.db}: broken — {report.reason}", markup=True, highlight=False
        )
    return EXIT_OK if report.ok else EXIT_LEDGER


def main() -> None:
    """Console-script entry point."""
    cli.main()
