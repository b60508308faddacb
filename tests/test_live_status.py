"""`status --live`: the unit, the server's own answer (A2S_INFO from the stand-in srcds), and drift."""

from __future__ import annotations

import bz2
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import a2s
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.service.live import drift, live_status
from host_adapters import StepIO, UnitStatus
from host_adapters.a2s_query import MAX_FRAGMENT_BYTES, MAX_FRAGMENTS, A2SQuery, decode_fragment
from projections import InstanceView

from .fakes import MemoryFilesystem, MemoryState, fake_host

STAND_IN = Path(__file__).resolve().parent.parent / "scripts" / "host" / "srcds_run"


ACTIVE = UnitStatus("active", "running", enabled=True)
INACTIVE = UnitStatus("inactive", "dead", enabled=False)
AUTO_RESTART = UnitStatus("activating", "auto-restart", enabled=True, restarts=3)
FAILED = UnitStatus("failed", "failed", enabled=True, restarts=4)


@pytest.mark.parametrize("recorded, unit, answered, expected", [
    ("running", ACTIVE, True, []),
    ("running", INACTIVE, False, ["recorded running, unit inactive (dead)"]),
    ("running", ACTIVE, False, ["unit active, server not answering"]),
    ("running", AUTO_RESTART, False, ["recorded running, unit activating (auto-restart)"]),
    ("running", FAILED, False, ["recorded running, unit failed (failed)"]),
    ("stopped", ACTIVE, True, ["recorded stopped, unit active (running)"]),
    ("stopped", AUTO_RESTART, False, ["recorded stopped, unit activating (auto-restart)"]),
    ("stopped", INACTIVE, False, []),
    ("failed", FAILED, False, []),
    ("reset", INACTIVE, False, []),
])
def test_drift_names_each_disagreement(recorded, unit, answered, expected):
    assert drift(recorded, unit, {"map": "c1m1_hotel"} if answered else None) == expected


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """The stand-in srcds in a merged-like tree with a server.cfg, on a free port."""
    (tmp_path / "left4dead2/cfg").mkdir(parents=True)
    (tmp_path / "left4dead2/cfg/server.cfg").write_text('sv_gametypes versus\nhostname "Friday Versus"\n')
    binary = tmp_path / "srcds_run"
    binary.write_bytes(STAND_IN.read_bytes())
    binary.chmod(0o755)
    port = _free_udp_port()
    process = subprocess.Popen([sys.executable, str(binary), "-game", "left4dead2", "+hostport", str(port),
                                "+map", "c2m1_highway", "-maxplayers", "12"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while A2SQuery().info(port) is None:
        assert time.monotonic() < deadline, "the stand-in never answered"
    yield process, port
    process.terminate()
    process.wait(10)


def test_the_stand_in_answers_with_the_map_and_the_hostname_from_server_cfg(server):
    _, port = server
    assert A2SQuery().info(port) == {"name": "Friday Versus", "map": "c2m1_highway", "players": 0, "max_players": 12}


def test_the_stand_in_exits_cleanly_on_sigterm(server):
    process, _ = server
    process.terminate()
    assert process.wait(10) == 0
    assert "stopped" in process.stdout.read()


def test_live_status_adds_unit_query_and_drift(server):
    _, port = server
    host = fake_host(MemoryFilesystem(), MemoryState(), query=A2SQuery())
    host.services.enable_now("alpha", StepIO())
    instances = [InstanceView("alpha", state="running", port=port), InstanceView("bravo", state="running", port=1)]
    alpha, bravo = live_status(instances, host)
    assert (alpha["unit"], alpha["query"]["map"], alpha["drift"]) == ("active (running)", "c2m1_highway", [])
    assert (bravo["unit"], bravo["query"], bravo["drift"]) == ("inactive (dead)", None,
                                                              ["recorded running, unit inactive (dead)"])


def _hostile_peer(replies: list[bytes]) -> tuple[int, threading.Thread]:
    """A UDP peer on a free port that answers the first datagram it gets with `replies`, one packet each."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)

    def serve():
        with peer:
            _, client = peer.recvfrom(2048)
            for reply in replies:
                peer.sendto(reply, client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return peer.getsockname()[1], thread


def _fragment(number: int, count: int, payload: bytes, compressed: bool) -> bytes:
    header = struct.pack("<IBBH", (1 << 15 if compressed else 0) | 7, count, number, 1248)
    extra = struct.pack("<II", 512 * 2**20, 0) if compressed else b""
    return b"\xfe\xff\xff\xff" + header + extra + payload


def test_a_compressed_reply_that_would_decompress_without_bound_is_refused():
    bomb = bz2.compress(b"\0" * (64 * 2**20))
    assert len(bomb) < 1000
    port, peer = _hostile_peer([_fragment(0, 1, bomb, compressed=True)])
    tracemalloc.start()
    try:
        assert A2SQuery().info(port) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    peer.join(5)
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_a_reply_announced_in_many_fragments_is_refused_at_the_first():
    port, peer = _hostile_peer([_fragment(0, 255, b"x" * 100, compressed=False)])
    asked = time.monotonic()
    assert A2SQuery(timeout=10).info(port) is None
    assert time.monotonic() - asked < 5, "it did not wait for 254 more fragments, one receive timeout each"
    peer.join(5)


@settings(max_examples=300, deadline=None)
@given(header=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**16 - 1)),
       compressed_size=st.integers(0, 2**32 - 1),
       body=st.one_of(st.binary(max_size=300), st.builds(bz2.compress, st.binary(max_size=200)),
                      st.just(bz2.compress(b"\0" * (4 * 2**20)))))
def test_any_fragment_a_peer_sends_is_decoded_within_bounds_or_refused(header, compressed_size, body):
    data = struct.pack("<IBBH", *header) + (struct.pack("<II", compressed_size, 0) if header[0] & 1 << 15 else b"")
    try:
        fragment = decode_fragment(data + body)
    except (a2s.BrokenMessageError, a2s.BufferExhaustedError):
        return
    assert fragment.fragment_count <= MAX_FRAGMENTS
    assert len(fragment.payload) <= MAX_FRAGMENT_BYTES
