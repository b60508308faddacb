"""The `l4d2ctl` command line, built with click; the contract is docs/cli.md.

Reading commands import only what reading needs; the lifecycle machinery
(spec models, executor, host adapters) loads inside the commands that use it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeVar, cast

import click

from host_adapters.protocols import HostKind
from ledger.errors import LedgerError
from ledger.lifecycle import INSTALLATION, ON_INSTALLATION, ROW_KINDS, Command, Outcome, State, refusal

from ..domain.errors import InvalidInput, Rejected
from ..domain.names import KEEP_MAX
from ..domain.text_rules import SECRET_VALUE_PATTERN, SECRET_VALUE_RULE, shown
from ..service.limits import DEFAULT_JOBS
from .app import App
from .edge import EXIT_LEDGER, EXIT_OK, L4d2ctlGroup, hint
from .params import COMMAND_ID_PREFIX, CVAR, INSTANCE_NAME, MOMENT, PRINTABLE_TEXT, REQUEST_KEY, SPEC_FILE, Seconds
from .settings import DEFAULT_HELPER, DEFAULT_LOCK_TIMEOUT, DEFAULT_ROOT, DEFAULT_STEAMCMD, Settings

if TYPE_CHECKING:
    from rich.console import Console

    from projections import CommandView, Projections

    from ..domain.spec import Spec
    from ..service.replication import Litestream
    from .session import Session

CommandFunction = TypeVar("CommandFunction", bound=Callable[..., Any])
BACKUP_FIELDS = ("id", "taken_at", "size", "sha256", "excludes", "command_id", "error")


@click.group(cls=L4d2ctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="l4d2ctl", prog_name="l4d2ctl", message="%(prog)s %(version)s")
@click.option("--root", envvar="LEFT4ME_ROOT", default=DEFAULT_ROOT, show_default=True, metavar="PATH",
              help="Host root holding installation/, overlays/, instances/, runtime/.")
@click.option("--db", envvar="L4D2CTL_DB", metavar="PATH", help="Ledger file (default: <root>/ledger.db).")
@click.option("--actor", envvar="L4D2CTL_ACTOR", help="Who to record as acting (default: the invoking user).")
@click.option("--host", "host", envvar="L4D2CTL_HOST", type=click.Choice([kind.value for kind in HostKind]),
              default=HostKind.SYSTEMD.value, show_default=True,
              help="Drive real systemd, or simulate mounts and units.")
@click.option("--lock-timeout", envvar="L4D2CTL_LOCK_TIMEOUT", type=Seconds(0, 3600),
              default=DEFAULT_LOCK_TIMEOUT, show_default=True,
              help="Seconds to wait for the ledger's write lock before giving up (exit 4).")
@click.option("--helper", envvar="L4D2CTL_HELPER", metavar="PATH", default=DEFAULT_HELPER, show_default=True,
              type=click.Path(dir_okay=False),
              help="The privileged helper every root step goes through (through `sudo -n` when not root).")
@click.option("--steamcmd", envvar="L4D2CTL_STEAMCMD", metavar="PATH", default=DEFAULT_STEAMCMD, show_default=True,
              type=click.Path(dir_okay=False),
              help="SteamCMD, by absolute path: what install and update run (as this process's user).")
@click.pass_context
def cli(ctx: click.Context, root: str, db: str | None, actor: str | None, host: str, lock_timeout: float,
        helper: str, steamcmd: str) -> None:
    """Event-sourced lifecycle control for Left 4 Dead 2 dedicated servers.

    Every command is appended to a hash-chained SQLite ledger first, then
    applied to the host by one executor; status, history and audit are
    derived from the ledger.
    """
    for option, value in (("--root", root), ("--db", db)):
        if value is not None and not value.isprintable():
            raise InvalidInput(f"{option} {shown(value)}: must be a path of printable characters")
    settings = Settings.from_options(root, db, actor, host, lock_timeout, helper, steamcmd)
    settings.check_ledger_place()
    ctx.obj = App(settings)


# --- lifecycle -----------------------------------------------------------------------------------


def _session(app: App, as_json: bool) -> Session:
    """The session a lifecycle command runs in (loaded only by commands that act)."""
    from .session import Session

    return Session(app, as_json)


def lifecycle(function: CommandFunction) -> CommandFunction:
    """The options every lifecycle command shares: --no-wait, --json, --request-id."""
    for decorate in reversed((
        click.option("--no-wait", is_flag=True, help="Print the command id and return without waiting."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print the command as a JSON object (start, stop, restart, delete, reset: a list of them "
                          "for several names or --all)."),
        click.option("--request-id", type=REQUEST_KEY,
                     help="Idempotency key: the same key never makes a second command."),
    )):
        function = decorate(function)
    return function


NAME = click.argument("name", type=INSTANCE_NAME)
COMMAND_ID = click.argument("command_id", type=COMMAND_ID_PREFIX)


@cli.command()
@NAME
@click.option("--spec", required=True, type=SPEC_FILE, metavar="FILE", help="The instance's YAML spec.")
@lifecycle
@click.pass_obj
def init(app: App, name: str, spec: Spec, no_wait: bool, as_json: bool, request_id: str | None) -> int:
    """Create an instance from a spec (or update its blueprint)."""
    return _session(app, as_json).request(name, Command.INIT, {"spec": spec.to_document()},
                                          request_id=request_id, no_wait=no_wait)


@cli.command(context_settings={"ignore_unknown_options": True})
@NAME
@click.argument("words", nargs=-1, required=True, metavar="CMD...")
@lifecycle
@click.pass_obj
def console(app: App, name: str, words: tuple[str, ...], no_wait: bool, as_json: bool, request_id: str | None) -> int:
    """Send one command to a running instance's server over RCON (with its rcon_password secret) and print the
    reply; recorded, with the reply."""
    from ..domain.names import validate_console_text

    return _session(app, as_json).request(name, Command.CONSOLE, {"text": validate_console_text(" ".join(words))},
                                          request_id=request_id, no_wait=no_wait)


@cli.command()
@NAME
@lifecycle
@click.pass_obj
def adopt(app: App, name: str, no_wait: bool, as_json: bool, request_id: str | None) -> int:
    """Record an instance already on disk (instances/NAME/spec.yaml and the files init writes) as initialized,
    or running if its unit is; touches nothing."""
    from host_adapters import HostError

    from ..domain.errors import InvalidSpec
    from ..domain.spec import load_spec_text

    host = app.host()
    where = f"instances/{name}/spec.yaml"
    try:
        spec = load_spec_text(host.fs.read_bytes(where))
    except HostError as error:
        raise InvalidInput(f"nothing to adopt: {error}") from None
    except InvalidSpec as error:
        raise InvalidSpec(f"{where}: {error}") from None
    running = host.services.status(name).active
    return _session(app, as_json).request(name, Command.ADOPT, {"spec": spec.to_document(), "running": running},
                                          request_id=request_id, no_wait=no_wait)


@cli.command()
@lifecycle
@click.pass_obj
def install(app: App, no_wait: bool, as_json: bool, request_id: str | None) -> int:
    """Fill the shared installation with SteamCMD (app 222860, anonymous; --steamcmd); refused while instances run
    on it (`update` stops and starts them)."""
    _check_steamcmd(app, no_wait)
    return _session(app, as_json).request(INSTALLATION, Command.INSTALL, request_id=request_id, no_wait=no_wait)


@cli.command()
@lifecycle
@click.pass_obj
def update(app: App, no_wait: bool, as_json: bool, request_id: str | None) -> int:
    """Update the shared installation with SteamCMD: stop the instances recorded running, update, start again
    exactly those (each stop and start a command of its instance, linked to the update)."""
    _check_steamcmd(app, no_wait)
    return _session(app, as_json).request(INSTALLATION, Command.UPDATE, request_id=request_id, no_wait=no_wait)


def _check_steamcmd(app: App, no_wait: bool) -> None:
    """Refuse, before anything is recorded, a SteamCMD this process would run that is not given by absolute path
    (with `no_wait`, the executor that runs the command uses its own)."""
    if not no_wait and not os.path.isabs(app.settings.steamcmd):
        raise InvalidInput(f"--steamcmd {shown(app.settings.steamcmd)}: give it by absolute path; nothing was recorded")


@cli.command()
@NAME
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB",
              help="Leave out what matches: a glob with '/' matches the path from the upper layer "
                   "(left4dead2/logs/*), one without an entry's name (*.dem). Repeatable.")
@click.option("--keep", type=click.IntRange(1, KEEP_MAX), metavar="N",
              help="Then remove this instance's oldest backups beyond the newest N.")
@lifecycle
@click.pass_obj
def backup(app: App, name: str, excludes: tuple[str, ...], keep: int | None, no_wait: bool, as_json: bool,
           request_id: str | None) -> int:
    """Archive a stopped instance's upper layer (what its server wrote) with a manifest and sha256 under
    <root>/backups/NAME/; the backup's id is the command's."""
    from ..domain.names import validate_excludes

    args: dict[str, Any] = {"exclude": validate_excludes(list(excludes))}
    if keep is not None:
        args["keep"] = keep
    return _session(app, as_json).request(name, Command.BACKUP, args, request_id=request_id, no_wait=no_wait)


@cli.command()
@NAME
@click.option("--json", "as_json", is_flag=True, help="Print a list of objects.")
@click.pass_obj
def backups(app: App, name: str, as_json: bool) -> int:
    """An instance's backups, oldest first: id, when taken, size, sha256."""
    rows = [{key: manifest.get(key) for key in BACKUP_FIELDS} for manifest in app.host().backups.manifests(name)]
    if as_json:
        _emit_json(rows)
    else:
        from .tables import print_backups

        print_backups(_console(), name, rows)
    return EXIT_OK


