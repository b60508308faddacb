"""The privileged helper left4me-host, run directly as root or through `sudo -n` by a member of group left4me.

Everything l4d2ctl does as root on a real host goes through the helper's
exact interface (`left4me-host VERB NAME [ARG]`): units, mounts, the runtime
tree the game owns, and secret values. The helper keeps its own root (from a
root-owned configuration file); `root` asks which one, so l4d2ctl never acts
on one root while the helper acts on another.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from .batches import Batcher, Company, NameResult
from .errors import HostError
from .protocols import UNIT_PREFIX, StepIO, unit_name
from .runner import STDERR_TAIL, RunResult, run, run_binary, run_checked

DEFAULT_HELPER = "/usr/local/bin/left4me-host"
SUDO = "/usr/bin/sudo"
HELPER_TIMEOUT = 300.0
QUICK_TIMEOUT = 30.0
# How the helper's one line on stderr begins (then "refused: ..." or "failed: ...").
HELPER_SAYS = "left4me-host: "
# How many names the verbs that take several (stage, start, stop) take at most (the helper's MAX_BATCH), and how each
# name's line on stdout says what became of it: "NAME: done|failed|refused: what".
MAX_BATCH = 64
BATCH_STATUSES = ("done", "failed", "refused")


class HelperClient:
    """Calls one verb of the helper at a time; as root directly, otherwise with `sudo -n` (never a password prompt)."""

    def __init__(self, helper: str, as_root: bool | None = None):
        self.as_root = os.geteuid() == 0 if as_root is None else as_root
        self.prefix = [helper] if self.as_root else [SUDO, "-n", helper]
        self.company = Company()  # the executor's workers, who may ask this helper's batchers

    def call(self, verb: str, *arguments: str, io: StepIO | None = None, input_text: str | None = None,
             timeout: float | None = HELPER_TIMEOUT, keep: bool = True) -> RunResult:
        """Run `left4me-host VERB ARGUMENTS...`, its lines going to `io`; a non-zero exit is a `HostError` that says
        why in the helper's own words (its one stderr line), for the one line an operator reads."""
        try:
            return run_checked([*self.prefix, verb, *arguments], io or StepIO(), timeout=timeout,
                               input_text=input_text, keep=keep)
        except HostError as error:
            raise _in_its_words(error, verb, arguments) from None

    def call_each(self, verb: str, names: list[str], timeout: float | None = HELPER_TIMEOUT) -> dict[str, NameResult]:
        """Run a verb that takes several names (stage, start, stop): each name's result, with the lines that name its
        unit (or no unit) of what the run said besides; a run that names no result is a `HostError` in the
        helper's words."""
        result = run([*self.prefix, verb, *names], StepIO(), timeout=timeout)
        results: dict[str, tuple[str, str]] = {}
        said = [line for line in result.stderr if not line.startswith(HELPER_SAYS)]
        for line in result.stdout:
            name, _, rest = line.partition(": ")
            status, separated, message = rest.partition(": ")
            if name in names and status in BATCH_STATUSES and separated and name not in results:
                results[name] = (status, message)
            else:
                said.append(line)
        if not results:
            raise _in_its_words(HostError(f"{' '.join(self.prefix)} {verb} {' '.join(names)} exited with status "
                                          f"{result.returncode}", result.stderr[-STDERR_TAIL:]), verb, tuple(names))
        return {name: NameResult(status, message, [line for line in said if _about(line, name)])
                for name, (status, message) in results.items()}

    def batcher(self, verb: str, timeout: float | None = HELPER_TIMEOUT) -> Batcher[NameResult]:
        """A `Batcher` that serves one name's `verb` (stage, start, stop) with runs shared by every command that
        asks at about the same time."""
        return Batcher(lambda names: self.call_each(verb, names, timeout=timeout), MAX_BATCH, company=self.company)

    def call_binary(self, verb: str, *arguments: str, io: StepIO, stdin: BinaryIO | None = None,
                    stdout: BinaryIO | None = None, timeout: float | None = HELPER_TIMEOUT) -> None:
        """Run a verb that reads or writes bytes (an archive): `stdin` handed over, its stdout into `stdout`, its
        stderr lines (what it says) to `io`."""
        try:
            run_binary([*self.prefix, verb, *arguments], io, stdin=stdin, stdout=stdout, timeout=timeout)
        except HostError as error:
            raise _in_its_words(error, verb, arguments) from None

    def check_root(self, root: Path) -> None:
        """Refuse to work on `root` when the helper is configured for another one."""
        result = self.call("root", timeout=QUICK_TIMEOUT)
        configured = result.stdout[-1] if result.stdout else ""
        if Path(configured) != root:
            raise HostError(f"{self.prefix[-1]} manages the root {configured or '(none)'}, not {root}: "
                            f"use --root {configured}" if configured else f"{self.prefix[-1]} names no root")


