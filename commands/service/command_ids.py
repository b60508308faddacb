"""Command ids: how they are made, what a well-formed one looks like, and finding the recorded one."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from ..domain.errors import InvalidInput, Rejected
from ..domain.text_rules import shown

if TYPE_CHECKING:  # the CLI's argument types use this module: keep its import cheap
    from projections import CommandView, Projections

ID_PREFIX = re.compile(r"[0-9a-f]{4,12}")
CANDIDATES_SHOWN = 5


def new_command_id() -> str:
    """A fresh command id: 12 hex digits, short enough to type."""
    return uuid.uuid4().hex[:12]


def validate_id_prefix(text: str) -> str:
    """`text` as a command id or id prefix (lower-cased), else `InvalidInput`."""
    prefix = text.lower()
    if not ID_PREFIX.fullmatch(prefix):
        raise InvalidInput(f"command id {shown(text)}: must be 4-12 hex digits (an id or a unique prefix of one)")
    return prefix


def known_command(projections: Projections, command_id: str) -> CommandView:
    """The recorded command with this id or unique id prefix (at least 4 hex digits).

    `InvalidInput` if malformed or ambiguous (naming the candidates), `Rejected` if absent. `projections` are
    read as they stand (the caller brought them up to date).
    """
    command_id = validate_id_prefix(command_id)
    candidates = projections.command_ids_starting(command_id, CANDIDATES_SHOWN + 1)
    if not candidates:
        raise Rejected(f"no command {command_id} in ledger {projections.ledger.path}")
    if len(candidates) > 1:
        listed = ", ".join(candidates[:CANDIDATES_SHOWN]) + (", …" if len(candidates) > CANDIDATES_SHOWN else "")
        raise InvalidInput(f"command id prefix {command_id} is ambiguous: {listed}")
    return projections.recorded_command(candidates[0])
