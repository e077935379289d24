"""Patch: the requested size through Dynamo's disaggregated vLLM-Omni request parsing.

Target
    ``dynamo.vllm.omni.utils.parse_omni_request`` (sync on ai-dynamo 1.1, a coroutine function
    from 1.2) and ``build_original_prompt``, also where other ``dynamo.*`` modules (the stage
    worker) imported them by name.
Why
    ai-dynamo 1.1 gives stage 0 no ``mm_processor_kwargs`` (GLM-Image's DiT denoises garbage)
    and ``original_prompt`` no size (stage 1 falls back to 1024x1024); 1.2+ writes the size
    only as ``mm_processor_kwargs``, which vLLM-Omni < 0.20.0rc1 does not read.
How
    Wrappers of the target's kind and signature call it first, then the hooks write the size
    where this worker reads it; signatures are checked before anything is replaced. A plugin
    failure serves the host's result with one WARNING; only ``SizeRejected`` reaches the caller.

1. Writing the size (stage-0 ``mm_processor_kwargs``, ``original_prompt``, sampling params).
   Upstream: ai-dynamo/dynamo#8679; ai-dynamo 1.2 with vLLM-Omni 0.20.0 writes it.
2. Size checks: a malformed ``size`` is refused (every release makes it 1024x1024), and sizes
   GLM-Image cannot render exactly are refused or snapped (``OMNI_SIZEFIX_SIZE_POLICY``).
3. New optional parameters of upstream's main branch (``KNOWN_OPTIONAL``) are passed through;
   any other signature change steps aside with one WARNING.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from omni_sizefix.runtime import hooks, pipelines, sizing
from omni_sizefix.runtime.patches import SENTINEL, describe, marked, signature_text, warn_failed
from omni_sizefix.runtime.sizing import SizeRejected

logger = logging.getLogger("omni_sizefix")

UTILS_MODULE = "dynamo.vllm.omni.utils"
PARSE = "parse_omni_request"
BUILD = "build_original_prompt"
#: One WARNING per process for a failure in the wrappers (the host's parse calls the build).
HOOK_FAILED = "hook-failed"

#: Parameter names each target may have, mapped to whether it must be a coroutine function.
SUPPORTED_SIGNATURES: dict[str, dict[tuple[str, ...], bool]] = {
    PARSE: {
        ("request", "output_modalities", "default_video_fps"): False,
        ("request", "output_modalities", "default_video_fps", "tokenizer_getter"): True,
    },
    BUILD: {("request", "nvext", "height", "width"): False},
}
#: Fix 3: optional parameters seen in ai-dynamo's main-branch variants of the async parse.
KNOWN_OPTIONAL = frozenset(
    {"tokenizer_getter", "input_preprocessor_getter", "renderer", "model_config",
     "default_sampling_params", "chat_preprocessor", "engine"}
)  # fmt: skip

_originals: dict[str, Callable] = {}
_lock = threading.RLock()


def accepts_new_parameters(function: Any) -> bool:
    """Fix 3: an async ``(request, output_modalities, default_video_fps, ...)`` whose further
    parameters are all known optional ones with defaults."""
    if not inspect.iscoroutinefunction(function):
        return False
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    return (
        [p.name for p in parameters[:3]] == ["request", "output_modalities", "default_video_fps"]
        and len(parameters) > 3
        and all(
            p.name in KNOWN_OPTIONAL
            and p.default is not p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            for p in parameters[3:]
        )
    )


def expected_signatures(name: str) -> list[str]:
    """The signatures this patch takes for target ``name``, as messages write them."""
    return [signature_text(p, is_async) for p, is_async in SUPPORTED_SIGNATURES[name].items()]


def signature_problem(name: str, function: Any) -> str | None:
    """None when ``function`` has a supported signature, else what was expected and found."""
    expected = expected_signatures(name)
    found = describe(function)
    if found in expected or (name == PARSE and accepts_new_parameters(function)):
        return None
    return f"{UTILS_MODULE}.{name}: expected {' or '.join(expected)}, found {found}"


def _sized(request: Any, output_modalities: Any, parsed: Any) -> Any:
    """The host's ``parsed`` as the hooks repair it (untouched for a request without a size);
    of the plugin's errors only ``SizeRejected`` is raised."""
    try:
        kind = sizing.request_kind(output_modalities)
    except Exception as exc:  # never let the plugin take a request down
        warn_failed("classify-failed", exc, "could not classify a request",
                    "serving it as the host parses it")  # fmt: skip
        return parsed
    if kind is None:
        return parsed
    try:
        return hooks.repair_request(request, output_modalities, parsed, kind)
    except SizeRejected as exc:
        found = (
            request.get("request_id") or request.get("id") if isinstance(request, dict) else None
        )
        logger.info("omni-sizefix: rejected%s: %s", f" request {found}" if found else "", exc)
        raise
    except Exception as exc:  # never let the plugin take a request down
        warn_failed(
            HOOK_FAILED, exc, "could not size a request", "serving it as the host parsed it"
        )
        return parsed


