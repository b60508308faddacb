"""The naming rules: instance names (short, lower-case, never a path), cvar names, console commands."""

from __future__ import annotations

from .errors import InvalidInput, InvalidName
from .text_rules import CVAR_PATTERN, CVAR_RULE, name_problem, secret_cvar_set_by, shown


def validate_name(name: str) -> str:
    """Return `name` if it is a valid instance name, else raise `InvalidName`."""
    problem = name_problem(name)
    if problem:
        raise InvalidName(f"instance name {shown(name)}: {problem}")
    return name


CONSOLE_TEXT_MAX = 512


def validate_console_text(text: str) -> str:
    """A console command as RCON will carry it: 1-512 printable ASCII characters, and not one that sets a
    secret (the text is recorded for good)."""
    if not 1 <= len(text) <= CONSOLE_TEXT_MAX or not all(" " <= char <= "~" for char in text):
        raise InvalidInput(f"console command {shown(text[:60])}: must be 1-{CONSOLE_TEXT_MAX} printable ASCII "
                           f"characters")
    cvar = secret_cvar_set_by(text)
    if cvar:
        raise InvalidInput(f"console command sets {cvar}, a secret: the command is recorded for good; use "
                           f"`l4d2ctl secret set NAME {cvar}` instead")
    return text


def validate_cvar(cvar: str) -> str:
    """Return `cvar` if it is a valid cvar name, else raise `InvalidInput`."""
    if not CVAR_PATTERN.fullmatch(cvar):
        raise InvalidInput(f"cvar {shown(cvar)}: {CVAR_RULE}")
    return cvar


EXCLUDES_MAX = 32
EXCLUDE_MAX_LENGTH = 200
KEEP_MAX = 1000


def validate_excludes(excludes: list[str]) -> list[str]:
    """Globs a backup leaves out: at most 32, each 1-200 printable ASCII characters, relative to the upper layer
    (a glob with '/' matches a path from it, one without an entry's name)."""
    if len(excludes) > EXCLUDES_MAX:
        raise InvalidInput(f"--exclude: at most {EXCLUDES_MAX} globs, not {len(excludes)}")
    for glob in excludes:
        if not 1 <= len(glob) <= EXCLUDE_MAX_LENGTH or not all(" " <= char <= "~" for char in glob):
            raise InvalidInput(f"--exclude {shown(glob[:60])}: must be 1-{EXCLUDE_MAX_LENGTH} printable ASCII "
                               f"characters")
        if glob.startswith("/") or ".." in glob.split("/"):
            raise InvalidInput(f"--exclude {shown(glob)}: a glob relative to the upper layer, without '..'")
    return excludes
