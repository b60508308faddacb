"""Durable commits: two per command on the executor's path, with the step events between them grouped."""

from __future__ import annotations

import pytest

from commands.service.executor_lock import ExecutorLock
from commands.service.requests import append_command, see_through
from ledger import EventType, verify_ledger

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


def test_a_command_its_requester_executes_takes_two_durable_commits_its_request_included(host, ledger,
                                                                                        ledger_path):
    commits = _commits(ledger)
    (ran,) = see_through(host.executor.projections, ExecutorLock(ledger_path), lambda: host.host,
                         lambda: [append_command(ledger, ALICE, "alpha", "start")[0]])
    assert ran.outcome == "succeeded"
    assert commits.count(True) == 2, "the request shares its start's commit"


def test_a_request_that_fails_before_its_commit_leaves_nothing_recorded_or_decided(host, ledger):
    before = ledger.head()
    host.faults.calls.clear()

    def request():
        append_command(ledger, ALICE, "alpha", "start")
        raise RuntimeError("the requester died")

    with pytest.raises(RuntimeError):
        host.executor.take_up_requested(request)
    host.executor.run_pending()
    assert ledger.head() == before and verify_ledger(ledger).ok
    assert host.faults.calls == [], "the host was not touched"


def test_commands_decided_together_share_one_durable_commit(host, ledger):
    for name in ("bravo", "charlie"):
        host.init(name, {"port": 27016 + len(name), "arguments": [], "config": [], "overlays": []})
    for name in ("alpha", "bravo", "charlie"):
        append_command(ledger, ALICE, name, "start")
    commits = _commits(ledger)
    host.executor.run_pending()
    ran = [host.executor.projections.history(name)[-1] for name in ("alpha", "bravo", "charlie")]
    assert [command.outcome for command in ran] == ["succeeded"] * 3
    assert commits.count(True) <= 1 + 3, "three starts in one commit, then at most one for each outcome"


def test_the_observer_hears_of_an_event_only_once_it_is_committed(host, ledger):
    heard = []
    host.executor.observer = lambda event: heard.append((event.type, ledger.conn.in_transaction))
    host.executor.take_up_requested(lambda: [append_command(ledger, ALICE, "alpha", "start")[0]])
    host.executor.run_pending()
    assert (EventType.COMMAND_STARTED, False) in heard and (EventType.COMMAND_SUCCEEDED, False) in heard
    assert not any(open_transaction for _, open_transaction in heard)
