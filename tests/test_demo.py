"""The README's first quick-start command: the demo walks a throwaway root through a whole lifecycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .test_cli_lifecycle import L4D2CTL

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"


@pytest.mark.skipif(L4D2CTL is None, reason="the l4d2ctl console script is not installed beside this Python")
def test_the_demo_runs_the_whole_lifecycle_and_verifies(tmp_path):
    result = subprocess.run([sys.executable, str(DEMO), "--root", str(tmp_path / "root")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in ("✓ install (installation) succeeded", "✓ init friday succeeded", "✓ start friday succeeded",
                     "✓ backup friday succeeded", "✓ reset friday succeeded", "✓ restore friday succeeded",
                     "✗ start ghost rejected", "History of friday", "Audit", "chain intact"):
        assert expected in result.stdout
    assert (tmp_path / "root/runtime/friday/upper/left4dead2/cfg/server_zonemod.cfg").exists()
    assert (tmp_path / "root/runtime/friday/upper/left4dead2/addons/workshop_map.vpk").exists()
    assert (tmp_path / "root/installation/steamapps/appmanifest_222860.acf").exists()


@pytest.mark.skipif(L4D2CTL is None, reason="the l4d2ctl console script is not installed beside this Python")
def test_the_demo_in_a_pipe_prints_no_escape_codes(tmp_path):
    result = subprocess.run([sys.executable, str(DEMO), "--root", str(tmp_path / "root")],
                            capture_output=True, text=True, timeout=120)
    assert "\x1b" not in result.stdout
