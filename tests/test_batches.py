"""A fleet's starts and stops share helper runs: the Batcher that serves many threads with few calls, and the
helper client that reads one result line per name."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from host_adapters.batches import Batcher, Company, NameResult
from host_adapters.errors import HostError
from host_adapters.helper import HelperClient


class RecordingBatch:
    """A batch call that records the names of each call, and holds the first call until released."""

    def __init__(self, failing: bool = False):
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.failing = failing

    def __call__(self, names: list[str]) -> dict[str, NameResult]:
        self.calls.append(names)
        if len(self.calls) == 1:
            self.release.wait(10)
        if self.failing:
            raise HostError("sudo: a password is required")
        return {name: NameResult("done", f"started {name}", []) for name in names if name != "silent"}


def _ask_all(batcher: Batcher, names: list[str]) -> tuple[dict[str, object], list[threading.Thread]]:
    got: dict[str, object] = {}

    def ask(name: str) -> None:
        try:
            got[name] = batcher.run(name)
        except HostError as error:
            got[name] = error

    threads = [threading.Thread(target=ask, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    return got, threads


def _ask_a_moment_apart(batcher: Batcher, names: list[str]) -> dict[str, object]:
    """Each name asked from a thread of its own, 20 ms after the one before (as workers reach a step one after
    another); what each got, once all are done."""
    got: dict[str, object] = {}
    threads: list[threading.Thread] = []
    for name in names:
        more, started = _ask_all(batcher, [name])
        got.update(more)
        threads += started
        time.sleep(0.02)
    for thread in threads:
        thread.join(10)
    return got


def _while_the_first_call_runs(batch: RecordingBatch, batcher: Batcher, others: list[str]):
    first, first_threads = _ask_all(batcher, ["first"])
    while not batch.calls:
        time.sleep(0.01)
    got, threads = _ask_all(batcher, others)
    time.sleep(0.2)  # the others are waiting for the running call
    batch.release.set()
    for thread in [*first_threads, *threads]:
        thread.join(10)
    return {**first, **got}


def test_a_name_asked_alone_is_run_in_a_call_of_its_own():
    batch = RecordingBatch()
    batch.release.set()
    assert Batcher(batch, limit=64).run("alpha") == NameResult("done", "started alpha", [])
    assert batch.calls == [["alpha"]]


def _company_of(size: int) -> Company:
    company = Company()
    company.join(size)
    return company


def test_the_only_worker_at_work_runs_its_call_at_once_without_waiting_for_company():
    batch = RecordingBatch()
    batch.release.set()
    began = time.monotonic()
    assert Batcher(batch, limit=64, quiet=60, most=60, company=_company_of(1)).run("alpha").status == "done"
    assert time.monotonic() - began < 5


def test_a_call_runs_once_every_worker_at_work_has_asked():
    batch = RecordingBatch()
    batch.release.set()
    batcher = Batcher(batch, limit=64, quiet=60, most=60, company=_company_of(3))
    got, threads = _ask_all(batcher, ["a", "b"])
    time.sleep(0.2)
    assert batch.calls == [], "a third worker may still ask"
    more, last = _ask_all(batcher, ["c"])
    for thread in [*threads, *last]:
        thread.join(10)
    assert [sorted(names) for names in batch.calls] == [["a", "b", "c"]]
    assert {**got, **more}.keys() == {"a", "b", "c"}


def test_a_company_no_executor_counted_into_is_not_trusted_and_calls_still_gather():
    batch = RecordingBatch()
    batch.release.set()
    _ask_a_moment_apart(Batcher(batch, limit=64, quiet=0.3, most=5, company=Company()), ["a", "b"])
    assert [sorted(names) for names in batch.calls] == [["a", "b"]]


def test_a_worker_that_leaves_the_company_is_not_waited_for_past_the_quiet_moment():
    batch = RecordingBatch()
    batch.release.set()
    company = _company_of(2)
    batcher = Batcher(batch, limit=64, quiet=0.2, most=60, company=company)
    got, threads = _ask_all(batcher, ["a"])
    company.leave()  # the other worker ended without asking
    for thread in threads:
        thread.join(10)
    assert batch.calls == [["a"]] and got["a"].status == "done"


def test_names_asked_a_moment_apart_share_one_call_rather_than_the_first_going_alone():
    batch = RecordingBatch()
    batch.release.set()
    got = _ask_a_moment_apart(Batcher(batch, limit=64, quiet=0.5, most=5), ["a", "b", "c", "d"])
    assert [sorted(names) for names in batch.calls] == [["a", "b", "c", "d"]]
    assert all(isinstance(result, NameResult) for result in got.values())


def test_a_call_waits_for_company_no_longer_than_its_most_while_names_keep_coming():
    batch = RecordingBatch()
    batch.release.set()
    batcher = Batcher(batch, limit=64, quiet=0.5, most=0.2)
    threads = []
    for number in range(30):  # a name every 20 ms for 0.6 s: never a quiet moment
        threads += _ask_all(batcher, [f"n{number}"])[1]
        time.sleep(0.02)
    for thread in threads:
        thread.join(10)
    assert len(batch.calls) >= 2 and "n29" not in batch.calls[0]
    assert sorted(name for names in batch.calls for name in names) == sorted(f"n{number}" for number in range(30))


def test_a_call_waits_no_longer_once_it_holds_limit_names():
    batch = RecordingBatch()
    batch.release.set()
    got, threads = _ask_all(Batcher(batch, limit=3, quiet=60, most=60), ["a", "b", "c"])
    for thread in threads:
        thread.join(10)
    assert [sorted(names) for names in batch.calls] == [["a", "b", "c"]]


def test_names_asked_while_a_call_runs_share_the_next_call():
    batch = RecordingBatch()
    got = _while_the_first_call_runs(batch, Batcher(batch, limit=64), ["b", "c", "d", "e"])
    assert batch.calls[0] == ["first"] and sorted(batch.calls[1]) == ["b", "c", "d", "e"] and len(batch.calls) == 2
    assert all(isinstance(result, NameResult) and result.message == f"started {name}" for name, result in got.items())


def test_a_call_takes_at_most_limit_names_and_each_name_once():
    batch = RecordingBatch()
    _while_the_first_call_runs(batch, Batcher(batch, limit=2), ["b", "c", "d", "d"])
    assert all(len(names) <= 2 and len(set(names)) == len(names) for names in batch.calls)
    assert sorted(name for names in batch.calls for name in names) == ["b", "c", "d", "d", "first"]


def test_a_call_that_fails_as_a_whole_fails_every_name_it_took_and_the_next_names_are_still_served():
    batch = RecordingBatch(failing=True)
    got = _while_the_first_call_runs(batch, Batcher(batch, limit=64), ["b", "c"])
    assert all(isinstance(result, HostError) and "password is required" in str(result) for result in got.values())
    batch.failing = False
    assert Batcher(batch, limit=64).run("d").status == "done"


def test_a_name_the_call_says_nothing_about_is_an_error_for_that_name_alone():
    batch = RecordingBatch()
    got = _while_the_first_call_runs(batch, Batcher(batch, limit=64), ["silent", "b"])
    assert isinstance(got["silent"], HostError) and "said nothing about silent" in str(got["silent"])
    assert isinstance(got["b"], NameResult)


def _stand_in_helper(tmp_path: Path, script: str) -> HelperClient:
    helper = tmp_path / "left4me-host"
    helper.write_text(f"#!/bin/sh\n{script}\n")
    helper.chmod(0o755)
    return HelperClient(str(helper), as_root=True)


def test_the_client_reads_one_result_per_name_and_gives_each_the_lines_about_its_unit(tmp_path):
    client = _stand_in_helper(tmp_path, """
