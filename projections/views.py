"""Pure folds of the event stream: every command's story, and every instance's recorded state.

`LedgerView.apply` takes one stored event row at a time (as `Ledger.rows`
yields them), so a view can be rebuilt from seq 1 or brought up to date from
where it stopped, with the same code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ledger import TERMINAL_TYPES

# The recorded state a successful command leaves an instance in.
STATE_AFTER = {"init": "initialized", "start": "running", "stop": "stopped", "reset": "reset", "delete": "deleted"}


@dataclass
class CommandView:
    """One command from request to outcome: who, what, when, each step, how it ended."""

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
    steps: list[dict[str, Any]] = field(default_factory=list)
    cancel_requested_by: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the command has reached its one terminal outcome."""
        return self.outcome in TERMINAL_TYPES.values()

    def summary(self) -> dict[str, Any]:
        """The command as CLI.md's history/audit JSON object."""
        return {
            "command_id": self.command_id,
            "instance": self.instance,
            "command": self.command,
            "actor": self.actor,
            "os_user": self.os_user,
            "requested_at": self.requested_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome,
            "error": self.error,
            "retry_of": self.retry_of,
            "replay_of": self.replay_of,
        }


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


@dataclass
class LedgerView:
    """Commands and instances as of event `seq`."""

    seq: int = 0
    commands: dict[str, CommandView] = field(default_factory=dict)
    instances: dict[str, InstanceView] = field(default_factory=dict)
    pending: dict[str, None] = field(default_factory=dict)
    running: dict[str, None] = field(default_factory=dict)

    def catch_up(self, ledger) -> list[dict[str, Any]]:
        """Apply every event recorded after `seq`; return the rows applied."""
        rows = list(ledger.rows(after_seq=self.seq))
        for row in rows:
            self.apply(row)
        return rows

    def instance(self, name: str) -> InstanceView:
        """The view of an instance (an unknown one if nothing succeeded for it yet)."""
        return self.instances.get(name) or InstanceView(name)

    def apply(self, row: dict[str, Any]) -> None:
        """Fold one stored event row into the view."""
        self.seq = row["seq"]
        kind = row["type"]
        if kind == "CommandRequested":
            self._requested(row, json.loads(row["payload"]))
            return
        command = self.commands.get(row["command_id"])
        if command is None:
            return
        if kind == "CommandStarted":
            command.outcome, command.started_at = "running", row["recorded_at"]
            self.pending.pop(command.command_id, None)
            self.running[command.command_id] = None
        elif kind == "StepCompleted":
            payload = json.loads(row["payload"])
            command.steps.append({"step": payload["step"], "at": row["recorded_at"], "output": payload["output"]})
        elif kind == "CancelRequested":
            command.cancel_requested_by = command.cancel_requested_by or row["actor"]
        elif kind in TERMINAL_TYPES:
            self._finished(command, row, TERMINAL_TYPES[kind], json.loads(row["payload"]))

    def _requested(self, row: dict[str, Any], payload: dict[str, Any]) -> None:
        command = CommandView(
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
        self.commands[command.command_id] = command
        self.pending[command.command_id] = None

    def _finished(self, command: CommandView, row: dict[str, Any], outcome: str, payload: dict[str, Any]) -> None:
        command.outcome, command.finished_at = outcome, row["recorded_at"]
        command.error = _error_of(outcome, payload, command)
        self.pending.pop(command.command_id, None)
        self.running.pop(command.command_id, None)
        instance = self.instances.setdefault(command.instance, InstanceView(command.instance))
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
