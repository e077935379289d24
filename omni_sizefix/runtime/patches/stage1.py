"""Patch: stage-1 (AR -> DiT) processors that every supported release pair runs right.

Target
    The stage-1 processor a Dynamo stage worker runs: vLLM-Omni's GLM-Image ``ar2diffusion``
    (``stage_input_processors.glm_image``), other models' processors and ``(source_outputs,
    ctx)`` processors; ``patches.stage_worker`` decides by probing which one runs.
How
    Every request still goes to vLLM-Omni's own function; only its arguments are fixed. The
    caller's convention is read from the argument types, upstream's from its parameter names.
    The numbered fixes (``REMOVALS``: ``stage1#N``):

1. Dispatch by name: ai-dynamo 1.2/1.3 call a processor only when its second parameter is
   ``original_prompt``; vLLM-Omni >= 0.20.0 names it ``prompt`` (``TypeError``).
2. Calling convention: ai-dynamo 1.1 and vLLM-Omni <= 0.20.0rc1 call ``(stage_list,
   engine_input_source, [prompt], requires_mm)``, later ones ``(source_outputs, prompt,
   requires_mm[, streaming_context])``. Upstream is called in its own.
3. Where the size is read: vLLM-Omni <= 0.18 reads only top-level ``height``/``width``,
   ai-dynamo 1.2+ sends only ``mm_processor_kwargs``. The size is resolved as vLLM-Omni
   0.20 does (``mm_processor_kwargs``, top level, 1024) and written in both on a copy.
4. Preview grid: vLLM-Omni <= 0.18 assumes a ``h//2 x w//2`` preview grid, not the
   scaffold's; where the probe finds the prior wrong, text-to-image's target grid is cut at
   the scaffold's offset.
5. Token field: vLLM-Omni >= 0.20.0rc1 reads ``cumulative_token_ids``, which ai-dynamo 1.1
   does not restore after the connector; a read-only view adds it.
6. Return type: vLLM-Omni >= 0.24 returns ``dict | None``; a stage-list caller (ai-dynamo
   1.1) gets ``[dict]``, and a ``ValueError`` instead of ``None``.
7. Other models (HunyuanImage-3, MammothModa2): ``adapt`` gives their processors fixes 1, 2
   and 5, with the size also where the probe found it read.
8. ``(source_outputs, ctx)`` processors (vllm-project/vllm-omni#4872, #6801), which no
   ai-dynamo release dispatches: ``legacy`` builds the context.

Importing this module imports no host code; vLLM-Omni is imported on the first call.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from omni_sizefix.runtime import settings, sizing

logger = logging.getLogger("omni_sizefix")

GLM_IMAGE_PROCESSORS = "vllm_omni.model_executor.stage_input_processors.glm_image"
GLM_IMAGE_PROCESSOR = f"{GLM_IMAGE_PROCESSORS}.ar2diffusion"
#: The package's GLM-Image processor (what the legacy stage config names).
PROCESSOR = "omni_sizefix.processors.glm_image.ar2diffusion"
STAGE_LIST = "stage_list"
SOURCE_OUTPUTS = "source_outputs"
TOP_LEVEL = settings.Shape.TOP_LEVEL.value
MM_KWARGS = settings.Shape.MM_KWARGS.value
BOTH = settings.Shape.BOTH.value
DEFAULT_SIDE = 1024
#: (height, width) of the GLM-Image probe: non-square, so both preview-grid rules differ.
PROBE_SIZE = (768, 1024)
#: Target-grid tokens of a synthetic output are numbered from here (traceable in the prior).
TARGET_TOKEN_BASE = 1000


# --- a synthetic AR output (stands for the GPU engine: no model weights here) ---------------


@dataclass
class SyntheticCompletion:
    """Stands for vLLM's ``CompletionOutput`` with vLLM-Omni's ``cumulative_token_ids``."""

    token_ids: list[int]
    cumulative_token_ids: list[int]
    index: int = 0
    text: str = ""
    finish_reason: str = "stop"
    multimodal_output: Any = None


@dataclass
class SyntheticAROutput:
    """Stands for the AR stage's ``RequestOutput``."""

    request_id: str
    outputs: list[SyntheticCompletion]
    prompt_token_ids: list[int] = field(default_factory=list)
    multimodal_output: dict = field(default_factory=dict)
    finished: bool = True


