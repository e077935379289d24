"""Patch: a GLM-Image stage-1 processor (AR -> DiT) that is right on every supported release pair.

The shipped legacy stage config names it for stage 1 by its stable path (kept for deployed
configs): ``custom_process_input_func: omni_sizefix.processors.glm_image.ar2diffusion``. With the
deploy schema vLLM-Omni takes stage 1's processor from its GLM-Image pipeline
(``vllm_omni/model_executor/models/glm_image/pipeline.py``), not from the YAML, so this module
is not used there. Every host that takes the deploy schema runs an upstream processor that
is already right (see ``omni_sizefix.tools.stage_configs``).

Every request goes to vLLM-Omni's own ``ar2diffusion``
(``vllm_omni.model_executor.stage_input_processors.glm_image``). This module only changes
the arguments where a release pair would get stage 1 wrong:

1. Dispatch by parameter name
   Target: ``OmniStageWorker._process_stage_inputs`` in ai-dynamo 1.2.x/1.3.x.
   Why: it calls a source-outputs processor only when the second parameter is named
   ``original_prompt``. vLLM-Omni >= 0.20.0 names it ``prompt``, so stage 1 raises
   ``TypeError`` before the processor runs.
   How: this function's parameters are ``(source_outputs, original_prompt,
   requires_multimodal_data, streaming_context)``. ai-dynamo 1.2+ dispatch that as
   source outputs (1.4+ accept either name).
   Upstream: ai-dynamo 1.4.0 also accepts ``prompt`` (``_accepts_source_outputs_processor``).
   Removable: when ai-dynamo < 1.4 leaves the supported range.

2. Calling convention
   Target: every caller.
   Why: ai-dynamo 1.1.x (and vLLM-Omni's orchestrator up to 0.20.0rc1) always call
   ``(stage_list, engine_input_source, [original_prompt], requires_mm)`` positionally,
   whatever the parameter names. ai-dynamo 1.2+ (with the names above) and vLLM-Omni >= 0.20.0
   call ``(source_outputs, original_prompt, requires_mm[, streaming_context])``. The installed
   upstream processor accepts only one of the two.
   How: the caller's convention is read from the argument types at call time: the items of a
   stage list carry ``engine_outputs``, and ``engine_input_source`` is a list of stage ids.
   Upstream is called in its own convention, which is read from its parameter names.
   Upstream: vLLM-Omni 0.20.0 changed the convention (0.20.0rc1 still has the old one).
   Removable: when ai-dynamo 1.1.x and vLLM-Omni < 0.20.0 leave the supported range.

3. Where the size is read
   Target: ``ar2diffusion`` in vLLM-Omni <= 0.18 reads only top-level ``height``/``width``.
   ai-dynamo 1.2+ send only ``mm_processor_kwargs.target_h/target_w``.
   How: the size is resolved as vLLM-Omni >= 0.20.0rc1 does it (``mm_processor_kwargs``, then
   top-level ``height``/``width``, then 1024) and written in both shapes on a copy of the
   prompt. The caller's prompt is not changed.
   Upstream: vLLM-Omni 0.20.0rc1 reads ``mm_processor_kwargs`` (vllm-project/vllm-omni#3034).
   Removable: when vLLM-Omni < 0.20.0rc1 leaves the supported range.

4. Preview grid
   Target: ``_parse_generated_tokens`` in vLLM-Omni <= 0.18.
   Why: it assumes a ``token_h//2 x token_w//2`` preview grid. GLM-Image's scaffold asks for
   ``int(sqrt(H/W)*16) x int(sqrt(W/H)*16)``, so for every size but 1024x1024 the prior is
   sliced at the wrong offset.
   How: probed once per process (``prior_is_right``: upstream's own ``ar2diffusion`` on a
   synthetic non-square output, the one probe ``runtime.stage1_profile`` also reports).
   Where upstream slices wrong, this module cuts the target grid out at the scaffold's offset
   and hands upstream only those tokens. Upstream's parser then takes them from offset 0 and
   still does the upsampling and builds the DiT input. Image-to-image outputs have no preview
   grid and are not touched.
   Upstream: fixed in vLLM-Omni 0.20.0rc1.
   Removable: when vLLM-Omni < 0.20.0rc1 leaves the supported range.

5. Token field
   Target: ``ar2diffusion`` in vLLM-Omni >= 0.20.0rc1 reads ``output.cumulative_token_ids``.
   A completion that has only ``token_ids`` (ai-dynamo 1.1.x does not add it) raises
   ``AttributeError``.
   How: a read-only view adds ``cumulative_token_ids = token_ids``, as
   ``_ensure_cumulative_token_ids`` in ai-dynamo 1.2+ does.
   Removable: when ai-dynamo 1.1.x leaves the supported range.

6. Return type
   vLLM-Omni <= 0.23 returns ``list[dict]``; >= 0.24 returns ``dict | None``. When called in
   the stage-list convention (ai-dynamo 1.1.x) with a newer upstream, this module returns
   ``[dict]``. If parsing fails, it raises ``ValueError`` instead of handing ``None`` to the
   DiT. When called with source outputs, upstream's own return value is passed through:
   that is what vLLM-Omni's orchestrator of the same release expects, and every Dynamo
   release unwraps a one-element list.
   Removable: when ai-dynamo 1.1.x with vLLM-Omni >= 0.24 leaves the supported range.

At module import this file imports only the standard library and omni_sizefix. vLLM-Omni
(and torch with it) is imported on the first call.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omni_sizefix.runtime import glm_layout, stage1_io, version_policy
from omni_sizefix.runtime.host_modules import GLM_IMAGE_PROCESSORS as UPSTREAM_MODULE
from omni_sizefix.runtime.sizing import positive_int
from omni_sizefix.runtime.stage1_io import (
    SOURCE_OUTPUTS,
    STAGE_LIST,
    CallerArguments,
    Stage,
    convention_of,
    is_sequence,
    positional_names,
    stage1_processor,
)

logger = logging.getLogger("omni_sizefix")

#: The stable qualified name of this module's processor (what the shipped legacy config names;
#: ``omni_sizefix.processors.glm_image`` re-exports it).
PROCESSOR = "omni_sizefix.processors.glm_image.ar2diffusion"

DEFAULT_SIDE = 1024
_I2I_IMAGE_KEYS = ("image", "img2img", "images")


@dataclass(frozen=True)
class Upstream:
    """The installed vLLM-Omni GLM-Image processor and how it behaves."""

    function: Callable[..., Any]
    #: ``stage_list`` (vLLM-Omni <= 0.20.0rc1) or ``source_outputs`` (>= 0.20.0).
    convention: str
    #: It takes a fourth ``streaming_context`` parameter.
    takes_streaming_context: bool
    #: It slices the prior at the scaffold's preview-grid offset (vLLM-Omni >= 0.20.0rc1).
    scaffold_grid: bool


def prior_is_right(function: Any) -> bool:
    """True when upstream hands the DiT the target grid of a non-square request.

    The one probe of upstream's prior: ``stage1_io.upstream_verdict`` calls upstream's
    ``ar2diffusion`` on a synthetic output with the size in every place it reads, so only the
    prior can be wrong. When that call fails, nothing can be said of the prior: the prior is
    left to upstream, with one WARNING naming the failure.
    """
    verdict = stage1_io.upstream_verdict(function, "both")
    if verdict.startswith("raised"):
        logger.warning(
            "omni-sizefix: could not probe vLLM-Omni's GLM-Image ar2diffusion (%s); its prior "
            "is taken as it slices it",
            verdict,
        )
    return "prior" not in verdict


@functools.lru_cache(maxsize=1)
def upstream() -> Upstream:
    """Import and describe vLLM-Omni's GLM-Image ``ar2diffusion`` (once per process)."""
    module = importlib.import_module(UPSTREAM_MODULE)
    function = module.ar2diffusion
    convention = convention_of(function)
    found = Upstream(
        function=function,
        convention=convention,
        takes_streaming_context=convention == SOURCE_OUTPUTS
        and len(positional_names(function)) >= 4,
        scaffold_grid=prior_is_right(function),
    )
    logger.info(
        "omni-sizefix: GLM-Image stage 1 delegates to vLLM-Omni %s ar2diffusion (%s form)%s",
        version_policy.installed_version("vllm-omni"),
        convention,
        "" if found.scaffold_grid else "; its preview grid is wrong, the prior is sliced here",
    )
    return found


