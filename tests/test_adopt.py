"""`adopt NAME`: an instance already on disk (made by the original left4me tool) comes under the ledger as it is."""

from __future__ import annotations

import json

import pytest
import yaml

from commands.domain.spec import parse_spec
from commands.domain.steps import instance_env
from host_adapters.factory import build_host

from .fake_host import SPEC, FakeHost
from .real_host import invoke, make_root

ADOPTED = {"spec": SPEC, "running": False}


@pytest.fixture
def host(ledger):
    return FakeHost(ledger)


def test_a_tree_written_by_the_original_tool_is_adopted_as_initialized_touching_nothing(host):
    host.on_disk("alpha")
    before = host.fs.snapshot()
    adopted = host.run("alpha", "adopt", ADOPTED)
    assert adopted.outcome == "succeeded", adopted.error
    instance = host.executor.projections.instance("alpha")
    assert (instance.state, instance.blueprint, instance.port) == ("initialized", SPEC, SPEC["port"])
    assert host.fs.snapshot() == before


def test_an_adopted_instance_starts_stops_and_is_deleted_like_any_other(host):
    host.on_disk("alpha")
    host.run("alpha", "adopt", ADOPTED)
    for command, state in (("start", "running"), ("stop", "stopped"), ("delete", "deleted")):
        assert host.run("alpha", command).outcome == "succeeded", command
        assert host.executor.projections.instance("alpha").state == state
    assert not host.fs.exists("instances/alpha")


def test_an_instance_whose_unit_runs_is_adopted_as_running(host):
    host.on_disk("alpha")
    host.services.start_outside("alpha")
    assert host.run("alpha", "adopt", {"spec": SPEC, "running": True}).outcome == "succeeded"
    assert host.executor.projections.instance("alpha").state == "running"


@pytest.mark.parametrize(("file", "content", "why"), [
    ("instance.env", "L4D2_PORT=1\n", "instances/alpha/instance.env: L4D2_ARGS, L4D2_LOWERDIRS, L4D2_PORT not as "
                                       "the spec makes them (L4D2_ARGS=+map c1m1_hotel -maxplayers 8; "),
    ("server.cfg", "sv_cheats 1", "instances/alpha/server.cfg does not hold the spec's config lines"),
    ("spec.yaml", "port: 27099\n", "instances/alpha/spec.yaml changed since adopt was requested"),
])
def test_files_that_disagree_with_the_spec_are_refused_naming_them(host, file, content, why):
    host.on_disk("alpha")
    host.fs.write_bytes(f"instances/alpha/{file}", content.encode())
    adopted = host.run("alpha", "adopt", ADOPTED)
    assert adopted.outcome == "failed"
    assert why in adopted.error
    assert host.executor.projections.instance("alpha").state is None


def test_every_problem_of_the_tree_is_named_at_once(host):
    host.on_disk("alpha")
    host.fs.remove_file("instances/alpha/instance.env")
    host.fs.remove_file("instances/alpha/server.cfg")
    host.fs.remove_tree("runtime/alpha")
    error = host.run("alpha", "adopt", ADOPTED).error
    for problem in ("instances/alpha/instance.env cannot be read", "instances/alpha/server.cfg cannot be read",
                    "runtime/alpha/ lacks upper, work, merged"):
        assert problem in error


def test_a_tree_without_its_runtime_directories_is_refused(host):
    host.on_disk("alpha")
    host.fs.remove_tree("runtime/alpha/work")
    adopted = host.run("alpha", "adopt", ADOPTED)
    assert adopted.outcome == "failed" and "runtime/alpha/ lacks work" in adopted.error


def test_a_unit_that_changed_since_the_request_fails_the_adopt(host):
    host.on_disk("alpha")
    adopted = host.run("alpha", "adopt", {"spec": SPEC, "running": True})
    assert adopted.outcome == "failed" and "was active when adopt was requested" in adopted.error


def test_a_recorded_instance_is_not_adopted(host):
    host.init("alpha")
    adopted = host.run("alpha", "adopt", ADOPTED)
    assert adopted.outcome == "rejected" and "already recorded (initialized)" in adopted.error


def test_an_instance_whose_port_another_uses_is_not_adopted(host):
    host.init("bravo")
    host.on_disk("alpha")
    adopted = host.run("alpha", "adopt", ADOPTED)
    assert adopted.outcome == "rejected" and "port 27015 is already used by instance 'bravo'" in adopted.error


def _seed_tree(root, name: str, spec: dict) -> None:
    """instances/NAME and runtime/NAME as the seed's initialize_instance writes them."""
    instance = root / "instances" / name
    instance.mkdir(parents=True)
    (instance / "spec.yaml").write_text(yaml.safe_dump(spec))
    host = build_host("simulated", root)
    (instance / "instance.env").write_text(instance_env(host, parse_spec(spec)))
    (instance / "server.cfg").write_text("\n".join(spec.get("config", [])))
    for part in ("upper", "work", "merged"):
        (root / "runtime" / name / part).mkdir(parents=True)


def test_adopt_through_the_cli_then_the_whole_lifecycle(tmp_path):
    root = make_root(tmp_path / "root")
    _seed_tree(root, "legacy", SPEC)
    adopted = invoke(root, "adopt", "legacy", "--json")
    assert adopted.exit_code == 0, adopted.stderr
    assert json.loads(adopted.stdout)["command"] == "adopt"
    for command in ("start", "stop", "delete"):
        assert invoke(root, command, "legacy").exit_code == 0, command
    assert not (root / "instances" / "legacy").exists()


def test_adopt_without_a_spec_on_disk_or_with_a_bad_one_records_nothing(tmp_path):
    root = make_root(tmp_path / "root")
    missing = invoke(root, "adopt", "ghost")
    assert missing.exit_code == 2 and "nothing to adopt" in missing.stderr
    (root / "instances" / "broken").mkdir(parents=True)
    (root / "instances" / "broken" / "spec.yaml").write_text("port: 99999\n")
    broken = invoke(root, "adopt", "broken")
    assert broken.exit_code == 2 and "instances/broken/spec.yaml: spec.port" in broken.stderr
    assert not (root / "ledger.db").exists()
