"""``sizing.parse_size``: the one ``size`` parser of the CLI and the runtime."""

from __future__ import annotations

import pytest

from omni_sizefix.runtime import sizing


@pytest.mark.parametrize("text", ["1024x768", "32x2048", " 64x 96"])
def test_valid_sizes_parse_as_int_of_each_side(text: str) -> None:
    width, height = (int(side) for side in text.split("x"))  # the hosts' rule
    assert sizing.parse_size(text) == (width, height)


@pytest.mark.parametrize("text", ["0x0", "-1x5", "abc", "1024X768", "1x2x3", ""])
def test_malformed_sizes_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        sizing.parse_size(text)


def test_default_hooks_use_it() -> None:
    with pytest.raises(Exception, match="0x0"):
        sizing.check_size_format({"size": "0x0"})
