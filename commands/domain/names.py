"""The naming rules: instance names (short, lower-case, never a path) and cvar names."""

from __future__ import annotations

from .errors import InvalidInput, InvalidName
from .text_rules import CVAR_PATTERN, CVAR_RULE, name_problem, shown


def validate_name(name: str) -> str:
    """Return `name` if it is a valid instance name, else raise `InvalidName`."""
    problem = name_problem(name)
    if problem:
        raise InvalidName(f"instance name {shown(name)}: {problem}")
    return name


def validate_cvar(cvar: str) -> str:
    """Return `cvar` if it is a valid cvar name, else raise `InvalidInput`."""
    if not CVAR_PATTERN.fullmatch(cvar):
        raise InvalidInput(f"cvar {shown(cvar)}: {CVAR_RULE}")
    return cvar
