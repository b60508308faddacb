"""Pacing a WAL that cannot start over: room ahead for its commits, and one checkpoint attempt per stretch of it.

SQLite starts its WAL over from the beginning once a checkpoint has copied
every frame and no reader still needs one; the file then keeps its size, each
commit's fsync writes data only, and the auto-checkpoint runs about once per
`wal_autocheckpoint` frames. A reader that holds on (Litestream keeps one open
for as long as it replicates) keeps the WAL from starting over, and two
costs follow, each measured at a sixth to a third of a durable append:

- every commit appends to a file that keeps growing, and its fsync must also
  commit the file's new size and blocks to the file system's journal;
- the auto-checkpoint, past its threshold for good, runs after every commit
  and, unable to copy what the reader still needs, throws away the
  connection's page cache each time.

So while a writer holds SQLite's write lock (nobody else may then write to or
truncate the WAL) and finds the WAL held back (its current frames reach past
where an unhindered one starts over), it appends zeroed frames once the
frames in use come near the end of the file, as databases that preallocate
their logs do, and moves the auto-checkpoint to the next multiple of 2,048
frames past the frames in use, so it is tried once per such stretch rather
than after every commit, up to 16,384 frames in use: past them, after every
commit again, since only a try in the moment the reader lets go (Litestream
does, briefly, to checkpoint) starts the WAL over, and a WAL that grew that
long is better started over than kept cheap. SQLite reads a WAL only as far as its frames carry
the salt of the WAL's header, as it must for the stale frames a restart leaves
behind; a zeroed frame carries none, so it is never taken for a frame. The
frames in use are found the same way: they are the prefix of the file that
carries the salt (a WAL that started over inside a larger file is paced by
its own frames, not by the file's end). Once the reader lets go, the next checkpoint
copies everything, the WAL starts over, and the threshold goes back.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from contextlib import suppress

WAL_HEADER = 32
FRAME_HEADER = 24
HEADER_SALT_AT = 16
FRAME_SALT_AT = 8
SALT_SIZE = 8
SLACK_FRAMES = 64  # past the auto-checkpoint threshold by this much, a WAL is one that did not start over
MARGIN_FRAMES = 128  # extend once the frames in use come this close to the end of the file
EXTEND_BY = 8 << 20  # bytes of zeroed frames (2,048 at 4 KiB pages)
CHECKPOINT_EVERY = 2048  # a held-back WAL's auto-checkpoint is tried once per this many frames
PACED_UP_TO = 64 << 20  # bytes of frames in use (16,384 at 4 KiB pages); past them, after every commit again
WRITE_PIECE = 1 << 20


def tend(wal_path: str, page_size: int, autocheckpoint: int) -> int:
    """Give the WAL at `wal_path` room ahead when it is held back and its frames near the end of the file;
    return the auto-checkpoint threshold (in frames) the writer should use until its next transaction:
    `autocheckpoint` for a WAL that starts over as usual (or none at all), for one held back past PACED_UP_TO
    bytes of frames, and when the auto-checkpoint is off (0); for one held back less long, the next multiple of
    CHECKPOINT_EVERY past the frames in use.

    The caller holds SQLite's write lock on the database, so neither the
    frames in use nor the file's size change under this.
    """
    if autocheckpoint <= 0:
        return autocheckpoint  # checkpoints left to others (Litestream's advice for busy writers): not paced
    try:  # not blocking, and no controlling terminal: a device in the WAL's place is opened without effect
        descriptor = os.open(wal_path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return autocheckpoint  # no WAL yet, one this user may not write, or a symlink: all left to SQLite
    try:
        return _paced(descriptor, FRAME_HEADER + page_size, autocheckpoint)
    except OSError:
        return autocheckpoint  # pacing is only for speed: a WAL it cannot read is SQLite's to report
    finally:
        with suppress(OSError):
            os.close(descriptor)


def _paced(descriptor: int, frame: int, autocheckpoint: int) -> int:
    """`tend` on the open WAL."""
    status = os.fstat(descriptor)
    frames, odd = divmod(status.st_size - WAL_HEADER, frame)
    held_past = autocheckpoint + SLACK_FRAMES
    if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1 or odd or frames < held_past:
        return autocheckpoint  # only a WAL as SQLite makes it: a regular file, with no other name
    salt = os.pread(descriptor, SALT_SIZE, HEADER_SALT_AT)

    def current(number: int) -> bool:
        return os.pread(descriptor, SALT_SIZE, WAL_HEADER + (number - 1) * frame + FRAME_SALT_AT) == salt

    if not current(held_past):
        return autocheckpoint  # the frames in use end before it: this WAL starts over as usual
    in_use = _last_current(current, held_past, frames)
    if in_use + MARGIN_FRAMES > frames:
        _add_zeroed_frames(descriptor, status.st_size, frame)
    if in_use * frame >= PACED_UP_TO:
        return autocheckpoint  # try after every commit again, so as not to miss the moment the reader lets go
    return (in_use // CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY


def _last_current(current: Callable[[int], bool], low: int, high: int) -> int:
    """The last frame up to `high` that is `current`, given frame `low` is. SQLite writes a WAL's frames in order
    from the first after every restart, so the frames in use are a prefix; beyond them lie stale frames of
    earlier rounds or zeroed ones, which a larger file than this round's keeps."""
    if current(high):
        return high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if current(middle) else (low, middle)
    return low


def _add_zeroed_frames(descriptor: int, size: int, frame: int) -> None:
    """Append EXTEND_BY bytes of zeroed frames at `size`, in whole frames (fewer when the disk is full)."""
    wanted = max(EXTEND_BY // frame, 1) * frame
    zeros = memoryview(bytes(min(WRITE_PIECE, wanted)))
    written = 0
    try:
        while written < wanted:
            written += os.pwrite(descriptor, zeros[: wanted - written], size + written)
    except OSError:
        pass  # room is only for speed: a disk that cannot give it leaves the commit to find out for itself
