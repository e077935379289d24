"""Patch: stage 1 gets a GLM-Image processor that works on this release pair, whatever the config.

Target
    ``dynamo.vllm.omni.stage_worker._load_processor(func_path)``, the module function every
    ai-dynamo release 1.1-1.7 calls in ``OmniStageWorker.__init__`` to turn a stage config's
    ``custom_process_input_func`` into the stage-1 processor (looked up as a module global
    at call time, so replacing the module attribute is enough).
Why
    With vLLM-Omni's own GLM-Image config, stage 1 loads vLLM-Omni's ``ar2diffusion``, which
    some release pairs cannot run correctly:

    * ai-dynamo 1.2.x/1.3.x dispatch a source-outputs processor only when its second
      parameter is named ``original_prompt``; vLLM-Omni >= 0.20.0 names it ``prompt``, so
      every request fails with ``TypeError`` before the processor runs;
    * ai-dynamo 1.1.x does not restore ``cumulative_token_ids`` after the shared-memory
      connector (which serialises completions with ``dataclasses.asdict`` and drops that
      dynamic attribute); vLLM-Omni >= 0.20.0rc1 reads it, so stage 1 raises
      ``AttributeError`` across processes;
    * vLLM-Omni <= 0.18 reads the size only from top-level ``height``/``width`` and slices the
      prior at a ``h//2 x w//2`` preview-grid offset (wrong for every size but 1024x1024).

    Until now only the shipped stage config (which names the package's processor) avoided
    these; an operator keeping vLLM-Omni's config got errors or wrong images.
How
    Other models (``omni_sizefix.runtime.pipelines``): where this Dynamo cannot dispatch
    HunyuanImage-3's or MammothModa2's processor (ai-dynamo 1.2/1.3 ``TypeError``, 1.4/1.5 for
    MammothModa2 <= 0.28's ``prompts``) or does not restore the ``cumulative_token_ids`` it reads
    (1.1), ``patches.processor_adapter`` runs it instead, with the size where it reads
    it; elsewhere their processor is returned untouched.

    Wrap ``_load_processor``: it calls the host's function, and when the result is
    vLLM-Omni's GLM-Image ``ar2diffusion`` and this host gets it wrong, returns
    ``omni_sizefix.processors.glm_image.ar2diffusion`` instead (which delegates every request
    to the same upstream function, fixing only the arguments). What "wrong" means is probed
    once per process by ``runtime.stage1_profile`` (the host's own dispatch, token-field
    bridge and upstream's size/prior handling on a synthetic output), not read from version
    numbers. Where the pair is right (e.g. ai-dynamo >= 1.4 with vLLM-Omni >= 0.26) the host's
    function is returned untouched. Any other processor is never touched. Any failure in the
    probe or the choice returns the host's own processor and logs one WARNING; errors of the
    host's own ``_load_processor`` (e.g. a bad ``func_path``) are the host's and propagate.
    The target's signature (``(func_path)``, sync, used by ``OmniStageWorker.__init__``) is
    checked before anything is replaced.
Upstream
    ai-dynamo 1.4.0 accepts ``prompt`` in ``_accepts_source_outputs_processor``; ai-dynamo 1.2.0
    added ``_ensure_cumulative_token_ids``; vLLM-Omni 0.20.0rc1 reads ``mm_processor_kwargs``
    and the scaffold's preview grid (vllm-project/vllm-omni#2320, #3034); ai-dynamo/dynamo#8679.
Removal
    When ai-dynamo < 1.4 and vLLM-Omni < 0.20.0 leave the supported range, and ai-dynamo < 1.6
    with vLLM-Omni <= 0.28 (MammothModa2's ``prompts``): every remaining pair then runs
    vLLM-Omni's processor right and this patch already returns it untouched.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from omni_sizefix.runtime.host_modules import GLM_IMAGE_PROCESSORS, STAGE_WORKER_MODULE
from omni_sizefix.runtime.patching import (
    SENTINEL,
    Replacement,
    describe,
    marked,
    signature_text,
    warn_failed,
    warn_once,
)

logger = logging.getLogger("omni_sizefix")

TARGET = "_load_processor"
EXPECTED_PARAMETERS = ("func_path",)

_target = Replacement(TARGET, f"{STAGE_WORKER_MODULE}.{TARGET}")
_warned: set[str] = set()


def _warn_once(key: str, message: str, *args: Any) -> None:
    warn_once(_warned, key, message, *args)


def signature_problem(stage_worker: ModuleType) -> str | None:
    """None when ``stage_worker`` has the ``_load_processor`` this patch expects."""
    function = stage_worker.__dict__.get(TARGET)
    expected = signature_text(EXPECTED_PARAMETERS, is_async=False)
    found = describe(function)
    if found != expected:
        return f"{_target.where}: expected {expected}, found {found}"
    worker = getattr(stage_worker, "OmniStageWorker", None)
    init = getattr(worker, "__init__", None)
    init = getattr(getattr(init, SENTINEL, init), "__code__", None)  # under the budget patch
    if init is None or TARGET not in init.co_names:
        return f"{STAGE_WORKER_MODULE}.OmniStageWorker.__init__ no longer calls {TARGET}"
    return None


def is_upstream_glm_image(processor: Any) -> bool:
    """True when ``processor`` is vLLM-Omni's own GLM-Image ``ar2diffusion``."""
    module = sys.modules.get(GLM_IMAGE_PROCESSORS)
    return module is not None and processor is getattr(module, "ar2diffusion", None)