# --- the caller's side ------------------------------------------------------------------


def as_dict(prompt: Any) -> dict:
    """A prompt as a dict, converted the way upstream converts it (``{}`` if it cannot)."""
    if isinstance(prompt, Mapping):
        return dict(prompt)
    if hasattr(prompt, "_asdict"):
        return dict(prompt._asdict())
    if hasattr(prompt, "__dict__"):
        return dict(vars(prompt))
    return {}


def requested_size(prompt: Mapping) -> tuple[int, int]:
    """(height, width): ``mm_processor_kwargs.target_h/target_w``, then top level, then 1024."""
    kwargs = prompt.get("mm_processor_kwargs")
    kwargs = kwargs if isinstance(kwargs, Mapping) else {}
    height = positive_int(kwargs.get("target_h")) or positive_int(prompt.get("height"))
    width = positive_int(kwargs.get("target_w")) or positive_int(prompt.get("width"))
    return height or DEFAULT_SIDE, width or DEFAULT_SIDE


def sized_prompt(prompt: Any) -> dict:
    """A copy of ``prompt`` with its resolved size in both shapes every upstream reads."""
    data = as_dict(prompt)
    height, width = requested_size(data)
    existing = data.get("mm_processor_kwargs")
    kwargs = dict(existing) if isinstance(existing, Mapping) else {}
    kwargs.update(target_h=height, target_w=width)
    data.update(mm_processor_kwargs=kwargs, height=height, width=width)
    return data


