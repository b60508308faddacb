"""One run for the instances several commands ask about at about the same time: a fleet's starts, or its stops,
cost one `sudo`, one helper and one systemctl instead of one of each per instance; its readiness checks, one
`systemctl show` per round instead of one per instance."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .errors import HostError


class Company:
    """How many workers are at work right now, each of which may ask a batcher for its name: a call that holds
    a name from every one of them has nobody left to wait for.

    The executor counts its workers in before any of them starts (a round's
    commands join together) and out as each ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._size = 0

    @property
    def size(self) -> int:
        """How many workers are at work."""
        return self._size

    def join(self, count: int) -> None:
        """`count` workers are about to start."""
        with self._lock:
            self._size += count

    def leave(self) -> None:
        """A worker ended."""
        with self._lock:
            self._size -= 1


@dataclass(frozen=True)
class NameResult:
    """What a batch call did for one name: `status` done, failed or refused, in the helper's words, and the
    lines the run printed about that name besides (systemctl's own)."""

    status: str
    message: str
    said: list[str]


R = TypeVar("R")
RunBatch = Callable[[list[str]], dict[str, R]]
GATHER_QUIET = 0.03
"""A call waits for company while names keep coming: until none was asked for this long (seconds)..."""
GATHER_MOST = 0.25
"""...but at most this long after it could have run."""


@dataclass
class _Ask(Generic[R]):
    name: str
    turn: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    result: R | None = None
    error: HostError | None = None


class Batcher(Generic[R]):
    """Serves `run(name)` from many threads with as few `run_batch(names)` calls as possible (`source` names
    what runs them, in errors).

    A call waits for company only while names keep coming and company may
    still come: it runs once no name was asked for `quiet` seconds (at most
    `most` after it could have run), once it holds `limit` names, or once it
    holds as many names as the `company` has workers at work (each worker
    asks for one name at a time). Names asked while a call runs wait for the
    next one, which takes them all (up to `limit`, each name once), led by
    the thread that asked first. So one command alone runs at once, and a
    fleet's commands share one call instead of the first going alone: on
    systemd a stop or start of one unit takes about as long as that of
    twenty at once.
    """

    def __init__(self, run_batch: RunBatch[R], limit: int, quiet: float = GATHER_QUIET, most: float = GATHER_MOST,
                 source: str = "the helper", company: Company | None = None):
        self._run_batch = run_batch
        self._source = source
        self._limit = limit
        self._quiet = quiet
        self._most = most
        self._company = company
        self._lock = threading.Condition()
        self._asked: list[_Ask[R]] = []
        self._last_asked = 0.0
        self._busy = False

    def run(self, name: str) -> R:
        """What the call that took `name` did for it; `HostError` when that call failed as a whole."""
        ask: _Ask[R] = _Ask(name)
        with self._lock:
            self._asked.append(ask)
            self._last_asked = time.monotonic()
            self._lock.notify_all()
            if not self._busy:
                self._busy = ask.leads = True
        if not ask.leads:
            ask.turn.wait()
        if ask.leads:
            self._lead(ask)
        if ask.error is not None:
            raise ask.error
        assert ask.result is not None
        return ask.result

    def _lead(self, mine: _Ask[R]) -> None:
        """Run one call for the names asked so far (once they stop coming), hand each its result, and pass the
        lead on."""
        with self._lock:
            try:
                self._gather()
            except BaseException:  # an interrupt while gathering: the next asker leads instead
                self._asked.remove(mine)
                self._pass_lead()
                raise
            batch: list[_Ask[R]] = []
            for ask in list(self._asked):
                if len(batch) < self._limit and all(ask.name != taken.name for taken in batch):
                    batch.append(ask)
                    self._asked.remove(ask)
        try:
            results = self._run_batch([ask.name for ask in batch])
            for ask in batch:
                ask.result = results.get(ask.name)
                if ask.result is None:
                    ask.error = HostError(f"{self._source} said nothing about {ask.name}")
        except BaseException as error:  # every thread waiting on this call gets its failure, none is left waiting
            failure = error if isinstance(error, HostError) else HostError(f"{type(error).__name__}: {error}")
            for ask in batch:
                ask.error = failure
            if not isinstance(error, Exception):
                raise  # an interrupt goes on up the leading thread
        finally:
            for ask in batch:
                ask.leads = False
                ask.turn.set()
            with self._lock:
                self._pass_lead()

    def _gather(self) -> None:
        """Wait (holding the lock's condition) while names keep coming: until none came for `quiet`, `most` has
        passed, `limit` names are asked, or a name from every worker of the company (one with no worker counted
        in is no executor's: it is not waited on, nor trusted)."""
        deadline = time.monotonic() + self._most
        while (asked := len({ask.name for ask in self._asked})) < self._limit and (
                self._company is None or not 0 < self._company.size <= asked):
            wait = min(self._last_asked + self._quiet, deadline) - time.monotonic()
            if wait <= 0:
                return
            self._lock.wait(wait)

    def _pass_lead(self) -> None:
        """Hand the lead to the first name still waiting (the lock held), or mark the batcher idle."""
        if not self._asked:
            self._busy = False
            return
        following = self._asked[0]
        following.leads = True
        following.turn.set()