def ar_output(
    tokens: Iterable[int],
    *,
    request_id: str = "omni-sizefix-probe",
    prompt_token_ids: Iterable[int] = (),
    multimodal_output: Any = None,
    cumulative: bool = True,
) -> SyntheticAROutput:
    """A synthetic AR output of one completion (``cumulative`` False: no
    ``cumulative_token_ids``, as ai-dynamo 1.1's connector delivers it)."""
    ids = list(tokens)
    completion = SyntheticCompletion(ids, list(ids), multimodal_output=multimodal_output)
    if not cumulative:
        del completion.cumulative_token_ids
    return SyntheticAROutput(request_id, [completion], list(prompt_token_ids))


def t2i_tokens(grids: sizing.Grids) -> list[int]:
    """GLM-Image text-to-image tokens in the scaffold's layout: preview, target, EOS."""
    preview = [1] * (grids.preview[0] * grids.preview[1])
    target = [TARGET_TOKEN_BASE + i for i in range(grids.target[0] * grids.target[1])]
    return [*preview, *target, sizing.EOS_TOKEN_ID]


def glm_output(height: int, width: int, **kwargs: Any) -> SyntheticAROutput:
    """A synthetic GLM-Image text-to-image output for a pixel size (``ar_output`` options)."""
    return ar_output(t2i_tokens(sizing.grids_for(height, width)), **kwargs)


