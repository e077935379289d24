"""Patch: each request reaches the stage engine under its own request id (ai-dynamo 1.1).

Target
    ``self.engine.generate(prompt, request_id, sampling_params_list=sp)`` in
    ``dynamo.vllm.omni.stage_worker.OmniStageWorker.generate`` (ai-dynamo 1.1.1), bound per
    worker instance by the ``OmniStageWorker.__init__`` wrapper of ``dynamo_stage_budget``.
Why
    vLLM-Omni's ``AsyncOmni.generate(prompt, sampling_params=None, request_id="", ...)`` takes
    the second positional argument as ``sampling_params``: every request reaches the engine
    with the id ``""``. One request at a time works; a second one in flight kills the AR
    engine core (vLLM's scheduler: ``AssertionError: duplicate request id``), and every
    request after it hangs or fails. Measured with vLLM-Omni's real engines on CPU
    (``tests/real``): four concurrent image requests to an ai-dynamo 1.1.1 topology.
How
    Only where both sides are as above (the host's call passes ``request_id`` second and
    positionally, read from its source; the engine's ``generate`` names its second parameter
    ``sampling_params`` and has a ``request_id`` parameter), the worker's engine gets an
    instance-level ``generate`` that moves a string second argument to ``request_id=``. The
    engine object, its class and every other call are left as they are.
Upstream
    ai-dynamo 1.2 passes ``request_id=request_id`` (``stage_worker.py``).
Removal
    When the supported range no longer admits ai-dynamo 1.1.
"""

from __future__ import annotations

import ast
import functools
import inspect
import logging
import textwrap
from typing import Any

logger = logging.getLogger("omni_sizefix")

TARGET = "OmniStageWorker.generate -> engine.generate(prompt, request_id, ...)"


@functools.lru_cache(maxsize=8)
def host_passes_id_positionally(worker_class: type) -> bool:
    """True when the worker's ``generate`` calls ``self.engine.generate(x, request_id, ...)``."""
    try:
        source = textwrap.dedent(inspect.getsource(worker_class.generate))
    except (AttributeError, OSError, TypeError):
        return False
    for node in ast.walk(ast.parse(source)):
        func = getattr(node, "func", None) if isinstance(node, ast.Call) else None
        if not (isinstance(func, ast.Attribute) and func.attr == "generate"):
            continue
        owner = func.value
        if not (isinstance(owner, ast.Attribute) and owner.attr == "engine"):
            continue
        args = node.args  # type: ignore[attr-defined]
        if len(args) >= 2 and isinstance(args[1], ast.Name) and args[1].id == "request_id":
            return True
    return False


def engine_takes_sampling_params_second(generate: Any) -> bool:
    """True when ``generate(prompt, sampling_params, ..., request_id=...)`` is the signature."""
    try:
        names = list(inspect.signature(generate).parameters)
    except (TypeError, ValueError):
        return False
    return len(names) >= 2 and names[1] == "sampling_params" and "request_id" in names


def wrap(generate: Any) -> Any:
    """``generate`` with a string second positional argument passed as ``request_id=``."""

    @functools.wraps(generate)
    def fixed(prompt: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and isinstance(args[0], str) and "request_id" not in kwargs:
            return generate(prompt, request_id=args[0], **kwargs)
        return generate(prompt, *args, **kwargs)

    fixed.__omni_sizefix_request_id__ = True  # type: ignore[attr-defined]
    return fixed


def bind(worker: Any, stage_id: Any = None) -> bool:
    """Fix the worker's engine call where the host needs it; True when fixed (logged once)."""
    engine = getattr(worker, "engine", None)
    generate = getattr(engine, "generate", None)
    if generate is None or getattr(generate, "__omni_sizefix_request_id__", False):
        return False
    if not host_passes_id_positionally(type(worker)):
        return False
    if not engine_takes_sampling_params_second(generate):
        return False
    engine.generate = wrap(generate)
    _announce(stage_id)
    return True


@functools.lru_cache(maxsize=1)
def _announce(stage_id: Any) -> None:
    logger.info(
        "omni-sizefix: patched %s: the stage engine gets each request's own id "
        "(the host passes it where the engine expects sampling params)",
        TARGET,
    )
