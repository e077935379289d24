"""What this cell is expected to hold, so that a missing or broken host fails instead of skipping.

The harness exports ``OMNI_SIZEFIX_CELL`` (the cell's name: ``dynamo-*`` and ``latest`` pin
ai-dynamo, ``omni-*`` pin vLLM-Omni alone, ``no-host`` none). A host that is installed (its
distribution metadata is present) or that the cell's name promises must import; a release
pair without an expectation row fails with "no expectation for pair ..." rather than skip.
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import NoReturn

import pytest

CELL_VAR = "OMNI_SIZEFIX_CELL"


def cell() -> str:
    """The harness's cell name ('' outside the harness)."""
    return os.environ.get(CELL_VAR, "")


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def expected_hosts() -> dict[str, str]:
    """{import name: why it must import here} for the hosts this cell holds or promises."""
    name = cell()
    found: dict[str, str] = {}
    dynamo = _installed("ai-dynamo")
    if dynamo:
        found["dynamo"] = f"ai-dynamo {dynamo} is installed"
    elif name.startswith("dynamo-") or name == "latest":
        found["dynamo"] = f"cell {name} pins ai-dynamo, which is not installed"
    omni = _installed("vllm-omni")
    if omni:
        found["vllm_omni"] = f"vllm-omni {omni} is installed"
    elif name.startswith(("dynamo-", "omni-")) or name == "latest":
        found["vllm_omni"] = f"cell {name} pins vllm-omni, which is not installed"
    return found


def host_missing(host: str, exc: BaseException) -> NoReturn:
    """Fail when ``host`` is expected in this cell, else skip (a cell without that host)."""
    why = expected_hosts().get(host)
    if why:
        pytest.fail(f"{why} but does not import: {type(exc).__name__}: {exc}", pytrace=False)
    pytest.skip(f"no {host} in this cell: {exc}")


def no_expectation(pair: tuple[str | None, str | None], table: str) -> NoReturn:
    """A release pair the suite has no row for: fail, never skip (the canary's job)."""
    pytest.fail(
        f"no expectation for pair ai-dynamo {pair[0]} + vLLM-Omni {pair[1]} ({table}): "
        "write the row from the releases' code",
        pytrace=False,
    )
