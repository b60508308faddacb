"""The lifecycle's one vocabulary and its state machine: commands, states, outcomes, observations.

Everything that names a command, a state or an outcome imports it from here:
the decisions (what a command may do in a state), the projections (the state
each outcome or observation leaves behind) and the CLI (choices, styles, exit
codes). Kept free of pydantic so that reading the ledger stays cheap to import.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum


class Command(StrEnum):
    """A lifecycle command someone can request."""

    INIT = "init"
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    DELETE = "delete"
    RESET = "reset"
    SECRET_SET = "secret-set"
    SECRET_UNSET = "secret-unset"
    ADOPT = "adopt"
    CONSOLE = "console"
    BACKUP = "backup"
    RESTORE = "restore"
    INSTALL = "install"
    UPDATE = "update"


class Observation(StrEnum):
    """Something systemd did, or someone did through systemd, that no command caused."""

    CRASHED = "crashed"
    RESTARTED = "restarted"
    GAVE_UP = "gave-up"
    STOPPED_OUTSIDE = "stopped-outside"
    STARTED_OUTSIDE = "started-outside"


class State(StrEnum):
    """The recorded state of an instance."""

    INITIALIZED = "initialized"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    RESET = "reset"
    DELETED = "deleted"


class Outcome(StrEnum):
    """Where a command stands (the last four are final), or `observed` for an observation."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    OBSERVED = "observed"


class EventType(StrEnum):
    """What an event in the ledger records: the `type` column, and the name of its payload model."""

    COMMAND_REQUESTED = "CommandRequested"
    COMMAND_STARTED = "CommandStarted"
    STEP_COMPLETED = "StepCompleted"
    COMMAND_SUCCEEDED = "CommandSucceeded"
    COMMAND_FAILED = "CommandFailed"
    COMMAND_REJECTED = "CommandRejected"
    COMMAND_CANCELLED = "CommandCancelled"
    COMMAND_INTERRUPTED = "CommandInterrupted"
    CANCEL_REQUESTED = "CancelRequested"
    OBSERVED = "Observed"


UNFINISHED = (Outcome.PENDING, Outcome.RUNNING)
RETRYABLE = (Outcome.FAILED, Outcome.INTERRUPTED, Outcome.CANCELLED)
OBSERVER_ACTOR = "systemd"

TERMINAL_TYPES: dict[str, Outcome] = {
    EventType.COMMAND_SUCCEEDED: Outcome.SUCCEEDED,
    EventType.COMMAND_FAILED: Outcome.FAILED,
    EventType.COMMAND_REJECTED: Outcome.REJECTED,
    EventType.COMMAND_CANCELLED: Outcome.CANCELLED,
    EventType.COMMAND_INTERRUPTED: Outcome.INTERRUPTED,
}
"""The event type that ends a command, and the outcome it means."""

def out_of_turn(recorded: Collection[str], new: str) -> str | None:
    """Why an event of type `new` may not join a command whose events so far have the types `recorded`;
    None when it may.

    The executor asks this inside the transaction that appends: a command is
    started only while it is requested and nothing else took it up, and a
    step or an outcome follows only its own start, never an outcome. So a
    second executor, or a projection row edited to say "pending", can never
    get a command executed twice.
    """
    requested = EventType.COMMAND_REQUESTED in recorded
    started = EventType.COMMAND_STARTED in recorded
    ended = next((kind for kind in recorded if kind in TERMINAL_TYPES), None)
    match EventType(new):
        case EventType.COMMAND_REQUESTED | EventType.OBSERVED:
            return "it is recorded already" if recorded else None
        case EventType.CANCEL_REQUESTED:
            return None if requested else "it was never requested"
        case EventType.COMMAND_STARTED | EventType.COMMAND_REJECTED | EventType.COMMAND_CANCELLED if not requested:
            return "it was never requested"
        case EventType.COMMAND_STARTED | EventType.COMMAND_REJECTED if started or ended:
            return f"it was already {'started' if started and not ended else f'ended ({ended})'}"
        case EventType.COMMAND_STARTED | EventType.COMMAND_REJECTED | EventType.COMMAND_CANCELLED:
            return f"it already ended ({ended})" if ended else None
        case (EventType.STEP_COMPLETED | EventType.COMMAND_SUCCEEDED | EventType.COMMAND_FAILED
              | EventType.COMMAND_INTERRUPTED):
            if not started:
                return "it was never started"
            return f"it already ended ({ended})" if ended else None
        case _:
            raise ValueError(f"{new!r} is not an event type this l4d2ctl knows")


COMMAND_NAMES = tuple(Command)
INSTALLATION = "(installation)"
"""What install and update record as their instance: the shared installation, a name no instance can have."""
ON_INSTALLATION = (Command.INSTALL, Command.UPDATE)
"""Commands on the shared installation rather than on one instance: they leave no instance state."""
PART_OF = "part_of"
"""The argument that links a command run as part of another (an update's stops and starts) to that command."""
ROW_KINDS = (*Command, *Observation)
"""What the `command` column of history and audit can hold: a command or an observation."""

# Commands that leave the unit running when they succeed: a failure or cancel mid-way is undone.
STARTING = (Command.START, Command.RESTART)
UNDO_PREFIX = "undo: "
"""How the steps that undo a start are named: recorded after the step that failed."""