@cli.command()
@NAME
@click.argument("backup_id", type=COMMAND_ID_PREFIX)
@lifecycle
@click.pass_obj
def restore(app: App, name: str, backup_id: str, no_wait: bool, as_json: bool, request_id: str | None) -> int:
    """Replace a stopped instance's upper layer with a backup (any unique prefix of its id), once the archive's
    sha256 is found to be its manifest's."""
    ids = [manifest["id"] for manifest in app.host().backups.manifests(name) if manifest["id"].startswith(backup_id)]
    if len(ids) != 1:
        raise InvalidInput(f"backup id {backup_id}: {'no backup' if not ids else 'ambiguous: ' + ', '.join(ids)} "
                           f"of {name} (`l4d2ctl backups {name}` lists them)")
    return _session(app, as_json).request(name, Command.RESTORE, {"backup": ids[0]}, request_id=request_id,
                                          no_wait=no_wait)


def _simple_lifecycle(command: Command, summary: str) -> None:
    @cli.command(name=command.value, help=f"{summary} Takes one or more names, or --all.")
    @click.argument("names", nargs=-1, type=INSTANCE_NAME, metavar="NAME...")
    @click.option("--all", "every", is_flag=True,
                  help="Every instance whose recorded state allows this command (deleted ones never).")
    @lifecycle
    @click.pass_obj
    def run(app: App, names: tuple[str, ...], every: bool, no_wait: bool, as_json: bool,
            request_id: str | None) -> int:
        if every and names:
            raise InvalidInput(f"{command}: give instance names or --all, not both")
        if not every and not names:
            raise InvalidInput(f"{command}: give one or more instance names, or --all")
        session = _session(app, as_json)
        if not every and len(set(names)) == 1:
            return session.request(names[0], command, request_id=request_id, no_wait=no_wait)
        targets = _every_instance_allowing(session.projections, command) if every else list(dict.fromkeys(names))
        if not targets:
            hint(f"no instance's recorded state allows {command}: nothing was recorded")
            if as_json:
                _emit_json([])
            return EXIT_OK
        return session.request_each(targets, command, request_id=request_id, no_wait=no_wait)


