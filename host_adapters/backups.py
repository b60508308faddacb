"""Instance backups under <root>/backups/NAME/: an archive of the upper layer and a manifest beside it.

`ID.tar` is the tar of the instance's upper layer (what its server wrote:
addons, logs, cfgs); `ID.json`, its manifest, says when it was taken, by
which command, what was left out, the archive's size and sha256, and holds
the instance files (spec.yaml, instance.env, server.cfg) as they were. Both
are readable by their owner and the operator group only (0640, the
directory's setgid group), and written atomically: a backup cut short leaves
no archive behind, only a temp file the next backup of the instance removes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, BinaryIO, cast

from .errors import HostError
from .protocols import Filesystem

ARCHIVE_MODE = 0o640
CHUNK = 1 << 20
MANIFEST_VERSION = 1
BACKUP_ID = re.compile(r"[0-9a-f]{12}")
SHA256 = re.compile(r"[0-9a-f]{64}")
TAKEN_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the ledger's own time format
# What a backup cut short leaves: the temp files of write_from (`.ID.tar.XXXXXXXX.tmp`).
LEFTOVER = re.compile(r"\.[0-9a-f]{12}\.(tar|json)\.[0-9a-f]{8}\.tmp")


class HashingWriter:
    """A write-only file that passes bytes on to `file`, counting them and hashing them with sha256."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        """Pass `data` on; how many bytes were written."""
        self.digest.update(data)
        self.size += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        """Flush the file underneath."""
        self.file.flush()


def sha256_of(file: BinaryIO) -> tuple[int, str]:
    """The size and sha256 of what is left to read of `file`."""
    digest, size = hashlib.sha256(), 0
    while chunk := file.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


class BackupFiles:
    """The backups of every instance, as files under <root>/backups/ (the same on every host)."""

    def __init__(self, fs: Filesystem):
        self.fs = fs

    def take(self, name: str, backup_id: str, fill: Callable[[BinaryIO], None],
             manifest: dict[str, Any]) -> dict[str, Any]:
        """Write backups/NAME/ID.tar with what `fill` writes, then its manifest (`manifest` plus the archive's
        size and sha256); the manifest as written. The manifest comes last: an archive without one is not a
        backup."""
        self._remove_leftovers(name)
        written: dict[str, Any] = {}

        def write(file: BinaryIO) -> None:
            hashing = HashingWriter(file)
            fill(hashing)  # type: ignore[arg-type]  # a file as far as writing goes
            written.update(size=hashing.size, sha256=hashing.digest.hexdigest())

        self.fs.write_from(self._archive(name, backup_id), write, mode=ARCHIVE_MODE)
        complete = {"version": MANIFEST_VERSION, **manifest, "id": backup_id, "instance": name, **written}
        self.fs.write_from(self._manifest(name, backup_id),
                           lambda file: file.write(json.dumps(complete, indent=1, sort_keys=True).encode() + b"\n"),
                           mode=ARCHIVE_MODE)
        return complete

    def manifests(self, name: str) -> list[dict[str, Any]]:
        """The instance's backups' manifests, oldest first, each by the id its file is named for; one that
        cannot be read (or names another id) is listed with its `error`, first."""
        found = []
        for entry in self.fs.list_names(f"backups/{name}"):
            backup_id = entry.removesuffix(".json")
            if not entry.endswith(".json") or not BACKUP_ID.fullmatch(backup_id):
                continue
            try:
                found.append(self.manifest(name, backup_id))
            except HostError as error:
                found.append({"id": backup_id, "instance": name, "taken_at": None, "error": str(error)})
        return sorted(found, key=lambda manifest: (manifest.get("taken_at") or "", manifest["id"]))

    def manifest(self, name: str, backup_id: str) -> dict[str, Any]:
        """One backup's manifest, checked to be one l4d2ctl wrote for this id; `HostError` otherwise."""
        path = self._manifest(name, backup_id)
        if not self.fs.exists(path):
            raise HostError(f"no backup {backup_id} of {name} (no {path})")
        try:
            manifest = json.loads(self.fs.read_bytes(path))
        except (ValueError, RecursionError) as error:
            raise HostError(f"{path}: not a manifest l4d2ctl wrote ({str(error)[:100]})") from None
        problem = _manifest_problem(manifest, backup_id)
        if problem is not None:
            raise HostError(f"{path}: not a manifest l4d2ctl wrote ({problem})")
        return cast(dict[str, Any], manifest)

    @contextmanager
    def verified(self, name: str, backup_id: str) -> Iterator[tuple[dict[str, Any], BinaryIO]]:
        """The backup's manifest and its archive, open at its start once its size and sha256 are found to be the
        ones its manifest records; `HostError` naming the difference otherwise (a corrupted or changed archive).

        The archive is hashed and then read through the same descriptor, so
        what is restored is what was checked (short of someone writing it in between, which only its owner may).
        """
        manifest = self.manifest(name, backup_id)
        path = self._archive(name, backup_id)
        with self.fs.open_read(path) as archive:
            size, sha256 = sha256_of(archive)
            if (size, sha256) != (manifest["size"], manifest["sha256"]):
                raise HostError(f"{path} is corrupted: {size} bytes with sha256 {sha256}, but its manifest records "
                                f"{manifest['size']} bytes with sha256 {manifest['sha256']}; nothing was restored")
            archive.seek(0)
            yield manifest, archive

    def remove(self, name: str, backup_id: str) -> None:
        """Remove a backup: its manifest first (without one it is no longer listed), then its archive."""
        self.fs.remove_file(self._manifest(name, backup_id))
        self.fs.remove_file(self._archive(name, backup_id))

    def _remove_leftovers(self, name: str) -> None:
        """What backups of this instance cut short left: temp files, and archives that never got their manifest.
        Only the executor writes here, one command of an instance at a time: none of it belongs to a live one."""
        names = self.fs.list_names(f"backups/{name}")
        for entry in names:
            orphan = entry.endswith(".tar") and f"{entry.removesuffix('.tar')}.json" not in names
            if LEFTOVER.fullmatch(entry) or (orphan and BACKUP_ID.fullmatch(entry.removesuffix(".tar"))):
                self.fs.remove_file(f"backups/{name}/{entry}")

    @staticmethod
    def _archive(name: str, backup_id: str) -> str:
        return f"backups/{name}/{backup_id}.tar"

    @staticmethod
    def _manifest(name: str, backup_id: str) -> str:
        return f"backups/{name}/{backup_id}.json"


def _manifest_problem(manifest: object, backup_id: str) -> str | None:
    """What makes `manifest` not one l4d2ctl wrote for `backup_id` (None when it is)."""
    if not isinstance(manifest, dict):
        return "not an object"
    if manifest.get("id") != backup_id:
        return f"it names backup {str(manifest.get('id'))[:20]!r}, not {backup_id}"
    if not isinstance(manifest.get("size"), int) or isinstance(manifest.get("size"), bool) or manifest["size"] < 0:
        return "no size"
    if not isinstance(manifest.get("sha256"), str) or not SHA256.fullmatch(manifest["sha256"]):
        return "no sha256"
    try:
        datetime.strptime(manifest.get("taken_at"), TAKEN_AT_FORMAT)  # type: ignore[arg-type]  # checked here
    except (TypeError, ValueError):
        return "no taken_at"
    files = manifest.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(key, str) and isinstance(value, str)
                                              for key, value in files.items()):
        return "its files are not text"
    return None
