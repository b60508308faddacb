"""Where l4d2ctl works and on whose behalf: resolved once from options and environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from host_adapters.helper import DEFAULT_HELPER as DEFAULT_HELPER  # re-exported: the CLI's defaults live here
from host_adapters.steamcmd import DEFAULT_STEAMCMD as DEFAULT_STEAMCMD

from ..domain.errors import InvalidInput
from ..domain.text_rules import shown

DEFAULT_ROOT = "/var/lib/left4me"
DEFAULT_LOCK_TIMEOUT = 10.0
# Directories under the root whose contents l4d2ctl deletes (an instance's files, runtime tree and secrets).
DELETED_UNDER_ROOT = ("instances", "runtime", "secrets")


@dataclass(frozen=True)
class Settings:
    """The global options of one l4d2ctl invocation."""

    root: Path
    db: Path
    actor: str | None
    host: str
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    helper: str = DEFAULT_HELPER
    steamcmd: str = DEFAULT_STEAMCMD

    @classmethod
    def from_options(cls, root: str, db: str | None, actor: str | None, host: str,
                     lock_timeout: float = DEFAULT_LOCK_TIMEOUT, helper: str = DEFAULT_HELPER,
                     steamcmd: str = DEFAULT_STEAMCMD) -> Settings:
        """Settings from the CLI's global options; the ledger defaults to <root>/ledger.db."""
        root_path = Path(root).absolute()
        return cls(root=root_path, db=Path(db) if db else root_path / "ledger.db", actor=actor, host=host,
                   lock_timeout=lock_timeout, helper=helper, steamcmd=steamcmd)

    def check_ledger_place(self) -> None:
        """Refuse a ledger inside a directory whose contents l4d2ctl deletes: a `reset` would take it along."""
        ledger, root = Path(os.path.realpath(self.db)), Path(os.path.realpath(self.root))
        for deleted in DELETED_UNDER_ROOT:
            if ledger.is_relative_to(root / deleted):
                raise InvalidInput(f"--db {shown(str(self.db))}: lies under {deleted}/ of the root, whose contents "
                                   f"l4d2ctl deletes (delete, reset): keep the ledger elsewhere")