def _every_instance_allowing(projections: Projections, command: Command) -> list[str]:
    """The instances --all means: known, not deleted, and in a state that allows `command`, by name."""
    return [instance.name for instance in projections.instances()
            if instance.recorded_state not in (None, State.DELETED)
            and refusal(command, instance.recorded_state, instance.name) is None]


_simple_lifecycle(Command.START, "Stage the instance's cfg files, start its unit and wait until the server answers "
                                 "A2S_INFO (re-initializing after a reset); a start that does not get there is undone.")
_simple_lifecycle(Command.STOP, "Stop and disable the instance's unit and unmount its overlay.")
_simple_lifecycle(Command.RESTART, "Stop, then start (waiting until the server answers), as one command.")
_simple_lifecycle(Command.DELETE, "Stop the instance and remove its files; only a new init brings it back.")
_simple_lifecycle(Command.RESET, "Stop the instance and remove its files; the next start re-initializes it.")


def _rerun(command: str, link: str, summary: str) -> None:
    @cli.command(name=command, help=summary)
    @COMMAND_ID
    @lifecycle
    @click.pass_obj
    def run(app: App, command_id: str, no_wait: bool, as_json: bool, request_id: str | None) -> int:
        session = _session(app, as_json)
        original = session.known_command(command_id)
        if original.outcome == Outcome.OBSERVED:
            raise Rejected(f"{command_id} is an observation ({original.command}), a fact about the host: "
                           f"it cannot be re-run")
        if original.command in ON_INSTALLATION:
            _check_steamcmd(app, no_wait)
        return session.request(original.instance, original.command, original.args, request_id=request_id,
                               no_wait=no_wait, **{link: original.command_id})


