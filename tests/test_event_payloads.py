"""The event vocabulary on both sides: written by the event models, read back as typed records at one point."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from commands.cli.serve import describe
from ledger import (
    EVENT_TYPES,
    TERMINAL_TYPES,
    CancelRequested,
    Command,
    CommandCancelled,
    CommandFailed,
    CommandInterrupted,
    CommandRejected,
    CommandRequested,
    CommandStarted,
    CommandSucceeded,
    EventType,
    LedgerError,
    NewEvent,
    Observation,
    Observed,
    StepCompleted,
)
from ledger.chain import canonical_json
from ledger.payloads import PAYLOADS, UPCASTERS, VERSION_KEY, VERSIONS, EventRecord, decode
from projections.views import HANDLERS

from .conftest import an_event


def test_every_event_type_has_a_model_a_read_shape_a_version_and_a_fold_handler():
    assert set(EventType) == set(EVENT_TYPES) == set(PAYLOADS) == set(HANDLERS) == set(VERSIONS)


@pytest.mark.parametrize("event_type", list(EventType))
def test_the_executor_log_has_words_for_every_event_type(event_type):
    payloads = {EventType.COMMAND_REQUESTED: '{"command":"start","args":{},"retry_of":null,"replay_of":null}',
                EventType.OBSERVED: '{"kind":"crashed","detail":"d","observed_at":"t","source":"s"}',
                EventType.STEP_COMPLETED: '{"step":"s","output":[]}', EventType.COMMAND_CANCELLED: '{"step":null}',
                EventType.COMMAND_FAILED: '{"step":null,"error":"e","output":[],"stderr_tail":[]}',
                EventType.COMMAND_REJECTED: '{"reason":"r"}'}
    describe(EventRecord(1, event_type, "alpha", "c", "a", "u", "t", payloads.get(event_type, "{}")))


@pytest.mark.parametrize(("event_type", "stored", "added"), [
    (EventType.COMMAND_STARTED, '{"pid":1,"host":"h"}', {"simulated": False}),
    (EventType.COMMAND_FAILED, '{"step":"s","error":"e","stderr_tail":[]}', {"output": []}),
])
def test_a_version_one_payload_from_before_a_field_was_added_reads_with_its_default(event_type, stored, added):
    assert decode(event_type, stored, seq=3).items() >= added.items()


@pytest.mark.parametrize(("event_type", "stored"), [
    (EventType.COMMAND_REQUESTED, '{"command":"explode","args":{},"retry_of":null,"replay_of":null}'),
    (EventType.OBSERVED, '{"kind":"melted","detail":"d","observed_at":"t","source":"s"}'),
])
def test_a_command_or_observation_this_l4d2ctl_does_not_know_is_refused_as_newer(event_type, stored):
    with pytest.raises(LedgerError, match="upgrade l4d2ctl"):
        decode(event_type, stored, seq=5)


@pytest.mark.parametrize("version", [0, -1, "2", True])
def test_a_payload_version_that_is_not_a_positive_number_is_refused(version):
    with pytest.raises(LedgerError, match="payload version"):
        decode(EventType.COMMAND_INTERRUPTED, json.dumps({VERSION_KEY: version, "last_step": None}), seq=6)


def test_every_terminal_event_type_is_in_the_vocabulary():
    assert set(TERMINAL_TYPES) <= set(PAYLOADS)


@pytest.mark.parametrize("event_type", sorted(PAYLOADS))
def test_the_read_shape_has_exactly_the_fields_the_model_writes(event_type):
    assert set(typing.get_type_hints(PAYLOADS[event_type])) == {f.name for f in dataclasses.fields(EVENT_TYPES[event_type])}


@pytest.mark.parametrize("event_type", sorted(VERSIONS))
def test_every_version_below_the_current_one_has_an_upcaster(event_type):
    assert all((event_type, version) in UPCASTERS for version in range(1, VERSIONS[event_type]))


def test_an_interruption_from_before_last_event_at_reads_as_unknown():
    assert decode("CommandInterrupted", '{"last_step":"stop unit"}', seq=7) == {
        "last_step": "stop unit", "last_event_at": None, "reason": None}


def test_an_interruption_from_before_reason_reads_as_found_after_a_crash():
    stored = json.dumps({VERSION_KEY: 2, "last_step": None, "last_event_at": "2026-11-29T09:00:00.000000Z"})
    assert decode("CommandInterrupted", stored, seq=7)["reason"] is None


def test_a_version_one_interruption_keeps_the_last_event_at_it_carries():
    stored = '{"last_event_at":"2026-11-29T09:00:00.000000Z","last_step":null}'
    assert decode("CommandInterrupted", stored, seq=7)["last_event_at"] == "2026-11-29T09:00:00.000000Z"


def test_a_new_interruption_is_stored_with_its_version_and_read_back_without_it(ledger):
    (recorded,) = ledger.append([NewEvent(instance="alpha", command_id="cmd-1", actor="alice", os_user="root",
                                          payload=CommandInterrupted(last_step=None, last_event_at=None))])
    (row,) = ledger.rows(types=("CommandInterrupted",))
    assert json.loads(row["payload"])[VERSION_KEY] == VERSIONS["CommandInterrupted"] > 1
    assert next(ledger.records()).payload == {"last_step": None, "last_event_at": None, "reason": None}
    assert next(ledger.read()).payload == recorded.payload


def test_a_version_one_payload_is_stored_without_a_marker(ledger):
    ledger.append([an_event()])
    assert VERSION_KEY not in json.loads(next(ledger.rows())["payload"])


def test_a_payload_version_newer_than_this_l4d2ctl_is_refused():
    newer = VERSIONS["CommandInterrupted"] + 1
    with pytest.raises(LedgerError, match=rf"seq 9 .*version {newer}.*upgrade l4d2ctl"):
        decode("CommandInterrupted", json.dumps({VERSION_KEY: newer, "last_step": None}), seq=9)


def test_an_event_type_this_l4d2ctl_does_not_know_is_refused():
    with pytest.raises(LedgerError, match=r"seq 4 has type 'ServerExploded'"):
        decode("ServerExploded", "{}", seq=4)


@pytest.mark.parametrize("stored", ["[]", "5", "not json", '"text"'])
def test_a_payload_that_is_not_a_json_object_is_refused(stored):
    with pytest.raises(LedgerError, match="not a JSON object"):
        decode("CommandSucceeded", stored, seq=2)


def test_reading_a_ledger_with_a_future_event_fails_with_a_ledger_error_not_a_crash(ledger):
    ledger.append([an_event()])
    ledger.db.conn.execute(
        "INSERT INTO events (seq, id, type, instance, command_id, actor, os_user, recorded_at, payload, prev_hash, "
        "hash) VALUES (2, 'x', 'ServerExploded', 'alpha', 'cmd-1', 'alice', 'root', '2026-11-29T09:00:00.000000Z', "
        "'{}', '', '')")
    with pytest.raises(LedgerError, match="upgrade l4d2ctl"):
        list(ledger.records())


EXAMPLES = [
    CommandRequested(command=Command.INIT, args={"spec": {"port": 27015, "config": ["sv_cheats 0"], "overlays": []}},
                     retry_of="cmd-1"),
    CommandStarted(pid=42, host="box", simulated=True),
    StepCompleted(step="host.runtime.stage", output=["one", "two"]),
    CommandSucceeded(),
    CommandFailed(step="host.services.enable_now", error="boom", output=["a"], stderr_tail=["b"]),
    CommandRejected(reason="no"),
    CommandCancelled(step=None),
    CommandInterrupted(last_step="x", last_event_at="2026-11-29T00:00:00.000000Z", reason="no thread"),
    CancelRequested(),
    Observed(kind=Observation.CRASHED, detail="d", observed_at="2026-11-29T00:00:00.000000Z", source="journal"),
]


def test_the_examples_cover_every_event_type():
    assert {type(example).__name__ for example in EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("payload", EXAMPLES, ids=lambda payload: type(payload).__name__)
def test_a_payload_is_stored_as_dataclasses_asdict_would_store_it(payload):
    """The stored JSON is hashed into the chain: taking fields without `asdict`'s deep copy must not change it."""
    assert canonical_json(payload.as_json()) == canonical_json(dataclasses.asdict(payload))
