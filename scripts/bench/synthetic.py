"""Build a large, valid ledger quickly: realistic command stories across many instances.

Events go through `Ledger.append` (so the chain, the indexes and the models
are the real ones), a thousand per transaction to keep set-up time sane.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from ledger import (
    CommandRequested,
    CommandStarted,
    CommandSucceeded,
    Ledger,
    NewEvent,
    StepCompleted,
)

# (command, its steps) in the order an instance lives through them, repeated.
LIFE = [
    ("init", ["create directories", "write instance.env", "write server.cfg", "write spec.yaml"]),
    ("start", ["remove stale cfgs", "stage server.cfg", "stage alias cfgs", "enable and start unit"]),
    ("stop", ["disable and stop unit", "unmount overlay"]),
    ("start", ["remove stale cfgs", "stage server.cfg", "stage alias cfgs", "enable and start unit"]),
    ("reset", ["disable and stop unit", "unmount overlay", "remove instance files", "remove runtime files"]),
]
ACTORS = ["alice", "bob", "carol", "dave"]
RARE_ACTOR = "eve"  # requests a fixed number of commands whatever the ledger's size: a fixed-size audit
RARE_COMMANDS = 20
EVENTS_PER_COMMAND = 7
BATCH = 1000


def _command_events(number: int, instance: int, command: str, steps: list[str], actor: str) -> list[NewEvent]:
    name = f"srv{instance:04d}"
    spec = {"port": 20000 + instance, "arguments": ["+map c1m1_hotel"], "config": [f'hostname "{name}"'],
            "overlays": []}

    def event(payload) -> NewEvent:
        return NewEvent(instance=name, command_id=f"{number:012x}", actor=actor, os_user="root", payload=payload)

    return [
        event(CommandRequested(command=command, args={"spec": spec} if command == "init" else {})),
        event(CommandStarted(pid=4242, host="bench")),
        *(event(StepCompleted(step=step, output=[f"{step} done"])) for step in steps),
        event(CommandSucceeded()),
    ]


def build_ledger(path: Path, events: int, instances: int) -> int:
    """Write a ledger of at least `events` events over `instances` instances; return how many it holds."""
    written = 0
    pending: list[NewEvent] = []
    counter = itertools.count(1)
    rare_every = max(1, events // EVENTS_PER_COMMAND // RARE_COMMANDS)
    with Ledger.open(path) as ledger:
        for round_number in itertools.count():
            command, steps = LIFE[round_number % len(LIFE)]
            for instance in range(instances):
                number = next(counter)
                actor = RARE_ACTOR if number % rare_every == 0 else ACTORS[number % len(ACTORS)]
                pending += _command_events(number, instance, command, steps, actor)
                if len(pending) >= BATCH:
                    ledger.append(pending)
                    written += len(pending)
                    pending = []
                if written + len(pending) >= events:
                    ledger.append(pending)
                    return written + len(pending)
