"""A WAL that a reader holds back: the writer gives it zeroed room ahead and tries its checkpoint once per stretch
of it; a WAL that starts over is left as SQLite keeps it; zeroed frames are never read as frames."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Ledger, verify_ledger, wal_room
from ledger.wal_room import CHECKPOINT_EVERY, FRAME_HEADER, SLACK_FRAMES, WAL_HEADER, tend

from .conftest import an_event, holding_reader

AUTOCHECKPOINT = 1000  # SQLite's default, which the ledger keeps
PAGE = 4096


def _frame() -> int:
    return FRAME_HEADER + PAGE


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def _frames_in_file(path: Path) -> int:
    return (_wal(path).stat().st_size - WAL_HEADER) // _frame()


def ends_in_zeroed_frames(path: Path) -> bool:
    """Whether the WAL of the ledger at `path` ends in a zeroed frame: room the writer gave it."""
    if not _wal(path).exists() or _frames_in_file(path) < 1:
        return False
    with open(_wal(path), "rb") as wal:
        wal.seek(-_frame(), os.SEEK_END)
        return not any(wal.read())


def _autocheckpoint(ledger: Ledger) -> int:
    return ledger.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]


@pytest.fixture
def reader(ledger_path, ledger) -> Iterator[sqlite3.Connection]:
    conn = holding_reader(ledger_path)
    yield conn
    conn.close()


def _append(ledger: Ledger, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        ledger.append([an_event(command_id=f"cmd-{number}")])


def _append_until(ledger: Ledger, done, most: int = 2000) -> int:
    """Append one event per transaction until `done()`; how many it took (fails past `most`)."""
    for number in range(most):
        if done():
            return number
        ledger.append([an_event(command_id=f"more-{number}")])
    pytest.fail(f"not done after {most} appends")


def test_a_wal_that_starts_over_is_left_as_sqlite_keeps_it(ledger_path, ledger):
    _append(ledger, 600)

    assert _frames_in_file(ledger_path) < AUTOCHECKPOINT + SLACK_FRAMES
    assert _autocheckpoint(ledger) == AUTOCHECKPOINT


def test_a_held_back_wal_gets_zeroed_frames_ahead_of_its_commits(ledger_path, ledger, reader):
    _append_until(ledger, lambda: ends_in_zeroed_frames(ledger_path))

    assert (_wal(ledger_path).stat().st_size - WAL_HEADER) % _frame() == 0
    assert _frames_in_file(ledger_path) > AUTOCHECKPOINT + SLACK_FRAMES


def test_a_held_back_wal_tries_its_auto_checkpoint_once_per_stretch_of_frames(ledger_path, ledger, reader):
    _append_until(ledger, lambda: _autocheckpoint(ledger) != AUTOCHECKPOINT)
    assert _autocheckpoint(ledger) == CHECKPOINT_EVERY

    _append_until(ledger, lambda: _autocheckpoint(ledger) != CHECKPOINT_EVERY)
    assert _autocheckpoint(ledger) == 2 * CHECKPOINT_EVERY


def test_a_wal_held_back_for_long_goes_back_to_a_checkpoint_try_after_every_commit(ledger_path, ledger, reader,
                                                                                   monkeypatch):
    monkeypatch.setattr(wal_room, "PACED_UP_TO", 2 * CHECKPOINT_EVERY * _frame())
    _append_until(ledger, lambda: _autocheckpoint(ledger) == 2 * CHECKPOINT_EVERY)

    _append_until(ledger, lambda: _autocheckpoint(ledger) != 2 * CHECKPOINT_EVERY)
    assert _autocheckpoint(ledger) == AUTOCHECKPOINT
    assert ends_in_zeroed_frames(ledger_path)  # room ahead all the same


def test_a_wal_that_started_over_inside_a_larger_file_is_paced_by_its_own_frames(ledger_path, ledger):
    first = holding_reader(ledger_path)
    _append_until(ledger, lambda: _frames_in_file(ledger_path) > 3 * CHECKPOINT_EVERY)
    first.close()
    _append_until(ledger, lambda: _autocheckpoint(ledger) == AUTOCHECKPOINT)  # checkpointed, started over
    second = holding_reader(ledger_path)

    _append_until(ledger, lambda: _autocheckpoint(ledger) != AUTOCHECKPOINT)
    assert _autocheckpoint(ledger) == CHECKPOINT_EVERY
    assert _frames_in_file(ledger_path) > 3 * CHECKPOINT_EVERY
    second.close()


def test_once_the_reader_lets_go_the_wal_starts_over_and_its_threshold_comes_back(ledger_path, ledger, reader):
    _append_until(ledger, lambda: ends_in_zeroed_frames(ledger_path))
    reader.execute("COMMIT")

    _append_until(ledger, lambda: _autocheckpoint(ledger) == AUTOCHECKPOINT)
    assert verify_ledger(ledger).ok


def test_zeroed_frames_are_never_read_as_frames_when_sqlite_recovers_the_wal(ledger_path, ledger, reader, tmp_path):
    _append_until(ledger, lambda: ends_in_zeroed_frames(ledger_path))
    _append(ledger, 50)
    heads = ledger.head()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    shutil.copy(ledger_path, crashed / "ledger.db")  # what a crash leaves: the file and its WAL, no -shm
    shutil.copy(_wal(ledger_path), _wal(crashed / "ledger.db"))

    with Ledger.open(crashed / "ledger.db", create=False) as recovered:
        assert recovered.head() == heads
        assert recovered.integrity_problems() == []
        assert verify_ledger(recovered).ok


def test_tend_does_not_follow_a_symlink_in_place_of_the_wal(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(bytes(WAL_HEADER + 4000 * _frame()))
    (tmp_path / "ledger.db-wal").symlink_to(target)

    assert tend(str(tmp_path / "ledger.db-wal"), PAGE, AUTOCHECKPOINT) == AUTOCHECKPOINT
    assert target.stat().st_size == WAL_HEADER + 4000 * _frame()


def test_tend_leaves_a_fifo_in_place_of_the_wal_alone(tmp_path):
    os.mkfifo(tmp_path / "ledger.db-wal")

    assert tend(str(tmp_path / "ledger.db-wal"), PAGE, AUTOCHECKPOINT) == AUTOCHECKPOINT


def test_tend_leaves_an_auto_checkpoint_that_is_off_alone(ledger_path, ledger, reader):
    ledger.conn.execute("PRAGMA wal_autocheckpoint = 0")
    _append(ledger, 300)

    assert tend(str(_wal(ledger_path)), PAGE, 0) == 0
    assert not ends_in_zeroed_frames(ledger_path)


def test_tend_without_a_wal_keeps_the_threshold(tmp_path):
    assert tend(str(tmp_path / "ledger.db-wal"), PAGE, AUTOCHECKPOINT) == AUTOCHECKPOINT


def test_tend_leaves_a_wal_with_a_second_name_alone(ledger_path, ledger, reader, tmp_path):
    _append_until(ledger, lambda: _autocheckpoint(ledger) != AUTOCHECKPOINT)
    os.link(_wal(ledger_path), tmp_path / "second-name")
    size = _wal(ledger_path).stat().st_size

    assert tend(str(_wal(ledger_path)), PAGE, AUTOCHECKPOINT) == AUTOCHECKPOINT
    assert _wal(ledger_path).stat().st_size == size


def test_a_failure_while_tending_the_wal_rolls_the_transaction_back(ledger_path, ledger, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("ledger.store.tend", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ledger.append([an_event(command_id="interrupted")])
    monkeypatch.undo()

    ledger.append([an_event(command_id="next")])
    with Ledger.open(ledger_path) as other:
        assert [row["command_id"] for row in other.rows(columns=("command_id",))] == ["next"]
