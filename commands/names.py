"""The instance-name rule: short, lower-case, never a path."""

from __future__ import annotations

from .errors import InvalidName
from .text_rules import name_problem, shown


def validate_name(name: str) -> str:
    """Return `name` if it is a valid instance name, else raise `InvalidName`."""
    problem = name_problem(name)
    if problem:
        raise InvalidName(f"instance name {shown(name)}: {problem}")
    return name
