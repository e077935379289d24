"""Upstream change: vLLM-Omni's stage processors move to ``(source_outputs, ctx)``.

Target
    The stage-1 processor ``dynamo.vllm.omni.stage_worker._load_processor`` returns (through
    ``patches.dynamo_stage_processor``), and ``stage1_io.call`` (how the package's own
    processors and probes call vLLM-Omni's).
Why
    vLLM-Omni's refactor of the stage input processors (RFC vllm-project/vllm-omni#4872,
    PR #6801, open) makes every orchestrator-facing processor take ``(source_outputs, ctx)``,
    ``ctx`` an ``OrchestratorInputContext`` (``prompt``, ``requires_multimodal_data``,
    ``streaming_context``, ``sampling_params``). Every ai-dynamo release up to 1.7.0.dev
    dispatches a processor only in the stage-list form or as ``(source_outputs,
    original_prompt|prompt, requires_mm|requires_multimodal_data, ...)``: once GLM-Image's
    ``ar2diffusion`` migrates, stage 1 raises ``TypeError`` on every request.
How
    ``legacy(processor)`` is a processor with the four parameters every release dispatches
    (``stage1_io.stage1_processor``: it also tells a stage-list call from its arguments); it
    builds the context (vLLM-Omni's own class when installed, else a stand-in with the same
    fields) and calls ``processor(source_outputs, ctx)``. The result is passed through.
    Where the host's dispatch refuses even that, the host's processor is left as it loads it,
    with one WARNING.
Upstream
    vllm-project/vllm-omni#4872 (RFC), vllm-project/vllm-omni#6801 (PR).
Remove when
    Every supported ai-dynamo release dispatches ``(source_outputs, ctx)`` processors itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omni_sizefix.runtime import stage1_io
from omni_sizefix.runtime.stage1_io import context, is_ctx

__all__ = ["context", "is_ctx", "legacy"]


def legacy(processor: Callable[..., Any]) -> Callable[..., Any]:
    """``processor`` behind the parameters every supported Dynamo dispatches."""

    @stage1_io.stage1_processor
    def adapted(arguments: stage1_io.CallerArguments) -> Any:
        outputs, prompt, requires, streaming, stage_list = arguments
        if stage_list:  # the stage-list form passes [original_prompt]
            prompt = prompt[0] if isinstance(prompt, list) and prompt else prompt
        return processor(outputs, context(prompt, requires, streaming))

    adapted.__name__ = getattr(processor, "__name__", "processor")
    adapted.__qualname__ = adapted.__name__
    adapted.__doc__ = f"omni-sizefix (source_outputs, ctx) adapter around {adapted.__name__}"
    adapted.__omni_sizefix_upstream__ = processor  # type: ignore[attr-defined]
    return adapted
