"""`verify` re-walks the chain and names the first seq where it no longer holds."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from commands.cli import cli
from ledger import ChainBroken, Ledger, LedgerError, verify_ledger
from ledger.chain import event_hash

from .conftest import an_event

EVENTS = 10


@pytest.fixture
def tamperable(ledger_path):
    """A ledger of ten events, and a raw connection to it with the triggers dropped."""
    with Ledger.open(ledger_path) as ledger:
        ledger.append([an_event(command_id=f"c{n}", actor=f"actor{n}") for n in range(EVENTS)])
    conn = sqlite3.connect(ledger_path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    yield conn
    conn.close()


def _report(path):
    with Ledger.open(path) as ledger:
        return verify_ledger(ledger)


def _shift_up_from(conn, seq):
    """Make room at `seq` by moving every later row one seq up, as a forger must."""
    conn.execute("UPDATE events SET seq = -seq - 1 WHERE seq >= ?", [seq])
    conn.execute("UPDATE events SET seq = -seq WHERE seq < 0")


def _row(conn, seq):
    return dict(conn.execute("SELECT * FROM events WHERE seq = ?", [seq]).fetchone())


def test_an_untouched_ledger_verifies(ledger_path, tamperable):
    assert _report(ledger_path).ok
    assert _report(ledger_path).events == EVENTS


def test_an_edited_payload_is_caught_at_its_seq(ledger_path, tamperable):
    tamperable.execute("""UPDATE events SET payload = '{"command":"delete"}' WHERE seq = 4""")
    report = _report(ledger_path)
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_an_edited_actor_is_caught_at_its_seq(ledger_path, tamperable):
    tamperable.execute("UPDATE events SET actor = 'mallory' WHERE seq = 6")
    assert _report(ledger_path).first_bad_seq == 6


def test_an_edit_with_a_recomputed_hash_is_caught_at_the_next_seq(ledger_path, tamperable):
    row = _row(tamperable, 6) | {"actor": "mallory"}
    tamperable.execute("UPDATE events SET actor = ?, hash = ? WHERE seq = 6",
                       [row["actor"], event_hash(row["prev_hash"], row)])
    assert _report(ledger_path).first_bad_seq == 7


def test_a_deleted_row_is_caught_as_its_missing_seq(ledger_path, tamperable):
    tamperable.execute("DELETE FROM events WHERE seq = 5")
    report = _report(ledger_path)
    assert (report.first_bad_seq, report.reason) == (5, "seq 5 is missing")


def test_a_forged_row_inserted_in_the_middle_is_caught_at_its_seq(ledger_path, tamperable):
    forged = _row(tamperable, 3) | {"id": "forged", "actor": "mallory"}
    _shift_up_from(tamperable, 3)
    tamperable.execute(f"INSERT INTO events ({', '.join(forged)}) VALUES ({', '.join('?' * len(forged))})",
                       list(forged.values()))
    assert _report(ledger_path).first_bad_seq == 3


def test_a_forged_row_chained_in_perfectly_is_caught_at_the_row_after_it(ledger_path, tamperable):
    forged = _row(tamperable, 3) | {"id": "forged", "actor": "mallory"}
    forged["hash"] = event_hash(forged["prev_hash"], forged)
    _shift_up_from(tamperable, 3)
    tamperable.execute(f"INSERT INTO events ({', '.join(forged)}) VALUES ({', '.join('?' * len(forged))})",
                       list(forged.values()))
    report = _report(ledger_path)
    assert (report.first_bad_seq, report.events) == (4, 3)


def test_verify_cli_prints_json_and_exits_zero_on_an_intact_ledger(ledger_path, tamperable):
    result = CliRunner().invoke(cli, ["--db", str(ledger_path), "verify", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"ok": True, "events": EVENTS, "first_bad_seq": None, "reason": None,
                                         "projections": []}


def test_verify_cli_exits_four_naming_the_broken_seq(ledger_path, tamperable):
    tamperable.execute("UPDATE events SET actor = 'mallory' WHERE seq = 2")
    result = CliRunner().invoke(cli, ["--db", str(ledger_path), "verify", "--json"])
    assert result.exit_code == 4
    assert json.loads(result.output)["first_bad_seq"] == 2


def test_verify_cli_names_the_break_for_people(ledger_path, tamperable):
    tamperable.execute("DELETE FROM events WHERE seq = 9")
    result = CliRunner().invoke(cli, ["--db", str(ledger_path), "verify"])
    assert result.exit_code == 4
    assert "seq 9 is missing" in result.output


def test_verify_cli_on_a_missing_ledger_reports_an_empty_one(tmp_path):
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.db"), "verify", "--json"])
    assert (result.exit_code, json.loads(result.output)["events"]) == (0, 0)
    assert not (tmp_path / "none.db").exists()


def test_verify_cli_on_a_file_that_is_not_a_ledger_exits_four_in_one_line(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 200)
    result = CliRunner().invoke(cli, ["--db", str(junk), "verify"])
    assert result.exit_code == 4
    assert result.output.count("\n") == 1 and "not a database" in result.output


def _appending_fails(path) -> str:
    with Ledger.open(path) as ledger, pytest.raises(ChainBroken) as refused:
        ledger.append([an_event(command_id="late")])
    return str(refused.value)


def _count(conn) -> int:
    return conn.execute("SELECT count(*) FROM events").fetchone()[0]


@pytest.mark.parametrize("tampering, refusal", [
    (["UPDATE positions SET value = '5:' || (SELECT hash FROM events WHERE seq = 5) WHERE source = 'chain'",
      "UPDATE events SET actor = 'mallory' WHERE seq = 8"], "breaks at seq 8 (seq 8 does not match its hash)"),
    (["UPDATE events SET actor = 'mallory' WHERE seq = 10"], "seq 10 changed or went missing since it was verified"),
    (["UPDATE events SET hash = 'forged', actor = 'mallory' WHERE seq = 10"],
     "seq 10 changed or went missing since it was verified"),
], ids=["an edit after the verified point", "an edit at it", "a forged hash at it"])
def test_nothing_is_appended_onto_a_chain_edited_at_or_after_the_last_verified_point(ledger_path, tamperable,
                                                                                      tampering, refusal):
    for statement in tampering:
        tamperable.execute(statement)
    assert refusal in _appending_fails(ledger_path)
    assert _count(tamperable) == EVENTS


def test_nothing_is_appended_onto_a_truncated_chain_whose_head_was_verified(ledger_path, tamperable):
    tamperable.execute("DELETE FROM events WHERE seq = 10")
    assert "seq 10 changed or went missing" in _appending_fails(ledger_path)


def test_a_ledger_without_a_verified_point_is_walked_from_genesis_before_the_first_append(ledger_path, tamperable):
    tamperable.execute("DELETE FROM positions")
    tamperable.execute("UPDATE events SET actor = 'mallory' WHERE seq = 3")
    assert "breaks at seq 3" in _appending_fails(ledger_path)


def test_after_verify_found_a_break_no_cli_command_is_appended_and_it_exits_4_naming_the_seq(
        ledger_path, tamperable, tmp_path):
    tamperable.execute("UPDATE events SET actor = 'mallory' WHERE seq = 7")
    assert not _report(ledger_path).ok
    (tmp_path / "installation").mkdir()
    result = CliRunner().invoke(cli, ["--db", str(ledger_path), "--root", str(tmp_path), "--host", "simulated",
                                      "start", "alpha"])
    assert result.exit_code == 4
    assert "the hash chain breaks at seq 7" in result.stderr
    assert _count(tamperable) == EVENTS


def test_once_the_file_is_whole_again_appends_resume(ledger_path, tamperable):
    original = _row(tamperable, 7)["actor"]
    tamperable.execute("UPDATE events SET actor = 'mallory' WHERE seq = 7")
    assert not _report(ledger_path).ok
    assert "breaks at seq 7" in _appending_fails(ledger_path)
    tamperable.execute("UPDATE events SET actor = ? WHERE seq = 7", [original])
    with Ledger.open(ledger_path) as ledger:
        ledger.append([an_event(command_id="late")])
    assert _report(ledger_path).ok


def test_a_connection_that_appended_before_refuses_a_chain_another_connection_edited_since(ledger_path, tamperable):
    with Ledger.open(ledger_path) as ledger:
        ledger.append([an_event(command_id="warm")])  # this connection extended the chain: it knows its head
        tamperable.execute("UPDATE events SET actor = 'mallory' WHERE seq = 11")
        with pytest.raises(ChainBroken, match="seq 11 changed or went missing"):
            ledger.append([an_event(command_id="late")])
    assert _count(tamperable) == EVENTS + 1


def test_a_connection_appends_after_what_another_connection_appended_meanwhile(ledger_path, tamperable):
    with Ledger.open(ledger_path) as first, Ledger.open(ledger_path) as second:
        first.append([an_event(command_id="a")])
        second.append([an_event(command_id="b")])
        first.append([an_event(command_id="c")])
    assert [(row["seq"], row["command_id"]) for row in tamperable.execute(
        "SELECT seq, command_id FROM events WHERE seq > ? ORDER BY seq", [EVENTS])] == [(11, "a"), (12, "b"), (13, "c")]
    assert _report(ledger_path).ok


def test_an_append_rolled_back_leaves_the_next_one_at_the_true_head(ledger_path, tamperable):
    with Ledger.open(ledger_path) as ledger:
        with pytest.raises(RuntimeError), ledger.transaction():
            ledger.append([an_event(command_id="gone")])
            raise RuntimeError("the caller changed its mind")
        (kept,) = ledger.append([an_event(command_id="kept")])
    assert kept.seq == EVENTS + 1 and _count(tamperable) == EVENTS + 1
    assert _report(ledger_path).ok


def test_an_append_after_sqlite_rolled_a_transaction_back_on_its_own_builds_on_the_true_head(ledger):
    ledger.append([an_event(command_id="first")])
    ledger.conn.execute("CREATE TABLE filler (x)")
    pages = ledger.conn.execute("PRAGMA page_count").fetchone()[0]
    with pytest.raises(LedgerError), ledger.transaction():
        ledger.append([an_event(command_id="rolled back")])
        ledger.conn.execute(f"PRAGMA max_page_count = {pages + 3}")
        with pytest.raises(LedgerError, match="full"), ledger.translated_errors():
            ledger.conn.execute("INSERT INTO filler VALUES (zeroblob(100000))")  # SQLite rolls everything back
        ledger.conn.execute("PRAGMA max_page_count = 1000000")
        ledger.append([an_event(command_id="after")])  # the caller went on regardless
    assert [(event.seq, event.command_id) for event in ledger.read()] == [(1, "first"), (2, "after")]
    assert verify_ledger(ledger).ok


def test_a_ledger_that_failed_the_integrity_check_takes_no_append_until_it_passes_again(ledger, monkeypatch):
    ledger.append([an_event(command_id="before")])
    monkeypatch.setattr(ledger, "integrity_problems", lambda: ["row 2 missing from index events_by_time"])
    report = verify_ledger(ledger)
    assert not report.ok and "row 2 missing from index" in report.reason
    with pytest.raises(ChainBroken, match="fails SQLite's integrity check; nothing was appended"):
        ledger.append([an_event(command_id="during")])
    monkeypatch.setattr(ledger, "integrity_problems", lambda: [])  # the file was restored
    ledger.append([an_event(command_id="after")])
    assert [event.command_id for event in ledger.read()] == ["before", "after"]
    assert verify_ledger(ledger).ok
