"""Secret cvars from the command line: the rules for names and values, reading a value, handing it to the host.

A value never enters the ledger: the CLI hands it to the host's secret store
(through the privileged helper on a real host), which keeps it aside and
answers with a keyed fingerprint; the recorded `secret-set` command carries
the cvar and that fingerprint, and its executor step commits the value.
"""

from __future__ import annotations

import sys

import click

from ledger.lifecycle import Command, refusal

from .errors import InvalidInput
from .text_rules import CVAR_PATTERN, CVAR_RULE, SECRET_VALUE_PATTERN, SECRET_VALUE_RULE, shown


def validate_cvar(cvar: str) -> str:
    """Return `cvar` if it is a valid cvar name, else raise `InvalidInput`."""
    if not CVAR_PATTERN.fullmatch(cvar):
        raise InvalidInput(f"cvar {shown(cvar)}: {CVAR_RULE}")
    return cvar


def read_secret_value() -> str:
    """The value: asked twice without echo on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        value = click.prompt("value", hide_input=True, confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not SECRET_VALUE_PATTERN.fullmatch(value):
        raise InvalidInput(f"secret value on stdin: {SECRET_VALUE_RULE}")
    return value


def hand_over(session, name: str, cvar: str, value: str) -> dict[str, str]:
    """The args of the `secret-set` command: the cvar, and the fingerprint of the value handed to the host.

    Where the recorded state refuses the command, nothing is handed over: the
    command is still recorded, and rejected, without a fingerprint.
    """
    session.projections.sync()
    instance = session.projections.instance(name)
    if refusal(Command.SECRET_SET, instance.recorded_state, name) is not None:
        return {"cvar": cvar}
    return {"cvar": cvar, "fingerprint": session.host().secrets.put(name, cvar, value)}