def expected_prior(height: int, width: int) -> list[int]:
    """The prior the DiT must receive for ``glm_output``: the target grid upsampled x2."""
    cols = width // sizing.FACTOR
    return [
        TARGET_TOKEN_BASE + (r // 2) * cols + (c // 2)
        for r in range(height // sizing.FACTOR * 2)
        for c in range(cols * 2)
    ]


# --- views and calling conventions ----------------------------------------------------------


class View:
    """A read-only view of ``wrapped`` with some attributes replaced; the original is kept."""

    def __init__(self, wrapped: Any, **replaced: Any) -> None:
        self._wrapped = wrapped
        vars(self).update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


def with_tokens(completion: Any, token_ids: list[int]) -> View:
    """A view of ``completion`` whose ``token_ids`` and ``cumulative_token_ids`` are these."""
    return View(completion, token_ids=token_ids, cumulative_token_ids=token_ids)


def bridged(output: Any) -> Any:
    """``output``, or a view whose completions all have ``cumulative_token_ids`` (fix 5)."""
    completions = getattr(output, "outputs", None) or []
    lacking = [
        hasattr(c, "token_ids") and not hasattr(c, "cumulative_token_ids") for c in completions
    ]
    if not any(lacking):
        return output
    views = [
        with_tokens(c, list(c.token_ids)) if lack else c
        for c, lack in zip(completions, lacking, strict=True)
    ]
    return View(output, outputs=views)


class Stage:
    """The ``stage_list`` item shape (``engine_outputs``) of stage-list callers."""

    def __init__(self, engine_outputs: list) -> None:
        self.engine_outputs = engine_outputs


def positional_names(function: Callable[..., Any]) -> list[str]:
    """The names of ``function``'s positional-or-keyword parameters."""
    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def convention_of(function: Callable[..., Any]) -> str:
    """``stage_list`` when the first two parameters are named so, else ``source_outputs``."""
    if positional_names(function)[:2] == ["stage_list", "engine_input_source"]:
        return STAGE_LIST
    return SOURCE_OUTPUTS


def is_ctx(function: Any) -> bool:
    """True when ``function`` takes exactly ``(source_outputs, ctx)`` (fix 8)."""
    try:
        return tuple(positional_names(function)) == ("source_outputs", "ctx")
    except (TypeError, ValueError):
        return False


def is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


class CallerArguments(NamedTuple):
    """A caller's four arguments, whatever its convention."""

    #: The AR outputs (a stage-list caller's first source stage's).
    outputs: list
    #: As the caller gave it (a list of prompts in the stage-list form).
    prompt: Any
    requires_mm: Any
    #: None in the stage-list form.
    streaming_context: Any
    stage_list: bool


def caller_convention(first: Any, second: Any) -> str:
    """How a processor was called: a stage list's items carry ``engine_outputs``, and
    ``engine_input_source`` is a list of stage ids."""
    if is_sequence(first) and first and hasattr(first[0], "engine_outputs"):
        return STAGE_LIST
    if is_sequence(second) and second and all(type(i) is int for i in second):
        return STAGE_LIST
    return SOURCE_OUTPUTS


def stage_list_outputs(stage_list: Sequence[Any], engine_input_source: Sequence[int]) -> list:
    """The AR outputs a stage-list caller hands over (its first source stage's)."""
    if not engine_input_source:
        raise ValueError("engine_input_source cannot be empty")
    source = engine_input_source[0]
    if source >= len(stage_list):
        raise IndexError(f"Invalid stage_id: {source}")
    if stage_list[source].engine_outputs is None:
        raise RuntimeError(f"Stage {source} has no outputs yet")
    return list(stage_list[source].engine_outputs)


def stage1_processor(body: Callable[[CallerArguments], Any]) -> Callable[..., Any]:
    """``body`` behind the four parameters every supported Dynamo dispatches (fix 1); a
    stage-list caller's arguments come in the same positions. Not ``functools.wraps``:
    ``inspect.signature`` would report ``body``'s."""

    def processor(
        source_outputs: Any,
        original_prompt: Any = None,
        requires_multimodal_data: Any = False,
        streaming_context: Any = None,
    ) -> Any:
        if caller_convention(source_outputs, original_prompt) == STAGE_LIST:
            outputs = stage_list_outputs(source_outputs, original_prompt)
            return body(
                CallerArguments(outputs, requires_multimodal_data, streaming_context, None, True)
            )
        return body(
            CallerArguments(
                list(source_outputs or []),
                original_prompt,
                requires_multimodal_data,
                streaming_context,
                False,
            )
        )

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(processor, name, getattr(body, name))
    return processor


@dataclass(frozen=True)
class Context:
    """vLLM-Omni's ``OrchestratorInputContext`` fields, where the installed one has none."""

    prompt: Any | None = None
    requires_multimodal_data: bool = False
    streaming_context: Any | None = None
    sampling_params: Any | None = None


def context(prompt: Any, requires_mm: Any = False, streaming_context: Any = None) -> Any:
    """The context a ``(source_outputs, ctx)`` processor reads."""
    try:
        module = importlib.import_module("vllm_omni.model_executor.stage_input_processors")
        cls = getattr(module, "OrchestratorInputContext", Context)
    except ImportError:
        cls = Context
    return cls(
        prompt=prompt,
        requires_multimodal_data=bool(requires_mm),
        streaming_context=streaming_context,
    )


def call(
    function: Callable[..., Any],
    outputs: list,
    prompt: Any,
    requires_mm: Any = False,
    *,
    convention: str | None = None,
) -> Any:
    """Call a stage-1 processor in its own convention, as vLLM-Omni's orchestrator does."""
    if is_ctx(function):
        return function(outputs, context(prompt, requires_mm))
    if (convention or convention_of(function)) == STAGE_LIST:
        return function([Stage(outputs)], [0], [prompt], requires_mm)
    return function(outputs, prompt, requires_mm)


# --- the size in a prompt: one reader, one writer -------------------------------------------


def as_dict(prompt: Any) -> dict:
    """A prompt as a dict, converted as upstream converts it (``{}`` if it cannot be)."""
    if isinstance(prompt, Mapping):
        return dict(prompt)
    if hasattr(prompt, "_asdict"):
        return dict(prompt._asdict())
    return dict(vars(prompt)) if hasattr(prompt, "__dict__") else {}


def read_size(prompt: Mapping) -> tuple[int | None, int | None]:
    """(height, width) as vLLM-Omni >= 0.20.0rc1 reads them: ``mm_processor_kwargs``, then
    top-level ``height``/``width`` (None: neither)."""
    kwargs = prompt.get("mm_processor_kwargs")
    kwargs = kwargs if isinstance(kwargs, Mapping) else {}
    side = sizing.positive_int
    height = side(kwargs.get("target_h")) or side(prompt.get("height"))
    width = side(kwargs.get("target_w")) or side(prompt.get("width"))
    return height, width


def requested_size(prompt: Mapping) -> tuple[int, int]:
    """``read_size``, a missing side being vLLM-Omni's default 1024."""
    height, width = read_size(prompt)
    return height or DEFAULT_SIDE, width or DEFAULT_SIDE


def write_size(prompt: Any, height: int, width: int, shape: str) -> dict:
    """A copy of ``prompt`` with the size in ``shape`` (top-level, mm-kwargs, both)."""
    data = as_dict(prompt)
    if shape != MM_KWARGS:
        data.update(height=height, width=width)
    if shape != TOP_LEVEL:
        existing = data.get("mm_processor_kwargs")
        kwargs = dict(existing) if isinstance(existing, Mapping) else {}
        data["mm_processor_kwargs"] = {**kwargs, "target_h": height, "target_w": width}
    return data


def probe_prompt(shape: str, height: int, width: int) -> dict:
    """A text-to-image ``original_prompt`` with the size only in ``shape``."""
    return write_size({"prompt": "a probe", "modalities": ["image"]}, height, width, shape)


# --- what reaches the DiT -------------------------------------------------------------------


def dit_input(result: Any) -> dict | None:
    """The one DiT input a processor returned (a one-element list unwrapped); None: none."""
    if isinstance(result, list):
        result = result[0] if len(result) == 1 else None
    return result if isinstance(result, dict) else None


def dit_size(result: Any) -> tuple[Any, Any] | None:
    """(height, width) of the DiT input in ``result`` (None: no size found)."""
    found = dit_input(result) or {}
    if "height" in found or "width" in found:
        return found.get("height"), found.get("width")
    info = found.get("additional_information")
    if isinstance(info, dict) and "image_height" in info:  # MammothModa2 <= 0.28
        sides = info.get("image_height"), info.get("image_width")
        return tuple(v[0] if isinstance(v, list) and v else v for v in sides)  # type: ignore[return-value]
    return None


def dit_prior(result: Any) -> list[int] | None:
    """The GLM-Image prior (``extra.prior_token_ids``) of the DiT input, as ints."""
    found = dit_input(result)
    prior = (found.get("extra") or {}).get("prior_token_ids") if found is not None else None
    return None if prior is None else sizing.as_ints(prior)


def dit_verdict(result: Any, height: int, width: int) -> str:
    """``ok`` when ``result`` is one DiT input of (height, width) with ``glm_output``'s prior."""
    if isinstance(result, list) and len(result) != 1:
        return f"{len(result)} DiT inputs"
    if dit_input(result) is None:
        return "no DiT input"
    got = dit_size(result) or (None, None)
    if got != (height, width):
        return f"wrong size {got[1]}x{got[0]}"
    prior = dit_prior(result)
    if prior != expected_prior(height, width):
        return f"wrong prior ({len(prior or [])} tokens)"
    return "ok"


def upstream_verdict(function: Any, shape: str = MM_KWARGS) -> str:
    """What ``function`` makes of a ``PROBE_SIZE`` request with the size in ``shape``."""
    height, width = PROBE_SIZE
    try:
        result = call(function, [glm_output(height, width)], probe_prompt(shape, height, width))
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc}"
    return dit_verdict(result, height, width)


# --- GLM-Image's processor (fixes 1-6) ------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """The installed vLLM-Omni GLM-Image processor and how it behaves."""

    function: Callable[..., Any]
    convention: str
    #: It takes a fourth ``streaming_context`` parameter.
    takes_streaming_context: bool
    #: It slices the prior at the scaffold's preview-grid offset (vLLM-Omni >= 0.20.0rc1).
    scaffold_grid: bool


@functools.lru_cache(maxsize=1)
def upstream() -> Upstream:
    """Import and probe vLLM-Omni's GLM-Image ``ar2diffusion`` (once per process). A probe
    that raises says nothing of the prior: it is left to upstream, with one WARNING."""
    function = importlib.import_module(GLM_IMAGE_PROCESSORS).ar2diffusion
    convention = convention_of(function)
    verdict = upstream_verdict(function, BOTH)  # the size everywhere: only the prior can fail
    if verdict.startswith("raised"):
        logger.warning(
            "omni-sizefix: could not probe vLLM-Omni's GLM-Image ar2diffusion (%s); its prior "
            "is taken as it slices it",
            verdict,
        )
    found = Upstream(
        function,
        convention,
        convention == SOURCE_OUTPUTS and len(positional_names(function)) >= 4,
        "prior" not in verdict,
    )
    logger.info(
        "omni-sizefix: GLM-Image stage 1 delegates to vLLM-Omni %s ar2diffusion (%s form)%s",
        settings.installed_version("vllm-omni"),
        convention,
        "" if found.scaffold_grid else "; its preview grid is wrong, the prior is sliced here",
    )
    return found


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
    return isinstance(mm_data, Mapping) and any(
        mm_data.get(k) for k in ("image", "img2img", "images")
    )


def target_tokens(token_ids: Sequence[int], height: int, width: int) -> list[int] | None:
    """The target grid (+ EOS) cut at the scaffold's offset (fix 4); None when the legacy
    preview grid equals the scaffold's, or the output is too short to hold both grids."""
    grids = sizing.grids_for(height, width)
    rows, cols = grids.target
    if (rows // 2, cols // 2) == grids.preview:
        return None
    ids = sizing.as_ints(token_ids)
    if ids and ids[-1] == sizing.EOS_TOKEN_ID:
        ids = ids[:-1]
    start = grids.preview[0] * grids.preview[1]
    end = start + rows * cols
    if len(ids) < end:
        logger.warning(
            "omni-sizefix: the GLM-Image AR output has %d tokens, %dx%d needs %d; "
            "left to vLLM-Omni's parser",
            len(ids), width, height, end,
        )  # fmt: skip
        return None
    return [*ids[start:end], sizing.EOS_TOKEN_ID]


def prepared_output(ar_output: Any, prompt: Mapping, *, scaffold_grid: bool) -> Any:
    """``ar_output``, or a view of it in the layout (fix 4) and fields (fix 5) upstream reads."""
    outputs = getattr(ar_output, "outputs", None)
    if not outputs:
        return ar_output
    completion = outputs[0]
    tokens = getattr(completion, "cumulative_token_ids", None)
    needs_field = tokens is None
    if needs_field:
        tokens = getattr(completion, "token_ids", None)
    if tokens is None:
        return ar_output
    realigned = None
    if not scaffold_grid and not is_image_to_image(ar_output, prompt):
        realigned = target_tokens(tokens, *requested_size(prompt))
    if realigned is None and not needs_field:
        return ar_output
    view = with_tokens(completion, sizing.as_ints(tokens) if realigned is None else realigned)
    return View(ar_output, outputs=[view, *list(outputs)[1:]])


def sized_prompt(prompt: Any) -> dict:
    """A copy of ``prompt`` with its resolved size (default 1024) in both shapes (fix 3)."""
    data = as_dict(prompt)
    return write_size(data, *requested_size(data), BOTH)


@stage1_processor
def ar2diffusion(arguments: CallerArguments) -> Any:
    """GLM-Image AR outputs -> the DiT input, at the requested size, on every release pair:
    vLLM-Omni's own ``ar2diffusion`` with fixes 1-6 (module doc)."""
    outputs, prompt, requires_mm, streaming, stage_list = arguments
    found = upstream()
    raw = list(prompt) if isinstance(prompt, list) else [prompt if prompt is not None else {}]
    prompts = [sized_prompt(p) for p in raw]
    views = [
        prepared_output(out, prompts[i] if i < len(prompts) else sized_prompt({}),
                        scaffold_grid=found.scaffold_grid)
        for i, out in enumerate(outputs)
    ]  # fmt: skip
    if found.convention == STAGE_LIST:
        result = found.function([Stage(views)], [0], prompts, requires_mm)
    else:
        prompt_arg = prompts if stage_list or isinstance(prompt, list) else prompts[0]
        extra = (streaming,) if found.takes_streaming_context else ()
        result = found.function(views, prompt_arg, requires_mm, *extra)
    if not stage_list or isinstance(result, list):
        return result
    if result is None:
        raise ValueError(
            "vLLM-Omni's GLM-Image ar2diffusion built no DiT input: the AR output could not "
            "be parsed (see its warning above)"
        )
    return [result]


# --- other models' processors (fix 7) and (source_outputs, ctx) ones (fix 8) ----------------


def _named_after(adapted: Callable[..., Any], upstream: Callable[..., Any], what: str) -> None:
    adapted.__name__ = adapted.__qualname__ = getattr(upstream, "__name__", "processor")
    adapted.__doc__ = f"omni-sizefix {what} around {adapted.__name__}"
    adapted.__omni_sizefix_upstream__ = upstream  # type: ignore[attr-defined]


def _first(prompt: Any) -> Any:
    """A stage-list caller's ``[original_prompt]`` as the prompt."""
    return prompt[0] if isinstance(prompt, list) and prompt else prompt


def adapt(upstream: Callable[..., Any], reads: frozenset[str]) -> Callable[..., Any]:
    """``upstream`` (another model's processor) behind the parameters every supported Dynamo
    dispatches, with ``cumulative_token_ids`` restored and the size also where it ``reads``."""
    convention = convention_of(upstream)
    shape = MM_KWARGS if MM_KWARGS in reads else TOP_LEVEL if TOP_LEVEL in reads else None

    def sized(prompt: Any) -> Any:
        if prompt is None or shape is None:
            return prompt
        data = prompt if isinstance(prompt, Mapping) else as_dict(prompt)
        height, width = read_size(data) if data else (None, None)
        return write_size(data, height, width, shape) if height and width else prompt

    @stage1_processor
    def processor(arguments: CallerArguments) -> Any:
        outputs, prompt, requires, _, stage_list = arguments
        if stage_list:
            prompt, requires = _first(prompt), bool(requires)
        prompt = [sized(p) for p in prompt] if isinstance(prompt, list) else sized(prompt)
        outputs = [bridged(o) for o in outputs]
        return call(upstream, outputs, prompt, requires, convention=convention)

    _named_after(processor, upstream, "adapter")
    return processor


def legacy(processor: Callable[..., Any]) -> Callable[..., Any]:
    """A ``(source_outputs, ctx)`` processor behind the parameters every supported Dynamo
    dispatches (fix 8)."""

    @stage1_processor
    def adapted(arguments: CallerArguments) -> Any:
        outputs, prompt, requires, streaming, stage_list = arguments
        prompt = _first(prompt) if stage_list else prompt
        return processor(outputs, context(prompt, requires, streaming))

    _named_after(adapted, processor, "(source_outputs, ctx) adapter")
    return adapted
