"""Patch: carry the requested image/video size through Dynamo's disaggregated vLLM-Omni parsing.

Target
    ``dynamo.vllm.omni.utils.parse_omni_request`` (sync in ai-dynamo 1.1.x, a coroutine
    function from 1.2.0 on) and ``dynamo.vllm.omni.utils.build_original_prompt``; every
    ``dynamo.*`` module that imported ``parse_omni_request`` by name
    (``dynamo.vllm.omni.stage_worker`` does) is rebound as well.
Why
    ai-dynamo 1.1.x builds the stage-0 prompt without ``mm_processor_kwargs``, so vLLM-Omni
    never runs GLM-Image's multimodal processor and the AR stage gets no generation
    scaffold; and its ``original_prompt`` carries no size, so stage 1 (``ar2diffusion``)
    falls back to 1024x1024. ai-dynamo 1.2+ fixes stage 0 but writes the size only as
    ``mm_processor_kwargs``, which vLLM-Omni releases before 0.20.0rc1 do not read.
How
    Wrap both functions, keeping their kind (sync/async) and signature (``__wrapped__``).
    After the host returns, the ``omni_sizefix`` hooks decide the geometry and write it to
    the stage-0 prompt, the ``original_prompt`` (in the shape the installed vLLM-Omni
    reads) and the sampling overrides. Any failure inside the plugin returns the host's
    own result and logs one WARNING; only the size policy's ``SizeRejected`` (a
    ``ValueError``) reaches the caller. Signatures are checked before anything is
    replaced; a mismatch leaves the host untouched.
Related PR
    ai-dynamo/dynamo#8679 (draft: the same two fixes inside Dynamo), vllm-project/vllm-omni#3034
    (the same stage-0 defect in vLLM-Omni's own chat serving).
Future plan
    On ai-dynamo >= 1.2 with vLLM-Omni >= 0.20.0rc1 the host already writes GLM-Image's
    size (checked per cell by ``tests/host/test_removals_match_host.py``); the wrappers then
    only check the size (a malformed ``size`` is rejected, not turned into 1024x1024; the
    size policy snaps or rejects sizes that do not render exactly), which no release up to
    1.7 does. Remove the writing once ai-dynamo < 1.2 and vLLM-Omni < 0.20.0rc1 leave the
    supported range, the checks once no supported release needs them (``REMOVALS``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from omni_sizefix.runtime import modalities, pipelines, plugins, repair
from omni_sizefix.runtime import patching as wrapping
from omni_sizefix.runtime.errors import SizeRejected
from omni_sizefix.runtime.geometry import Kind
from omni_sizefix.runtime.host_modules import UTILS_MODULE
from omni_sizefix.runtime.patches import upstream_parse_params
from omni_sizefix.runtime.patching import SENTINEL, describe, marked, signature_text

logger = logging.getLogger("omni_sizefix")

PARSE = "parse_omni_request"
BUILD = "build_original_prompt"
#: One WARNING per process for a failure inside the wrappers (a hook that raises fails in
#: both: the host's parse calls ``build_original_prompt``).
HOOK_FAILED = "hook-failed"

#: Parameter names each target may have, mapped to whether it must be a coroutine function.
SUPPORTED_SIGNATURES: dict[str, dict[tuple[str, ...], bool]] = {
    PARSE: {
        ("request", "output_modalities", "default_video_fps"): False,
        ("request", "output_modalities", "default_video_fps", "tokenizer_getter"): True,
    },
    BUILD: {("request", "nvext", "height", "width"): False},
}


@dataclass
class _State:
    """What is patched right now, so that ``unpatch`` can put back the same objects."""

    originals: dict[str, Callable] = field(default_factory=dict)
    rebound: list[tuple[str, str]] = field(default_factory=list)
    warned: set[str] = field(default_factory=set)


_state = _State()
_lock = threading.RLock()


def warn_once(key: str, message: str, *args: Any) -> None:
    """Log one WARNING per ``key`` and process; later occurrences go to DEBUG."""
    wrapping.warn_once(_state.warned, key, message, *args)


def _warn_failed(key: str, exc: Exception, failed: str, instead: str = "") -> None:
    wrapping.warn_failed(_state.warned, key, exc, failed, instead)


def expected_signatures(name: str) -> list[str]:
    """The signatures this patch takes for target ``name``, as messages write them."""
    return [
        signature_text(params, is_async) for params, is_async in SUPPORTED_SIGNATURES[name].items()
    ]


def signature_problem(name: str, function: Any) -> str | None:
    """None when ``function`` has a supported signature, else what was expected and found."""
    expected = expected_signatures(name)
    found = describe(function)
    if found in expected or (name == PARSE and upstream_parse_params.accepts(function)):
        return None
    return f"{UTILS_MODULE}.{name}: expected {' or '.join(expected)}, found {found}"


def _work_for(output_modalities: Any) -> tuple[Kind, pipelines.Plan] | None:
    """(the request's kind, this worker's plan) when the hooks have work for the request;
    None when they certainly have none (a text or audio request; a video request on a
    worker whose model takes no size from the default hooks, unless a third-party hook
    plugin is registered): it then goes to the host untouched. Every image request has work:
    a malformed ``size`` is rejected for every model.

    Classifies the request once; ``plan()`` is only asked for requests that carry a size,
    so a text-only worker never probes its stage-1 processor.
    """
    try:
        kind = modalities.request_kind(output_modalities)
        if kind is None:
            return None
        plan = pipelines.plan()
        if kind == "image" or plan.writes(kind) or plugins.third_party_plugins():
            return kind, plan
        return None
    except Exception as exc:  # never let the plugin take a request down
        _warn_failed(
            "classify-failed",
            exc,
            "could not classify a request",
            "serving it as the host parses it",
        )
        return None


def _repair_or_host(
    request: Any, output_modalities: Any, parsed: Any, work: tuple[Kind, pipelines.Plan]
) -> Any:
    try:
        return repair.repair_request(request, output_modalities, parsed, work[0])
    except SizeRejected as exc:
        found = (
            request.get("request_id") or request.get("id") if isinstance(request, dict) else None
        )
        logger.info("omni-sizefix: rejected%s: %s", f" request {found}" if found else "", exc)
        raise
    except Exception as exc:  # never let the plugin take a request down
        _warn_failed(
            HOOK_FAILED, exc, "could not size a request", "serving it as the host parsed it"
        )
        return parsed


def wrap_parse(original: Callable) -> Callable:
    """A wrapper of ``parse_omni_request`` of the same kind (sync or async)."""
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def parse_omni_request(request, output_modalities, *args, **kwargs):
            work = _work_for(output_modalities)
            if work is None:
                return await original(request, output_modalities, *args, **kwargs)
            parsed = await original(request, output_modalities, *args, **kwargs)
            return _repair_or_host(request, output_modalities, parsed, work)

    else:

        @functools.wraps(original)
        def parse_omni_request(request, output_modalities, *args, **kwargs):
            work = _work_for(output_modalities)
            if work is None:
                return original(request, output_modalities, *args, **kwargs)
            parsed = original(request, output_modalities, *args, **kwargs)
            return _repair_or_host(request, output_modalities, parsed, work)

    return marked(parse_omni_request, original)


def wrap_build(original: Callable) -> Callable:
    """A wrapper of ``build_original_prompt`` that writes the size it is given into the
    prompt, where this worker's stage-1 processor reads it (``repair.repair_original_prompt``).

    The host calls it from its parse for image and video requests alike, and the parse
    wrapper writes the final size (snapped, or from a hook) over it afterwards.
    """

    @functools.wraps(original)
    def build_original_prompt(request, nvext, height, width):
        prompt = original(request, nvext, height, width)
        try:
            return repair.repair_original_prompt(prompt, height, width, pipelines.plan())
        except Exception as exc:  # never let the plugin take a request down
            _warn_failed(HOOK_FAILED, exc, "could not add the size to original_prompt")
            return prompt

    return marked(build_original_prompt, original)


def is_patched() -> bool:
    """True while the host functions are replaced by this patch's wrappers."""
    return bool(_state.originals)


