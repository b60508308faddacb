"""Instance names are short, lower-case, and never a path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.domain.errors import InvalidName
from commands.domain.names import validate_name


@pytest.mark.parametrize("name", [
    "../x", "a/b", "Alpha", "", "x" * 200, "x\ny", "-rf", ".", "..", "_x", "a b", "a.b", "x" * 64, "ä", "a\x00",
])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidName):
        validate_name(name)


@pytest.mark.parametrize("name", ["a", "friday-versus", "srv_01", "0", "x" * 63])
def test_good_names_are_accepted(name):
    assert validate_name(name) == name


def test_the_refusal_quotes_the_name_on_one_line():
    with pytest.raises(InvalidName) as refused:
        validate_name("x\ny")
    assert "\n" not in str(refused.value)
    assert "'x\\ny'" in str(refused.value)


@given(st.text())
def test_any_text_is_either_a_valid_name_or_refused_in_one_line(text):
    try:
        assert validate_name(text) == text
    except InvalidName as refused:
        assert "\n" not in str(refused) and "\r" not in str(refused)
