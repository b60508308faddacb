"""Hostile input through the CLI: never a traceback, always a documented exit code and at most one line."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from . import real_host
from .fake_host import SPEC
from .real_host import invoke, make_root

DOCUMENTED = {0, 1, 2, 3, 4, 5}
HOSTILE_TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["../x", "..", ".", "/etc/passwd", "a/../../b", "-rf", "--help", "x\ny", "x\x00y", "ä",
                     "0" * 12, "ffffffffffff", "$(reboot)", "`id`", "a;b", "%s%s%n", "\u2028", "\ud800"]),
)
hostile_settings = settings(max_examples=60, deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One root for every hostile example (module-wide: hypothesis runs many examples per test)."""
    return make_root(tmp_path_factory.mktemp("hostile") / "root")


def run(root, *args: str, env: dict | None = None):
    result = invoke(root, *args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in DOCUMENTED
    if result.exit_code not in (0, 1, 3, 5):
        assert result.stderr.count("\n") <= 1 and "Traceback" not in result.stderr, result.stderr
    return result


@hostile_settings
@given(verb=st.sampled_from(["init", "start", "stop", "delete", "reset", "status", "history"]), name=HOSTILE_TEXT)
def test_any_instance_name(root, tmp_path_factory, verb, name):
    spec = tmp_path_factory.mktemp("spec") / "s.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    extra = ["--spec", str(spec)] if verb == "init" else []
    result = run(root, verb, *extra, "--", name)
    if result.exit_code == 0 and verb in ("init", "start"):
        assert (root / "instances" / name).is_dir() and "/" not in name and ".." not in name


@hostile_settings
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_spec_file(root, tmp_path_factory, content):
    spec = tmp_path_factory.mktemp("spec") / "s.yaml"
    spec.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    result = run(root, "init", "hostile", "--spec", str(spec))
    assert result.exit_code in (0, 2, 3)


@hostile_settings
@given(verb=st.sampled_from(["retry", "replay", "cancel", "show"]), command_id=HOSTILE_TEXT)
def test_any_command_id(root, verb, command_id):
    assert run(root, verb, "--", command_id).exit_code in (2, 3)


@hostile_settings
@given(option=st.sampled_from(["--since", "--until"]), value=HOSTILE_TEXT)
def test_any_time_filter(root, option, value):
    assert run(root, "audit", option, value, "--json").exit_code in (0, 2)


@hostile_settings
@given(option=st.sampled_from(["--since", "--until"]),
       moment=st.datetimes(timezones=st.builds(timezone, st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                                                                        max_value=timedelta(hours=23, minutes=59)))))
@example(option="--since", moment=datetime.min.replace(tzinfo=timezone(timedelta(hours=1))))
@example(option="--until", moment=datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))))
def test_any_time_at_any_offset_down_to_the_ends_of_the_calendar(root, option, moment):
    assert run(root, "audit", option, moment.isoformat(), "--json").exit_code in (0, 2)


@hostile_settings
@given(seconds=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), HOSTILE_TEXT))
@example(seconds="nan")
def test_any_lock_timeout(root, tmp_path_factory, seconds):
    spec = tmp_path_factory.mktemp("spec") / "s.yaml"
    spec.write_text(yaml.safe_dump(SPEC | {"port": 27100}))
    assert run(root, "--lock-timeout", seconds, "init", "timeout", "--spec", str(spec)).exit_code in (0, 2)


@hostile_settings
@given(actor=HOSTILE_TEXT, how=st.sampled_from(["option", "env", "sudo", "filter"]))
def test_any_actor(root, actor, how):
    if "\x00" in actor:
        actor = actor.replace("\x00", "")  # the OS itself cannot carry NUL in argv or the environment
    if how in ("env", "sudo"):
        try:  # an environment holds bytes; Python shows undecodable ones as surrogate escapes
            actor.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            assume(False)
    if how == "option":
        result = run(root, "--actor", actor, "start", "ghost")
    elif how == "filter":
        result = run(root, "audit", "--actor", actor, "--json")
    else:
        variable = "L4D2CTL_ACTOR" if how == "env" else "SUDO_USER"
        result = run(root, "start", "ghost", env={variable: actor})
    assert result.exit_code in (0, 2, 3)