def _rebind_aliases(name: str, original: Callable, wrapper: Callable) -> None:
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("dynamo.") or module_name == UTILS_MODULE:
            continue
        if isinstance(module, ModuleType) and module.__dict__.get(name) is original:
            setattr(module, name, wrapper)
            _state.rebound.append((module_name, name))


def apply(utils: ModuleType) -> list[str]:
    """Patch ``utils`` (idempotent) and rebind aliases; return what was done, or raise.

    What each request gets is decided per request from ``pipelines.plan()`` (the pipeline
    this worker serves).

    Raises LookupError with the expected/found signatures when a target does not match;
    nothing is replaced in that case.
    """
    with _lock:
        if is_patched():
            before = len(_state.rebound)
            for name, original in _state.originals.items():
                _rebind_aliases(name, original, getattr(utils, name))
            return [f"{module}.{attr}" for module, attr in _state.rebound[before:]]
        targets = {name: utils.__dict__.get(name) for name in (PARSE, BUILD)}
        if any(hasattr(fn, SENTINEL) for fn in targets.values()):
            raise LookupError(f"{UTILS_MODULE} is already wrapped by another copy of omni-sizefix")
        problems = [p for name, fn in targets.items() if (p := signature_problem(name, fn))]
        if problems:
            raise LookupError("; ".join(problems))
        done = []
        for name, wrap in ((PARSE, wrap_parse), (BUILD, wrap_build)):
            original = targets[name]
            wrapper = wrap(original)
            _state.originals[name] = original
            setattr(utils, name, wrapper)
            done.append(f"{UTILS_MODULE}.{name} ({describe(original).split(' ')[0]})")
            before = len(_state.rebound)
            _rebind_aliases(name, original, wrapper)
            done.extend(f"{module}.{attr}" for module, attr in _state.rebound[before:])
        return done