_rerun("retry", "retry_of", "Re-run a failed, interrupted or cancelled command.")
_rerun("replay", "replay_of", "Re-run any finished command with the same arguments.")


@cli.command()
@COMMAND_ID
@click.option("--no-wait", is_flag=True, help="Return once the cancel is recorded.")
@click.option("--json", "as_json", is_flag=True, help="Print the cancelled command as a JSON object.")
@click.pass_obj
def cancel(app: App, command_id: str, no_wait: bool, as_json: bool) -> int:
    """Ask a pending or running command to stop between steps (exit 0 once cancelled; 3 if it finished first)."""
    return _session(app, as_json).cancel(command_id, no_wait)


@cli.group()
def secret() -> None:
    """Secret cvars (rcon_password, sv_password): values kept outside the ledger, which records fingerprints."""


CVAR_ARGUMENT = click.argument("cvar", type=CVAR)


@secret.command(name="set")
@NAME
@CVAR_ARGUMENT
@lifecycle
@click.pass_obj
def secret_set(app: App, name: str, cvar: str, no_wait: bool, as_json: bool, request_id: str | None) -> int:
    """Set CVAR of an instance to a value read from stdin (not echoed); the next start stages it into server.cfg."""
    from ..service.secrets import hand_over

    value = _read_secret_value()
    session = _session(app, as_json)
    args = hand_over(session.projections, app.host, name, cvar, value)
    return session.request(name, Command.SECRET_SET, args, request_id=request_id, no_wait=no_wait)


@secret.command(name="unset")
@NAME
@CVAR_ARGUMENT
@lifecycle
@click.pass_obj
def secret_unset(app: App, name: str, cvar: str, no_wait: bool, as_json: bool, request_id: str | None) -> int:
    """Remove CVAR's value from an instance; the next start stages server.cfg without it."""
    return _session(app, as_json).request(name, Command.SECRET_UNSET, {"cvar": cvar}, request_id=request_id,
                                          no_wait=no_wait)


@secret.command(name="list")
@NAME
@click.option("--json", "as_json", is_flag=True, help="Print a list of objects.")
@click.pass_obj
def secret_list(app: App, name: str, as_json: bool) -> int:
    """The instance's secret cvars: fingerprint, when set and by whom (never the value)."""
    instance = app.read().instance(name)
    if not instance.known:
        raise Rejected(f"instance {name!r} is not known")
    rows = [{"cvar": cvar, **{key: entry[key] for key in ("fingerprint", "set_at", "actor")}}
            for cvar, entry in sorted(instance.secrets.items())]
    if as_json:
        _emit_json(rows)
    else:
        from .tables import print_secrets

        print_secrets(_console(), name, rows)
    return EXIT_OK


