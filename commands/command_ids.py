"""Command ids: how they are made, what a well-formed one looks like, and finding the recorded one."""

from __future__ import annotations

import re
import uuid

from projections import CommandView, Projections

from .errors import InvalidInput, Rejected
from .text_rules import shown

COMMAND_ID = re.compile(r"[0-9a-f]{12}")


def new_command_id() -> str:
    """A fresh command id: 12 hex digits, short enough to type."""
    return uuid.uuid4().hex[:12]


def known_command(projections: Projections, command_id: str) -> CommandView:
    """The recorded command with a well-formed id; `InvalidInput` if malformed, `Rejected` if absent."""
    if not COMMAND_ID.fullmatch(command_id):
        raise InvalidInput(f"command id {shown(command_id)}: must be 12 hex digits")
    projections.sync()
    command = projections.command(command_id)
    if command is None:
        raise Rejected(f"no command {command_id} in ledger {projections.ledger.path}")
    return command