def rebind_new_aliases() -> list[str]:
    """Rebind aliases in modules imported after patching (e.g. ``stage_worker``)."""
    with _lock:
        before = len(_state.rebound)
        utils = sys.modules.get(UTILS_MODULE)
        if utils is None or not is_patched():
            return []
        for name, original in _state.originals.items():
            _rebind_aliases(name, original, getattr(utils, name))
        return [f"{module}.{attr}" for module, attr in _state.rebound[before:]]


def remove() -> bool:
    """Put back the very same host function objects; True when something was restored."""
    with _lock:
        if not is_patched():
            return False
        utils = sys.modules.get(UTILS_MODULE)
        for name, original in _state.originals.items():
            if (
                utils is not None
                and getattr(getattr(utils, name, None), SENTINEL, None) is original
            ):
                setattr(utils, name, original)
        for module_name, name in _state.rebound:
            module = sys.modules.get(module_name)
            wrapped = getattr(module, name, None) if module is not None else None
            if getattr(wrapped, SENTINEL, None) is _state.originals[name]:
                setattr(module, name, _state.originals[name])
        # Modules imported after patching took the wrapper by name themselves (e.g.
        # stage_worker when the plugin loaded first): put the original back there too.
        for module_name, module in list(sys.modules.items()):
            if not module_name.startswith("dynamo.") or not isinstance(module, ModuleType):
                continue
            for name, original in _state.originals.items():
                wrapped = module.__dict__.get(name)
                if inspect.isfunction(wrapped) and wrapped.__dict__.get(SENTINEL) is original:
                    setattr(module, name, original)
        _state.originals.clear()
        _state.rebound.clear()
        return True
