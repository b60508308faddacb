"""What systemd does on its own reaches the ledger: crashes, restarts, giving up, stops and starts by hand.

The journal parsing is checked against entries a real systemd 252 wrote
(tests/data); the watcher against the fake service control, which logs
entries the way systemd does, for l4d2ctl's own actions as well.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.service.executor import Executor
from commands.service.observe import JOURNAL_POSITION, observation_of
from commands.service.requests import Requester, append_cancel, append_command
from host_adapters import JournalRead, UnitEntry, UnitEvent
from host_adapters.journal import parse_entry
from ledger import CommandStarted, Ledger, format_time, verify_ledger
from ledger.lifecycle import State

from .fake_host import ALICE, SPEC, FakeHost
from .test_projections import _tables

JOURNAL = Path(__file__).parent / "data" / "journal-systemd252.jsonl"
BOB = Requester(actor="bob", os_user="bob")


@pytest.fixture
def host(ledger):
    return FakeHost(ledger)


def _observed(host: FakeHost, instance: str = "alpha") -> list[tuple[str, str]]:
    host.executor.projections.sync()
    return [(c.command, c.error) for c in host.executor.projections.history(instance) if c.outcome == "observed"]


def _running(host: FakeHost) -> None:
    host.init()
    assert host.run("alpha", "start").outcome == "succeeded"


def test_the_journal_of_a_real_systemd_parses_into_the_unit_events_that_matter():
    entries = [entry for line in JOURNAL.read_text().splitlines() if (entry := parse_entry(line))]
    events = [(entry.instance, entry.event) for entry in entries]
    assert events[:4] == [("a", UnitEvent.STARTED), ("a", UnitEvent.EXITED), ("a", UnitEvent.RESTART_SCHEDULED),
                          ("a", UnitEvent.STARTED)], "a restart's own stop job is not a stop"
    assert events[4:7] == [("a", UnitEvent.STOPPING), ("a", UnitEvent.DEACTIVATED), ("a", UnitEvent.STOPPED)]
    assert ("a", UnitEvent.START_LIMIT_HIT) in events
    assert ("b", UnitEvent.EXITED) in events, "a failing ExecStartPre is an exit too"
    assert entries[1].fields["EXIT_CODE"] == "killed" and entries[1].at.tzinfo is timezone.utc


def test_a_crash_as_a_real_systemd_logs_it_reads_as_killed_by_sigkill():
    entries = [entry for line in JOURNAL.read_text().splitlines() if (entry := parse_entry(line))]
    assert observation_of(entries[1], State.RUNNING, stopping=False) == (
        "crashed", "the server was killed by signal SIGKILL")


@pytest.mark.parametrize("line", ["", "not json", "[]", '{"UNIT": "left4me-server@a.service"}',
                                  '{"UNIT": "sshd.service", "__CURSOR": "c", "__REALTIME_TIMESTAMP": "1",'
                                  ' "MESSAGE_ID": "39f53479d3a045ac8e11786248231fbf", "JOB_TYPE": "start"}'])
def test_lines_about_other_units_or_malformed_are_skipped(line):
    assert parse_entry(line) is None


def test_binary_fields_are_decoded():
    line = json.dumps({"UNIT": "left4me-server@a.service", "__CURSOR": "c", "__REALTIME_TIMESTAMP": "1000000",
                       "MESSAGE": list(b"left4me-server@a.service: Start request repeated too quickly.")})
    assert parse_entry(line).event is UnitEvent.START_LIMIT_HIT


def test_our_own_start_and_stop_are_not_observations(host):
    _running(host)
    host.run("alpha", "stop")
    host.run("alpha", "restart")
    host.executor.watch()
    assert _observed(host) == []


def test_a_crash_that_systemd_restarts_is_recorded_as_crashed_then_restarted(host):
    _running(host)
    host.services.crash("alpha", signal="9")
    host.executor.watch()
    assert _observed(host) == [("crashed", "the server was killed by signal SIGKILL"),
                               ("restarted", "systemd restarted the server (restart 1)")]
    history = host.executor.projections.history("alpha")
    assert {c.actor for c in history if c.outcome == "observed"} == {"systemd"}
    assert host.executor.projections.instance("alpha").state == "running"


def test_when_systemd_gives_up_the_instance_is_failed(host):
    _running(host)
    host.services.give_up("alpha")
    host.executor.watch()
    assert [kind for kind, _ in _observed(host)] == ["crashed", "gave-up"]
    assert host.executor.projections.instance("alpha").state == "failed"


def test_a_stop_by_hand_is_stopped_outside_and_the_instance_stopped(host):
    _running(host)
    host.services.stop_outside("alpha")
    host.executor.watch()
    assert _observed(host) == [("stopped-outside", "the unit was stopped outside l4d2ctl")]
    assert host.executor.projections.instance("alpha").state == "stopped"


def test_a_clean_exit_of_the_server_is_a_stop_outside_too(host):
    _running(host)
    host.services.exit_cleanly("alpha")
    host.executor.watch()
    assert _observed(host) == [("stopped-outside", "the server exited on its own with status 0")]


def test_a_start_by_hand_is_started_outside_and_the_instance_running(host):
    _running(host)
    host.run("alpha", "stop")
    host.services.start_outside("alpha")
    host.executor.watch()
    assert _observed(host) == [("started-outside", "the unit was started outside l4d2ctl")]
    assert host.executor.projections.instance("alpha").state == "running"


def test_observations_land_before_the_next_command(host):
    _running(host)
    host.services.stop_outside("alpha")
    stop = host.run("alpha", "stop")
    order = [(event.type, event.command_id) for event in host.ledger.read(instance="alpha")]
    assert order.index(("CommandStarted", stop.command_id)) == next(
        i for i, (kind, _) in enumerate(order) if kind == "Observed") + 1, "decided after the observation"
    assert stop.outcome == "succeeded"


def test_another_requesters_command_appended_after_the_look_waits_for_a_look_of_its_own(host):
    _running(host)
    assert host.init("bravo", SPEC | {"port": 27020}).outcome == "succeeded"
    assert host.run("bravo", "start").outcome == "succeeded"
    executor, looked = host.executor, []
    look = executor.watch

    def watch(force=True):
        look(force)
        if not looked:  # between this CLI's look and its own request: bravo is stopped, then bob asks to stop it
            host.services.stop_outside("bravo")
            looked.append(append_command(host.ledger, BOB, "bravo", "stop")[0])

    executor.watch = watch
    executor.take_up_requested(lambda: [append_command(host.ledger, ALICE, "alpha", "restart")[0]])
    executor.run_pending()
    order = [(event.type, event.command_id) for event in host.ledger.read(instance="bravo")]
    observed = next(i for i, (kind, _) in enumerate(order) if kind == "Observed")
    assert observed < order.index(("CommandStarted", looked[0])), "bob's stop is decided after the observation"


def test_a_command_stamped_later_than_the_executors_clock_still_runs(host, monkeypatch):
    assert host.init().outcome == "succeeded"
    ahead = format_time(datetime.now(timezone.utc) + timedelta(minutes=5))
    with monkeypatch.context() as clock:  # requested by a host whose clock runs ahead (or before a step back)
        clock.setattr("ledger.store.utc_now", lambda: ahead)
        command_id, _ = append_command(host.ledger, ALICE, "alpha", "start")
    assert host.executor.run_pending() == 1
    assert host.executor.projections.command(command_id).outcome == "succeeded"


def test_reading_the_journal_again_records_nothing_twice(host, ledger):
    _running(host)
    host.services.crash("alpha", signal="9")
    host.executor.watch()
    ledger.set_position(JOURNAL_POSITION, "fake:1")  # as if the position had been lost
    host.executor.watch()
    host.executor.watch()
    assert [kind for kind, _ in _observed(host)] == ["crashed", "restarted"]
    assert verify_ledger(ledger).ok


def test_a_new_executor_resumes_where_the_last_one_stopped(host, ledger_path):
    _running(host)
    host.services.crash("alpha", signal="9")
    host.executor.watch()
    host.services.stop_outside("alpha")
    with Ledger.open(ledger_path) as again:
        Executor(again, host.host).watch()
    assert [kind for kind, _ in _observed(host)] == ["crashed", "restarted", "stopped-outside"]


def test_a_look_that_finds_only_the_commands_own_doing_commits_nothing(host, ledger):
    _running(host)
    assert host.run("alpha", "stop").outcome == "succeeded"
    statements = []
    ledger.conn.set_trace_callback(statements.append)
    host.executor.watch()  # reads the stop's own entries
    ledger.conn.set_trace_callback(None)
    assert not [statement for statement in statements if statement.startswith(("BEGIN", "COMMIT", "INSERT"))]
    assert _observed(host) == []


def test_a_new_executor_reading_again_what_was_the_commands_own_doing_records_nothing(host, ledger_path):
    _running(host)
    assert host.run("alpha", "stop").outcome == "succeeded"
    host.executor.watch()  # the position past the stop's own entries stays in this executor's memory
    with Ledger.open(ledger_path) as again:
        Executor(again, host.host).watch()
    assert _observed(host) == []


def test_the_position_is_saved_with_what_was_judged_and_kept_in_memory_past_the_commands_own_doing(host, ledger):
    _running(host)
    host.services.crash("alpha", signal="9")
    host.executor.watch()
    saved = ledger.position(JOURNAL_POSITION)
    assert host.run("alpha", "stop").outcome == "succeeded"
    host.executor.watch()
    assert ledger.position(JOURNAL_POSITION) == saved  # the stop's own entries: not saved yet
    assert [kind for kind, _ in _observed(host)] == ["crashed", "restarted"]


def test_an_observation_read_after_a_later_command_goes_into_history_but_not_into_the_state(host):
    _running(host)
    entry = UnitEntry(source="late:1", instance="alpha", at=datetime.now(timezone.utc) - timedelta(hours=1),
                      event=UnitEvent.STOPPED)
    host.executor.watcher.journal = type("Late", (), {"entries": lambda self, after, since: JournalRead([entry],
                                                                                                     "late:1")})()
    host.executor.watch()
    assert [kind for kind, _ in _observed(host)] == ["stopped-outside"]
    assert host.executor.projections.instance("alpha").state == "running"


def test_a_restart_cancelled_before_it_began_leaves_the_state_as_it_was(host):
    _running(host)
    command_id, _ = append_command(host.ledger, ALICE, "alpha", "restart")
    host.executor.projections.sync()
    append_cancel(host.ledger, ALICE, host.executor.projections.command(command_id))
    host.executor.run_pending()
    assert host.executor.projections.command(command_id).outcome == "cancelled"
    assert host.executor.projections.instance("alpha").state == "running"
    assert host.services.status("alpha").active


def test_what_happened_while_no_executor_ran_after_an_interrupted_command_is_observed(host):
    _running(host)
    command_id, _ = append_command(host.ledger, ALICE, "alpha", "stop")
    host.executor.projections.sync()
    host.executor._record(host.executor.projections.command(command_id), CommandStarted(pid=1, host="h"))
    time.sleep(0.01)
    host.services.give_up("alpha")  # while no executor runs
    assert host.executor.recover() == [command_id]
    host.executor.watch()
    assert [kind for kind, _ in _observed(host)] == ["crashed", "gave-up"]


def test_the_same_give_up_is_recorded_once_even_when_systemd_names_its_result_too():
    lines = [json.dumps({"UNIT": "left4me-server@a.service", "__CURSOR": f"c{n}", "__REALTIME_TIMESTAMP": "1000000",
                         **fields}) for n, fields in enumerate([
                             {"MESSAGE": "left4me-server@a.service: Start request repeated too quickly."},
                             {"MESSAGE_ID": "d9b373ed55a64feb8242e02dbe79a49c", "UNIT_RESULT": "start-limit-hit",
                              "MESSAGE": "left4me-server@a.service: Failed with result 'start-limit-hit'."}])]
    assert [entry.event for line in lines if (entry := parse_entry(line))] == [UnitEvent.START_LIMIT_HIT]


def test_a_timestamp_out_of_range_skips_the_line_instead_of_failing():
    line = json.dumps({"UNIT": "left4me-server@a.service", "__CURSOR": "c", "__REALTIME_TIMESTAMP": "9" * 30,
                       "MESSAGE": "Start request repeated too quickly."})
    assert parse_entry(line) is None


def test_the_position_moves_past_entries_about_other_units():
    from host_adapters.journal import cursor_of

    assert cursor_of(json.dumps({"UNIT": "sshd.service", "__CURSOR": "s=1"})) == "s=1"


def test_observations_are_facts_that_cannot_be_retried_or_replayed(host):
    _running(host)
    host.services.crash("alpha", signal="9")
    host.executor.watch()
    crashed = next(c for c in host.executor.projections.history("alpha") if c.command == "crashed")
    assert host.run("alpha", "start", retry_of=crashed.command_id).outcome == "rejected"


ACTS = ["crash", "give_up", "stop_outside", "start_outside", "exit_cleanly"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(story=st.lists(st.one_of(st.tuples(st.just("command"), st.sampled_from(["start", "stop", "restart",
                                                                               "reset", "init"])),
                                st.tuples(st.just("outside"), st.sampled_from(ACTS)),
                                st.tuples(st.just("watch"), st.booleans())), max_size=14))
def test_with_observations_mixed_in_incremental_projections_still_equal_a_rebuild(tmp_path_factory, story):
    with Ledger.open(tmp_path_factory.mktemp("observed") / "ledger.db") as ledger:
        host = FakeHost(ledger)
        host.init("alpha", SPEC)
        for kind, what in story:
            if kind == "command":
                host.run("alpha", what)
            elif kind == "outside":
                getattr(host.services, what)("alpha")
            else:
                host.executor.watch()
        host.executor.watch()
        host.executor.projections.sync()
        incremental = _tables(ledger)
        host.executor.projections.rebuild()
        assert _tables(ledger) == incremental
        assert verify_ledger(ledger).ok
