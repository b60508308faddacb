"""The instance spec (a blueprint): its pydantic model, and loading it from YAML.

Every refusal names the field and the reason in one line, e.g.
`spec.overlays[1].path: must be relative and stay inside overlays/`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Hashable
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from .errors import InvalidSpec
from .text_rules import name_problem, printable, secret_cvar_set_by, shown, unsafe_character

MAX_SPEC_BYTES = 256 * 1024
PROBLEMS_SHOWN = 5
DEFAULT_READY_TIMEOUT = 60
MAX_READY_TIMEOUT = 3600
MAX_OVERLAYS = 63  # overlayfs is given at most 64 lower layers (left4me-host's MAX_LAYERS), the installation last
_OVERLAY_PATH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
# systemd's EnvironmentFile parser treats these as escapes and quotes, and a
# `$` invites expansion; an argument holding one would not reach srcds as written.
_SYSTEMD_SPECIAL = set("\"'\\$")


def _refuse(kind: str, message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, context)


def _one_line(value: str) -> str:
    bad = unsafe_character(value)
    if bad:
        raise _refuse("unsafe_text", "must not contain control, line-breaking or bidi characters (found {char})",
                      char=bad)
    return value


def _config_line(value: str) -> str:
    _one_line(value)
    cvar = secret_cvar_set_by(value)
    if cvar:
        raise _refuse("secret_in_spec", "sets {cvar}, a secret: the spec is sealed into the ledger for good; "
                      "use `l4d2ctl secret set NAME {cvar}` instead", cvar=cvar)
    return value


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise _refuse("port_range", "must be between 1 and 65535 (got {value})", value=value)
    return value


def _ready_timeout(value: int) -> int:
    if not 1 <= value <= MAX_READY_TIMEOUT:
        raise _refuse("ready_timeout_range", "must be between 1 and {limit} seconds (got {value})",
                      limit=MAX_READY_TIMEOUT, value=value)
    return value


def _argument(value: str) -> str:
    _one_line(value)
    if not value.strip():
        raise _refuse("empty_argument", "must not be empty")
    cvar = secret_cvar_set_by(value.lstrip("+"))
    if cvar:
        raise _refuse("secret_in_spec", "sets {cvar}, a secret: the spec is sealed into the ledger for good; "
                      "use `l4d2ctl secret set NAME {cvar}` instead", cvar=cvar)
    if _SYSTEMD_SPECIAL & set(value):
        raise _refuse(
            "systemd_special",
            "must not contain quotes, backslashes or '$': systemd's EnvironmentFile and "
            "ExecStart parsing would change them",
        )
    return value


def _overlay_path(value: str) -> str:
    _one_line(value)
    parts = value.split("/")
    if value.startswith("/") or ".." in parts:
        raise _refuse("overlay_escape", "must be relative and stay inside overlays/")
    if not _OVERLAY_PATH.fullmatch(value) or "." in parts:
        raise _refuse(
            "overlay_path",
            "must be directory names of letters, digits, '.', '_' and '-' joined by '/'",
        )
    return value


def _alias(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise _refuse("alias", problem)
    return value


Port = Annotated[int, AfterValidator(_port)]
ReadyTimeout = Annotated[int, AfterValidator(_ready_timeout)]
Argument = Annotated[str, AfterValidator(_argument)]
ConfigLine = Annotated[str, AfterValidator(_config_line)]
OverlayPath = Annotated[str, AfterValidator(_overlay_path)]
Alias = Annotated[str, AfterValidator(_alias)]


class Overlay(BaseModel):
    """One content layer under overlays/, optionally with an alias for its server.cfg."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    path: OverlayPath
    alias: Alias | None = None


