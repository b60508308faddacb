"""On real files, init and start write exactly what the original left4me host code wrote."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from commands.domain.spec import load_spec_text
from host_adapters.local_fs import LocalFilesystem
from host_adapters.simulated import FileState

from .fake_host import SPEC
from .real_host import make_root, run, steps

CFG = "runtime/alpha/upper/left4dead2/cfg"


@pytest.fixture
def root(tmp_path):
    return make_root(tmp_path / "root")


def test_init_writes_instance_env_with_port_args_and_lowerdirs_top_first(root):
    run(root, "alpha", "init")
    assert (root / "instances/alpha/instance.env").read_text() == (
        "L4D2_PORT=27015\n"
        "L4D2_ARGS=+map c1m1_hotel -maxplayers 8\n"
        f"L4D2_LOWERDIRS={root}/overlays/competitive/zonemod:{root}/overlays/maps/custom:{root}/installation\n"
    )


def test_init_writes_server_cfg_as_the_config_lines(root):
    run(root, "alpha", "init")
    assert (root / "instances/alpha/server.cfg").read_text() == 'hostname "Friday Versus"\nsv_gametypes versus\n'


def test_init_writes_an_empty_server_cfg_for_no_config_lines(root):
    run(root, "alpha", "init", {"spec": {"port": 27015}})
    assert (root / "instances/alpha/server.cfg").read_text() == ""
    assert (root / "instances/alpha/instance.env").read_text().endswith(f"L4D2_LOWERDIRS={root}/installation\n")


def test_init_persists_the_spec_as_initialized(root):
    run(root, "alpha", "init")
    assert load_spec_text((root / "instances/alpha/spec.yaml").read_text()).to_document() == SPEC


def test_init_creates_the_runtime_directories(root):
    run(root, "alpha", "init")
    assert sorted(p.name for p in (root / "runtime/alpha").iterdir()) == ["merged", "upper", "work"]


def test_start_stages_server_cfg_and_the_alias_cfg_in_the_upper_layer(root):
    run(root, "alpha", "init")
    run(root, "alpha", "start")
    assert sorted(p.name for p in (root / CFG).iterdir()) == ["server.cfg", "server_zonemod.cfg"]
    assert (root / CFG / "server.cfg").read_text() == 'hostname "Friday Versus"\nsv_gametypes versus\n'
    assert (root / CFG / "server_zonemod.cfg").read_text() == "sv_zonemod 1\n"


def test_an_alias_whose_overlay_has_no_cfg_stages_nothing_and_says_so(root):
    spec = SPEC | {"overlays": [{"path": "maps/custom", "alias": "custom"}]}
    run(root, "alpha", "init", {"spec": spec})
    started = run(root, "alpha", "start")
    assert sorted(p.name for p in (root / CFG).iterdir()) == ["server.cfg"]
    assert "no overlays/maps/custom/left4dead2/cfg/server.cfg; nothing staged for alias custom" in \
        steps(root, started)[3]["output"]


def test_start_removes_stale_server_cfgs_but_keeps_other_cfgs(root):
    run(root, "alpha", "init")
    (root / CFG).mkdir(parents=True)
    for stale in ("server.cfg", "server_old.cfg", "server_zonemod.cfg"):
        (root / CFG / stale).write_text("stale")
    (root / CFG / "autoexec.cfg").write_text("keep")
    run(root, "alpha", "start")
    assert sorted(p.name for p in (root / CFG).iterdir()) == ["autoexec.cfg", "server.cfg", "server_zonemod.cfg"]
    assert "stale" not in (root / CFG / "server.cfg").read_text()
    assert (root / CFG / "autoexec.cfg").read_text() == "keep"


def test_files_are_replaced_atomically_leaving_no_temporaries(root):
    run(root, "alpha", "init")
    run(root, "alpha", "init")
    assert sorted(p.name for p in (root / "instances/alpha").iterdir()) == ["instance.env", "server.cfg", "spec.yaml"]


def test_writing_a_file_again_removes_the_temporaries_a_killed_write_of_it_left(root):
    run(root, "alpha", "init")
    instance = root / "instances/alpha"
    (instance / ".server.cfg.0badcafe.tmp").write_text("half a cfg")
    (instance / ".server.cfg.notours.tmp").write_text("someone else's")
    (instance / ".spec.yaml.0badcafe.tmp").write_text("half a spec")
    LocalFilesystem(root).write_bytes("instances/alpha/server.cfg", b"sv_cheats 0\n")
    assert sorted(p.name for p in instance.iterdir()) == [
        ".server.cfg.notours.tmp", ".spec.yaml.0badcafe.tmp", "instance.env", "server.cfg", "spec.yaml"]


def test_saving_simulated_state_removes_temporaries_of_dead_processes_only(tmp_path):
    dead = multiprocessing.get_context("spawn").Process(target=int)
    dead.start()
    dead.join()
    state = FileState(tmp_path / "host.json")
    (tmp_path / f"host.json.{dead.pid}.tmp").write_text("{half")
    (tmp_path / f"host.json.{os.getppid()}.tmp").write_text("{in progress")
    state["units"] = {}
    state.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host.json", f"host.json.{os.getppid()}.tmp"]


def test_delete_removes_the_instance_and_runtime_directories(root):
    run(root, "alpha", "init")
    run(root, "alpha", "start")
    run(root, "alpha", "delete")
    assert not (root / "instances/alpha").exists() and not (root / "runtime/alpha").exists()
    assert (root / "installation").is_dir() and (root / "overlays/maps/custom").is_dir()
