"""The subprocess runner streams lines, honours cancellation and timeouts, and reports failures."""

from __future__ import annotations

import sys
import time

import pytest

from host_adapters import Cancelled, HostError, StepIO
from host_adapters.runner import run, run_checked


def test_it_streams_stdout_and_stderr_lines_as_they_come():
    seen = []
    result = run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                 StepIO(emit=seen.append))
    assert (result.returncode, result.stdout, result.stderr) == (0, ["out"], ["err"])
    assert sorted(seen) == ["err", "out"]


def test_a_cancel_terminates_the_child_promptly():
    started = time.monotonic()
    deadline = started + 0.3
    with pytest.raises(Cancelled):
        run([sys.executable, "-c", "import time; time.sleep(60)"],
            StepIO(should_cancel=lambda: time.monotonic() > deadline))
    assert time.monotonic() - started < 10


def test_a_child_past_its_timeout_is_ended_with_a_host_error():
    with pytest.raises(HostError, match="timed out after 0.3s"):
        run([sys.executable, "-c", "import time; time.sleep(60)"], StepIO(), timeout=0.3)


def test_a_non_zero_exit_is_a_host_error_with_the_stderr_tail():
    with pytest.raises(HostError) as failed:
        run_checked([sys.executable, "-c", "import sys; [print(n, file=sys.stderr) for n in range(30)]; sys.exit(3)"],
                    StepIO())
    assert "exited with status 3" in str(failed.value)
    assert failed.value.stderr_tail == [str(n) for n in range(10, 30)]


def test_a_missing_program_is_a_host_error():
    with pytest.raises(HostError, match="no-such-program-here"):
        run(["no-such-program-here"], StepIO())


def test_a_stream_not_kept_passes_every_line_on_and_holds_none(tmp_path):
    seen = []
    io = StepIO(emit=lambda line: seen.append(len(line)), keep=False)
    result = run(["/usr/bin/seq", "100000"], io, keep=False)
    assert len(seen) == 100000 and result.stdout == [] and io.lines == []