# --- reading -------------------------------------------------------------------------------------


def _read_secret_value() -> str:
    """The value: asked twice without echo on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        value = click.prompt("value", hide_input=True, confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not SECRET_VALUE_PATTERN.fullmatch(value):
        raise InvalidInput(f"secret value on stdin: {SECRET_VALUE_RULE}")
    return value


def _emit_json(value: Any) -> None:
    """A reading command's answer as JSON on stdout (see `ReadingOutput`)."""
    from .stdout import ReadingOutput

    click.echo(json.dumps(value), file=cast(TextIO, ReadingOutput(sys.stdout)))


def _done(markup: str, **options: Any) -> None:
    """A line about something done (not an answer): a stdout that cannot take it is silenced, and the exit code
    stays the deed's."""
    from .progress import OutputConsole
    from .stdout import Stdout

    Stdout().write(lambda: OutputConsole().print(markup, **options))


def _console() -> Console:
    """A console for a reading command's answer to people (rich loads only when something is shown; see
    `ReadingOutput`)."""
    from rich.console import Console

    from .stdout import ReadingOutput

    return Console(file=cast(TextIO, ReadingOutput(sys.stdout)))


@cli.command()
@NAME
@click.option("-f", "--follow", is_flag=True, help="Then keep printing what the unit logs (Ctrl-C ends).")
@click.option("-n", "--lines", type=click.IntRange(0, 100_000), default=50, show_default=True,
              help="How many of the last lines to print.")
@click.option("--since", type=MOMENT, help="Only lines from this moment on (ISO 8601; UTC unless it says).")
@click.pass_obj
def logs(app: App, name: str, follow: bool, lines: int, since: datetime | None) -> int:
    """Print an instance's journal: its unit's lines, the server's console output among them."""
    from host_adapters import Cancelled, StepIO

    from .stdout import Stdout

    if since is not None and since.timestamp() < 0:
        raise InvalidInput(f"--since {since.isoformat()}: the journal begins in 1970")
    if app.read().instance(name).state is None:
        raise Rejected(f"instance {name!r} is not known: nothing was ever initialized under that name")
    stdout = Stdout()
    try:
        app.host().services.logs(name, lines, since, follow,
                                 StepIO(emit=lambda line: stdout.write(lambda: click.echo(line)),
                                        should_cancel=lambda: stdout.reader_gone, keep=False))
    except Cancelled:  # the reader went away (`logs -f | head`): nothing more to show
        pass
    return EXIT_OK


@cli.command()
@click.argument("name", required=False, type=INSTANCE_NAME)
@click.option("--live", is_flag=True, help="Also ask systemd and the servers (A2S_INFO), and show drift.")
@click.option("--json", "as_json", is_flag=True, help="Print a list of instance objects (one object with NAME).")
@click.pass_obj
def status(app: App, name: str | None, live: bool, as_json: bool) -> int:
    """Instances and their recorded state (with --live: their unit, their server, and drift)."""
    instances = app.read().instances(name)
    if name is not None and not instances:
        raise Rejected(f"instance {name!r} is not known")
    if live:
        from ..service.live import live_status

        objects = live_status(instances, app.host())
    else:
        objects = [instance.summary() for instance in instances]
    if as_json:
        _emit_json(objects[0] if name else objects)
    else:
        from .tables import status_table

        _console().print(status_table(objects))
    return EXIT_OK


@cli.command()
@NAME
@click.option("--json", "as_json", is_flag=True, help="Print a list of command objects.")
@click.pass_obj
def history(app: App, name: str, as_json: bool) -> int:
    """Every command of one instance, oldest first."""
    commands = app.read().history(name)
    if not commands:
        raise Rejected(f"instance {name!r} is not known: nothing was ever requested for it")
    return _print_commands(f"History of {name}", commands, with_instance=False, as_json=as_json)


