"""What the executor decides from, checked against the chain: SQL can edit a projection row unseen by the chain.

A command is decided from its request as the ledger holds it, and an
instance from the blueprint its last successful init or adopt recorded. A
projection row that says otherwise was edited (or is stale): the executor
refuses to act on it, and says how to fold the projections again.
"""

from __future__ import annotations

from typing import cast

from ledger import Ledger, LedgerError
from ledger.lifecycle import Command, EventType, Outcome, State
from ledger.payloads import CommandRequestedData
from projections import CommandView, InstanceView, Projections

REBUILD = "`l4d2ctl verify` shows the projections' edits; `l4d2ctl projections rebuild` folds them from the chain"


def as_requested(ledger: Ledger, command: CommandView) -> CommandView:
    """`command`, once its projection row is found to say what its recorded request says."""
    request = next(ledger.records(command_id=command.command_id, types=(EventType.COMMAND_REQUESTED,)), None)
    if request is None:
        raise LedgerError(f"command {command.command_id}: no request is recorded for it; {REBUILD}")
    recorded = cast(CommandRequestedData, request.payload)
    if (request.instance, recorded["command"], recorded["args"], recorded["retry_of"], recorded["replay_of"]) != (
            command.instance, command.command, command.args, command.retry_of, command.replay_of):
        raise LedgerError(f"command {command.command_id}: its projection row is not what its request says; "
                          f"{REBUILD}")
    return command


class ProvenState:
    """The recorded state a decision reads (`decide.RecordedState`), each instance's blueprint checked against
    the chain."""

    def __init__(self, projections: Projections, ledger: Ledger):
        self.projections = projections
        self.ledger = ledger

    def instance(self, name: str) -> InstanceView:
        """The instance as projected, once its blueprint is found to be the one its last init or adopt set."""
        view = self.projections.instance(name)
        if view.blueprint != self._recorded_blueprint(name):
            raise LedgerError(f"instance {name!r}: its projection row's blueprint is not the one recorded by its "
                              f"last init or adopt; {REBUILD}")
        return view

    def command(self, command_id: str) -> CommandView | None:
        """One command by id."""
        return self.projections.command(command_id)

    def port_holder(self, port: int, other_than: str) -> InstanceView | None:
        """A live instance other than `other_than` that uses `port`."""
        return self.projections.port_holder(port, other_than)

    def succeeded_retry(self, command_id: str) -> CommandView | None:
        """A retry of `command_id` that succeeded, if one did."""
        return self.projections.succeeded_retry(command_id)

    def running_instances(self) -> list[str]:
        """The instances recorded running, by name."""
        return [view.name for view in self.projections.instances() if view.recorded_state is State.RUNNING]

    def stopped_by(self, command_id: str) -> list[str]:
        """The instances a stop run as part of `command_id` stopped, and that are recorded stopped still."""
        stopped = {part.instance for part in self.projections.parts_of(command_id)
                   if part.command == Command.STOP and part.outcome == Outcome.SUCCEEDED}
        return sorted(name for name in stopped if self.projections.instance(name).recorded_state is State.STOPPED)

    def _recorded_blueprint(self, name: str) -> object:
        """The spec of the instance's last init or adopt that succeeded, read from the chain (None: none did)."""
        request = self.ledger.last_succeeded_request(name, (Command.INIT, Command.ADOPT))
        return None if request is None else cast(CommandRequestedData, request.payload)["args"].get("spec")
