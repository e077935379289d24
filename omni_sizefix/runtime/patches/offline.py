"""Patch: GLM-Image prompts of vLLM-Omni's offline ``Omni.generate`` get the size at stage 0.

Target
    ``vllm_omni.entrypoints.omni.Omni.generate(self, prompts, sampling_params_list=None, ...)``
    (vLLM-Omni 0.16 to 0.32.0rc1; sync), patched when that module is imported. vLLM-Omni's
    serving path attaches ``mm_processor_kwargs`` itself (vllm-project/vllm-omni#3189).
How
    Only for an ``Omni`` whose stage configs name GLM-Image: a text prompt (a ``str``, or a
    dict with a ``prompt`` string) without ``target_h``/``target_w`` gets a copy with them in
    ``mm_processor_kwargs`` (and top-level ``height``/``width`` where the installed
    ``ar2diffusion`` reads only those, probed), taken from its own top-level size, else from
    the last stage's sampling params (the stage defaults when none are passed). Nothing the
    caller set is overwritten. A size GLM-Image cannot render exactly is passed on unchanged
    with one WARNING (``OMNI_SIZEFIX_SIZE_POLICY=off`` sizes it anyway). A failure in the
    wrapper logs one WARNING and calls the host with the caller's arguments. The fix:

1. vllm-project/vllm-omni#7952 (open): a GLM-Image text prompt sized only in the DiT's
   sampling params reaches the AR engine without its generation scaffold (11 prompt tokens
   for "a red apple" instead of 26 with the real engines on CPU) and the image comes back
   1024x1024 (``tests/real/test_offline_generate.py``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from omni_sizefix.runtime import patches, pipelines, settings, sizing
from omni_sizefix.runtime.patches import Replacement, marked, warn_failed, warn_once
from omni_sizefix.runtime.settings import Shape, SizePolicy

logger = logging.getLogger("omni_sizefix")

OMNI_MODULE = "vllm_omni.entrypoints.omni"
TARGET = "Omni.generate"
#: The leading parameters ``Omni.generate`` has in every release 0.16-0.32.0rc1.
EXPECTED_PARAMETERS = ("self", "prompts", "sampling_params_list")
HOST = "vllm-omni"

_target = Replacement("generate", f"{OMNI_MODULE}.{TARGET}")
#: The patch's INFO line, until a handler can show it.
_pending: list[tuple[str, tuple[Any, ...]]] = []


# --- what a prompt gets ---------------------------------------------------------------------


def _pair(source: Any) -> tuple[int, int] | None:
    """(height, width) when ``source`` (a dict or an object) has both as positive ints."""
    height = sizing.positive_int(pipelines.config_value(source, "height"))
    width = sizing.positive_int(pipelines.config_value(source, "width"))
    return (height, width) if height and width else None


def dit_size(omni: Any, sampling_params_list: Any) -> tuple[int, int] | None:
    """(height, width) of the last stage's sampling params (the stage defaults when None)."""
    params = sampling_params_list
    if params is None:
        params = getattr(omni, "default_sampling_params_list", None)
    if isinstance(params, Sequence) and not isinstance(params, (str, bytes)):
        params = params[-1] if params else None
    return _pair(params) if params is not None else None


def renderable(height: int, width: int) -> bool:
    """True when GLM-Image renders the size exactly (or the size policy is ``off``); else one
    WARNING per process naming the nearest valid sizes."""
    if settings.size_policy() is SizePolicy.OFF:
        return True
    if sizing.is_valid_side(height) and sizing.is_valid_side(width):
        return True
    warn_once("offline-size",
              "omni-sizefix: offline %s: %s The prompt is passed to vLLM-Omni unchanged.",
              TARGET, sizing.rejection_message(height, width))  # fmt: skip
    return False


def sized_prompt(prompt: Any, fallback: tuple[int, int] | None, top_level: bool) -> Any:
    """A copy of one text prompt with ``mm_processor_kwargs`` targets; ``prompt`` itself when
    it has them already, names no size, is not a text prompt or its size is not renderable."""
    if isinstance(prompt, str):
        base: dict[str, Any] = {"prompt": prompt}
    elif isinstance(prompt, Mapping) and isinstance(prompt.get("prompt"), str):
        base = dict(prompt)
    else:
        return prompt
    mm_kwargs = base.get("mm_processor_kwargs")
    if mm_kwargs is not None and (
        not isinstance(mm_kwargs, Mapping) or "target_h" in mm_kwargs or "target_w" in mm_kwargs
    ):
        return prompt
    size = _pair(base) or fallback
    if size is None or not renderable(*size):
        return prompt
    height, width = size
    base["mm_processor_kwargs"] = {**(mm_kwargs or {}), "target_h": height, "target_w": width}
    if top_level:
        base.setdefault("height", height)
        base.setdefault("width", width)
    return base


def sized_prompts(prompts: Any, fallback: tuple[int, int] | None, top_level: bool) -> Any:
    """``prompts`` (one or a sequence) with each text prompt sized; the same object when
    nothing changed."""
    if isinstance(prompts, (str, Mapping)) or not isinstance(prompts, Sequence):
        return sized_prompt(prompts, fallback, top_level)
    new = [sized_prompt(prompt, fallback, top_level) for prompt in prompts]
    return new if any(a is not b for a, b in zip(new, prompts, strict=True)) else prompts


