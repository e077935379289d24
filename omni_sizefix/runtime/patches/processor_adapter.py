"""A stage-1 processor any Dynamo release can call, around another model's vLLM-Omni processor.

Used by ``patches.dynamo_stage_processor`` for the AR->DiT models other than GLM-Image whose
processor carries a size (``runtime.pipelines``: HunyuanImage-3, MammothModa2), and only
where the installed Dynamo cannot call that processor itself:

* ai-dynamo 1.2.x/1.3.x dispatch source outputs only to a processor whose second parameter is
  named ``original_prompt``; HunyuanImage-3's is ``prompt``, MammothModa2's ``prompts``: every
  request raises ``TypeError`` before the processor runs.
* ai-dynamo 1.1.x calls every processor as ``(stage_list, engine_input_source,
  [original_prompt], requires_mm)`` (vLLM-Omni 0.20.0's processors take source outputs) and
  does not restore ``cumulative_token_ids`` after the shared-memory connector (which drops
  it); their processors read it from vLLM-Omni 0.20.0rc1 on (``AttributeError`` across
  processes).

``adapt(upstream, reads)`` returns a function with the parameters every release 1.1-1.7
dispatches, ``(source_outputs, original_prompt, requires_multimodal_data,
streaming_context)``: it reads the caller's convention from the argument types, hands the
upstream processor its source outputs (with ``cumulative_token_ids`` where only ``token_ids``
came across), in upstream's own convention, and a copy of the prompt carrying the size where
upstream reads it (``reads``, probed), taken from wherever the prompt has it. Upstream's
return value is passed through.
Removable when ai-dynamo < 1.4 leaves the supported range (1.4.0 accepts ``prompt`` and
restores the token field), and ai-dynamo < 1.6 with MammothModa2 <= 0.28 (``prompts``) too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from omni_sizefix.runtime import stage1_io
from omni_sizefix.runtime.patches import glm_image_processor as glm_image
from omni_sizefix.runtime.sizing import positive_int
from omni_sizefix.runtime.stage1_io import MM_KWARGS, TOP_LEVEL


def size_of(prompt: Mapping) -> tuple[int, int] | None:
    """(height, width) from ``mm_processor_kwargs`` or the top level; None when absent."""
    kwargs = prompt.get("mm_processor_kwargs")
    kwargs = kwargs if isinstance(kwargs, Mapping) else {}
    for height, width in (
        (kwargs.get("target_h"), kwargs.get("target_w")),
        (prompt.get("height"), prompt.get("width")),
    ):
        height, width = positive_int(height), positive_int(width)
        if height and width:
            return height, width
    return None


def sized(prompt: Any, reads: frozenset[str]) -> Any:
    """A copy of ``prompt`` with its size also where upstream reads it (``prompt`` if none)."""
    if not isinstance(prompt, Mapping) and prompt is not None:
        converted = glm_image.as_dict(prompt)
        prompt = converted or prompt
    if not isinstance(prompt, Mapping):
        return prompt
    size = size_of(prompt)
    if size is None:
        return prompt
    data = dict(prompt)
    if TOP_LEVEL in reads and MM_KWARGS not in reads:
        data.setdefault("height", size[0])
        data.setdefault("width", size[1])
    if MM_KWARGS in reads:
        existing = data.get("mm_processor_kwargs")
        kwargs = dict(existing) if isinstance(existing, Mapping) else {}
        kwargs.setdefault("target_h", size[0])
        kwargs.setdefault("target_w", size[1])
        data["mm_processor_kwargs"] = kwargs
    return data


def bridged(output: Any) -> Any:
    """``output``, or a view whose completions have ``cumulative_token_ids``."""
    completions = getattr(output, "outputs", None)
    if not completions or all(hasattr(c, "cumulative_token_ids") for c in completions):
        return output
    views = [
        c
        if hasattr(c, "cumulative_token_ids") or not hasattr(c, "token_ids")
        else stage1_io.CompletionView(c)
        for c in completions
    ]
    return stage1_io.OutputView(output, views)


def adapt(upstream: Callable[..., Any], reads: frozenset[str]) -> Callable[..., Any]:
    """``upstream`` behind the parameters every supported Dynamo dispatches (module doc)."""
    convention = stage1_io.convention_of(upstream)

    @stage1_io.stage1_processor
    def processor(arguments: stage1_io.CallerArguments) -> Any:
        outputs, prompt, requires, _, stage_list = arguments
        if stage_list:  # ai-dynamo 1.1: [original_prompt]
            prompt = prompt[0] if isinstance(prompt, list) and prompt else prompt
            requires = bool(requires)
        if isinstance(prompt, list):
            prompt = [sized(p, reads) for p in prompt]
        else:
            prompt = sized(prompt, reads)
        outputs = [bridged(o) for o in outputs]
        return stage1_io.call(upstream, outputs, prompt, requires, convention=convention)

    processor.__name__ = getattr(upstream, "__name__", "processor")
    processor.__qualname__ = processor.__name__
    processor.__doc__ = f"omni-sizefix adapter around {upstream.__module__}.{processor.__name__}"
    processor.__omni_sizefix_upstream__ = upstream  # type: ignore[attr-defined]
    return processor
