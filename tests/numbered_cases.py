"""Cases numbered from a clean run: one per step boundary, adapter call, ... that the run went through."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest


def parametrize_numbered(metafunc: pytest.Metafunc, names: tuple[str, str], kinds: Iterable[str],
                         count: Callable[[str], int], label: str) -> None:
    """Parametrize `names` (kind, number) with numbers 1..count(kind) for each kind, when the tests are collected.

    A clean run that fails gives its kind one case, whose test runs it again and reports why (rather than the
    whole module failing to collect).
    """
    if not set(names) <= set(metafunc.fixturenames):
        return
    cases = [(kind, number) for kind in kinds for number in _numbers(count, kind)]
    metafunc.parametrize(", ".join(names), cases, ids=[f"{kind}-{label}{number}" for kind, number in cases])


def _numbers(count: Callable[[str], int], kind: str) -> range:
    try:
        return range(1, count(kind) + 1)
    except Exception:
        return range(1, 2)