class Spec(BaseModel):
    """The blueprint of one instance: port, launch arguments, server.cfg lines, overlays."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    port: Port
    arguments: list[Argument] = []
    config: list[ConfigLine] = []
    overlays: list[Overlay] = []
    ready_timeout: ReadyTimeout | None = None

    @property
    def readiness_seconds(self) -> int:
        """How long a start waits for the server to answer A2S_INFO before it fails (and is undone)."""
        return DEFAULT_READY_TIMEOUT if self.ready_timeout is None else self.ready_timeout

    @field_validator("overlays")
    @classmethod
    def _layers_do_not_clash(cls, overlays: list[Overlay]) -> list[Overlay]:
        if len(overlays) > MAX_OVERLAYS:
            raise _refuse("too_many_overlays", "{count} overlays; at most {limit} (with the installation, the "
                          "64 lower layers overlayfs is given)", count=len(overlays), limit=MAX_OVERLAYS)
        seen_aliases: dict[str, int] = {}
        for index, overlay in enumerate(overlays):
            if overlay.alias in seen_aliases:
                raise _refuse(
                    "duplicate_alias",
                    "alias {alias} of overlays[{index}] is already used by overlays[{first}]",
                    alias=shown(overlay.alias),
                    index=index,
                    first=seen_aliases[overlay.alias],
                )
            if overlay.alias is not None:
                seen_aliases[overlay.alias] = index
            for earlier, other in enumerate(overlays[:index]):
                if _overlapping(overlay.path, other.path):
                    raise _refuse(
                        "overlapping_overlays",
                        "path of overlays[{index}] overlaps overlays[{earlier}] "
                        "(overlayfs refuses nested or repeated layers)",
                        index=index,
                        earlier=earlier,
                    )
        return overlays

    def to_document(self) -> dict[str, Any]:
        """The spec as plain data, the form stored in the ledger and in spec.yaml."""
        return self.model_dump(mode="json", exclude_none=True)


def _overlapping(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known key",
    "invalid_key": "keys must be strings",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "must be a mapping",
    "dict_type": "must be a mapping",
}


def _field_path(location: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{shown(str(part))}]"
    return path


def _describe(error: ValidationError) -> str:
    """Every problem on one line, each naming its field; an unknown key gets the known one it resembles."""
    problems = error.errors()
    described = [f"{_field_path(problem['loc'])}: {printable(_message(problem))}"
                 for problem in problems[:PROBLEMS_SHOWN]]
    more = f" (and {len(problems) - PROBLEMS_SHOWN} more)" if len(problems) > PROBLEMS_SHOWN else ""
    return "; ".join(described) + more


def _message(problem: ErrorDetails) -> str:
    message = _MESSAGES.get(problem["type"], problem["msg"])
    if problem["type"] == "extra_forbidden" and isinstance(problem["loc"][-1], str):
        known = Overlay.model_fields if len(problem["loc"]) > 1 else Spec.model_fields
        close = difflib.get_close_matches(problem["loc"][-1], list(known), n=1, cutoff=0.6)
        message += f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return message


class _SpecLoader(yaml.SafeLoader):
    """YAML's safe loader, minus anchors and aliases (no shared or exploding structures) and duplicate keys."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Refuse an alias where a node starts; compose anything else as PyYAML does."""
        if self.check_event(yaml.AliasEvent):
            # The event check_event just looked at: what peek_event returns (the PyYAML stubs leave that untyped).
            alias = self.current_event
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not allowed in a spec", alias.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """Refuse a mapping that names a key twice; construct it as PyYAML does otherwise."""
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (a strict spec says each thing once)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_SpecLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidSpec(f"spec: invalid YAML{where}: {printable(error.problem or str(error))}") from None
    except yaml.YAMLError as error:
        raise InvalidSpec(f"spec: invalid YAML: {printable(str(error))}") from None
    except RecursionError:
        raise InvalidSpec("spec: invalid YAML: nested too deeply") from None


def parse_spec(document: Any) -> Spec:
    """Validate plain data (as parsed from YAML or stored in the ledger) as a spec."""
    if document is None:
        raise InvalidSpec("spec: is empty; it needs at least 'port'")
    if not isinstance(document, dict):
        raise InvalidSpec("spec: must be a mapping with 'port' and optional 'arguments', 'config', 'overlays', "
                          "'ready_timeout'")
    try:
        return Spec.model_validate(document)
    except ValidationError as error:
        raise InvalidSpec(_describe(error)) from None


def load_spec_text(content: str | bytes) -> Spec:
    """Parse and validate a spec given as YAML text or bytes."""
    if len(content) > MAX_SPEC_BYTES:
        raise InvalidSpec(f"spec: larger than {MAX_SPEC_BYTES // 1024} KiB")
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidSpec(f"spec: not UTF-8 text (bad byte at offset {error.start})") from None
    return parse_spec(_parse_yaml(content))


def dump_spec(spec: Spec) -> str:
    """The spec as YAML text that `load_spec_text` reads back to an equal spec."""
    return yaml.safe_dump(spec.to_document(), sort_keys=False, allow_unicode=True)
