"""The CLI's edge: where every error type becomes one stderr line and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import click

from host_adapters import HostError
from ledger import LedgerError
from ledger.lifecycle import Outcome

from ..domain.errors import InvalidInput, OutputLost, Rejected
from ..domain.text_rules import printable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_REJECTED = 3
EXIT_LEDGER = 4
EXIT_CANCELLED = 5

OUTCOME_EXIT_CODES = {
    Outcome.PENDING: EXIT_OK,
    Outcome.RUNNING: EXIT_OK,
    Outcome.SUCCEEDED: EXIT_OK,
    Outcome.OBSERVED: EXIT_OK,
    Outcome.FAILED: EXIT_FAILED,
    Outcome.INTERRUPTED: EXIT_FAILED,
    Outcome.REJECTED: EXIT_REJECTED,
    Outcome.CANCELLED: EXIT_CANCELLED,
}

_EXIT_CODES: tuple[tuple[type[Exception], int], ...] = (
    (InvalidInput, EXIT_INVALID),
    (Rejected, EXIT_REJECTED),
    (LedgerError, EXIT_LEDGER),
    (HostError, EXIT_FAILED),
    (OutputLost, EXIT_FAILED),
)


def exit_code_of(outcome: str) -> int:
    """The exit code a command's outcome maps to (docs/cli.md)."""
    return OUTCOME_EXIT_CODES[Outcome(outcome)]


# From worst to best: what a bulk call exits with is the first of these any of its commands maps to.
SEVERITY = (EXIT_FAILED, EXIT_CANCELLED, EXIT_REJECTED, EXIT_OK)


def worst_exit_code(outcomes: Iterable[str]) -> int:
    """The exit code of several commands: the worst of theirs (docs/cli.md: 1 > 5 > 3 > 0)."""
    codes = {exit_code_of(outcome) for outcome in outcomes}
    return next((code for code in SEVERITY if code in codes), EXIT_OK)


def hint(text: str) -> None:
    """One line for people on stderr: what they may have meant, never part of the output scripts read (and never
    a reason to stop: a stderr nobody reads any more takes nothing)."""
    try:
        click.echo(f"l4d2ctl: {text}", err=True)
    except OSError:
        pass


def fail(message: str, code: int) -> NoReturn:
    """Print one line to stderr, then leave with `code`."""
    click.echo(f"l4d2ctl: {printable(message)}", err=True)
    sys.exit(code)


class L4d2ctlGroup(click.Group):
    """A click group that reports usage errors and l4d2ctl's own errors in one line."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> NoReturn:
        """Run the CLI; every known error ends as one line and its documented exit code."""
        try:
            code = super().main(args, prog_name or "l4d2ctl", complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help())
            sys.exit(EXIT_INVALID)
        except click.UsageError as error:
            message, hint = error.format_message(), f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            if isinstance(error, click.NoSuchOption) and error.option_name in self._global_options():
                hint = f" ({error.option_name} is a global option: put it before the subcommand, " \
                       f"e.g. 'l4d2ctl {error.option_name} ... {error.ctx.info_name if error.ctx else 'status'}')"
            elif (isinstance(error, click.NoSuchOption) and error.ctx is not None and error.ctx.command is self
                  and (takers := self._takers(error.option_name))):
                example = "status" if "status" in takers else takers[0]
                message = f"No such option '{error.option_name}' before the subcommand."
                hint = f" (it is a subcommand's option: put it after one, e.g. 'l4d2ctl {example} {error.option_name}')"
            fail(f"{message}{hint}", EXIT_INVALID)
        except click.ClickException as error:
            fail(error.format_message(), error.exit_code)
        except click.Abort:
            fail("interrupted", 130)
        except tuple(kind for kind, _ in _EXIT_CODES) as error:
            fail(str(error), next(code for kind, code in _EXIT_CODES if isinstance(error, kind)))
        sys.exit(code if isinstance(code, int) else EXIT_OK)

    def _global_options(self) -> set[str]:
        """The option names the group itself takes (they go before the subcommand)."""
        return {name for param in self.params for name in getattr(param, "opts", [])}

    def _takers(self, option: str) -> list[str]:
        """The subcommands that take `option` (given before any subcommand, it belongs after one)."""
        return sorted(name for name, command in self.commands.items()
                      if any(option in getattr(param, "opts", []) for param in command.params))