def state_after(command: Command, outcome: Outcome, before: State | None, started: bool = True,
                running: bool = False) -> State | None:
    """The recorded state a command's outcome leaves an instance in (`before` when it changes nothing).

    An adopt records the instance initialized, or running when its unit was
    (`running`, what the adopt found and checked).

    A start or restart that fails is undone on the host (unit disabled and
    stopped), hence `failed`; a restart cancelled once it had `started` was
    undone too, after its stop, hence `stopped`. A stop of a reset instance
    keeps it reset: its files are still gone and the next start must
    re-initialize it.
    """
    match outcome:
        case Outcome.SUCCEEDED:
            return _success(command, before, running)
        case Outcome.FAILED if command in STARTING:
            return State.FAILED
        case Outcome.CANCELLED if command is Command.RESTART and started:
            return State.STOPPED
        case Outcome.FAILED | Outcome.CANCELLED | Outcome.REJECTED | Outcome.INTERRUPTED:
            return before
        case _:
            raise ValueError(f"{outcome!r} is not the outcome of a finished command")


def _success(command: Command, before: State | None, running: bool) -> State:
    match command:
        case Command.INIT:
            return State.INITIALIZED
        case Command.ADOPT:
            return State.RUNNING if running else State.INITIALIZED
        case Command.START | Command.RESTART:
            return State.RUNNING
        case Command.STOP:
            return State.RESET if before is State.RESET else State.STOPPED
        case Command.DELETE:
            return State.DELETED
        case Command.RESET:
            return State.RESET
        case (Command.SECRET_SET | Command.SECRET_UNSET | Command.CONSOLE | Command.BACKUP
              | Command.RESTORE) if before is not None:
            return before
        case Command.SECRET_SET | Command.SECRET_UNSET | Command.CONSOLE | Command.BACKUP | Command.RESTORE:
            raise ValueError(f"{command} cannot succeed on an instance that was never initialized")
        case Command.INSTALL | Command.UPDATE:
            raise ValueError(f"{command} acts on the installation: it leaves no instance state")
        case _:
            raise ValueError(f"{command!r} is not a lifecycle command")


def state_observed(observation: Observation, before: State | None) -> State | None:
    """The recorded state an observation leaves an instance in.

    Only instances that exist on the host are moved (not unknown, reset or
    deleted ones: their unit has nothing to run). A crash alone changes
    nothing: systemd either restarts the server (`restarted`) or gives up.
    """
    if before in (None, State.RESET, State.DELETED):
        return before
    match observation:
        case Observation.CRASHED:
            return before
        case Observation.RESTARTED | Observation.STARTED_OUTSIDE:
            return State.RUNNING
        case Observation.STOPPED_OUTSIDE:
            return State.STOPPED
        case Observation.GAVE_UP:
            return State.FAILED
        case _:
            raise ValueError(f"{observation!r} is not an observation")


def needs_init_after(command: Command, outcome: Outcome, before: bool) -> bool:
    """Whether the next start must write the instance's files from the blueprint first.

    A reset removes them; only an init or a start that succeeded writes them
    back for sure (a start that failed may have stopped half-way through).
    """
    if outcome is not Outcome.SUCCEEDED:
        return before
    match command:
        case Command.RESET:
            return True
        case Command.INIT | Command.ADOPT | Command.START | Command.RESTART:
            return False
        case (Command.STOP | Command.DELETE | Command.SECRET_SET | Command.SECRET_UNSET | Command.CONSOLE
              | Command.BACKUP | Command.RESTORE | Command.INSTALL | Command.UPDATE):
            return before
        case _:
            raise ValueError(f"{command!r} is not a lifecycle command")


def refusal(command: Command, state: State | None, name: str) -> str | None:
    """Why the recorded state does not allow `command` on instance `name`; None when it does."""
    match command:
        case Command.INIT:
            return f"instance {name!r} is running: stop it first" if state is State.RUNNING else None
        case Command.DELETE:
            return _unknown(name) if state is None else None
        case Command.CONSOLE:
            if state is None:
                return _unknown(name)
            return None if state is State.RUNNING else f"instance {name!r} is {state}, not running: the console " \
                                                         f"needs a running server"
        case Command.ADOPT:
            if state in (None, State.DELETED):
                return None
            return f"instance {name!r} is already recorded ({state}): there is nothing to adopt"
        case Command.BACKUP | Command.RESTORE if state in (None, State.DELETED):
            return _unknown(name) if state is None else f"instance {name!r} was deleted: its files are gone"
        case Command.BACKUP | Command.RESTORE if state is State.RUNNING:
            return (f"instance {name!r} is running: stop it first (a {command} reads or writes its upper layer "
                    f"only while its server does not)")
        case Command.BACKUP if state is State.RESET:
            return f"instance {name!r} was reset: its upper layer is gone, there is nothing to back up"
        case Command.BACKUP | Command.RESTORE:
            return None
        case Command.INSTALL | Command.UPDATE:
            return None if name == INSTALLATION else f"{command} acts on the installation, not on instance {name!r}"
        case (Command.START | Command.STOP | Command.RESTART | Command.RESET | Command.SECRET_SET
              | Command.SECRET_UNSET):
            if state is None:
                return _unknown(name)
            return f"instance {name!r} was deleted: init it again first" if state is State.DELETED else None
        case _:
            raise ValueError(f"{command!r} is not a lifecycle command")


def _unknown(name: str) -> str:
    return f"instance {name!r} is not known: init it first"
