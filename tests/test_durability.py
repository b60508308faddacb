"""Durable commits: two per command on the executor's path, with the step events between them grouped."""

from __future__ import annotations

import pytest

from commands.service.requests import append_command

from .fake_host import ALICE, FakeHost


def _commits(ledger) -> list[bool]:
    """Every COMMIT from now on, as whether it was durable (synchronous=FULL when it ran)."""
    commits: list[bool] = []
    level = ["FULL"]

    def trace(statement: str) -> None:
        if statement.startswith("PRAGMA synchronous = "):
            level[0] = statement.rsplit(" ", 1)[1]
        elif statement == "COMMIT":
            commits.append(level[0] == "FULL")

    ledger.db.conn.set_trace_callback(trace)
    return commits


@pytest.fixture
def host(ledger):
    host = FakeHost(ledger)
    assert host.init().outcome == "succeeded"
    return host


@pytest.mark.parametrize("command", ["start", "restart", "stop", "reset", "delete"])
def test_the_executor_makes_two_durable_commits_per_command_whatever_its_steps(host, ledger, command):
    append_command(ledger, ALICE, "alpha", command)
    commits = _commits(ledger)
    host.executor.run_pending()
    ran = host.executor.projections.history("alpha")[-1]
    assert ran.outcome == "succeeded"
    assert commits.count(True) == 2
    # Steps are grouped: those a worker reported meanwhile share a commit, the last ones the outcome's.
    assert len(commits) <= 2 + len(host.steps(ran)) and len(host.steps(ran)) > 0


def test_a_failed_command_is_durable_at_its_start_and_its_outcome_too(host, ledger):
    host.faults.fail_at = len(host.faults.calls) + 3
    append_command(ledger, ALICE, "alpha", "start")
    commits = _commits(ledger)
    host.executor.run_pending()
    assert host.executor.projections.history("alpha")[-1].outcome == "failed"
    assert commits.count(True) == 2


def test_a_rejected_command_takes_one_durable_commit(host, ledger):
    append_command(ledger, ALICE, "ghost", "start")
    commits = _commits(ledger)
    host.executor.run_pending()
    assert commits.count(True) == 1


def test_every_commit_after_a_lazy_one_is_durable_again(host, ledger):
    append_command(ledger, ALICE, "alpha", "start")
    host.executor.run_pending()
    assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_commands_in_a_row_stay_at_two_durable_commits_though_each_moves_the_journal(host, ledger):
    durable = []
    for command in ("start", "stop", "start", "restart"):
        append_command(ledger, ALICE, "alpha", command)
        commits = _commits(ledger)
        host.executor.run_pending()
        durable.append(commits.count(True))
    assert durable == [2, 2, 2, 2]