@pytest.mark.parametrize("field, value", [
    ("arguments", ["+map c1\nL4D2_PORT=1"]),
    ("arguments", ["x\rL4D2_LOWERDIRS=/etc"]),
    ("arguments", ["\"quoted\""]),
    ("config", ["sv_cheats 0\nrcon_password x"]),
    ("config", ["ok\u2028sv_cheats 1"]),
    ("overlays", [{"path": "../../etc"}]),
    ("overlays", [{"path": "/etc"}]),
    ("overlays", [{"path": "maps:/etc"}]),
    ("overlays", [{"path": "maps,upperdir=/etc"}]),
    ("overlays", [{"path": "maps", "alias": "../../cfg"}]),
    ("overlays", [{"path": "maps", "alias": "x\nL4D2_PORT=1"}]),
])
def test_traversal_and_injection_through_every_spec_field_is_refused(root, tmp_path, field, value):
    spec = tmp_path / "evil.yaml"
    spec.write_text(yaml.safe_dump(SPEC | {field: value}))
    result = run(root, "init", "evil", "--spec", str(spec))
    assert result.exit_code == 2
    assert f"spec.{field}" in result.stderr
    assert not (root / "instances/evil").exists()


def test_a_file_name_that_is_not_utf8_is_recorded_readably_and_the_command_goes_on(tmp_path):
    root = make_root(tmp_path / "root")
    assert real_host.run(root, "alpha", "init").outcome == "succeeded"
    staged = root / "instances" / "alpha" / "cfg"
    staged.mkdir()
    (staged / os.fsdecode(b"junk\xfd.cfg")).write_text("left by someone")
    started = real_host.run(root, "alpha", "start")
    assert started.outcome == "succeeded", started.error
    lines = [line for step in real_host.steps(root, started) for line in step["output"]]
    assert "removed stale instances/alpha/cfg/junk\ufffd.cfg" in lines


@pytest.mark.parametrize("under", ["instances/alpha", "runtime/alpha", "secrets"])
def test_a_ledger_inside_a_directory_l4d2ctl_deletes_is_refused(tmp_path, under):
    root = make_root(tmp_path / "root")
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    result = invoke(root, "--db", str(root / under / "ledger.db"), "init", "alpha", "--spec", str(spec))
    assert result.exit_code == 2 and f"lies under {under.split('/')[0]}/" in result.stderr
    assert not (root / under / "ledger.db").exists()


def test_a_root_whose_resolved_path_holds_a_separator_is_refused(tmp_path):
    real = make_root(tmp_path / "a:b")
    (tmp_path / "plain").symlink_to(real)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    result = invoke(tmp_path / "plain", "init", "alpha", "--spec", str(spec))
    assert result.exit_code == 2 and "must not contain ':'" in result.stderr
    assert not (real / "instances").exists()


# What can sit where l4d2ctl expects one of its own files beside the ledger.
PLANTED = ["symlink", "fifo", "directory", "empty", "world-writable", "junk"]
BESIDE_THE_LEDGER = ["ledger.db", "ledger.db.executor.lock", "ledger.db-wal"]


def _plant(path, kind: str, elsewhere) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        path.rmdir()
    match kind:
        case "symlink":
            path.symlink_to(elsewhere)
        case "fifo":
            os.mkfifo(path)
        case "directory":
            path.mkdir()
        case "empty":
            path.touch()
        case "world-writable":
            path.write_bytes(b"x" * 100)
            path.chmod(0o666)
        case "junk":
            path.write_bytes(b"not a ledger" * 500)
        case _:
            raise ValueError(kind)


@hostile_settings
@given(where=st.sampled_from(BESIDE_THE_LEDGER), kind=st.sampled_from(PLANTED),
       verb=st.sampled_from([("status",), ("verify", "--json"), ("start", "alpha"), ("start", "alpha", "--no-wait"),
                             ("executor", "--once"), ("audit",)]))
def test_whatever_is_planted_beside_the_ledger_gets_a_documented_exit_and_one_line(tmp_path_factory, where, kind,
                                                                                  verb):
    base = tmp_path_factory.mktemp("planted")
    root = make_root(base / "root")
    spec = base / "s.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    assert run(root, "init", "alpha", "--spec", str(spec)).exit_code == 0
    elsewhere = base / "elsewhere"
    elsewhere.write_bytes(b"")
    _plant(root / where, kind, elsewhere)
    result = run(root, *verb)
    assert result.exit_code in (0, 1, 2, 3, 4)
    assert elsewhere.read_bytes() == b"", "nothing was written through a planted symlink"
