"""The patches of host code, one module per target, and when each numbered fix can go.

* ``parse``: ``dynamo.vllm.omni.utils.parse_omni_request`` and ``build_original_prompt``
  (writing the size, size checks, new upstream parameters).
* ``stage_worker``: ``dynamo.vllm.omni.stage_worker.OmniStageWorker.__init__`` and
  ``_load_processor`` (the worker's model and budget, the engine's request id, which stage-1
  processor runs).
* ``offline``: ``vllm_omni.entrypoints.omni.Omni.generate``, vLLM-Omni's offline entry (the
  size GLM-Image's stage 0 needs).
* ``stage1``: the stage-1 processors themselves (calling conventions, where the size is read,
  GLM-Image's prior, the token field, other models' and ``(source_outputs, ctx)`` processors).

Each module's docstring numbers its fixes; ``REMOVALS`` says, per fix (``module#N``), which
releases need it. ``tests/unit/test_removal_tripwires.py`` fails, naming what to delete, once
the declared supported range (``settings.SUPPORTED_HOSTS``) admits none of them. Below the
index: what every patch shares (the wrapper sentinel, signature text, one WARNING per failure,
replacing one attribute).
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
    """When one numbered fix of a patch module (``module#N``) can be deleted."""

    patch: str
    #: The releases that need it: each mapping is one set (distribution -> PEP 440 specifier,
    #: all together); the fix is needed while the supported range admits any one set.
    needed_by: tuple[Mapping[str, str], ...]
    #: What upstream did (or has not done yet) that makes it unnecessary.
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
            "ai-dynamo 1.2 writes the stage-0 kwargs and the size as mm_processor_kwargs, "
            "which vLLM-Omni 0.20.0rc1 reads (ai-dynamo/dynamo#8679); checked per cell by "
            "tests/host/test_removals_match_host.py"),
    Removal("parse#2", _ALWAYS,
            "none yet: every release up to 1.7 turns a malformed size into 1024x1024 and "
            "renders sizes that are not multiples of 32 inexactly (ai-dynamo/dynamo#8679)"),
    Removal("parse#3", _ALWAYS,
            "none yet: the new parse_omni_request parameters are on ai-dynamo's main branch "
            "only; once the oldest supported release has them they join SUPPORTED_SIGNATURES"),
    Removal("stage_worker#1", _ALWAYS,
            "none yet: no release tells the plugin the worker's model, and none adjusts "
            "stage-0 max_tokens per request; any config below 4353 tokens needs the budget"),
    Removal("stage_worker#2", ({"ai-dynamo": "<1.2"},),
            "ai-dynamo 1.2 calls engine.generate(prompt, request_id=request_id, ...)"),
    Removal("stage_worker#3", ({"ai-dynamo": "<1.4"}, {"vllm-omni": "<=0.20.0rc1"},
                               {"ai-dynamo": "<1.6", "vllm-omni": "<0.29"}),
            "ai-dynamo 1.4 dispatches `prompt`, 1.2 restores cumulative_token_ids; vLLM-Omni "
            "0.20.0rc1 reads mm_processor_kwargs and the scaffold's preview grid; "
            "MammothModa2 <= 0.28 names it `prompts`, which ai-dynamo 1.4/1.5 do not dispatch"),
    Removal("offline#1", ({"vllm-omni": "<0.33"},),
            "none yet: vllm-project/vllm-omni#7952 is open; no release up to 0.32.0rc1 attaches "
            "mm_processor_kwargs in Omni.generate (#3189 fixed the serving path only)"),
    Removal("stage1#1", ({"ai-dynamo": "<1.4"},),
            "ai-dynamo 1.4.0 accepts `prompt` (_accepts_source_outputs_processor)"),
    Removal("stage1#2", ({"ai-dynamo": "<1.2"}, {"vllm-omni": "<=0.20.0rc1"}),
            "ai-dynamo 1.2 and vLLM-Omni 0.20.0 call (source_outputs, original_prompt, ...)"),
    Removal("stage1#3", ({"vllm-omni": "<0.20.0rc1"},),
            "vLLM-Omni 0.20.0rc1 reads mm_processor_kwargs (vllm-project/vllm-omni#3034)"),
    Removal("stage1#4", ({"vllm-omni": "<0.20.0rc1"},),
            "vLLM-Omni 0.20.0rc1 slices the prior at the scaffold's preview grid"),
    Removal("stage1#5", ({"ai-dynamo": "<1.2"},),
            "ai-dynamo 1.2 restores cumulative_token_ids (_ensure_cumulative_token_ids)"),
    Removal("stage1#6", ({"ai-dynamo": "<1.2", "vllm-omni": ">=0.24"},),
            "ai-dynamo 1.2 calls with source outputs and unwraps upstream's own return value"),
    Removal("stage1#7", ({"ai-dynamo": "<1.4"}, {"ai-dynamo": "<1.6", "vllm-omni": "<0.29"}),
            "ai-dynamo 1.4 dispatches `prompt` and restores cumulative_token_ids; MammothModa2 "
            "<= 0.28 names it `prompts`, which ai-dynamo 1.4/1.5 do not dispatch"),
    Removal("stage1#8", _ALWAYS,
            "none yet: no ai-dynamo release up to 1.7.0.dev dispatches (source_outputs, ctx) "
            "processors (vllm-project/vllm-omni#4872, #6801)"),
)  # fmt: skip


# --- what every patch shares ----------------------------------------------------------------

#: Attribute set on every wrapper; its value is the host function it wraps.
SENTINEL = "__omni_sizefix_original__"
_warned: set[str] = set()


def marked(wrapper: Callable, original: Callable) -> Callable:
    """``wrapper``, marked as the wrapper of ``original`` (``SENTINEL``)."""
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
    if key in _warned:
        logger.debug(message, *args)
        return
    _warned.add(key)
    logger.warning(message, *args)


def warn_failed(key: str, exc: Exception, failed: str, instead: str = "") -> None:
    """A wrapper's never-crash fallback, once per ``key``:
    ``omni-sizefix: <failed> (<Type>: <exc>); <instead>``."""
    suffix = f"; {instead}" if instead else ""
    warn_once(key, "omni-sizefix: %s (%s: %s)%s", failed, type(exc).__name__, exc, suffix)


class Replacement:
    """One attribute (``name``) of a host module or class, replaced by a wrapper: idempotent,
    the target checked first, and ``remove`` puts back the very object it replaced."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        #: The target as messages name it.
        self.where = where
        #: The host's own object while it is replaced.
        self.original: Callable | None = None
        self._lock = threading.RLock()

    def apply(
        self, owner: Any, wrap: Callable[[Callable], Callable], problem: Callable[[], str | None]
    ) -> bool:
        """Replace the attribute of ``owner`` by ``wrap(original)``; True when newly replaced.
        Raises LookupError (nothing replaced) when another wrapper is there already or
        ``problem()`` names one."""
        with self._lock:
            current = vars(owner).get(self.name) if owner is not None else None
            if self.original is not None and getattr(current, SENTINEL, None) is self.original:
                return False
            if hasattr(current, SENTINEL):
                raise LookupError(f"{self.where} is already wrapped elsewhere")
            found = problem()
            if found:
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
    """Send the ``omni_sizefix`` logger's records through vLLM's handlers (so they read like
    the worker's lines) when vLLM's logging is set up and the logger has no handler of its
    own; vLLM is never imported here. True when adopted."""
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