def is_image_to_image(ar_output: Any, prompt: Mapping) -> bool:
    """Any of the signals an upstream release uses for image-to-image."""
    mm_output = getattr(ar_output, "multimodal_output", None)
    if isinstance(mm_output, Mapping):
        ids = mm_output.get("ids")
        if mm_output.get("prior_token_image_ids") is not None:
            return True
        if isinstance(ids, Mapping) and ids.get("prior_image") is not None:
            return True
    modalities = prompt.get("modalities")
    if is_sequence(modalities) and "img2img" in modalities:
        return True
    mm_data = prompt.get("multi_modal_data")
    return isinstance(mm_data, Mapping) and any(mm_data.get(k) for k in _I2I_IMAGE_KEYS)


# --- token views ------------------------------------------------------------------------


def target_tokens(token_ids: Sequence[int], height: int, width: int) -> list[int] | None:
    """The target grid (+ EOS) cut at the scaffold's offset; None when not needed or possible.

    None when the legacy ``//2`` preview grid equals the scaffold's (upstream is right), or
    when the output is too short to hold the preview and target grids.
    """
    grids = glm_layout.grids_for(height, width)
    rows, cols = grids.target
    if (rows // 2, cols // 2) == grids.preview:
        return None
    ids = glm_layout.as_ints(token_ids)
    if ids and ids[-1] == glm_layout.EOS_TOKEN_ID:
        ids = ids[:-1]
    start = grids.preview[0] * grids.preview[1]
    end = start + rows * cols
    if len(ids) < end:
        logger.warning(
            "omni-sizefix: the GLM-Image AR output has %d tokens, %dx%d needs %d; "
            "left to vLLM-Omni's parser",
            len(ids),
            width,
            height,
            end,
        )
        return None
    return [*ids[start:end], glm_layout.EOS_TOKEN_ID]


def prepared_output(ar_output: Any, prompt: Mapping, *, scaffold_grid: bool) -> Any:
    """``ar_output``, or a view of it in the layout and fields upstream reads.

    ``scaffold_grid`` False: upstream slices at the legacy preview-grid offset, so a
    text-to-image output is cut to its target grid here.
    """
    outputs = getattr(ar_output, "outputs", None)
    if not outputs:
        return ar_output
    completion = outputs[0]
    tokens = getattr(completion, "cumulative_token_ids", None)
    bridged = tokens is None
    if bridged:
        tokens = getattr(completion, "token_ids", None)
    if tokens is None:
        return ar_output
    realigned = None
    if not scaffold_grid and not is_image_to_image(ar_output, prompt):
        realigned = target_tokens(tokens, *requested_size(prompt))
    if realigned is None and not bridged:
        return ar_output
    ids = realigned if realigned is not None else glm_layout.as_ints(tokens)
    view = stage1_io.CompletionView(completion, ids)
    return stage1_io.OutputView(ar_output, [view, *list(outputs)[1:]])


# --- the processor ----------------------------------------------------------------------


def _delegate(
    outputs: list, prompt: Any, requires_mm: Any, streaming_context: Any, *, as_list: bool
) -> Any:
    found = upstream()
    raw = list(prompt) if isinstance(prompt, list) else [prompt if prompt is not None else {}]
    prompts = [sized_prompt(p) for p in raw]
    default = sized_prompt({})
    views = [
        prepared_output(
            out, prompts[i] if i < len(prompts) else default, scaffold_grid=found.scaffold_grid
        )
        for i, out in enumerate(outputs)
    ]
    if found.convention == STAGE_LIST:
        return found.function([Stage(views)], [0], prompts, requires_mm)
    prompt_arg = prompts if as_list else prompts[0]
    if found.takes_streaming_context:
        return found.function(views, prompt_arg, requires_mm, streaming_context)
    return found.function(views, prompt_arg, requires_mm)


@stage1_processor
def ar2diffusion(arguments: CallerArguments) -> Any:
    """GLM-Image AR outputs -> the DiT input, at the requested size, on every release pair.

    Accepts both calling conventions (see the module docstring), through the parameters
    ``(source_outputs, original_prompt=None, requires_multimodal_data=False,
    streaming_context=None)`` (``stage1_io.stage1_processor``).
    """
    outputs, prompt, requires_mm, context, stage_list = arguments
    if stage_list:
        result = _delegate(outputs, prompt, requires_mm, None, as_list=True)
        if isinstance(result, list):
            return result
        if result is None:
            raise ValueError(
                "vLLM-Omni's GLM-Image ar2diffusion built no DiT input: the AR output could "
                "not be parsed (see its warning above)"
            )
        return [result]
    return _delegate(outputs, prompt, requires_mm, context, as_list=isinstance(prompt, list))
