"""The CLI's argument types: each checks its input once, with the one-line wording of every other error.

A failed check raises `InvalidInput` (exit 2 at the edge) rather than
click's multi-line usage error, so that every bad input reads alike.
"""

from __future__ import annotations

import math
import os
import stat
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem

from host_adapters.protocols import HostKind
from ledger import Ledger, LedgerError

from ..domain.errors import InvalidInput, InvalidSpec
from ..domain.names import validate_cvar, validate_name
from ..domain.text_rules import printable, shown
from ..service.command_ids import validate_id_prefix
from .settings import DEFAULT_ROOT, Settings

REQUEST_ID_MAX = 200

if TYPE_CHECKING:  # the spec models load only for commands that read a spec (pydantic is slow to import)
    from ..domain.spec import Spec

# What each type turns command-line text into (ParamType is generic from click 8.5 on).
TextParam = click.ParamType[str, str]
MomentParam = click.ParamType[datetime, str | datetime]


class InstanceName(TextParam):
    """An instance name; completes from the instances recorded in the ledger."""

    name = "name"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The name, if it follows the naming rule."""
        return validate_name(value)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        """The recorded instances whose name starts with what was typed (none when the ledger cannot be read)."""
        from projections import Projections

        # Completion parses the command line without running the group's callback: read --root/--db (or
        # their environment variables) from what it parsed.
        options = ctx.find_root().params
        settings = Settings.from_options(options.get("root") or DEFAULT_ROOT, options.get("db"), None, HostKind.SYSTEMD)
        try:
            with Ledger.open(settings.db, create=False) as ledger:
                names = [instance.name for instance in Projections(ledger).instances()]
        except LedgerError:
            return []
        return [CompletionItem(name) for name in names if name.startswith(incomplete)]


class SpecFile(click.ParamType["Spec", str]):
    """A spec file: read (a regular file, at most MAX_SPEC_BYTES) and validated; errors name the file and field."""

    name = "file"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> Spec:
        """The validated spec in the file at `value`."""
        return read_spec_file(value)


def read_spec_file(path: str | os.PathLike[str]) -> Spec:
    """The spec in the file at `path`: a FIFO or device is refused (never read), so is a file too large."""
    from ..domain.spec import MAX_SPEC_BYTES, load_spec_text

    shown_path = printable(os.fspath(path))
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise InvalidSpec(f"{shown_path}: cannot read spec: not a regular file")
            content = file.read(MAX_SPEC_BYTES + 1)
    except OSError as error:
        raise InvalidSpec(f"{shown_path}: cannot read spec: {error.strerror}") from None
    try:
        return load_spec_text(content)
    except InvalidSpec as error:
        raise InvalidSpec(f"{shown_path}: {error}") from None


class CommandIdPrefix(TextParam):
    """A command id, or a prefix of at least 4 hex digits (upper case is read as lower)."""

    name = "command_id"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The prefix in lower case, if it is 4-12 hex digits."""
        return validate_id_prefix(value)


class Cvar(TextParam):
    """A cvar name."""

    name = "cvar"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The cvar, if it follows the cvar naming rule."""
        return validate_cvar(value)


class RequestKey(TextParam):
    """An idempotency key: 1-200 printable characters."""

    name = "key"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The key, if it is short and printable."""
        if not value or len(value) > REQUEST_ID_MAX or not value.isprintable():
            raise InvalidInput(f"--request-id: must be 1-{REQUEST_ID_MAX} printable characters")
        return value


class Moment(MomentParam):
    """An ISO 8601 date or time; UTC unless it names its offset."""

    name = "time"

    def convert(self, value: str | datetime, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        """The moment, timezone-aware."""
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{_option(param)} {shown(value)}: not an ISO 8601 date or time") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            raise InvalidInput(f"{_option(param)} {shown(value)}: out of range in UTC") from None


class Seconds(click.FloatRange):
    """A number of seconds within a range: NaN, which compares false with every bound, is refused too."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """The seconds, if a finite number within the range."""
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return float(seconds)


class PrintableText(TextParam):
    """Text to match against the ledger: printable, one line."""

    name = "text"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The text, if printable."""
        if not value.isprintable():
            raise InvalidInput(f"{_option(param)} {shown(value)}: must be printable text")
        return value


def _option(param: click.Parameter | None) -> str:
    """How the option was named on the command line (its longest spelling)."""
    if param is None:
        return "value"
    spellings = param.opts or [param.name or "value"]
    return max(spellings, key=len)


INSTANCE_NAME = InstanceName()
SPEC_FILE = SpecFile()
COMMAND_ID_PREFIX = CommandIdPrefix()
CVAR = Cvar()
REQUEST_KEY = RequestKey()
MOMENT = Moment()
PRINTABLE_TEXT = PrintableText()