def serves_glm_image(omni: Any) -> bool:
    """True when the stage configs of ``omni`` name GLM-Image."""
    configs = getattr(omni, "stage_configs", None) or ()
    return any(pipelines.identify(config)[0] is pipelines.GLM_IMAGE for config in configs)


@functools.lru_cache(maxsize=1)
def writes_top_level() -> bool:
    """True when the installed GLM-Image ``ar2diffusion`` reads the top-level size (probed)."""
    return pipelines.build_plan(pipelines.GLM_IMAGE).shape in (Shape.TOP_LEVEL, Shape.BOTH)


# --- the wrapper ----------------------------------------------------------------------------


def wrap(original: Any) -> Any:
    """``Omni.generate`` that sizes GLM-Image's text prompts first (module doc)."""

    @functools.wraps(original)
    def generate(self, prompts, sampling_params_list=None, *args, **kwargs):
        asked = prompts
        try:
            announce()
            if not settings.disabled() and serves_glm_image(self):
                fallback = dit_size(self, sampling_params_list)
                prompts = sized_prompts(prompts, fallback, writes_top_level())
        except Exception as exc:  # never let the plugin take a call down
            warn_failed("offline-failed", exc, f"offline {TARGET} could not size the prompts",
                        "calling it with the caller's prompts")  # fmt: skip
            prompts = asked
        return original(self, prompts, sampling_params_list, *args, **kwargs)

    return marked(generate, original)


def _owner(module: ModuleType | None) -> type | None:
    cls = getattr(module, "Omni", None)
    return cls if isinstance(cls, type) else None


def signature_problem(module: ModuleType) -> str | None:
    """None when ``Omni.generate`` is sync and takes ``(self, prompts, sampling_params_list,
    ...)``; else what was expected and found."""
    function = vars(_owner(module) or object).get("generate")
    if not callable(function):
        return f"{OMNI_MODULE}.{TARGET}: not found"
    names = tuple(inspect.signature(function).parameters)
    if names[: len(EXPECTED_PARAMETERS)] == EXPECTED_PARAMETERS and inspect.isfunction(function):
        if not (inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)):
            return None
    kind = "async" if inspect.iscoroutinefunction(function) else "sync"
    return (
        f"{OMNI_MODULE}.{TARGET}: expected sync ({', '.join(EXPECTED_PARAMETERS)}, ...), "
        f"found {kind} ({', '.join(names)})"
    )


def apply(module: ModuleType) -> bool:
    """Wrap ``module.Omni.generate`` (idempotent); True when newly wrapped. Raises LookupError
    (nothing replaced) when the target is not the expected one."""
    return _target.apply(_owner(module), wrap, lambda: signature_problem(module))


def remove() -> bool:
    """Put the host's own ``Omni.generate`` back; True when it was wrapped."""
    return _target.remove(_owner(sys.modules.get(OMNI_MODULE)))


def is_patched() -> bool:
    return _target.original is not None


# --- activation (called by ``runtime.activation``) ------------------------------------------


def announce() -> None:
    """Log the pending INFO line once a handler shows it: vLLM >= 0.31 sets up its logging
    only when the engine is built, after ``Omni.generate`` was patched."""
    if not _pending:
        return
    patches.adopt_vllm_format()
    if logger.isEnabledFor(logging.INFO) and logger.hasHandlers():
        message, args = _pending.pop()
        _pending.clear()
        logger.info(message, *args)


def activate(module: ModuleType) -> bool:
    """Patch ``module`` unless the kill switch is set or vLLM-Omni is outside the supported
    range; one INFO line when newly patched, one WARNING when stepping aside. Never raises;
    True when patched now or before."""
    try:
        if settings.disabled():
            return False
        initializing = getattr(getattr(module, "__spec__", None), "_initializing", False)
        if initializing and not hasattr(module, "Omni"):
            return False  # register() ran from inside its import: Omni is not defined yet
        version = settings.installed_version(HOST)
        if not settings.is_supported(HOST, version):
            warn_once("offline-unsupported",
                      "omni-sizefix: offline %s not patched: %s %s is outside the supported "
                      "range %s", TARGET, HOST, version or "(version unknown)",
                      settings.SUPPORTED_HOSTS[HOST])  # fmt: skip
            return False
        if apply(module):
            _pending.append((
                "omni-sizefix: patched %s.%s: offline GLM-Image prompts without "
                "mm_processor_kwargs get target_h/target_w from the requested size; "
                "vllm-omni %s; omni-sizefix %s",
                (OMNI_MODULE, TARGET, version, settings.__version__),
            ))  # fmt: skip
            announce()
        return True
    except LookupError as exc:
        warn_once("offline-signature",
                  "omni-sizefix: offline %s not patched, the host changed: %s. It runs "
                  "unpatched.", TARGET, exc)  # fmt: skip
    except Exception as exc:  # the host's import must never see our errors
        warn_failed("offline-activate", exc, f"offline {TARGET} not patched")
    return False


def deactivate() -> bool:
    """``remove()``, logged; True when the host's own ``Omni.generate`` is back."""
    restored = remove()
    _pending.clear()
    if restored:
        logger.info("omni-sizefix: unpatched %s.%s; vLLM-Omni's own is back", OMNI_MODULE, TARGET)
    return restored
