"""The real filesystem under the host root, walked one directory at a time without following symlinks.

Every path is opened relative to the root's directory descriptor with
O_NOFOLLOW at each step, so a symlink planted anywhere under the root (an
instance directory pointing at /etc, say) is refused, never followed.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import HostError

# How many hex digits make a temp file's name unique.
TEMPORARY_HEX = 8
# The most l4d2ctl reads of one file: it reads cfgs and env files, and a file under overlays/ can be anything.
MAX_FILE_BYTES = 2**20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalFilesystem:
    """Files under `root`, with atomic writes and no way out of the root."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(os.path.realpath(root))

    def make_dirs(self, path: str) -> None:
        """Create a directory and its missing parents (modes from the umask)."""
        with self._directory(_parts(path), create=True):
            pass

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace a file's content atomically (see `write_from`)."""
        self.write_from(path, lambda file: file.write(data))

    def write_from(self, path: str, fill: Callable[[BinaryIO], object], mode: int | None = None) -> None:
        """Replace a file atomically with what `fill` writes into it: a temp file, fsynced, renamed over, the
        directory fsynced; with `mode`, the file gets exactly that mode (else the umask's).

        A temp file of the same name left by a write that was killed midway is
        removed once the file is written again: only the executor writes
        instance files, one command of an instance at a time, so such a temp
        file belongs to nobody alive, and a retry leaves the host as clean as an
        uninterrupted command would.
        """
        *parents, name = _parts(path)
        with self._directory(parents, create=True) as directory:
            temporary = f".{name}.{secrets.token_hex(TEMPORARY_HEX // 2)}.tmp"
            with self._errors(path):
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     0o666 if mode is None else 0o600, dir_fd=directory)
                try:
                    with os.fdopen(descriptor, "wb") as file:
                        if mode is not None:
                            os.fchmod(file.fileno(), mode)
                        fill(file)
                        file.flush()
                        os.fsync(file.fileno())
                    os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
                except BaseException:
                    _unlink_quietly(temporary, directory)
                    raise
                os.fsync(directory)
                for stale in os.listdir(directory):
                    if _temporary_of(name, stale):
                        _unlink_quietly(stale, directory)

    def read_bytes(self, path: str) -> bytes:
        """A regular file's content, at most MAX_FILE_BYTES; a symlink at `path` is refused."""
        with self.open_read(path) as file:
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise HostError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB; l4d2ctl reads only cfg "
                            f"and env files, which are far smaller")
        return data

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """A regular file at `path`, open for reading (any size); a symlink, a FIFO or a directory is refused."""
        *parents, name = _parts(path)
        try:
            with self._directory(parents) as directory, self._errors(path):
                # O_NONBLOCK: a FIFO planted where a file belongs is refused below instead of blocking the executor.
                descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
        except FileNotFoundError as error:
            raise HostError(f"{path}: no such file") from error
        with regular_file(descriptor, f"{path}: not a regular file") as file:
            yield file

    def exists(self, path: str) -> bool:
        """Whether anything is at `path` (a symlink counts, and is not followed)."""
        *parents, name = _parts(path)
        try:
            with self._directory(parents) as directory:
                os.stat(name, dir_fd=directory, follow_symlinks=False)
                return True
        except FileNotFoundError:
            return False

    def list_names(self, path: str) -> list[str]:
        """Sorted names in a directory; empty when it does not exist."""
        try:
            with self._directory(_parts(path)) as directory, self._errors(path):
                return sorted(os.listdir(directory))
        except FileNotFoundError:
            return []

    def remove_file(self, path: str) -> None:
        """Remove a file (or a symlink, not its target) if it exists."""
        *parents, name = _parts(path)
        try:
            with self._directory(parents) as directory, self._errors(path):
                os.unlink(name, dir_fd=directory)
        except FileNotFoundError:
            pass

    def remove_tree(self, path: str) -> bool:
        """Remove a directory tree if it exists (whether it did); a symlink there is unlinked, never followed."""
        *parents, name = _parts(path)
        try:
            with self._directory(parents) as directory, self._errors(path):
                entry = os.stat(name, dir_fd=directory, follow_symlinks=False)
                if stat.S_ISDIR(entry.st_mode):
                    shutil.rmtree(name, dir_fd=directory)
                else:
                    os.unlink(name, dir_fd=directory)
        except FileNotFoundError:
            return False
        return True

    @contextmanager
    def _directory(self, parts: list[str], create: bool = False) -> Iterator[int]:
        """A descriptor of root/parts..., opened component by component without following symlinks."""
        try:
            current = os.open(self.root, _DIR_FLAGS)
        except OSError as error:
            raise HostError(f"host root {self.root}: {error.strerror}") from error
        try:
            for depth, part in enumerate(parts):
                shown = "/".join(parts[: depth + 1])
                try:
                    following = os.open(part, _DIR_FLAGS, dir_fd=current)
                except FileNotFoundError:
                    if not create:
                        raise
                    with self._errors(shown):
                        try:
                            os.mkdir(part, 0o777, dir_fd=current)
                        except FileExistsError:
                            pass
                        following = os.open(part, _DIR_FLAGS, dir_fd=current)
                except OSError as error:
                    if error.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise HostError(
                            f"{shown}: is a symlink or not a directory; refusing to follow it"
                        ) from error
                    raise HostError(f"{shown}: {error.strerror}") from error
                os.close(current)
                current = following
            yield current
        finally:
            os.close(current)

    @contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise HostError(f"{path}: is a symlink; refusing to follow it") from error
            raise HostError(f"{path}: {error.strerror}") from error


def regular_file(descriptor: int, refusal: str) -> BinaryIO:
    """The file open at `descriptor`, for reading, if it is a regular one; else it is closed and `refusal` raised
    as a `HostError` (checked before fdopen, which would refuse a directory its own way, naming the descriptor)."""
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise HostError(refusal)
    return os.fdopen(descriptor, "rb")


def _parts(path: str) -> list[str]:
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("..", ".") for part in pure.parts) or not pure.parts:
        raise HostError(f"{path!r}: not a path inside the root")
    return list(pure.parts)


def _temporary_of(name: str, entry: str) -> bool:
    """Whether `entry` is a temp file `write_bytes` made on its way to writing `name`."""
    prefix, suffix = f".{name}.", ".tmp"
    middle = entry[len(prefix):-len(suffix)]
    return (entry.startswith(prefix) and entry.endswith(suffix) and len(middle) == TEMPORARY_HEX
            and all(character in "0123456789abcdef" for character in middle))


def _unlink_quietly(name: str, directory: int) -> None:
    try:
        os.unlink(name, dir_fd=directory)
    except OSError:
        pass
