"""The patches of host code, one module per target, and when each numbered fix can go.

``parse`` (Dynamo's request parsing), ``stage_worker`` (Dynamo's stage worker), ``offline``
(vLLM-Omni's ``Omni.generate``) and ``stage1`` (the stage-1 processors) number their fixes in
their docstrings. ``REMOVALS`` says, per fix (``module#N``), which releases need it;
``tests/unit/test_removal_tripwires.py`` fails, naming what to delete, once the supported range
(``settings.SUPPORTED_HOSTS``) admits none of them. Below: what every patch shares.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("omni_sizefix")


@dataclass(frozen=True)
class Removal:
    """When fix ``patch`` (``module#N``) can go: it is needed while the supported range admits
    one of the ``needed_by`` sets (distribution -> PEP 440 specifier, all together); ``upstream``
    says what upstream did (or has not done yet) that makes it unnecessary."""

    patch: str
    needed_by: tuple[Mapping[str, str], ...]
    upstream: str

    def describe(self) -> str:
        """``ai-dynamo<1.4, or ai-dynamo<1.6 with vllm-omni<0.29``."""
        return ", or ".join(
            " with ".join(f"{dist}{spec}" for dist, spec in releases.items())
            for releases in self.needed_by
        )


_ALWAYS = ({"ai-dynamo": "<1.8"},)
REMOVALS: tuple[Removal, ...] = (
    Removal("parse#1", ({"ai-dynamo": "<1.2"}, {"vllm-omni": "<0.20.0rc1"}),
            "ai-dynamo 1.2 writes mm_processor_kwargs (dynamo#8679), read by vLLM-Omni 0.20.0rc1"),
    Removal("parse#2", _ALWAYS,
            "none yet (dynamo#8679): up to 1.7 a malformed size is 1024x1024, non-multiples of 32 "
            "render inexactly"),
    Removal("parse#3", _ALWAYS, "none yet: the new parameters are on ai-dynamo's main branch"),
    Removal("stage_worker#1", _ALWAYS,
            "none yet: no release names the worker's model or fits stage-0 max_tokens per request"),
    Removal("stage_worker#2", ({"ai-dynamo": "<1.2"},),
            "ai-dynamo 1.2 calls engine.generate(prompt, request_id=request_id, ...)"),
    Removal("stage_worker#3", ({"ai-dynamo": "<1.4"}, {"vllm-omni": "<=0.20.0rc1"},
                               {"ai-dynamo": "<1.6", "vllm-omni": "<0.29"}),
            "ai-dynamo 1.4 dispatches `prompt` (1.4/1.5 not MammothModa2 <= 0.28's `prompts`), 1.2 "
            "restores cumulative_token_ids; vLLM-Omni 0.20.0rc1 reads mm_processor_kwargs"),
    Removal("offline#1", ({"vllm-omni": "<0.33"},),
            "none yet: vllm-project/vllm-omni#7952 is open (#3189 fixed the serving path only)"),
    Removal("stage1#1", ({"ai-dynamo": "<1.4"},),
            "ai-dynamo 1.4.0 accepts `prompt` (_accepts_source_outputs_processor)"),
    Removal("stage1#2", ({"ai-dynamo": "<1.2"}, {"vllm-omni": "<=0.20.0rc1"}),
            "ai-dynamo 1.2 and vLLM-Omni 0.20.0 call (source_outputs, original_prompt, ...)"),
    Removal("stage1#3", ({"vllm-omni": "<0.20.0rc1"},),
            "vLLM-Omni 0.20.0rc1 reads mm_processor_kwargs (vllm-project/vllm-omni#3034)"),
    Removal("stage1#4", ({"vllm-omni": "<0.20.0rc1"},),
            "vLLM-Omni 0.20.0rc1 slices the prior at the scaffold's preview grid"),
    Removal("stage1#5", ({"ai-dynamo": "<1.2"},), "ai-dynamo 1.2 restores cumulative_token_ids"),
    Removal("stage1#6", ({"ai-dynamo": "<1.2", "vllm-omni": ">=0.24"},),
            "ai-dynamo 1.2 calls with source outputs and unwraps upstream's own return value"),
    Removal("stage1#7", ({"ai-dynamo": "<1.4"}, {"ai-dynamo": "<1.6", "vllm-omni": "<0.29"}),
            "ai-dynamo 1.4 dispatches `prompt`, restores cumulative_token_ids (1.4/1.5 not "
            "MammothModa2 <= 0.28's `prompts`)"),
    Removal("stage1#8", _ALWAYS,
            "none yet: up to 1.7 nothing dispatches (source_outputs, ctx) (vllm-omni#4872, #6801)"),
)  # fmt: skip


# --- what every patch shares ----------------------------------------------------------------

#: Attribute set on every wrapper; its value is the host function it wraps.
SENTINEL = "__omni_sizefix_original__"
_warned: set[str] = set()


def marked(wrapper: Callable, original: Callable) -> Callable:
    """``wrapper``, marked (``SENTINEL``) as the wrapper of ``original``."""
    setattr(wrapper, SENTINEL, original)
    return wrapper


def signature_text(parameters: Iterable[str], is_async: bool) -> str:
    """``async (a, b)`` / ``sync (a, b)``: a signature as messages write it."""
    return f"{'async' if is_async else 'sync'} ({', '.join(parameters)})"


def describe(function: Any) -> str:
    """``function``'s signature as messages write it, or what the attribute really is."""
    if function is None:
        return "nothing (attribute missing)"
    if not callable(function):
        return f"a non-callable {type(function).__name__}"
    try:
        names = tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return f"a callable without a signature ({type(function).__name__})"
    return signature_text(names, inspect.iscoroutinefunction(function))


def warn_once(key: str, message: str, *args: Any) -> None:
    """Log one WARNING per ``key`` and process; later occurrences go to DEBUG."""
    log = logger.debug if key in _warned else logger.warning
    _warned.add(key)
    log(message, *args)


def warn_failed(key: str, exc: Exception, failed: str, instead: str = "") -> None:
    """A wrapper's never-crash fallback, once per ``key``:
    ``omni-sizefix: <failed> (<Type>: <exc>); <instead>``."""
    suffix = f"; {instead}" if instead else ""
    warn_once(key, "omni-sizefix: %s (%s: %s)%s", failed, type(exc).__name__, exc, suffix)


class Replacement:
    """One attribute ``name`` of a host module or class, replaced by a wrapper: idempotent,
    the target checked first, and ``remove`` puts back the very object it replaced."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        self.where = where  # as messages name it
        self.original: Callable | None = None  # the host's own object while replaced
        self._lock = threading.RLock()

    def apply(
        self, owner: Any, wrap: Callable[[Callable], Callable], problem: Callable[[], str | None]
    ) -> bool:
        """Replace ``owner``'s attribute by ``wrap(original)``; True when newly replaced. Raises
        LookupError (nothing replaced) when another wrapper is there or ``problem()`` names one."""
        with self._lock:
            current = vars(owner).get(self.name) if owner is not None else None
            if self.original is not None and getattr(current, SENTINEL, None) is self.original:
                return False
            if hasattr(current, SENTINEL):
                raise LookupError(f"{self.where} is already wrapped elsewhere")
            if found := problem():
                raise LookupError(found)
            self.original = current
            setattr(owner, self.name, wrap(current))
            return True

    def remove(self, owner: Any) -> bool:
        """Put the host's own object back on ``owner``; True when something was replaced."""
        with self._lock:
            if self.original is None:
                return False
            current = vars(owner).get(self.name) if owner is not None else None
            if getattr(current, SENTINEL, None) is self.original:
                setattr(owner, self.name, self.original)
            self.original = None
            return True


def adopt_vllm_format() -> bool:
    """Route the ``omni_sizefix`` logger through vLLM's handlers when vLLM's logging is set up
    and the logger has none of its own (vLLM is never imported here); True when adopted."""
    if logger.handlers or "vllm.logger" not in sys.modules:
        return False
    vllm_logger = logging.getLogger("vllm")
    if not vllm_logger.handlers:
        return False
    for handler in vllm_logger.handlers:
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(vllm_logger.getEffectiveLevel())
    logger.propagate = False
    return True
