"""The spec: strict, one-line refusals naming the field, and a faithful round trip."""

from __future__ import annotations

import os

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.cli.params import read_spec_file
from commands.domain.errors import InvalidSpec
from commands.domain.spec import MAX_SPEC_BYTES, Spec, dump_spec, load_spec_text
from commands.domain.text_rules import secret_cvar_set_by, unsafe_character

EXAMPLE = """
port: 27015
arguments: ["+map c1m1_hotel", "-maxplayers 8"]
config: ["hostname \\"Friday Versus\\"", "sv_gametypes versus"]
overlays:
  - path: competitive/zonemod
    alias: zonemod
  - path: maps/custom
"""


def refusal(text: str | bytes) -> str:
    with pytest.raises(InvalidSpec) as refused:
        load_spec_text(text)
    message = str(refused.value)
    assert "\n" not in message and "\r" not in message
    return message


def test_the_design_example_loads():
    spec = load_spec_text(EXAMPLE)
    assert spec.port == 27015
    assert spec.config[0] == 'hostname "Friday Versus"'
    assert [(o.path, o.alias) for o in spec.overlays] == [("competitive/zonemod", "zonemod"), ("maps/custom", None)]


def test_only_port_is_required():
    assert load_spec_text("port: 1") == Spec(port=1, arguments=[], config=[], overlays=[])


@pytest.mark.parametrize("text, expected", [
    ("arguments: []", "spec.port: is required"),
    ("port: 0", "spec.port: must be between 1 and 65535"),
    ("port: 65536", "spec.port: must be between 1 and 65535"),
    ("port: -1", "spec.port: must be between 1 and 65535"),
    ("port: '27015'", "spec.port: must be an integer"),
    ("port: 27015.0", "spec.port: must be an integer"),
    ("port: true", "spec.port: must be an integer"),
    ("port: 1\nmaxplayers: 8", "spec.maxplayers: is not a known key"),
    ("port: 1\narguments: +map c1m1", "spec.arguments: must be a list"),
    ("port: 1\narguments: [8]", "spec.arguments[0]: must be a string"),
    ("port: 1\nconfig: [{a: b}]", "spec.config[0]: must be a string"),
    ("port: 1\noverlays: [maps]", "spec.overlays[0]: must be a mapping"),
    ("port: 1\noverlays: [{alias: x}]", "spec.overlays[0].path: is required"),
    ("port: 1\noverlays: [{path: a, extra: 1}]", "spec.overlays[0].extra: is not a known key"),
    ("port: 1\noverlays: [{path: a}, {path: /etc}]", "spec.overlays[1].path: must be relative and stay inside overlays/"),
    ("port: 1\noverlays: [{path: a}, {path: ../x}]", "spec.overlays[1].path: must be relative and stay inside overlays/"),
    ("port: 1\noverlays: [{path: a/../../x}]", "spec.overlays[0].path: must be relative and stay inside overlays/"),
    ("port: 1\noverlays: [{path: 'a:b'}]", "spec.overlays[0].path: must be directory names"),
    ("port: 1\noverlays: [{path: 'a,b'}]", "spec.overlays[0].path: must be directory names"),
    ("port: 1\noverlays: [{path: './a'}]", "spec.overlays[0].path: must be directory names"),
    ("port: 1\noverlays: [{path: 'a/'}]", "spec.overlays[0].path: must be directory names"),
    ("port: 1\noverlays: [{path: ''}]", "spec.overlays[0].path: must be directory names"),
    ("port: 1\noverlays: [{path: a, alias: Zone}]", "spec.overlays[0].alias: must be 1-63 characters"),
    ("port: 1\noverlays: [{path: a, alias: ../x}]", "spec.overlays[0].alias: must be 1-63 characters"),
    ("port: 1\noverlays: [{path: a, alias: z}, {path: b, alias: z}]", "spec.overlays: alias 'z' of overlays[1] is already used by overlays[0]"),
    ("port: 1\noverlays: [{path: a}, {path: a/b}]", "spec.overlays: path of overlays[1] overlaps overlays[0]"),
    ("port: 1\noverlays: [{path: a}, {path: a}]", "spec.overlays: path of overlays[1] overlaps overlays[0]"),
    ("port: 1\narguments: ['+hostname \"x\"']", "spec.arguments[0]: must not contain quotes, backslashes or '$'"),
    ("port: 1\narguments: ['a\\\\b']", "spec.arguments[0]: must not contain quotes"),
    ("port: 1\narguments: ['$HOME']", "spec.arguments[0]: must not contain quotes"),
    ("port: 1\narguments: ['  ']", "spec.arguments[0]: must not be empty"),
    ("", "spec: is empty"),
    ("- 1\n- 2", "spec: must be a mapping"),
    ("port: [1", "spec: invalid YAML at line 1"),
    ("base: &b {port: 1}\nother: *b", "anchors and aliases are not allowed"),
    ("port: !!python/object:os.system x", "spec: invalid YAML"),
    ("1: 2\nport: 1", "spec[1]: keys must be strings"),
])
def test_each_rule_is_refused_naming_the_field(text, expected):
    assert expected in refusal(text)