def pass_on(result: NameResult, verb: str, name: str, io: StepIO) -> None:
    """Pass on to `name`'s step what a batch run did for it; anything but done is a `HostError` in the helper's
    words."""
    for line in result.said:
        io.say(line)
    if result.status != "done":
        raise HostError(f"left4me-host {verb} {name}: {result.status}: {result.message}", result.said)
    io.say(result.message)


def _about(line: str, name: str) -> bool:
    """Whether a line a batch run printed concerns `name`: it names its unit, or no instance unit at all."""
    return unit_name(name) in line or UNIT_PREFIX not in line


def _in_its_words(error: HostError, verb: str, arguments: tuple[str, ...]) -> HostError:
    """A helper's failure as the helper's own one line on stderr says it (the error as it is, without one)."""
    why = next((line for line in reversed(error.stderr_tail) if line.startswith(HELPER_SAYS)), None)
    if why is None:
        return error
    return HostError(f"left4me-host {' '.join((verb, *arguments))}: {why.removeprefix(HELPER_SAYS)}",
                     error.stderr_tail)


class HelperRuntime:
    """The instance's runtime tree (the game's upper layer, work and merged directories), through the helper."""

    def __init__(self, client: HelperClient):
        self.client = client
        self._stages = client.batcher("stage")

    def prepare(self, name: str, io: StepIO) -> None:
        """Create runtime/NAME/{upper,work,merged} with their owners."""
        self.client.call("prepare", name, io=io)

    def stage(self, name: str, io: StepIO) -> None:
        """Copy instances/NAME/cfg/server*.cfg into the upper layer (server.cfg with the secrets); write unit.env.
        Stages that commands running at once ask for share one helper run."""
        pass_on(self._stages.run(name), "stage", name, io)

    def remove(self, name: str, io: StepIO) -> None:
        """Remove runtime/NAME and the instance's secrets (refused while mounted)."""
        self.client.call("remove", name, io=io)

    def archive(self, name: str, excludes: list[str], out: BinaryIO, io: StepIO) -> None:
        """The upper layer as a tar, from the helper's stdout (the globs to leave out on its stdin, one a line)."""
        with tempfile.TemporaryFile() as globs:
            globs.write("".join(f"{glob}\n" for glob in excludes).encode())
            globs.seek(0)
            self.client.call_binary("archive", name, io=io, stdin=globs, stdout=out, timeout=None)

    def restore(self, name: str, archive: BinaryIO, io: StepIO) -> None:
        """The upper layer replaced by the helper from the tar on its stdin."""
        self.client.call_binary("restore", name, io=io, stdin=archive, timeout=None)


class HelperSecrets:
    """Secret values, kept by the helper where only root reads them; l4d2ctl sees fingerprints only."""

    def __init__(self, client: HelperClient):
        self.client = client

    def put(self, name: str, cvar: str, value: str) -> str:
        """Keep `value` aside for NAME's CVAR until a command commits it; its keyed fingerprint."""
        result = self.client.call("secret-put", name, cvar, input_text=value + "\n", timeout=QUICK_TIMEOUT)
        return result.stdout[-1] if result.stdout else ""

    def commit(self, name: str, cvar: str, fingerprint: str, io: StepIO) -> None:
        """Make the value kept aside with `fingerprint` the cvar's value (done already: nothing)."""
        self.client.call("secret-commit", name, cvar, fingerprint, io=io)

    def unset(self, name: str, cvar: str, io: StepIO) -> None:
        """Remove the cvar's value (not set: nothing)."""
        self.client.call("secret-unset", name, cvar, io=io)
