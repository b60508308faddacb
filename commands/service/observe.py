"""Observations: what systemd did to the instance units that no command caused, recorded as facts.

The executor reads systemd's journal entries about `left4me-server@*.service`
from where it last stopped (a position kept in the ledger file) and appends
an `Observed` event for each one that l4d2ctl did not cause: a crash, a
restart by systemd, systemd giving up, a stop or start by hand. An entry
logged while a command of the same instance was running is that command's
own doing. Each observation carries its journal cursor as request key, so
reading the same entries again records nothing twice.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timezone

from host_adapters import ServiceControl, UnitEntry, UnitEvent, UnitJournal
from ledger import Ledger, NewEvent, Observed, format_time, parse_time
from ledger.lifecycle import OBSERVER_ACTOR, Observation, State
from ledger.payloads import EventRecord
from projections import Projections

from ..domain.text_rules import name_problem
from .command_ids import new_command_id

JOURNAL_POSITION = "journal"
JOURNAL_FROM_POSITION = "journal-from"
"""Set by restore-ledger: with no journal cursor yet, read this host's journal from then, not from the ledger's
first event (entries before the restore were the old host's, or are judged by the reconcile)."""
POSITION_SAVE_INTERVAL = 60.0
"""How long a journal position past entries that were all the commands' own doing may stay unsaved: it spares a
commit at every look, and losing it only means reading those entries again (they record nothing twice)."""
RECONCILE_POSITION = "reconcile"
"""Set by restore-ledger: the next executor compares every unit with the ledger before anything else."""


def observation_of(entry: UnitEntry, recorded: State | None, stopping: bool) -> tuple[Observation, str] | None:
    """What a journal entry says happened, given the instance's recorded state; None when it is no news.

    Crashes, restarts and giving up are news whatever the ledger says; a start
    or stop is news only when it contradicts the recorded state (systemd's own
    restart after a recorded `restarted` is not a start from outside). A clean
    exit inside a stop job (`stopping`) is part of that stop, not a server
    quitting by itself.
    """
    fields = entry.fields
    match entry.event:
        case UnitEvent.EXITED:
            return Observation.CRASHED, _exit_detail(fields)
        case UnitEvent.RESTART_SCHEDULED:
            return Observation.RESTARTED, f"systemd restarted the server (restart {fields.get('N_RESTARTS', '?')})"
        case UnitEvent.START_LIMIT_HIT:
            return Observation.GAVE_UP, "systemd gave up restarting the server: start request repeated too quickly"
        case UnitEvent.STARTED if recorded is not State.RUNNING:
            return Observation.STARTED_OUTSIDE, "the unit was started outside l4d2ctl"
        case UnitEvent.STOPPED if recorded is State.RUNNING:
            return Observation.STOPPED_OUTSIDE, "the unit was stopped outside l4d2ctl"
        case UnitEvent.DEACTIVATED if recorded is State.RUNNING and not stopping:
            return Observation.STOPPED_OUTSIDE, "the server exited on its own with status 0"
        case UnitEvent.STARTED | UnitEvent.STOPPED | UnitEvent.DEACTIVATED | UnitEvent.STOPPING:
            return None
        case _:
            raise ValueError(f"{entry.event!r} is not a unit event this l4d2ctl knows")


def _exit_detail(fields: dict[str, str]) -> str:
    command = fields.get("COMMAND", "ExecStart")
    process = "the server" if command == "ExecStart" else f"its {command} process"
    code, status = fields.get("EXIT_CODE", "exited"), fields.get("EXIT_STATUS", "?")
    if code in ("killed", "dumped") and status.isdigit():
        try:
            status = signal.Signals(int(status)).name
        except ValueError:
            pass
        return f"{process} was killed by signal {status}" + (" (core dumped)" if code == "dumped" else "")
    return f"{process} exited with status {status}"


class UnitWatcher:
    """Catches the ledger up with the journal: appends an observation for each entry no command caused."""

    def __init__(self, ledger: Ledger, projections: Projections, journal: UnitJournal, os_user: str):
        self.ledger = ledger
        self.projections = projections
        self.journal = journal
        self.os_user = os_user
        # Read past the saved position without recording anything: (the saved one, where reading got, when saved).
        self._unsaved: tuple[str | None, str, float] | None = None

    def catch_up(self) -> list[EventRecord]:
        """Read the journal from the recorded position; record what is news; return the events appended.

        Everything read is recorded, together with the new position, in one
        transaction: a crash here loses nothing and, on the next read, repeats
        nothing. A read whose entries were all the commands' own doing keeps its
        position in memory (saved at most POSITION_SAVE_INTERVAL later): a crash
        then only means reading those entries again. An entry judged against
        the recorded state is never read again: its position is saved with it.
        """
        saved = after = self.ledger.position(JOURNAL_POSITION)
        if self._unsaved is not None and self._unsaved[0] == saved:
            after = self._unsaved[1]
        restored_at = self.ledger.position(JOURNAL_FROM_POSITION)
        since = None if after is not None else parse_time(restored_at) if restored_at else self._ledger_began()
        if after is None and since is None:
            return []
        read = self.journal.entries(after, since)
        if read.position is None:
            return []
        saved_at = time.monotonic() if self._unsaved is None or self._unsaved[0] != saved else self._unsaved[2]
        applied: list[EventRecord] = []
        candidates = self._candidates(read.entries)
        if not candidates and time.monotonic() - saved_at < POSITION_SAVE_INTERVAL:
            self._unsaved = (saved, read.position, saved_at)
            return applied
        # Not synced on its own: a power cut takes the observations back together with the position they
        # were read up to, so they are read from the journal again; the next command's start syncs them.
        with self.ledger.transaction(durable=False):
            for entry, stopping in candidates:
                applied += self._record(entry, stopping)
            self.ledger.set_position(JOURNAL_POSITION, read.position)
        self._unsaved = None
        return applied

    def reconcile(self, services: ServiceControl) -> list[EventRecord]:
        """After restore-ledger (the ledger came from a replica, maybe onto a fresh host, whose journal knows
        nothing of what it records): record as observations how each unit differs from the ledger, once.

        A unit recorded running that is not active was stopped outside; one
        recorded initialized, stopped or failed that is active was started
        outside. A unit systemd cannot be asked about keeps the mark: the next
        start of an executor asks again.
        """
        marker = self.ledger.position(RECONCILE_POSITION)
        if marker is None:
            return []
        applied: list[EventRecord] = []
        with self.ledger.transaction():
            for instance in self.projections.instances():
                recorded = instance.recorded_state
                if recorded in (None, State.RESET, State.DELETED):
                    continue
                active = services.status(instance.name).active
                if active == (recorded is State.RUNNING):
                    continue
                kind = Observation.STARTED_OUTSIDE if active else Observation.STOPPED_OUTSIDE
                detail = (f"the ledger was restored from a replica ({marker}); here the unit is "
                          f"{'active' if active else 'not active'}, the ledger said {recorded}")
                now, source = format_time(datetime.now(timezone.utc)), f"{RECONCILE_POSITION}:{marker}"
                _, created = self.ledger.append_requested(NewEvent(
                    instance=instance.name, command_id=new_command_id(), actor=OBSERVER_ACTOR, os_user=self.os_user,
                    request_key=f"{source}:{instance.name}",
                    payload=Observed(kind=kind, detail=detail, observed_at=now, source=source),
                ))
                applied += self.projections.sync() if created else []
            self.ledger.forget_position(RECONCILE_POSITION)
        return applied

    def _candidates(self, entries: list[UnitEntry]) -> list[tuple[UnitEntry, bool]]:
        """The entries that may be news, each with whether its unit was stopping then: those of a valid instance
        name logged while no command of that instance acted on the host."""
        candidates = []
        stopping: set[str] = set()
        for entry in entries:
            if not name_problem(entry.instance) and not self.projections.acting_on(entry.instance,
                                                                                   format_time(entry.at)):
                candidates.append((entry, entry.instance in stopping))
            if entry.event is UnitEvent.STOPPING:
                stopping.add(entry.instance)
            elif entry.event is UnitEvent.STOPPED:
                stopping.discard(entry.instance)
        return candidates

    def _record(self, entry: UnitEntry, stopping: bool) -> list[EventRecord]:
        """Append the observation `entry` makes, if it is news given the recorded state (one of `_candidates`)."""
        at = format_time(entry.at)
        news = observation_of(entry, self.projections.instance(entry.instance).recorded_state, stopping)
        if news is None:
            return []
        kind, detail = news
        _, created = self.ledger.append_requested(NewEvent(
            instance=entry.instance, command_id=new_command_id(), actor=OBSERVER_ACTOR, os_user=self.os_user,
            request_key=f"{JOURNAL_POSITION}:{entry.source}",
            payload=Observed(kind=kind, detail=detail, observed_at=at, source=entry.source),
        ))
        return self.projections.sync() if created else []

    def _ledger_began(self) -> datetime | None:
        first = next(self.ledger.rows(columns=("recorded_at",)), None)
        return None if first is None else parse_time(first["recorded_at"])