@pytest.mark.parametrize("field", ["arguments", "config"])
@pytest.mark.parametrize("char", ["\n", "\r", "\x00", "\x1b", "\u2028", "\u0085"])
def test_line_injection_through_any_text_field_is_refused(field, char):
    text = yaml.safe_dump({"port": 1, field: [f"sv_cheats 0{char}sv_cheats 1"]})
    assert f"spec.{field}[0]: must not contain control, line-breaking or bidi characters" in refusal(text)


@pytest.mark.parametrize("field", ["arguments", "config"])
@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200f", "\u061c"])
def test_a_bidi_control_that_would_show_a_line_in_another_order_is_refused(field, char):
    text = yaml.safe_dump({"port": 1, field: [f"hostname {char}1 stehc_vs"]})
    assert f"spec.{field}[0]: must not contain control, line-breaking or bidi characters (found U+" in refusal(text)


@pytest.mark.parametrize("char", ["\n", "\r", "\x00"])
@pytest.mark.parametrize("key", ["path", "alias"])
def test_line_injection_through_overlay_fields_is_refused(key, char):
    overlay = {"path": "maps", key: f"x{char}L4D2_PORT=1"}
    assert f"spec.overlays[0].{key}:" in refusal(yaml.safe_dump({"port": 1, "overlays": [overlay]}))


def test_an_unknown_key_with_a_newline_is_named_on_one_line():
    assert "spec['a\\nb']: is not a known key" in refusal(yaml.safe_dump({"port": 1, "a\nb": 1}))


def test_bytes_that_are_not_utf8_are_refused():
    assert "not UTF-8" in refusal(b"port: 1\nconfig: ['\xff']")


def test_an_oversized_spec_is_refused():
    assert "larger than" in refusal("port: 1\n" + "#" * MAX_SPEC_BYTES)


def test_deep_nesting_is_refused_not_crashed():
    refusal("port: " + "[" * 100_000)


def test_every_problem_is_named_in_the_one_line():
    message = refusal("port: 0\narguments: [1]\nconfig: [2]")
    assert "\n" not in message
    assert all(field in message for field in ("spec.port:", "spec.arguments[0]:", "spec.config[0]:"))


def test_beyond_five_problems_the_rest_are_counted():
    assert "(and 2 more)" in refusal("port: 1\n" + "".join(f"extra{n}: 1\n" for n in range(7)))


@pytest.mark.parametrize("typo, meant", [("overlay", "overlays"), ("argument", "arguments"), ("prot", "port")])
def test_an_unknown_key_names_the_known_one_it_resembles(typo, meant):
    assert f"did you mean {meant!r}?" in refusal(f"port: 1\n{typo}: 1\n")


def test_a_duplicate_key_is_refused_naming_it_and_its_line():
    assert "line 2, column 1: key 'port' appears twice" in refusal("port: 27020\nport: 27021\n")


def test_a_spec_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InvalidSpec, match="not a regular file"):
        read_spec_file(fifo)


def test_load_spec_names_the_file(tmp_path):
    spec_file = tmp_path / "friday.yaml"
    spec_file.write_text("port: 0")
    with pytest.raises(InvalidSpec, match=r"friday\.yaml: spec\.port: must be between"):
        read_spec_file(spec_file)


def test_load_spec_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(InvalidSpec, match="missing.yaml: cannot read spec: No such file"):
        read_spec_file(tmp_path / "missing.yaml")


@settings(max_examples=300)
@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_input_raises_only_the_spec_error(content):
    try:
        load_spec_text(content)
    except InvalidSpec as refused:
        assert "\n" not in str(refused)


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["port", "arguments", "config", "overlays", "alias", "path"]),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                                    max_leaves=8)))
def test_arbitrary_yaml_documents_raise_only_the_spec_error(document):
    try:
        load_spec_text(yaml.safe_dump(document))
    except InvalidSpec as refused:
        assert "\n" not in str(refused)


# Text a spec accepts: no character `unsafe_character` refuses (line breaks, bidi controls, noncharacters).
_SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")).filter(
    lambda char: unsafe_character(char) is None))
_ARGUMENT = _SAFE_TEXT.filter(lambda a: a.strip() and not set(a) & set("\"'\\$"))
_NAME = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True)
_COMPONENT = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True).filter(lambda c: c not in (".", ".."))


@st.composite
def valid_specs(draw) -> Spec:
    paths = draw(st.lists(st.lists(_COMPONENT, min_size=1, max_size=3).map("/".join), max_size=4, unique=True))
    paths = [p for i, p in enumerate(paths) if not any(p.startswith(q + "/") or q.startswith(p + "/") for q in paths[:i])]
    aliases = draw(st.lists(st.none() | _NAME, min_size=len(paths), max_size=len(paths)))
    overlays, used = [], set()
    for path, alias in zip(paths, aliases, strict=True):
        alias = None if alias in used else alias
        used.add(alias)
        overlays.append({"path": path, **({"alias": alias} if alias else {})})
    return Spec.model_validate({
        "port": draw(st.integers(1, 65535)),
        "arguments": draw(st.lists(_ARGUMENT.filter(lambda a: not a.endswith("\ufffe")), max_size=4)),
        "config": draw(st.lists(_SAFE_TEXT.filter(lambda line: secret_cvar_set_by(line) is None), max_size=4)),
        "overlays": overlays,
    })


@settings(max_examples=300)
@given(valid_specs())
def test_every_valid_spec_round_trips(spec):
    loaded = load_spec_text(dump_spec(spec))
    assert loaded == spec
    assert load_spec_text(dump_spec(loaded)) == loaded