@cli.command()
@click.option("--actor", "actor_filter", type=PRINTABLE_TEXT, help="Only commands requested by this actor.")
@click.option("--instance", type=INSTANCE_NAME, help="Only commands of this instance.")
@click.option("--command", "command_filter", type=click.Choice([kind.value for kind in ROW_KINDS]),
              help="Only this kind of command (or observation).")
@click.option("--since", type=MOMENT, help="From this ISO 8601 time (inclusive; UTC unless given).")
@click.option("--until", type=MOMENT, help="Before this ISO 8601 time (exclusive; UTC unless given).")
@click.option("--outcome", "outcome_filter", type=click.Choice([outcome.value for outcome in Outcome]),
              help="Only commands that stand at (or ended in) this outcome.")
@click.option("--limit", type=click.IntRange(1), help="Only the newest N of them (still listed oldest first).")
@click.option("--replica", "replicas", multiple=True, metavar="URL",
              help="Read these hosts' replicas instead of the local ledger (repeatable): side by side, each row "
                   "with its host.")
@click.option("--litestream", metavar="PATH", help="Litestream, for --replica (default: beside l4d2ctl's Python).")
@click.option("--sftp-key", metavar="PATH", help="The private key for sftp:// replicas.")
@click.option("--sftp-host-key", metavar="KEY", help="The sftp:// servers' public host key (as in known_hosts).")
@click.option("--json", "as_json", is_flag=True, help="Print a list of command objects.")
@click.pass_obj
def audit(app: App, actor_filter: str | None, instance: str | None, command_filter: str | None,
          since: datetime | None, until: datetime | None, outcome_filter: str | None, limit: int | None,
          replicas: tuple[str, ...], litestream: str | None, sftp_key: str | None, sftp_host_key: str | None,
          as_json: bool) -> int:
    """Who did what: every command across all instances, oldest first."""
    if since is not None and until is not None and since >= until:
        raise InvalidInput(f"--since {since.isoformat()} is not before --until {until.isoformat()}: "
                           f"nothing could match")
    filters: dict[str, Any] = dict(actor=actor_filter, instance=instance, command=command_filter,
                                   outcome=outcome_filter, since=since, until=until, limit=limit)
    if replicas:
        from ..service.fleet import audit_replicas

        rows = audit_replicas(_litestream(litestream, sftp_key, sftp_host_key), app.settings.db, replicas, filters)
        if as_json:
            _emit_json([row.summary() | {"host": host, "replica": url} for host, url, row in rows])
            return EXIT_OK
        from .tables import commands_table

        for host, url in dict.fromkeys((host, url) for host, url, _ in rows) or [(None, None)]:
            mine = [row for row_host, row_url, row in rows if (row_host, row_url) == (host, url)]
            _console().print(commands_table(f"Audit of {host} ({url})" if host else "Audit of the replicas", mine,
                                            with_instance=True))
        return EXIT_OK
    commands = app.read().audit(**filters)
    return _print_commands("Audit", commands, with_instance=True, as_json=as_json)


def _litestream(program: str | None, sftp_key: str | None, sftp_host_key: str | None = None) -> Litestream:
    """Litestream as the options give it (checked before anything is done)."""
    from ..service.replication import Litestream, default_litestream

    litestream = Litestream(program or default_litestream(), sftp_key, sftp_host_key)
    litestream.check()
    return litestream


REPLICA_OPTIONS = (
    click.option("--litestream", metavar="PATH", help="Litestream (default: beside l4d2ctl's Python)."),
    click.option("--sftp-key", metavar="PATH", help="The private key for an sftp:// replica."),
    click.option("--sftp-host-key", metavar="KEY",
                 help="The sftp:// server's public host key (as in known_hosts): without it, it is not checked."),
)


def replica_options(function: CommandFunction) -> CommandFunction:
    """--litestream and --sftp-key, for the commands that reach a replica."""
    for decorate in reversed(REPLICA_OPTIONS):
        function = decorate(function)
    return function


