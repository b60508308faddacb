"""The hash chain: one canonical serialisation of an event, and its SHA-256 link.

Appending and verifying both go through `event_hash`, so the two can never
disagree about what an event's bytes are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

GENESIS_HASH = "0" * 64

HASHED_FIELDS = (
    "seq",
    "id",
    "type",
    "instance",
    "command_id",
    "actor",
    "os_user",
    "recorded_at",
    "request_key",
    "payload",
)


def canonical_json(value: Any) -> str:
    """Serialise a JSON value one way only: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """The hash of an event row: SHA-256 over the previous hash and the row's hashed fields."""
    body = canonical_json({field: row[field] for field in HASHED_FIELDS})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()
