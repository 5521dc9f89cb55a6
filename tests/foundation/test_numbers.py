"""Whole numbers from outside text: ASCII digits only, bounded."""

from __future__ import annotations

import pytest

from newsletter.numbers import ascii_int


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("42", 42), ("007", 7)])
def test_ascii_digits_are_read(text: str, value: int) -> None:
    assert ascii_int(text) == value


@pytest.mark.parametrize("text", ["", "-1", "+1", " 1", "1.0", "²", "1³", "٣", "１", "9" * 19])
def test_anything_else_is_none(text: str) -> None:
    assert ascii_int(text) is None
