"""The one parser of a ``size`` string (``WIDTHxHEIGHT``), for the CLI and the runtime, and of
one side as a stage-1 processor reads it."""

from __future__ import annotations


def parse_size(value: object) -> tuple[int, int]:
    """(width, height) from ``WIDTHxHEIGHT``: a lowercase ``x`` between two positive integers
    (``int()`` of each side, the hosts' rule).

    Raises ValueError with a message a client can act on otherwise ("0x0", "-1x5", "abc").
    """
    if not isinstance(value, str):
        raise ValueError(f"size {value!r} is not a string like 1024x768")
    try:
        width_text, height_text = value.split("x")
        width, height = int(width_text), int(height_text)
    except ValueError:
        raise ValueError(
            f"size {value!r} is not WIDTHxHEIGHT: two integers joined by a lowercase 'x', "
            "e.g. 1024x768"
        ) from None
    if width <= 0 or height <= 0:
        raise ValueError(f"size {value!r}: width and height must be positive integers")
    return width, height


def positive_int(value: object) -> int | None:
    """One side as vLLM-Omni's stage-1 processors read it (``int()`` of the value), when it is
    a positive integer; None otherwise (a bool is not a side)."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