def wrap_parse(original: Callable) -> Callable:
    """A wrapper of ``parse_omni_request`` of the same kind (sync or async)."""
    if inspect.iscoroutinefunction(original):

        async def parse_omni_request(request, output_modalities, *args, **kwargs):
            parsed = await original(request, output_modalities, *args, **kwargs)
            return _sized(request, output_modalities, parsed)

    else:

        def parse_omni_request(request, output_modalities, *args, **kwargs):
            parsed = original(request, output_modalities, *args, **kwargs)
            return _sized(request, output_modalities, parsed)

    return marked(functools.wraps(original)(parse_omni_request), original)


def wrap_build(original: Callable) -> Callable:
    """A wrapper of ``build_original_prompt`` that writes the size it is given where this
    worker's stage-1 processor reads it (the parse wrapper writes the final size over it)."""

    @functools.wraps(original)
    def build_original_prompt(request, nvext, height, width):
        prompt = original(request, nvext, height, width)
        try:
            return hooks.repair_original_prompt(prompt, height, width, pipelines.plan())
        except Exception as exc:  # never let the plugin take a request down
            warn_failed(HOOK_FAILED, exc, "could not add the size to original_prompt")
            return prompt

    return marked(build_original_prompt, original)


def is_patched() -> bool:
    """True while the host functions are replaced by this patch's wrappers."""
    return bool(_originals)


def _dynamo_modules() -> list[tuple[str, ModuleType]]:
    found = list(sys.modules.items())
    return [(n, m) for n, m in found if n.startswith("dynamo.") and isinstance(m, ModuleType)]


def _rebind_aliases(utils: ModuleType) -> list[str]:
    """Rebind ``dynamo.*`` modules' own names of the originals to the wrappers; what was new."""
    done = []
    for module_name, module in _dynamo_modules():
        for name, original in _originals.items():
            if module_name != UTILS_MODULE and module.__dict__.get(name) is original:
                setattr(module, name, getattr(utils, name))
                done.append(f"{module_name}.{name}")
    return done


def apply(utils: ModuleType) -> list[str]:
    """Patch ``utils`` (idempotent; again: rebind aliases in modules imported since); return
    what was done. Raises LookupError (nothing replaced) on an unexpected signature."""
    with _lock:
        if is_patched():
            return _rebind_aliases(utils)
        targets = {name: utils.__dict__.get(name) for name in (PARSE, BUILD)}
        if any(hasattr(fn, SENTINEL) for fn in targets.values()):
            raise LookupError(f"{UTILS_MODULE} is already wrapped by another copy of omni-sizefix")
        problems = [p for name, fn in targets.items() if (p := signature_problem(name, fn))]
        if problems:
            raise LookupError("; ".join(problems))
        done = []
        for name, wrap in ((PARSE, wrap_parse), (BUILD, wrap_build)):
            _originals[name] = targets[name]
            setattr(utils, name, wrap(targets[name]))
            done.append(f"{UTILS_MODULE}.{name} ({describe(targets[name]).split(' ')[0]})")
        return done + _rebind_aliases(utils)


def rebind_new_aliases() -> list[str]:
    """Rebind aliases in modules imported after patching (e.g. ``stage_worker``)."""
    with _lock:
        utils = sys.modules.get(UTILS_MODULE)
        return _rebind_aliases(utils) if utils is not None and is_patched() else []


def remove() -> bool:
    """Put back the very same host function objects everywhere; True when restored."""
    with _lock:
        if not is_patched():
            return False
        for _, module in _dynamo_modules():
            for name, original in _originals.items():
                if getattr(module.__dict__.get(name), SENTINEL, None) is original:
                    setattr(module, name, original)
        _originals.clear()
        return True
