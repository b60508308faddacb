"""`status --live`: the unit, the server's own answer (A2S_INFO from the stand-in srcds), and drift."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commands.live import drift, live_status, query_server
from host_adapters import StepIO
from host_adapters.fakes import FakeServiceControl, MemoryState
from projections import InstanceView

STAND_IN = Path(__file__).resolve().parent.parent / "scripts" / "host" / "srcds_run"


@pytest.mark.parametrize("recorded, active, answered, expected", [
    ("running", True, True, []),
    ("running", False, False, ["recorded running, unit inactive"]),
    ("running", True, False, ["unit active, server not answering"]),
    ("stopped", True, True, ["recorded stopped, unit active"]),
    ("stopped", False, False, []),
    ("reset", False, False, []),
])
def test_drift_names_each_disagreement(recorded, active, answered, expected):
    assert drift(recorded, active, {"map": "c1m1_hotel"} if answered else None) == expected


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
    while query_server(port) is None:
        assert time.monotonic() < deadline, "the stand-in never answered"
    yield process, port
    process.terminate()
    process.wait(10)


def test_the_stand_in_answers_with_the_map_and_the_hostname_from_server_cfg(server):
    _, port = server
    assert query_server(port) == {"name": "Friday Versus", "map": "c2m1_highway", "players": 0, "max_players": 12}


def test_the_stand_in_exits_cleanly_on_sigterm(server):
    process, _ = server
    process.terminate()
    assert process.wait(10) == 0
    assert "stopped" in process.stdout.read()


def test_live_status_adds_unit_query_and_drift(server):
    _, port = server
    services = FakeServiceControl(MemoryState(), Path("/srv"))
    services.enable_now("alpha", StepIO())
    instances = [InstanceView("alpha", state="running", port=port), InstanceView("bravo", state="running", port=1)]
    alpha, bravo = live_status(instances, services)
    assert (alpha["unit"], alpha["query"]["map"], alpha["drift"]) == ("active", "c2m1_highway", [])
    assert (bravo["unit"], bravo["query"], bravo["drift"]) == ("inactive", None, ["recorded running, unit inactive"])
