"""Pure folds of the event stream: every command's story, and every instance's recorded state.

`Fold.apply` takes one stored event row at a time (as `Ledger.rows` yields
them) and updates the commands and instances it holds. A rebuild folds
from seq 1 into empty mappings; an incremental update folds the new events
into mappings that load rows from the materialized tables on demand. The
same code serves both, so the two cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from ledger import TERMINAL_TYPES

# The recorded state a successful command leaves an instance in.
STATE_AFTER = {"init": "initialized", "start": "running", "stop": "stopped", "reset": "reset", "delete": "deleted"}
OUTCOMES = ("pending", "running", *TERMINAL_TYPES.values())


@dataclass
class CommandView:
    """One command from request to outcome: who, what, when, how it ended."""

    command_id: str
    instance: str
    command: str
    args: dict[str, Any]
    actor: str
    os_user: str
    requested_at: str
    requested_seq: int
    retry_of: str | None = None
    replay_of: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    outcome: str = "pending"
    error: str | None = None
    cancel_requested_by: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the command has reached its one terminal outcome."""
        return self.outcome not in ("pending", "running")

    def summary(self) -> dict[str, Any]:
        """The command as CLI.md's history/audit JSON object."""
        return {key: getattr(self, key) for key in SUMMARY_FIELDS}

    def as_row(self) -> dict[str, Any]:
        """The command as a row of the `commands` table."""
        return {**vars(self), "args": json.dumps(self.args, sort_keys=True)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "CommandView":
        """A command from a row of the `commands` table."""
        return cls(**(row | {"args": json.loads(row["args"])}))


SUMMARY_FIELDS = ("command_id", "instance", "command", "actor", "os_user", "requested_at", "started_at",
                  "finished_at", "outcome", "error", "retry_of", "replay_of")


@dataclass
class InstanceView:
    """An instance's recorded state, blueprint and last command."""

    name: str
    state: str | None = None
    port: int | None = None
    blueprint: dict[str, Any] | None = None
    last_command_id: str | None = None
    last_command: str | None = None
    last_outcome: str | None = None
    last_actor: str | None = None
    updated_at: str | None = None

    @property
    def known(self) -> bool:
        """Whether an init of this instance ever succeeded."""
        return self.state is not None

    def summary(self) -> dict[str, Any]:
        """The instance as CLI.md's status JSON object."""
        return {key: getattr(self, key) for key in STATUS_FIELDS}

    def as_row(self) -> dict[str, Any]:
        """The instance as a row of the `instances` table."""
        blueprint = None if self.blueprint is None else json.dumps(self.blueprint, sort_keys=True)
        return {**vars(self), "blueprint": blueprint}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "InstanceView":
        """An instance from a row of the `instances` table."""
        blueprint = row["blueprint"]
        return cls(**(row | {"blueprint": None if blueprint is None else json.loads(blueprint)}))


STATUS_FIELDS = ("name", "state", "port", "last_command_id", "last_command", "last_outcome", "last_actor",
                 "updated_at")


class Fold:
    """Folds event rows into commands and instances held in mappings keyed by id and name."""

    # The event types that change a command or an instance; StepCompleted is read from the ledger when wanted.
    TYPES = ("CommandRequested", "CommandStarted", "CancelRequested", *TERMINAL_TYPES)

    def __init__(self, commands: MutableMapping[str, CommandView], instances: MutableMapping[str, InstanceView]):
        self.commands = commands
        self.instances = instances

    def apply(self, row: dict[str, Any]) -> None:
        """Fold one stored event row in."""
        kind = row["type"]
        if kind == "CommandRequested":
            payload = json.loads(row["payload"])
            self.commands[row["command_id"]] = CommandView(
                command_id=row["command_id"],
                instance=row["instance"],
                command=payload["command"],
                args=payload["args"],
                actor=row["actor"],
                os_user=row["os_user"],
                requested_at=row["recorded_at"],
                requested_seq=row["seq"],
                retry_of=payload["retry_of"],
                replay_of=payload["replay_of"],
            )
            return
        command = self.commands.get(row["command_id"])
        if command is None or command.finished:
            return
        if kind == "CommandStarted":
            command.outcome, command.started_at = "running", row["recorded_at"]
        elif kind == "CancelRequested":
            command.cancel_requested_by = command.cancel_requested_by or row["actor"]
        elif kind == "CommandSucceeded":
            self._finished(command, row, "succeeded", {})
        elif kind in TERMINAL_TYPES:
            self._finished(command, row, TERMINAL_TYPES[kind], json.loads(row["payload"]))

    def _finished(self, command: CommandView, row: dict[str, Any], outcome: str, payload: dict[str, Any]) -> None:
        command.outcome, command.finished_at = outcome, row["recorded_at"]
        command.error = _error_of(outcome, payload, command)
        instance = self.instances.get(command.instance)
        if instance is None:
            instance = self.instances[command.instance] = InstanceView(command.instance)
        instance.last_command_id = command.command_id
        instance.last_command = command.command
        instance.last_outcome = outcome
        instance.last_actor = command.actor
        instance.updated_at = row["recorded_at"]
        if outcome == "succeeded":
            if command.command == "init":
                instance.blueprint = command.args["spec"]
                instance.port = instance.blueprint["port"]
            if not (command.command == "stop" and instance.state == "reset"):
                instance.state = STATE_AFTER[command.command]


def _error_of(outcome: str, payload: dict[str, Any], command: CommandView) -> str | None:
    if outcome == "failed":
        return f"{payload['step']}: {payload['error']}" if payload.get("step") else payload["error"]
    if outcome == "rejected":
        return payload["reason"]
    if outcome == "cancelled":
        where = f" at step {payload['step']!r}" if payload.get("step") else ""
        return f"cancelled by {command.cancel_requested_by or 'request'}{where}"
    if outcome == "interrupted":
        after = f" after step {payload['last_step']!r}" if payload.get("last_step") else ""
        return f"executor stopped unexpectedly{after}"
    return None
