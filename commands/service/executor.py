"""The executor: decides requested commands in seq order, runs their steps, records what happened.

Exactly one runs per ledger (the caller holds `ExecutorLock`). Decisions are
taken one at a time, in seq order, by the thread that owns the ledger, in
rounds: the starts a round decides share one durable commit, and only then
does the host see them. The steps of each started command run in a worker
thread of their own, so
commands of different instances overlap (at most `jobs` at once). A command
is decided only once nothing it depends on is still running: its instance's
earlier command, and for a decision that reads other instances (an init's
port check, a retry or replay) every running command. So every decision sees
exactly the state a serial executor would have given it. Workers never touch
the ledger: they report step results and output lines back, and the owning
thread records them. Everything the executor does to the host goes through
the adapters it is given.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from host_adapters import Cancelled, Host, HostError, StepIO
from host_adapters.protocols import valid_text
from ledger import Ledger, LedgerError, LedgerLocked, parse_time
from ledger.events import (
    CommandCancelled,
    CommandFailed,
    CommandInterrupted,
    CommandRejected,
    CommandRequested,
    CommandStarted,
    CommandSucceeded,
    NewEvent,
    Payload,
    StepCompleted,
)
from ledger.lifecycle import ON_INSTALLATION, PART_OF, Command, EventType, out_of_turn
from ledger.payloads import EventRecord
from projections import CommandView, Projections

from ..domain.decide import decide
from ..domain.errors import Rejected
from ..domain.steps import NothingToDo, Part, Plan, Step
from .command_ids import new_command_id
from .executor_lock import executor_alive
from .identity import os_user
from .limits import DEFAULT_JOBS
from .observe import UnitWatcher
from .proven import ProvenState, as_requested

Observer = Callable[[EventRecord], None]
LineSink = Callable[[CommandView, str, str], None]
Warn = Callable[[str], None]
# While the queue is empty, how often the journal is read for observations (before a command: always).
WATCH_INTERVAL = 1.0
# While commands run, how often: what their units do is their own doing, and each read keeps the owning
# thread (the one that records every step) from recording for as long as journalctl takes.
BUSY_WATCH_INTERVAL = 5.0
# While commands run and no worker reports, how often the owning thread looks at the ledger again (for
# cancels and new commands): a report wakes it at once.
REPORT_WAIT = 0.2
# How long to wait before trying again to record what happened, when the ledger stayed locked past its timeout.
LOCKED_RETRY = 1.0


@dataclass(frozen=True)
class Flight:
    """A started command whose steps a worker is running, and the flag that tells the worker to cancel."""

    command: CommandView
    cancel: threading.Event


@dataclass(frozen=True)
class StepLine:
    """An output line a worker's step printed."""

    flight: Flight
    step: str
    line: str


@dataclass(frozen=True)
class StepResult:
    """An event a worker asks to record: a completed step, or the command's outcome.

    A worker goes on to its next step at once; `recorded` is set (when given)
    once the event is in the ledger: a part's worker waits for the part's
    outcome before its whole goes on.
    """

    flight: Flight
    payload: Payload
    recorded: threading.Event | None


@dataclass(frozen=True)
class PartRequest:
    """A worker asks for a part of its command (`Part`) to be requested, decided and started as a command of its
    own; `reply` gets the part's command and its plan (None: it was not started, its outcome is recorded)."""

    flight: Flight
    part: Part
    cancel: threading.Event
    reply: queue.SimpleQueue[tuple[CommandView, Plan | None]]


Report = StepLine | StepResult | PartRequest
OUTCOMES = (CommandSucceeded, CommandFailed, CommandRejected, CommandCancelled, CommandInterrupted)


def _unexpected(error: Exception) -> str:
    """An error no step expected, as a failure records it: its kind and its message, as valid text."""
    return valid_text(f"{error.__class__.__name__}: {error}")


def waits_for_everyone(command: CommandView) -> bool:
    """Whether deciding `command` reads other instances' outcomes: an init or adopt checks that its port is
    free, a retry or replay looks at the command it links to, an install or update at every instance."""
    return (command.command in (Command.INIT, Command.ADOPT, *ON_INSTALLATION) or command.retry_of is not None
            or command.replay_of is not None)


