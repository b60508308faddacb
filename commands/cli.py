"""The `l4d2ctl` command line, built with click; the contract is shared/CLI.md."""

from __future__ import annotations

import json

import click
from rich.console import Console

from ledger import Ledger, verify_ledger

from .cli_edge import EXIT_LEDGER, EXIT_OK, L4d2ctlGroup
from .settings import DEFAULT_ROOT, Settings


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