def _print_commands(title: str, commands: list[CommandView], *, with_instance: bool, as_json: bool) -> int:
    """History and audit alike: a list of command objects, or a table titled `title`."""
    if as_json:
        _emit_json([command.summary() for command in commands])
    else:
        from .tables import commands_table

        _console().print(commands_table(title, commands, with_instance=with_instance))
    return EXIT_OK


@cli.command()
@COMMAND_ID
@click.option("--json", "as_json", is_flag=True, help="Print the command with its steps as JSON.")
@click.pass_obj
def show(app: App, command_id: str, as_json: bool) -> int:
    """One command: who asked, its steps and their output, its outcome."""
    from ..service.command_ids import known_command

    projections = app.read()
    command = known_command(projections, command_id)
    steps = projections.steps(command.command_id)
    failure = projections.failure(command.command_id)
    if as_json:
        _emit_json(command.summary() | {"args": command.args, "steps": steps}
                   | ({"failure": failure} if failure else {}))
    else:
        from .tables import print_command

        print_command(_console(), command, steps, failure)
    return EXIT_OK


@cli.command()
@click.option("--replica", metavar="URL",
              help="Also check that the local chain extends this replica's, and print the lag.")
@replica_options
@click.option("--json", "as_json", is_flag=True,
              help="Print {ok, events, first_bad_seq, reason, projections} (with --replica: and replica) as JSON.")
@click.pass_obj
def verify(app: App, replica: str | None, litestream: str | None, sftp_key: str | None, sftp_host_key: str | None,
           as_json: bool) -> int:
    """Re-walk the hash chain, run SQLite's integrity check, and prove the projections against the chain (exit 4
    on a break); with --replica, the local chain must extend the replica's."""
    from ledger import verify_ledger

    settings = app.settings
    missing = app.ledger_to_read_missing()
    compared: dict[str, Any] | None = None
    try:
        ledger = app.ledger()
        report = verify_ledger(ledger)
        projections = [] if not report.ok or ledger.readonly else app.projections().disagreements()
        if replica is not None:
            from ..service.replication import validate_replica_url
            from ..service.verify_replica import check_replica

            compared = check_replica(_litestream(litestream, sftp_key, sftp_host_key), ledger, settings.db,
                                     validate_replica_url(replica))
    except LedgerError as error:
        if not as_json:
            raise
        _emit_json({"ok": False, "events": 0, "first_bad_seq": None, "reason": str(error), "projections": []})
        return EXIT_LEDGER
    if projections:
        report = dataclasses.replace(report, ok=False, reason=(
            f"the projections disagree with the chain: {'; '.join(projections)} "
            f"(`l4d2ctl projections rebuild` folds them from the chain again)"))
    if compared is not None and compared["first_differing_seq"] is not None:
        seqs = [seq for seq in (report.first_bad_seq, compared["first_differing_seq"]) if seq is not None]
        reasons = [*([report.reason] if report.reason else []), f"against replica {replica}: {compared['reason']}"]
        report = dataclasses.replace(report, ok=False, first_bad_seq=min(seqs), reason="; ".join(reasons))
    if missing and not as_json:
        hint(f"no ledger at {settings.db}: nothing recorded, nothing to verify (is --root/--db right?)")
    elif as_json:
        _emit_json({"ok": report.ok, "events": report.events, "first_bad_seq": report.first_bad_seq,
                    "reason": report.reason, "projections": projections}
                   | ({"replica": compared} if compared is not None else {}))
    elif report.ok:
        proven = "projections not checked (read-only here)" if ledger.readonly else "projections as the chain says"
        _console().print(f"[green]✓[/green] ledger {settings.db}: {report.events} events, chain intact, {proven}",
                         soft_wrap=True, highlight=False)
        if compared is not None:
            _console().print(f"[green]✓[/green] replica {replica}: {compared['events']} events up to seq "
                             f"{compared['head_seq']}, all as here and as its {compared['history_checked']} earlier "
                             f"states kept there; the local ledger is {compared['lag_events']} events "
                             f"({compared['lag_seconds']:.1f} s) ahead", soft_wrap=True, highlight=False)
    else:
        from rich.console import Console

        Console(stderr=True).print(f"[red]✗[/red] ledger {settings.db}: broken — {report.reason}",
                                   soft_wrap=True, highlight=False)
    return EXIT_OK if report.ok else EXIT_LEDGER