class Executor:
    """Applies requested commands to the host in ledger order, different instances' at the same time."""

    def __init__(
        self,
        ledger: Ledger,
        host: Host,
        *,
        projections: Projections | None = None,
        observer: Observer = lambda event: None,
        on_line: LineSink = lambda command, step, line: None,
        warn: Warn = lambda message: None,
        jobs: int = DEFAULT_JOBS,
        lock_held: Callable[[], bool] = lambda: True,
    ):
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, not {jobs}")
        self.ledger = ledger
        self.host = host
        self.projections = Projections(ledger) if projections is None else projections
        self.observer = observer
        self.on_line = on_line
        self.warn = warn
        self.jobs = jobs
        self.lock_held = lock_held
        self.os_user = os_user()
        self.watcher = UnitWatcher(ledger, self.projections, host.journal, self.os_user)
        self._watched_at: float | None = None
        self._looked_seq = -1  # the ledger's head when the journal was last looked at: commands up to it are covered
        self._covered: set[str] = set()  # commands requested after that look, looked at for them all the same
        self._untold: list[EventRecord] | None = None  # recorded in the open transaction, for the observer
        self._flights: dict[str, Flight] = {}
        self._reports: queue.SimpleQueue[Report] = queue.SimpleQueue()

    def recover(self) -> list[str]:
        """Mark every command found started but unfinished as interrupted; return their ids. After
        restore-ledger, also record how the units differ from the ledger (`UnitWatcher.reconcile`).

        Only an executor holding the lock may call this: a started command with
        no outcome then belongs to an executor that died. Unless that executor
        still runs (its lock file was deleted): then nothing is marked, and
        `LedgerError` says which process to stop first.
        """
        self.projections.sync()
        interrupted = self.projections.running()
        for command in interrupted:
            started = next(self.ledger.read(command_id=command.command_id, types=(EventType.COMMAND_STARTED,)))
            payload = cast(CommandStarted, started.payload)
            if executor_alive(payload.pid, payload.host, parse_time(started.recorded_at)):
                raise LedgerError(f"command {command.command_id} ({command.command} {command.instance}) is still "
                                  f"run by executor pid {payload.pid} of this host, whose lock file was removed: "
                                  f"stop that executor first; nothing was marked interrupted")
        for command in interrupted:
            steps = self.projections.steps(command.command_id)
            self._record(command, CommandInterrupted(last_step=steps[-1]["step"] if steps else None,
                                                     last_event_at=steps[-1]["at"] if steps else command.started_at))
        try:
            self._tell(self.watcher.reconcile(self.host.services))
        except HostError as error:
            self.warn(f"cannot compare the units with the restored ledger yet (will retry at the next start): "
                      f"{error}")
        return [command.command_id for command in interrupted]

    def run_pending(self, until: Callable[[], bool] = lambda: False, upto_seq: int | None = None) -> int:
        """Run requested commands (those requested up to `upto_seq`, when given) until none is left or `until()`
        holds, and every command started has its outcome recorded; return how many were taken up.

        While commands run, a ledger locked past its timeout is waited out
        (with a warning): their workers go on, and what they did must land.
        """
        taken = 0
        while True:
            self._take_reports()
            try:
                now = self._take_up_ready(until, upto_seq)
                taken += now
                if now:
                    continue  # the round may have ended at a command requested after its look of the journal
                if not self._flights:
                    self.watch(force=False)
                    return taken
            except LedgerLocked as error:
                if not self._flights:
                    raise
                self.warn(f"{error}; {len(self._flights)} commands still run, and will be recorded")
            self.watch(force=False)
            self._await_reports()

    def take_up_requested(self, request: Callable[[], Sequence[str]],
                          announce: Callable[[Sequence[str]], None] = lambda command_ids: None) -> list[str]:
        """Record the commands `request` appends (it returns their ids) and, in the same durable commit, the
        decisions that can be taken on them at once; once that is committed, hand the started ones to workers
        and `announce` the ids. Returns the ids: `run_pending` sees them through.

        For a caller that holds the executor lock and executes what it
        requests (the CLI): a request and its start reach the disk together,
        before the host is touched, in one sync instead of two, and a request
        that cannot be recorded leaves nothing decided. The journal is looked
        at just before: these commands are appended right after that look, by
        the process that holds the lock, so it covers them (not another's
        command appended in between: that one ends the round).
        """
        self.watch(force=True)
        requested: list[str] = []

        def append(untold: list[EventRecord]) -> int:
            """Append the requests; the last seq to take up (the newest of them: others may have waited)."""
            requested.extend(request())
            untold.extend(self.projections.sync())
            self._covered.update(requested)
            return max((self.projections.recorded_command(command_id).requested_seq for command_id in requested),
                       default=0)

        self._take_up_ready(lambda: False, None, request=append, announce=lambda: announce(requested))
        return requested

    def _take_up_ready(self, until: Callable[[], bool], upto_seq: int | None, *,
                       request: Callable[[list[EventRecord]], int] | None = None,
                       announce: Callable[[], None] = lambda: None) -> int:
        """Decide, in seq order, every command that may be decided now, and record each one's start (or why it
        does not start) in one durable commit, after what `request` appends (it adds the events to the list it
        is given, and returns the last seq to take up); once that is committed, hand the started commands to
        workers, `announce` and tell the observer (what fails there is warned about: it undoes nothing that was
        committed, and abandons no worker). Returns how many commands were taken up.

        The journal is caught up with first when the next command was
        requested after the last look, and a command requested after the look
        ends the round (the next round looks first): an observation lands
        before the command that follows it, and the journal is never read
        while the ledger's write lock is held.
        """
        if request is None:
            command = self._next_command(until, upto_seq)
            if command is None or not self._may_decide(command):
                return 0
            if not self._is_covered(command):
                self.watch(force=True)
                self._covered.add(command.command_id)  # looked at for it, whatever seq its row claims
        ready: list[tuple[Flight, Plan]] = []
        taken = 0
        try:
            with self._recording(tell=False) as untold:
                if request is not None:
                    upto_seq = request(untold)
                command = self._next_command(until, upto_seq)
                while command is not None and self._is_covered(command) and self._may_decide(command):
                    started = self._take_up(command)
                    taken += 1
                    if started is not None:
                        ready.append(started)
                    command = self._next_command(until, upto_seq)
        except BaseException:
            for flight, _ in ready:  # decided in a transaction that did not commit: nothing of it happened
                del self._flights[flight.command.command_id]
            raise
        self.host.company.join(len(ready))  # all of them, before the first can ask a batcher whom to wait for
        for flight, plan in ready:  # committed: each started command gets its worker, whatever follows
            try:
                threading.Thread(target=self._carry_out, args=(flight, plan),
                                 name=f"l4d2ctl {flight.command.command_id}", daemon=True).start()
            except RuntimeError as error:  # no thread to be had (a process at its limit): nothing was done yet
                self.host.company.leave()
                self._reports.put(StepResult(flight, CommandInterrupted(
                    reason=f"the executor could not start a worker for it ({error}); nothing was done"), None))
        try:
            announce()  # before anything the workers report: only this thread passes their reports on
        except Exception as error:
            self.warn(f"commands {', '.join(flight.command.command_id for flight, _ in ready)} started, but "
                      f"announcing them failed: {error}")
        self._tell(untold)
        return taken

    def _is_covered(self, command: CommandView) -> bool:
        """Whether the journal was looked at after `command` was requested: judged by seq, which only grows, not
        by a clock that may step back."""
        return command.requested_seq <= self._looked_seq or command.command_id in self._covered

    def _next_command(self, until: Callable[[], bool], upto_seq: int | None) -> CommandView | None:
        """Bring the projections up to date, pass on cancels, and give the oldest command nobody took up yet (if
        it is one to take up)."""
        self.projections.sync()
        self._pass_on_cancels()
        command = None if until() else self.projections.next_pending()
        return command if command is None or upto_seq is None or command.requested_seq <= upto_seq else None

    def serve(self, once: bool, stopping: Callable[[], bool], idle: float = 0.2) -> int:
        """Drain the queue; unless `once`, keep draining as commands arrive until `stopping()`. Returns how many
        commands ran."""
        ran = self.run_pending(until=stopping)
        while not once and not stopping():
            time.sleep(idle)
            ran += self.run_pending(until=stopping)
        return ran

    def watch(self, force: bool = True) -> None:
        """Record what systemd did on its own since the last look (unless `force`, at most every WATCH_INTERVAL,
        or BUSY_WATCH_INTERVAL while commands run).

        Before deciding a command requested after the last look, the ledger
        catches up with the journal, so an observation lands before the
        command that follows it (a batch requested at once needs one look). What a unit
        does while a command of its instance runs is that command's own doing.
        A journal that cannot be read is reported and read again next time:
        nothing is lost.
        """
        now = time.monotonic()
        interval = BUSY_WATCH_INTERVAL if self._flights else WATCH_INTERVAL
        if not force and self._watched_at is not None and now - self._watched_at < interval:
            return
        self._watched_at = now
        self._looked_seq = self.ledger.head()[0]
        try:
            events = self.watcher.catch_up()
        except (HostError, LedgerError) as error:
            self.warn(f"cannot record observations from the journal (will retry): {error}")
            return
        self._tell(events)

    def _may_decide(self, command: CommandView) -> bool:
        """Whether `command` can be decided now: a free worker, and nothing running that its decision reads."""
        if len(self._flights) >= self.jobs:
            return False
        if any(flight.command.command in ON_INSTALLATION for flight in self._flights.values()):
            return False  # nothing starts on the installation while it changes
        if waits_for_everyone(command):
            return not self._flights
        return all(flight.command.instance != command.instance for flight in self._flights.values())

    def _take_up(self, command: CommandView) -> tuple[Flight, Plan] | None:
        """Decide one command and record its start, with the flight its worker is to run (or why it does not
        start, and None). The caller hands the flight to a worker once that is committed.

        Refused (`LedgerError`) once the executor lock is no longer this
        process's: another executor may be running, so nothing new is started.
        """
        if not self.lock_held():
            raise LedgerError(f"the executor lock was removed or replaced while this executor (pid {os.getpid()}) "
                              f"held it: another executor may be running; nothing more is started here")
        self._covered.discard(command.command_id)
        if command.cancel_requested_by is not None:
            self._record(command, CommandCancelled(step=None))
            return None
        try:
            plan = decide(as_requested(self.ledger, command), ProvenState(self.projections, self.ledger))
        except Rejected as rejection:
            self._record(command, CommandRejected(reason=str(rejection)))
            return None
        self._record(command, CommandStarted(pid=os.getpid(), host=socket.gethostname(), simulated=self.host.simulated))
        flight = Flight(command, threading.Event())
        self._flights[command.command_id] = flight
        return flight, plan

    def _await_reports(self) -> None:
        """Record the workers' reports until a command ends or REPORT_WAIT has passed: only then may something
        new be decided (a freed instance or worker, a command requested meanwhile, a cancel to pass on)."""
        deadline = time.monotonic() + REPORT_WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                report = self._reports.get(timeout=left)
            except queue.Empty:
                return
            if self._take([report, *self._sent_so_far()]):
                return

    def _take_reports(self) -> None:
        """Record every report the workers have sent so far."""
        self._take(self._sent_so_far())

    def _sent_so_far(self) -> list[Report]:
        """The reports waiting in the queue, oldest first."""
        reports = []
        while True:
            try:
                reports.append(self._reports.get_nowait())
            except queue.Empty:
                return reports

    def _take(self, reports: list[Report]) -> bool:
        """Take reports in order: lines are passed on, and the events the workers ask for are recorded together,
        in one transaction (a group commit: many workers' steps and outcomes, one sync); whether a command ended.

        A part is requested only once what came before it is recorded. Workers
        do not wait for their steps' events, so a batch may hold several events
        of one command, in the order they happened.
        """
        ended, results = False, []
        for report in reports:
            match report:
                case StepLine(flight, step, line):
                    self.on_line(flight.command, step, line)
                case StepResult():
                    results.append(report)
                case PartRequest(flight, part, cancel, reply):
                    ended |= self._record_results(results)
                    results = []
                    reply.put(self._take_up_part(flight.command, part, cancel))
                case _:
                    raise TypeError(f"{report!r} is not a worker report")
        return self._record_results(results) or ended

    def _record_results(self, results: list[StepResult]) -> bool:
        """Record the workers' events in one transaction, synced when it holds an outcome; let their workers go
        on; whether a command ended."""
        if not results:
            return False
        ended = any(isinstance(result.payload, OUTCOMES) for result in results)
        self._record_what_happened([(result.flight.command, result.payload) for result in results], durable=ended)
        for result in results:
            if isinstance(result.payload, OUTCOMES):
                del self._flights[result.flight.command.command_id]
            if result.recorded is not None:
                result.recorded.set()
        return ended

    def _take_up_part(self, whole: CommandView, part: Part,
                      cancel: threading.Event) -> tuple[CommandView, Plan | None]:
        """Request a part of `whole` as a command of its instance (linked by `part_of`, by the same actor), decide
        it, and record its start (its plan returned) or its rejection (None)."""
        command_id = self._append_part(whole, part)
        command = self.projections.recorded_command(command_id)
        try:
            plan = decide(command, ProvenState(self.projections, self.ledger))
        except (Rejected, LedgerError) as refused:
            self._record_what_happened([(command, CommandRejected(reason=str(refused)))])
            return self.projections.recorded_command(command_id), None
        self._record_what_happened([(command, CommandStarted(pid=os.getpid(), host=socket.gethostname(),
                                                             simulated=self.host.simulated))])
        self._flights[command_id] = Flight(command, cancel)
        return command, plan

    def _append_part(self, whole: CommandView, part: Part) -> str:
        """Record the request of a part (waiting out a locked ledger, as for anything that happens mid-command)."""
        event = NewEvent(instance=part.instance, command_id=new_command_id(), actor=whole.actor, os_user=self.os_user,
                         payload=CommandRequested(command=part.command, args={PART_OF: whole.command_id}))
        while True:
            try:
                with self.ledger.transaction():
                    self.ledger.append([event])
                    self.projections.sync()
                break
            except LedgerLocked as error:
                self.warn(f"{error}; still trying to record {part.name} as part of command {whole.command_id}")
                time.sleep(LOCKED_RETRY)
        return event.command_id

    def _pass_on_cancels(self) -> None:
        """Tell the workers of running commands someone asked to cancel."""
        if self._flights:
            for command_id in self.projections.cancels_asked():
                flight = self._flights.get(command_id)  # another's (a second executor's, an edited row): not ours
                if flight is not None:
                    flight.cancel.set()

    def _carry_out(self, flight: Flight, plan: Plan) -> None:
        """A worker: run the plan's steps, report each, and report the outcome last, whatever happens."""
        try:
            outcome = self._run_steps(flight, plan)
        except Exception as error:  # an undo step that broke: the command still gets its one outcome
            outcome = CommandFailed(step=None, error=_unexpected(error))
        finally:
            self.host.company.leave()
        self._reports.put(StepResult(flight, outcome, None))

    def _run_steps(self, flight: Flight, plan: Plan) -> Payload:
        """Run the plan's steps in order; the outcome, after the undo steps when the command stopped short."""
        parts: dict[tuple[Command, str], bool] = {}
        for step in plan.steps:
            if flight.cancel.is_set():
                return self._undo(flight, plan, CommandCancelled(step=step.name), parts)
            io = self._io(flight, step, cancellable=True)
            if isinstance(step, Part):
                failure = self._run_part(flight, step, parts, io, flight.cancel)
                if failure is not None:
                    return self._undo(flight, plan, failure, parts)
                self._step_completed(flight, step, io)
                continue
            try:
                step.action(self.host, io)
            except NothingToDo as done:
                io.say(str(done))
                self._step_completed(flight, step, io)
                break
            except Cancelled:
                return self._undo(flight, plan, CommandCancelled(step=step.name), parts)
            except HostError as error:
                tail = [valid_text(line) for line in error.stderr_tail]
                return self._undo(flight, plan, CommandFailed(step=step.name, error=valid_text(str(error)),
                                                              output=io.lines, stderr_tail=tail), parts)
            except Exception as error:  # whatever else a step raises ends its command as failed, recorded
                return self._undo(flight, plan, CommandFailed(step=step.name, error=_unexpected(error),
                                                              output=io.lines), parts)
            self._step_completed(flight, step, io)
        succeeded: Payload = CommandSucceeded()
        return succeeded

    def _undo(self, flight: Flight, plan: Plan, outcome: Payload,
              parts: dict[tuple[Command, str], bool]) -> Payload:
        """Run the undo steps of a command that stopped short (each reported), then give its outcome.

        Undo steps tolerate failures and are not cancellable: a start that was
        cancelled must still not leave its unit running. An undo part that
        fails is said in its step's output; the command's outcome stays the
        one that stopped it.
        """
        left = []
        for step in plan.undo:
            io = self._io(flight, step, cancellable=False)
            if isinstance(step, Part):
                if self._needed(step, parts, io) and self._run_part(flight, step, parts, io, threading.Event()):
                    left.append(io.lines[-1])
            else:
                step.action(self.host, io)
            self._step_completed(flight, step, io)
        if left and isinstance(outcome, CommandFailed):  # the one line an operator reads says where things stand
            return dataclasses.replace(outcome, error=f"{outcome.error}; and putting back: {'; '.join(left)}")
        return outcome

    def _needed(self, part: Part, parts: dict[tuple[Command, str], bool], io: StepIO) -> bool:
        """Whether `part` is to run: not run yet in this command, and its `after` part succeeded (else it says so)."""
        if (part.command, part.instance) in parts:
            io.say(f"{part.name} ran already, as part of this command")
            return False
        if part.after is not None and not parts.get((part.after, part.instance)):
            io.say(f"nothing to do: {part.instance} was not {'stopped' if part.after is Command.STOP else part.after} "
                   f"by this command")
            return False
        return True

    def _run_part(self, flight: Flight, part: Part, parts: dict[tuple[Command, str], bool], io: StepIO,
                  cancel: threading.Event) -> Payload | None:
        """Run a part as a command of its own (requested and decided by the owning thread, its steps here, its
        outcome recorded before going on); None when it succeeded, else the whole command's failure."""
        reply: queue.SimpleQueue[tuple[CommandView, Plan | None]] = queue.SimpleQueue()
        self._reports.put(PartRequest(flight, part, cancel, reply))
        command, plan = reply.get()
        if plan is None:
            outcome: Payload = CommandRejected(reason=command.error or "rejected")
        else:
            part_flight = Flight(command, cancel)
            try:
                outcome = self._run_steps(part_flight, plan)
            except Exception as error:  # as `_carry_out`: the part still gets its one outcome
                outcome = CommandFailed(step=None, error=_unexpected(error))
            recorded = threading.Event()
            self._reports.put(StepResult(part_flight, outcome, recorded))
            recorded.wait()
        succeeded = isinstance(outcome, CommandSucceeded)
        parts[(part.command, part.instance)] = succeeded
        ended = type(outcome).__name__.removeprefix("Command").lower()
        io.say(f"{part.name}: {ended} (command {command.command_id})")
        if succeeded:
            return None
        why = f"{part.name} {ended} (command {command.command_id}): nothing more was done but putting back what " \
              f"this command changed"
        if isinstance(outcome, CommandCancelled) and cancel.is_set():
            return CommandCancelled(step=part.name)
        return CommandFailed(step=part.name, error=why, output=list(io.lines))

    def _step_completed(self, flight: Flight, step: Step | Part, io: StepIO) -> None:
        """Have the owning thread record that `step` completed (with the next report: not waited for)."""
        self._reports.put(StepResult(flight, StepCompleted(step=step.name, output=io.lines), None))

    def _io(self, flight: Flight, step: Step | Part, cancellable: bool) -> StepIO:
        """The step's line sink (back to the owning thread) and cancel check (the flight's flag)."""
        return StepIO(
            emit=lambda line: self._reports.put(StepLine(flight, step.name, line)),
            should_cancel=flight.cancel.is_set if cancellable else (lambda: False),
        )

    def _record_what_happened(self, happened: list[tuple[CommandView, Payload]], *, durable: bool = True) -> None:
        """Record steps or outcomes: they happened on the host, so a ledger locked past its timeout (by a
        backup, a long read) is waited out, with a warning each time, never given up on."""
        while True:
            try:
                self._record_all(happened, durable=durable)
                return
            except LedgerLocked as error:
                what = "; ".join(f"{type(payload).__name__} of command {command.command_id} ({command.command} "
                                 f"{command.instance})" for command, payload in happened)
                self.warn(f"{error}; still trying to record {what}, which happened on the host")
                time.sleep(LOCKED_RETRY)

    def _record(self, command: CommandView, payload: Payload, *, durable: bool = True) -> None:
        """Record one event of `command` (as `_record_all`)."""
        self._record_all([(command, payload)], durable=durable)

    def _record_all(self, happened: list[tuple[CommandView, Payload]], *, durable: bool = True) -> None:
        """Append events of commands and bring the projections up to date, in one transaction; refused
        (`LedgerError`), all of them, when one is out of turn for its command's recorded events (`out_of_turn`).

        Two commits per command are durable: `CommandStarted`, before the host
        is touched, and the outcome, before it is reported. A step's event in
        between is not synced on its own: a power cut may lose it, which leaves
        the command started without an outcome, hence interrupted at the next
        start, and a retry converges since every step is idempotent; the
        outcome's sync makes every step before it durable. Events the workers
        of several commands sent meanwhile share one commit, and one sync.
        """
        events: list[NewEvent] = []
        recorded: dict[str, list[str]] = {}
        with self._recording(durable=durable) as untold:
            for command, payload in happened:
                event = NewEvent(instance=command.instance, command_id=command.command_id, actor=command.actor,
                                 os_user=self.os_user, payload=payload)
                types = recorded.get(command.command_id)
                if types is None:
                    types = [row["type"] for row in self.ledger.rows(command_id=command.command_id, columns=("type",))]
                refusal = out_of_turn(types, event.type)
                if refusal is not None:
                    raise LedgerError(f"command {command.command_id} ({command.command} {command.instance}): "
                                      f"refusing to record {event.type}: {refusal}. Is a second executor running, or "
                                      f"were the projections edited? (`l4d2ctl verify`; `l4d2ctl projections "
                                      f"rebuild`)")
                recorded[command.command_id] = [*types, event.type]
                events.append(event)
            self.ledger.append(events)
            untold.extend(self.projections.sync())

    @contextmanager
    def _recording(self, *, durable: bool = True, tell: bool = True) -> Iterator[list[EventRecord]]:
        """A ledger transaction; the events recorded in it (added to the list it gives) reach the observer once
        it commits (unless not `tell`: the caller does), never before, so a printed step or a sent alert is
        always in the ledger. Inside another, it is part of the outer one, and so are its events."""
        if self._untold is not None:
            yield self._untold
            return
        untold: list[EventRecord] = []
        self._untold = untold
        try:
            with self.ledger.transaction(durable=durable):
                yield untold
        finally:
            self._untold = None
        if tell:
            self._tell(untold)

    def _tell(self, records: Sequence[EventRecord]) -> None:
        """Hand committed events to the observer, in order. An observer that fails (a printer, an alert) is warned
        about and told the rest: what is recorded stays recorded, and is never recorded again for it."""
        for record in records:
            try:
                self.observer(record)
            except Exception as error:
                self.warn(f"event {record.seq} ({record.type} of {record.instance}) is recorded, but passing it on "
                          f"failed: {error}")
