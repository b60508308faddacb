"""Source A2S_INFO queries to the game servers on this host, through python-a2s, bounded.

A port's answer comes from whatever holds that port, not necessarily our
server, so the reply is untrusted: python-a2s would reassemble up to 255
fragments, one receive timeout each, and bz2-decompress each without a limit
(a 379-byte reply took a CLI to 828 MB). Its fragment decoder is replaced with
one that refuses more than `MAX_FRAGMENTS` fragments and decompresses at most
`MAX_FRAGMENT_BYTES` of each. A real A2S_INFO reply is one packet of a few
hundred bytes.
"""

from __future__ import annotations

import bz2
import io
from typing import Any

QUERY_TIMEOUT = 1.0
LOCALHOST = "127.0.0.1"
MAX_FRAGMENTS = 4
MAX_FRAGMENT_BYTES = 64 * 1024


class A2SQuery:
    """Asks a server on this host for its name, map and players."""

    def __init__(self, address: str = LOCALHOST, timeout: float = QUERY_TIMEOUT):
        self.address = address
        self.timeout = timeout

    def info(self, port: int, timeout: float | None = None) -> dict[str, Any] | None:
        """A2S_INFO from the server on `port`; None when nothing answers in time (`timeout`, else this query's
        own) or the reply is malformed or too large."""
        a2s = _bounded_a2s()
        try:
            info = a2s.info((self.address, port), timeout=self.timeout if timeout is None else timeout)
        except (OSError, a2s.BrokenMessageError, a2s.BufferExhaustedError):
            return None
        return {"name": info.server_name, "map": info.map_name, "players": info.player_count,
                "max_players": info.max_players}


def _bounded_a2s() -> Any:
    """python-a2s with its fragment decoder replaced by `decode_fragment` (once per process)."""
    import a2s
    import a2s.a2s_sync

    a2s.a2s_sync.decode_fragment = decode_fragment
    return a2s


def decode_fragment(data: bytes) -> Any:
    """One fragment of a multi-packet reply, as python-a2s's own decoder reads it, but bounded: too many
    fragments, or a payload that decompresses past `MAX_FRAGMENT_BYTES`, is a `BrokenMessageError`."""
    from a2s import BrokenMessageError
    from a2s.a2s_fragment import A2SFragment
    from a2s.byteio import ByteReader

    reader = ByteReader(io.BytesIO(data), endian="<", encoding="utf-8")
    fragment = A2SFragment(message_id=reader.read_uint32(), fragment_count=reader.read_uint8(),
                           fragment_id=reader.read_uint8(), mtu=reader.read_uint16())
    if fragment.fragment_count > MAX_FRAGMENTS:
        raise BrokenMessageError(f"a reply in {fragment.fragment_count} fragments (at most {MAX_FRAGMENTS})")
    if not fragment.is_compressed:
        fragment.payload = reader.read()
        return fragment
    fragment.decompressed_size = reader.read_uint32()
    fragment.crc = reader.read_uint32()
    decompressor = bz2.BZ2Decompressor()
    try:
        fragment.payload = decompressor.decompress(reader.read(), max_length=MAX_FRAGMENT_BYTES)
    except (OSError, ValueError) as error:
        raise BrokenMessageError(f"a compressed fragment that does not decompress: {error}") from None
    if not decompressor.eof:
        raise BrokenMessageError(f"a compressed fragment over {MAX_FRAGMENT_BYTES} bytes, or cut short")
    return fragment
