"""Alerts: `executor --notify-exec CMD` hands each failed command's and each observation's row to CMD."""

from __future__ import annotations

import json
import time
import tracemalloc
from datetime import datetime, timezone

import pytest

from commands.domain.errors import InvalidInput
from commands.service.notify import Notifier, hook_argv
from host_adapters.factory import SIMULATED_JOURNAL
from host_adapters.simulated import FileState

from .fake_host import SPEC
from .real_host import invoke, write_spec

ROW = {"command_id": "0123456789ab", "command": "start", "instance": "alpha", "outcome": "failed"}


def _hook(tmp_path, body: str) -> str:
    script = tmp_path / "hook.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def _notify(argv: list[str], rows: list[dict], timeout: float = 5.0) -> list[str]:
    warnings: list[str] = []
    notifier = Notifier(argv, warnings.append, timeout=timeout)
    for row in rows:
        notifier.submit(row)
    notifier.close()
    return warnings


@pytest.mark.parametrize(("command", "why"), [("hook.sh", "absolute path"), ("", "absolute path"),
                                             ("/bin/echo 'unbalanced", "No closing quotation"),
                                             ("/nonexistent/hook", "is not an executable file"),
                                             ("/tmp", "is not an executable file")])
def test_a_hook_not_named_by_absolute_path_or_unparsable_is_refused(command, why):
    with pytest.raises(InvalidInput, match=why):
        hook_argv(command)


def test_a_hook_without_its_execute_bit_is_refused_when_the_executor_starts(tmp_path):
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    with pytest.raises(InvalidInput, match="is not an executable file"):
        hook_argv(str(script))


def test_a_hook_that_fails_is_reported_with_what_it_said(tmp_path):
    warnings = _notify([_hook(tmp_path, "echo boom >&2; exit 3")], [ROW])
    assert warnings == ["notify " + str(tmp_path / "hook.sh") + " of command 0123456789ab (start alpha): "
                        "exited with status 3: boom"]


def test_a_hook_that_hangs_is_killed_at_its_timeout_and_the_next_row_still_goes(tmp_path):
    seen = tmp_path / "seen"
    hook = _hook(tmp_path, f'read row; case "$row" in *second*) echo "$row" > {seen};; *) sleep 30;; esac')
    warnings: list[str] = []
    notifier = Notifier([hook], warnings.append, timeout=0.5)
    notifier.submit(ROW)
    notifier.submit(ROW | {"command_id": "second"})
    deadline = time.monotonic() + 10
    while not seen.exists():
        assert time.monotonic() < deadline, "the second row never reached the hook"
        time.sleep(0.05)
    notifier.close()
    assert len(warnings) == 1 and "no exit within 0.5s" in warnings[0]
    assert json.loads(seen.read_text())["command_id"] == "second"


def test_a_hook_that_prints_without_end_costs_the_executor_no_memory(tmp_path):
    tracemalloc.start()
    try:
        warnings = _notify([_hook(tmp_path, "head -c 50000000 /dev/zero | tr '\\0' x >&2; exit 1")], [ROW])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(warnings) == 1 and len(warnings[0]) < 400
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_stopping_waits_one_timeout_at_most_and_says_what_was_not_sent(tmp_path):
    warnings: list[str] = []
    notifier = Notifier([_hook(tmp_path, "sleep 30")], warnings.append, timeout=0.5)
    for number in range(5):
        notifier.submit(ROW | {"command_id": f"row{number}"})
    stopping = time.monotonic()
    notifier.close()
    assert time.monotonic() - stopping < 5
    assert "rows not sent" in warnings[-1]


def test_a_hook_that_prints_garbage_and_exits_zero_is_fine(tmp_path):
    assert _notify([_hook(tmp_path, "head -c 3000 /dev/urandom")], [ROW]) == []


def test_a_hook_that_cannot_run_is_reported(tmp_path):
    warnings = _notify([str(tmp_path / "missing")], [ROW])
    assert len(warnings) == 1 and "cannot run it" in warnings[0]


def test_a_full_queue_says_which_row_is_not_sent(tmp_path):
    warnings: list[str] = []
    notifier = Notifier([_hook(tmp_path, "sleep 1")], warnings.append, capacity=1)
    for number in range(4):
        notifier.submit(ROW | {"command_id": f"row{number}"})
    notifier.close()
    assert any("is not sent" in warning for warning in warnings)


def test_the_executor_hands_a_failed_start_and_a_crash_to_the_hook_and_goes_on(root, tmp_path):
    received = tmp_path / "received"
    hook = _hook(tmp_path, f"cat >> {received}; exit 1")
    missing = SPEC | {"overlays": [{"path": "missing/layer"}]}
    assert invoke(root, "init", "alpha", "--spec", str(write_spec(tmp_path / "a.yaml", missing))).exit_code == 0
    assert invoke(root, "init", "bravo", "--spec", str(write_spec(tmp_path / "b.yaml", SPEC | {"port": 27016}))
                  ).exit_code == 0
    assert invoke(root, "start", "bravo").exit_code == 0
    assert invoke(root, "start", "alpha", "--no-wait").exit_code == 0
    journal = FileState(root / SIMULATED_JOURNAL)
    journal.setdefault("entries", []).append({
        "source": "crash:1", "instance": "bravo", "event": "exited", "at": datetime.now(timezone.utc).isoformat(),
        "fields": {"EXIT_CODE": "killed", "EXIT_STATUS": "11"}})
    journal.save()

    served = invoke(root, "executor", "--once", "--notify-exec", hook)
    assert served.exit_code == 0
    rows = [json.loads(line) for line in received.read_text().splitlines()]
    assert [(row["instance"], row["command"], row["outcome"]) for row in rows] == [
        ("bravo", "crashed", "observed"), ("alpha", "start", "failed")]
    assert "killed by signal SIGSEGV" in rows[0]["error"]
    assert served.stderr.count("exited with status 1") == 2, "a failing hook is reported, the executor goes on"
