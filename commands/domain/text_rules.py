"""Rules for text that ends up in host files: names, env values, cfg lines.

Anything l4d2ctl writes into instance.env or server.cfg must stay one line and
survive systemd's EnvironmentFile and ExecStart parsing unchanged.
"""

from __future__ import annotations

import re
import unicodedata

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
NAME_RULE = "must be 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"

CVAR_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,63}")
CVAR_RULE = "must be 1-64 characters of a-z, 0-9 and '_', not starting with a digit"
# A secret value goes between double quotes on one server.cfg line.
SECRET_VALUE_PATTERN = re.compile(r"[\x20\x21\x23-\x7e]{1,255}")
SECRET_VALUE_RULE = "must be 1-255 printable ASCII characters, without '\"'"
FINGERPRINT_PATTERN = re.compile(r"[0-9a-f]{32}")
BACKUP_ID_PATTERN = re.compile(r"[0-9a-f]{12}")  # a backup is named by the id of the command that took it
# Cvars whose values are secrets: set with `l4d2ctl secret set`, never in a spec (it is sealed into the ledger).
SECRET_CVARS = ("rcon_password", "sv_password")

# Categories that break a line or cannot be encoded: controls (NUL, CR, LF, NEL...),
# surrogates, and the Unicode line and paragraph separators.
_LINE_BREAKING_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
# Bidirectional controls: they make a line show in another order than it is read ("Trojan Source").
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def shown(value: str) -> str:
    """A user-supplied string quoted for a one-line message (repr escapes every unprintable)."""
    return repr(value)


def printable(text: str) -> str:
    """`text` with every unprintable character escaped, so it stays on one line."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def name_problem(value: str) -> str | None:
    """Why `value` is not a valid instance name or alias, or None when it is."""
    return None if NAME_PATTERN.fullmatch(value) else NAME_RULE


def secret_cvar_set_by(config_line: str) -> str | None:
    """The secret cvar (rcon_password, sv_password) a server.cfg line sets in any of its ';'-separated commands."""
    for command in config_line.split(";"):
        words = command.split()
        if words and words[0].strip('"').lower() in SECRET_CVARS:
            return words[0].strip('"').lower()
    return None


def unsafe_character(value: str) -> str | None:
    """The first character that would break a line or an encoding, or reorder how the line shows, as U+XXXX;
    else None."""
    for char in value:
        code = ord(char)
        if (
            unicodedata.category(char) in _LINE_BREAKING_CATEGORIES
            or char == "\ufeff"
            or char in _BIDI_CONTROLS
            or 0xFDD0 <= code <= 0xFDEF
            or (code & 0xFFFE) == 0xFFFE
        ):
            return f"U+{code:04X}"
    return None
