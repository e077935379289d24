"""In a process that has loaded Dynamo, a rejected size is also Dynamo's ``InvalidArgument``.

ai-dynamo 1.6 answers ``InvalidArgument`` with HTTP 400 and the message (a plain
``ValueError`` with 400 "Invalid request"). Real ``dynamo.llm`` of this cell; the check runs
in a fresh interpreter so that nothing else in the session has loaded Dynamo before.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from size_messages import rejection_problems

PROBE = """
import json, sys
from omni_sizefix.runtime import sizing
before = type(sizing.SizeRejected("x")) is sizing.SizeRejected
loaded_by_plugin = "dynamo._core" in sys.modules
import dynamo.llm
from dynamo.llm.exceptions import InvalidArgument
try:
    sizing.apply(700, 1000)
except ValueError as exc:
    caught = exc
print(json.dumps({
    "plain_before_dynamo": before,
    "omni_sizefix_loaded_dynamo": loaded_by_plugin,
    "invalid_argument": isinstance(caught, InvalidArgument),
    "size_rejected": isinstance(caught, sizing.SizeRejected),
    "message": str(caught),
}))
"""


def test_rejection_is_dynamos_invalid_argument() -> None:
    try:
        from dynamo.llm.exceptions import InvalidArgument  # noqa: F401
    except ImportError:
        pytest.skip("this ai-dynamo has no dynamo.llm.exceptions.InvalidArgument")
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["plain_before_dynamo"] and not seen["omni_sizefix_loaded_dynamo"]
    assert seen["invalid_argument"] and seen["size_rejected"]
    assert not rejection_problems(seen["message"], 700, 1000), seen["message"]
