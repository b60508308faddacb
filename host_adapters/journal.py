"""systemd's own journal entries about the instance units, read with `journalctl -o json`.

Only PID 1's messages are read (`_PID=1`): the job results, exits, restarts
and start limits systemd logs for each unit, never the servers' own output.
Entries are recognised by their catalog MESSAGE_ID and structured fields
(JOB_TYPE, EXIT_CODE, N_RESTARTS), not by their wording, except for the start
limit, which systemd logs without an id ("Start request repeated too quickly.",
once per give-up, in every version).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from .errors import HostError
from .helper import HelperClient
from .protocols import UNIT_PREFIX, UNIT_SUFFIX, JournalRead, StepIO, UnitEntry, UnitEvent
from .runner import run

JOURNALCTL = "/usr/bin/journalctl"
JOURNAL_TIMEOUT = 60.0

# systemd's catalog ids (sd-messages.h).
UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"
UNIT_STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"
UNIT_STOPPED = "9d1aaa27d60140bd96365438aad20286"
UNIT_PROCESS_EXIT = "98e322203f7a4ed290d09fe03c09fe15"
UNIT_SUCCESS = "7ad2d189f7e94e70a38c781354912448"
UNIT_RESTART_SCHEDULED = "5eb03494b6584870a536b337290809b3"
START_LIMIT_MESSAGE = "Start request repeated too quickly."
KEPT_FIELDS = ("MESSAGE", "JOB_TYPE", "JOB_RESULT", "EXIT_CODE", "EXIT_STATUS", "COMMAND", "N_RESTARTS",
               "UNIT_RESULT")


def classify(fields: dict[str, str]) -> UnitEvent | None:
    """Which unit event a journal entry of PID 1 records, if any that matters."""
    message_id, job = fields.get("MESSAGE_ID"), fields.get("JOB_TYPE")
    if message_id == UNIT_STARTED and job == "start" and fields.get("JOB_RESULT", "done") == "done":
        return UnitEvent.STARTED
    if message_id == UNIT_STOPPING and job == "stop":
        return UnitEvent.STOPPING
    if message_id == UNIT_STOPPED and job == "stop":
        return UnitEvent.STOPPED
    clean_exit = fields.get("EXIT_CODE") == "exited" and fields.get("EXIT_STATUS") == "0"
    if message_id == UNIT_PROCESS_EXIT and not clean_exit:
        return UnitEvent.EXITED
    if message_id == UNIT_SUCCESS:
        return UnitEvent.DEACTIVATED
    if message_id == UNIT_RESTART_SCHEDULED:
        return UnitEvent.RESTART_SCHEDULED
    if fields.get("MESSAGE", "").endswith(START_LIMIT_MESSAGE):
        return UnitEvent.START_LIMIT_HIT
    return None


def cursor_of(line: str) -> str | None:
    """The journal cursor of one line of `journalctl -o json`, whatever the entry is about."""
    try:
        cursor = json.loads(line).get("__CURSOR")
    except (ValueError, AttributeError):
        return None
    return cursor if isinstance(cursor, str) else None


def parse_entry(line: str) -> UnitEntry | None:
    """A unit entry from one line of `journalctl -o json`; None for other units and other messages."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    fields = {key: _text(value) for key, value in raw.items()}
    unit = fields.get("UNIT", "")
    if not (unit.startswith(UNIT_PREFIX) and unit.endswith(UNIT_SUFFIX)) or "__CURSOR" not in fields:
        return None
    event = classify(fields)
    if event is None:
        return None
    try:
        # When systemd logged it (journald's own receipt time only as a fallback): what is compared with
        # the times of l4d2ctl's commands, to tell their own doing from what happened outside them.
        stamp = fields.get("_SOURCE_REALTIME_TIMESTAMP") or fields["__REALTIME_TIMESTAMP"]
        at = datetime.fromtimestamp(int(stamp) / 1_000_000, timezone.utc)
    except (KeyError, ValueError, OverflowError, OSError):
        return None
    return UnitEntry(source=fields["__CURSOR"], instance=unit[len(UNIT_PREFIX):-len(UNIT_SUFFIX)], at=at,
                     event=event, fields={key: fields[key] for key in KEPT_FIELDS if key in fields})


def _text(value: object) -> str:
    """A journal field as text: JSON gives binary fields as byte lists, repeated fields as lists."""
    if isinstance(value, list):
        if value and all(isinstance(item, int) for item in value):
            return bytes(item & 0xFF for item in value).decode("utf-8", "replace")
        return _text(value[0]) if value else ""
    return "" if value is None else str(value)


class JournalctlJournal:
    """The system journal through journalctl (readable by root and the systemd-journal group)."""

    def __init__(self, journalctl: str = JOURNALCTL):
        self.journalctl = journalctl

    def entries(self, after: str | None, since: datetime | None) -> JournalRead:
        """PID 1's entries about left4me-server@*.service after the cursor `after` (else from `since`).

        The position returned is that of the last entry read about any unit, so
        the next read starts after everything this one saw.
        """
        argv = [self.journalctl, "--output", "json", "--no-pager", "--quiet"]
        if after is not None:
            argv.append(f"--after-cursor={after}")
        elif since is not None:
            argv.append(f"--since=@{since.timestamp():.6f}")
        argv.append("_PID=1")
        result = run(argv, StepIO(), timeout=JOURNAL_TIMEOUT)
        if result.returncode != 0:
            raise HostError(f"journalctl exited with status {result.returncode}", result.stderr[-5:])
        return journal_read(result.stdout)


class HelperJournal:
    """The same entries through the helper's `journal` verb: an operator may not read the system journal, and
    the helper passes on only what systemd logged about the instance units (then the last cursor it read)."""

    def __init__(self, client: HelperClient):
        self.client = client

    def entries(self, after: str | None, since: datetime | None) -> JournalRead:
        """PID 1's entries about left4me-server@*.service after the cursor `after` (else from `since`)."""
        if after is not None:
            position = after
        elif since is not None:
            position = f"@{since.timestamp():.6f}"
        else:
            raise HostError("the journal is read from a cursor or a moment")
        return journal_read(self.client.call("journal", position, timeout=JOURNAL_TIMEOUT).stdout)


def journal_read(lines: list[str]) -> JournalRead:
    """What lines of `journalctl -o json` hold: the unit entries among them, and the last cursor read."""
    position = next((cursor for line in reversed(lines) if (cursor := cursor_of(line))), None)
    return JournalRead([entry for line in lines if (entry := parse_entry(line)) is not None], position)