echo 'Created symlink left4me-server@a.service' >&2
echo 'Job for left4me-server@b.service failed.' >&2
echo 'a: done: enabled and started left4me-server@a.service'
echo 'b: failed: left4me-server@b.service is failed after systemctl enable --now exited with status 1'
echo 'left4me-host: failed: 1 of 2 instances: start failed' >&2
exit 1""")
    results = client.call_each("start", ["a", "b"])
    assert results["a"] == NameResult("done", "enabled and started left4me-server@a.service",
                                      ["Created symlink left4me-server@a.service"])
    assert results["b"].status == "failed" and results["b"].said == ["Job for left4me-server@b.service failed."]


def test_a_helper_run_that_names_no_result_is_an_error_in_the_helpers_words(tmp_path):
    client = _stand_in_helper(tmp_path, "echo 'left4me-host: refused: usage: left4me-host start NAME...' >&2; exit 2")
    with pytest.raises(HostError, match=r"^left4me-host start a b: refused: usage"):
        client.call_each("start", ["a", "b"])


def test_one_systemctl_show_for_several_units_reads_as_each_units_status():
    from host_adapters.systemd import property_blocks, unit_status

    lines = ["Id=left4me-server@a.service", "ActiveState=active", "SubState=running", "UnitFileState=enabled",
             "NRestarts=2", "", "ActiveState=activating", "SubState=auto-restart", "Id=left4me-server@b.service",
             "UnitFileState=disabled", "NRestarts=", ""]
    blocks = property_blocks(lines)
    assert [block["Id"] for block in blocks] == ["left4me-server@a.service", "left4me-server@b.service"]
    assert unit_status(blocks[0]).describe() == "active (running)" and unit_status(blocks[0]).restarts == 2
    second = unit_status(blocks[1])
    assert (second.describe(), second.enabled, second.restarts) == ("activating (auto-restart)", False, 0)


def test_a_batcher_without_a_quiet_moment_runs_each_name_asked_alone_at_once():
    batch = RecordingBatch()
    batch.release.set()
    batcher = Batcher(batch, limit=64, quiet=0.0, most=0.0)
    for name in ["a", "b", "c"]:  # a moment apart, as readiness checks come: none waits for the next
        assert batcher.run(name).status == "done"
        time.sleep(0.02)
    assert batch.calls == [["a"], ["b"], ["c"]]
