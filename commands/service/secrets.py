"""Handing a secret cvar's value to the host before its `secret-set` command is recorded.

A value never enters the ledger: the CLI hands it to the host's secret store
(through the privileged helper on a real host), which keeps it aside and
answers with a keyed fingerprint; the recorded `secret-set` command carries
the cvar and that fingerprint, and its executor step commits the value.
"""

from __future__ import annotations

from collections.abc import Callable

from host_adapters import Host
from ledger.lifecycle import Command, refusal
from projections import Projections


def hand_over(projections: Projections, host: Callable[[], Host], name: str, cvar: str, value: str) -> dict[str, str]:
    """The args of the `secret-set` command: the cvar, and the fingerprint of the value handed to the host.

    Where the recorded state refuses the command, nothing is handed over (and
    the host is not even built): the command is still recorded, and
    rejected, without a fingerprint. `projections` are read as they stand (the caller brought them up to date).
    """
    instance = projections.instance(name)
    if refusal(Command.SECRET_SET, instance.recorded_state, name) is not None:
        return {"cvar": cvar}
    return {"cvar": cvar, "fingerprint": host().secrets.put(name, cvar, value)}