@functools.lru_cache(maxsize=4)
def choose(upstream: Callable) -> Callable:
    """The processor stage 1 should run in place of ``upstream`` (decided once per process)."""
    try:
        from omni_sizefix.runtime import stage1_profile
        from omni_sizefix.runtime.patches import glm_image_processor as glm_image

        found = stage1_profile.profile()
        if not found.needs_fix:
            logger.info(
                "omni-sizefix: stage 1 keeps vLLM-Omni's GLM-Image ar2diffusion: this host "
                "dispatches it and it renders the requested size"
            )
            return upstream
        if not found.package_dispatchable:
            _warn_once(
                "undispatchable",
                "omni-sizefix: stage 1 would need omni-sizefix's GLM-Image processor (%s), "
                "but this Dynamo cannot dispatch it either; stage 1 runs vLLM-Omni's own",
                "; ".join(found.reasons),
            )
            return upstream
        logger.info(
            "omni-sizefix: stage 1 runs %s in place of vLLM-Omni's GLM-Image ar2diffusion: %s",
            glm_image.PROCESSOR,
            "; ".join(found.reasons),
        )
        return glm_image.ar2diffusion
    except Exception as exc:
        warn_failed(
            _warned,
            "probe-failed",
            exc,
            "could not check stage 1's GLM-Image processor",
            "stage 1 runs vLLM-Omni's own",
        )
        return upstream


def choose_other(func_path: str, processor: Callable) -> Callable:
    """For another AR->DiT model's size-carrying processor (``omni_sizefix.runtime.pipelines``): the
    host's own where this Dynamo dispatches it, else ``processors.adapter.adapt`` around it."""
    from omni_sizefix.runtime import pipelines

    pipeline = pipelines.by_processor(func_path)
    if pipeline is None or pipeline is pipelines.GLM_IMAGE or pipeline in pipelines.NO_SIZE:
        return processor
    return _adapted(func_path, processor)


@functools.lru_cache(maxsize=8)
def _adapted(func_path: str, processor: Callable) -> Callable:
    from omni_sizefix.runtime import pipelines, stage1_io, stage1_profile
    from omni_sizefix.runtime.patches import processor_adapter as adapter

    stage_worker = sys.modules.get(STAGE_WORKER_MODULE)
    if stage_worker is None:
        return processor
    convention = stage1_io.convention_of(processor)
    dispatched = stage1_profile.host_call(stage_worker, processor) == convention
    bridges = stage1_profile.host_bridges_cumulative(stage_worker)
    if dispatched and bridges:
        return processor  # ai-dynamo >= 1.4: dispatched as vLLM-Omni's orchestrator does
    reads = pipelines.probe_reads(processor)
    wrapped = adapter.adapt(processor, reads)
    if stage1_profile.host_call(stage_worker, wrapped) is None:
        return processor
    logger.info(
        "omni-sizefix: stage 1 runs %s through omni-sizefix's adapter: %s; the size is read "
        "from %s",
        func_path,
        f"this Dynamo cannot call it as it is ({convention} parameters)"
        if not dispatched
        else "this Dynamo does not restore cumulative_token_ids after the connector",
        " and ".join(sorted(reads)) or "nowhere it is sent",
    )
    return wrapped


def _is_ctx(processor: Any) -> bool:
    from omni_sizefix.runtime.patches import ctx_processor

    return ctx_processor.is_ctx(processor)


def _ctx_adapted(func_path: str, processor: Callable) -> Callable:
    """A ``(source_outputs, ctx)`` processor behind ``patches.ctx_processor``'s adapter,
    or the host's own with one WARNING where this Dynamo cannot dispatch even that."""
    from omni_sizefix.runtime import stage1_profile
    from omni_sizefix.runtime.patches import ctx_processor

    stage_worker = sys.modules.get(STAGE_WORKER_MODULE)
    adapted = ctx_processor.legacy(processor)
    if stage_worker is None or stage1_profile.host_call(stage_worker, adapted) is None:
        _warn_once(
            "ctx-undispatchable",
            "omni-sizefix: stage 1's processor %s takes (source_outputs, ctx), which this "
            "Dynamo does not dispatch, and neither does it dispatch the adapter; stage 1 runs "
            "it as the host loads it",
            func_path,
        )
        return processor
    logger.info(
        "omni-sizefix: stage 1 runs %s (source_outputs, ctx) through omni-sizefix's adapter: "
        "this Dynamo dispatches only the older processor parameters",
        func_path,
    )
    return adapted


def wrap(original: Callable) -> Callable:
    """A wrapper of ``_load_processor`` that swaps in a working GLM-Image processor."""

    @functools.wraps(original)
    def _load_processor(func_path):
        processor = original(func_path)
        try:
            if processor is None:
                return processor
            if _is_ctx(processor):
                return _ctx_adapted(str(func_path), processor)
            if not is_upstream_glm_image(processor):
                return choose_other(str(func_path), processor)
            return choose(processor)
        except Exception as exc:  # never take the worker down
            warn_failed(
                _warned, "load-failed", exc, "stage-1 processor check failed", "using the host's"
            )
            return processor

    return marked(_load_processor, original)


def is_patched() -> bool:
    """True while ``_load_processor`` is wrapped."""
    return _target.original is not None


def apply(stage_worker: ModuleType) -> bool:
    """Wrap ``stage_worker._load_processor`` (idempotent); True when newly wrapped.

    Raises LookupError (nothing replaced) when the target is not the expected one.
    """
    return _target.apply(stage_worker, wrap, lambda: signature_problem(stage_worker))


def remove() -> bool:
    """Put the host's own ``_load_processor`` back; True when something was restored."""
    if not _target.remove(sys.modules.get(STAGE_WORKER_MODULE)):
        return False
    choose.cache_clear()
    _adapted.cache_clear()
    return True