# --- operating -----------------------------------------------------------------------------------


@cli.command()
@click.option("--replica", required=True, metavar="URL", help="Where to: file:///path, sftp://user@host/path, "
                                                               "s3://bucket/path.")
@replica_options
@click.pass_obj
def replicate(app: App, replica: str, litestream: str | None, sftp_key: str | None,
              sftp_host_key: str | None) -> int:
    """Stream the ledger to a replica with Litestream, in the foreground (the left4me-replicate unit runs it); only
    a ledger that extends what the replica holds, and never two at once."""
    from ..service.replication import validate_replica_url
    from ..service.verify_replica import replicate_checked

    url = validate_replica_url(replica)
    program = _litestream(litestream, sftp_key, sftp_host_key)
    if app.ledger_missing():
        raise LedgerError(f"no ledger at {app.settings.db}: replicate never makes one, which would replace the "
                          f"replica's history with an empty ledger (on a new host: `l4d2ctl restore-ledger` first)")
    status = replicate_checked(program, app.ledger(), app.settings.db, url)
    if status != 0:
        hint(f"litestream exited with status {status}")
    return EXIT_OK if status in (0, -15, 143) else EXIT_LEDGER


@cli.command(name="restore-ledger")
@click.option("--replica", required=True, metavar="URL", help="The replica to restore from.")
@replica_options
@click.pass_obj
def restore_ledger(app: App, replica: str, litestream: str | None, sftp_key: str | None,
                   sftp_host_key: str | None) -> int:
    """Disaster recovery onto a fresh host: restore the ledger from a replica into --db (never over one), verify
    its chain, rebuild the projections; the executor's first start then records how this host's units differ."""
    from ..service.replication import validate_replica_url
    from ..service.verify_replica import restore_ledger as restore

    url = validate_replica_url(replica)
    restored = restore(_litestream(litestream, sftp_key, sftp_host_key), app.settings.db, url)
    _done(f"[green]✓[/green] restored {restored.events} events (chain intact) from {url} into {app.settings.db}; "
          f"projections rebuilt. The executor's first start records how the units on this host differ from the "
          f"ledger, as observations.", soft_wrap=True, highlight=False)
    return EXIT_OK


@cli.command()
@click.option("--once", is_flag=True, help="Drain the queue, then exit.")
@click.option("--jobs", type=click.IntRange(min=1), default=DEFAULT_JOBS, show_default=True,
              help="How many commands (of different instances) run at once.")
@click.option("--notify-exec", metavar="CMD",
              help="Run CMD (its program by absolute path) for every failed command and every observation, "
                   "with the row's JSON on stdin.")
@click.pass_obj
def executor(app: App, once: bool, jobs: int, notify_exec: str | None) -> int:
    """Run the executor: decide requested commands in ledger order and apply them to the host, different
    instances' at the same time."""
    from .serve import serve

    serve(app, once, jobs, notify_exec)
    return EXIT_OK


@cli.group()
def projections() -> None:
    """Maintain the projections (instances, commands) kept in the ledger file."""


@projections.command()
@click.option("--json", "as_json", is_flag=True, help="Print {events, seconds} as JSON.")
@click.pass_obj
def rebuild(app: App, as_json: bool) -> int:
    """Drop every projection and rebuild it from the ledger."""
    import time

    from projections import Projections

    started = time.perf_counter()
    events = Projections(app.ledger()).rebuild()
    seconds = time.perf_counter() - started
    if as_json:
        _emit_json({"events": events, "seconds": round(seconds, 3)})
    else:
        _done(f"[green]✓[/green] rebuilt projections from {events} events in {seconds:.2f}s", highlight=False)
    return EXIT_OK


def main() -> None:
    """Console-script entry point. Umask 007: what l4d2ctl creates is shared with its group (the operators,
    group left4me on an installed host) and nobody else."""
    os.umask(0o007)
    cli.main()
