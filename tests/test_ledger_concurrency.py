"""Concurrent writer processes lose nothing, duplicate nothing, and keep one chain."""

from __future__ import annotations

import multiprocessing

from ledger import Ledger, verify_ledger

from .conftest import an_event

WRITERS = 8
EVENTS_PER_WRITER = 250


def _append_many(path: str, writer: int, go) -> None:
    go.wait()
    with Ledger.open(path, busy_timeout=60) as ledger:
        for number in range(EVENTS_PER_WRITER):
            ledger.append([an_event(instance=f"w{writer}", command_id=f"{writer}-{number}")])


def test_eight_processes_appending_at_once_lose_and_duplicate_nothing(ledger_path):
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    writers = [context.Process(target=_append_many, args=(str(ledger_path), n, go)) for n in range(WRITERS)]
    for writer in writers:
        writer.start()
    go.set()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0] * WRITERS

    with Ledger.open(ledger_path) as ledger:
        events = list(ledger.read())
        report = verify_ledger(ledger)
    total = WRITERS * EVENTS_PER_WRITER
    assert [event.seq for event in events] == list(range(1, total + 1))
    assert sorted(event.command_id for event in events) == sorted(
        f"{w}-{n}" for w in range(WRITERS) for n in range(EVENTS_PER_WRITER)
    )
    for writer in range(WRITERS):
        own = [int(e.command_id.split("-")[1]) for e in events if e.instance == f"w{writer}"]
        assert own == list(range(EVENTS_PER_WRITER))
    assert report.ok and report.events == total
