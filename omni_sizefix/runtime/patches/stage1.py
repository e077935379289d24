"""Patch: stage 1 (AR -> DiT) processors that every supported release pair runs right.

Target
    The stage-1 processor a Dynamo stage worker runs: vLLM-Omni's GLM-Image ``ar2diffusion``
    (``vllm_omni.model_executor.stage_input_processors.glm_image``), other models'
    processors, and ``(source_outputs, ctx)`` processors. ``patches.stage_worker`` decides,
    by probing, which runs; the legacy stage config names :data:`PROCESSOR` directly.
How
    Every request still goes to vLLM-Omni's own function; only its arguments are fixed.
    The caller's convention is read from the argument types at call time, upstream's from
    its parameter names. The numbered fixes (``REMOVALS``: ``stage1#N``):

1. Dispatch by name: ai-dynamo 1.2/1.3 call a source-outputs processor only when its second
   parameter is ``original_prompt``; vLLM-Omni >= 0.20.0 names it ``prompt`` (``TypeError``).
   The package's processors take ``(source_outputs, original_prompt,
   requires_multimodal_data, streaming_context)``. Removable: ai-dynamo 1.4.0 accepts
   ``prompt`` (``_accepts_source_outputs_processor``).
2. Calling convention: ai-dynamo 1.1 (and vLLM-Omni <= 0.20.0rc1) call ``(stage_list,
   engine_input_source, [prompt], requires_mm)``; later ones ``(source_outputs, prompt,
   requires_mm[, streaming_context])``. Upstream is called in its own. Removable: ai-dynamo
   1.2 and vLLM-Omni 0.20.0 call with source outputs.
3. Where the size is read: vLLM-Omni <= 0.18 reads only top-level ``height``/``width``;
   ai-dynamo 1.2+ send only ``mm_processor_kwargs``. The size is resolved as vLLM-Omni
   >= 0.20.0rc1 does (``mm_processor_kwargs``, top level, 1024) and written in both shapes on
   a copy. Removable: vLLM-Omni 0.20.0rc1 reads ``mm_processor_kwargs`` (vllm-omni#3034).
4. Preview grid: vLLM-Omni <= 0.18's ``_parse_generated_tokens`` assumes a ``h//2 x w//2``
   preview grid, not the scaffold's ``int(sqrt(H/W)*16) x int(sqrt(W/H)*16)``; probed once
   (``prior_is_right``), the target grid is then cut out at the scaffold's offset for
   text-to-image. Removable: fixed in vLLM-Omni 0.20.0rc1.
5. Token field: vLLM-Omni >= 0.20.0rc1 reads ``cumulative_token_ids``, which ai-dynamo 1.1
   does not restore after the shared-memory connector; a read-only view adds it. Removable:
   ai-dynamo 1.2 restores it (``_ensure_cumulative_token_ids``).
6. Return type: vLLM-Omni >= 0.24 returns ``dict | None``; a stage-list caller (ai-dynamo 1.1)
   gets ``[dict]``, and a ``ValueError`` instead of ``None``. Removable: ai-dynamo 1.2 unwraps
   upstream's own return value.
7. Other models (HunyuanImage-3, MammothModa2): ``adapt`` gives their processor fixes 1, 2 and
   5, with the size also where the probe found it read. Removable: ai-dynamo 1.4 dispatches
   ``prompt``; MammothModa2 <= 0.28 names it ``prompts``, which ai-dynamo 1.4/1.5 do not.
8. ``(source_outputs, ctx)`` processors (vLLM-Omni's refactor, RFC vllm-project/vllm-omni#4872,
   PR #6801): no ai-dynamo release up to 1.7.0.dev dispatches them; ``legacy`` builds the
   context (vLLM-Omni's ``OrchestratorInputContext`` when installed). Removable: once every
   supported ai-dynamo dispatches them.

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

#: vLLM-Omni's GLM-Image processors module and its ``ar2diffusion``.
GLM_IMAGE_PROCESSORS = "vllm_omni.model_executor.stage_input_processors.glm_image"
GLM_IMAGE_PROCESSOR = f"{GLM_IMAGE_PROCESSORS}.ar2diffusion"
#: The stable name of the package's GLM-Image processor (what the legacy config names).
PROCESSOR = "omni_sizefix.processors.glm_image.ar2diffusion"
STAGE_LIST = "stage_list"
SOURCE_OUTPUTS = "source_outputs"
#: The places a prompt carries the size.
TOP_LEVEL = settings.Shape.TOP_LEVEL.value
MM_KWARGS = settings.Shape.MM_KWARGS.value
BOTH = settings.Shape.BOTH.value
DEFAULT_SIDE = 1024
PROBE_REQUEST_ID = "omni-sizefix-probe"
#: (height, width) of the GLM-Image probe: non-square, so both preview-grid rules differ.
PROBE_SIZE = (768, 1024)
PREVIEW_TOKEN_ID = 1
#: Target-grid tokens of a synthetic output are numbered from here (traceable in the prior).
TARGET_TOKEN_BASE = 1000


# --- a synthetic AR output (stands for the GPU engine: no model weights here) ---------------


@dataclass
class SyntheticCompletion:
    """Synthetic stand-in for vLLM's ``CompletionOutput`` with vLLM-Omni's
    ``cumulative_token_ids``."""

    token_ids: list[int]
    cumulative_token_ids: list[int]
    index: int = 0
    text: str = ""
    finish_reason: str = "stop"
    multimodal_output: Any = None


@dataclass
class SyntheticAROutput:
    """Synthetic stand-in for the AR stage's ``RequestOutput``."""

    request_id: str
    outputs: list[SyntheticCompletion]
    prompt_token_ids: list[int] = field(default_factory=list)
    multimodal_output: dict = field(default_factory=dict)
    finished: bool = True


def ar_output(
    tokens: Iterable[int],
    *,
    request_id: str = PROBE_REQUEST_ID,
    prompt_token_ids: Iterable[int] = (),
    multimodal_output: Any = None,
    cumulative: bool = True,
) -> SyntheticAROutput:
    """A synthetic AR output whose one completion emitted ``tokens`` (``cumulative`` False: no
    ``cumulative_token_ids`` attribute, as ai-dynamo 1.1's connector delivers it)."""
    ids = list(tokens)
    completion = SyntheticCompletion(ids, list(ids), multimodal_output=multimodal_output)
    if not cumulative:
        del completion.cumulative_token_ids
    return SyntheticAROutput(request_id, [completion], list(prompt_token_ids))


def t2i_tokens(grids: sizing.Grids) -> list[int]:
    """A GLM-Image text-to-image AR output laid out as the scaffold asks: preview, target, EOS."""
    preview = [PREVIEW_TOKEN_ID] * (grids.preview[0] * grids.preview[1])
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


# --- views ----------------------------------------------------------------------------------


class CompletionView:
    """Read-only view of a completion with ``token_ids`` and ``cumulative_token_ids`` set to
    ``token_ids`` (default: the completion's own); the original is kept."""

    def __init__(self, completion: Any, token_ids: list[int] | None = None) -> None:
        self._completion = completion
        self.token_ids = self.cumulative_token_ids = (
            list(completion.token_ids) if token_ids is None else token_ids
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completion, name)


class OutputView:
    """Read-only view of an AR request output with other completions; the original is kept."""

    def __init__(self, output: Any, completions: list) -> None:
        self._output = output
        self.outputs = completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._output, name)


def bridged(output: Any) -> Any:
    """``output``, or a view whose completions have ``cumulative_token_ids`` (fix 5)."""
    completions = getattr(output, "outputs", None)
    if not completions or all(hasattr(c, "cumulative_token_ids") for c in completions):
        return output
    views = [
        CompletionView(c)
        if hasattr(c, "token_ids") and not hasattr(c, "cumulative_token_ids")
        else c
        for c in completions
    ]
    return OutputView(output, views)


# --- calling conventions --------------------------------------------------------------------


class Stage:
    """The ``stage_list`` item shape (``engine_outputs``) of stage-list-era callers."""

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
    """A sequence that is not a string."""
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
    #: The caller used the stage-list form.
    stage_list: bool


def caller_convention(first: Any, second: Any) -> str:
    """How a caller called a processor, from its first two arguments: the items of a stage
    list carry ``engine_outputs``, and ``engine_input_source`` is a list of stage ids."""
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


def caller_arguments(first: Any, second: Any, third: Any, fourth: Any) -> CallerArguments:
    """A processor's four positional arguments read in the caller's convention."""
    if caller_convention(first, second) == STAGE_LIST:
        return CallerArguments(stage_list_outputs(first, second), third, fourth, None, True)
    return CallerArguments(list(first or []), second, third, fourth, False)


def stage1_processor(body: Callable[[CallerArguments], Any]) -> Callable[..., Any]:
    """``body`` as a processor with exactly the four parameters every supported Dynamo
    dispatches (fix 1); a stage-list caller's four arguments come in the same positions.
    Not ``functools.wraps``: ``__wrapped__`` would make ``inspect.signature`` report
    ``body``'s."""

    def processor(
        source_outputs: Any,
        original_prompt: Any = None,
        requires_multimodal_data: Any = False,
        streaming_context: Any = None,
    ) -> Any:
        return body(
            caller_arguments(
                source_outputs, original_prompt, requires_multimodal_data, streaming_context
            )
        )

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(processor, name, getattr(body, name))
    return processor


@dataclass(frozen=True)
class Context:
    """Stand-in for vLLM-Omni's ``OrchestratorInputContext`` (same fields) where the installed
    vLLM-Omni has none."""

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
    """Call a stage-1 processor on ``outputs`` in its own convention (``convention``: known
    already), as vLLM-Omni's orchestrator does."""
    if is_ctx(function):
        return function(outputs, context(prompt, requires_mm))
    if (convention or convention_of(function)) == STAGE_LIST:
        return function([Stage(outputs)], [0], [prompt], requires_mm)
    return function(outputs, prompt, requires_mm)


# --- the size in a prompt: one reader, one writer -------------------------------------------


def as_dict(prompt: Any) -> dict:
    """A prompt as a dict, converted the way upstream converts it (``{}`` if it cannot)."""
    if isinstance(prompt, Mapping):
        return dict(prompt)
    if hasattr(prompt, "_asdict"):
        return dict(prompt._asdict())
    return dict(vars(prompt)) if hasattr(prompt, "__dict__") else {}


def read_size(prompt: Mapping) -> tuple[int | None, int | None]:
    """(height, width) as vLLM-Omni >= 0.20.0rc1 reads them: ``mm_processor_kwargs``
    ``target_h``/``target_w``, then top-level ``height``/``width`` (None: neither)."""
    kwargs = prompt.get("mm_processor_kwargs")
    kwargs = kwargs if isinstance(kwargs, Mapping) else {}
    height = sizing.positive_int(kwargs.get("target_h")) or sizing.positive_int(
        prompt.get("height")
    )
    width = sizing.positive_int(kwargs.get("target_w")) or sizing.positive_int(prompt.get("width"))
    return height, width


def requested_size(prompt: Mapping) -> tuple[int, int]:
    """``read_size``, each side missing being 1024 (vLLM-Omni's default)."""
    height, width = read_size(prompt)
    return height or DEFAULT_SIDE, width or DEFAULT_SIDE


def write_size(prompt: Any, height: int, width: int, shape: str) -> dict:
    """A copy of ``prompt`` with (height, width) in ``shape`` (top-level, mm-kwargs, both),
    replacing what was there."""
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
    """What ``function`` makes of a non-square request with the size in ``shape``."""
    height, width = PROBE_SIZE
    try:
        result = call(function, [glm_output(height, width)], probe_prompt(shape, height, width))
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc}"
    return dit_verdict(result, height, width)


# --- GLM-Image's processor ------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """The installed vLLM-Omni GLM-Image processor and how it behaves."""

    function: Callable[..., Any]
    convention: str
    #: It takes a fourth ``streaming_context`` parameter.
    takes_streaming_context: bool
    #: It slices the prior at the scaffold's preview-grid offset (vLLM-Omni >= 0.20.0rc1).
    scaffold_grid: bool


def prior_is_right(function: Any) -> bool:
    """True when upstream hands the DiT the target grid of a non-square request (the size in
    every place it reads, so only the prior can be wrong). A probe that raises says nothing:
    the prior is left to upstream, with one WARNING."""
    verdict = upstream_verdict(function, BOTH)
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
    function = importlib.import_module(GLM_IMAGE_PROCESSORS).ar2diffusion
    convention = convention_of(function)
    found = Upstream(
        function,
        convention,
        convention == SOURCE_OUTPUTS and len(positional_names(function)) >= 4,
        prior_is_right(function),
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
    view = CompletionView(
        completion, realigned if realigned is not None else sizing.as_ints(tokens)
    )
    return OutputView(ar_output, [view, *list(outputs)[1:]])


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


# --- adapters for other processors (fixes 7 and 8) ------------------------------------------


def _named_after(adapted: Callable[..., Any], upstream: Callable[..., Any], what: str) -> None:
    adapted.__name__ = adapted.__qualname__ = getattr(upstream, "__name__", "processor")
    adapted.__doc__ = f"omni-sizefix {what} around {adapted.__name__}"
    adapted.__omni_sizefix_upstream__ = upstream  # type: ignore[attr-defined]


def adapt(upstream: Callable[..., Any], reads: frozenset[str]) -> Callable[..., Any]:
    """``upstream`` (another model's processor) behind the parameters every supported Dynamo
    dispatches, with ``cumulative_token_ids`` restored and the size also where it ``reads``."""
    convention = convention_of(upstream)
    shape = MM_KWARGS if MM_KWARGS in reads else TOP_LEVEL if TOP_LEVEL in reads else None

    def sized(prompt: Any) -> Any:
        if prompt is None or shape is None:
            return prompt
        data = as_dict(prompt) if not isinstance(prompt, Mapping) else prompt
        height, width = read_size(data) if data else (None, None)
        if not (height and width):
            return prompt
        return write_size(data, height, width, shape)

    @stage1_processor
    def processor(arguments: CallerArguments) -> Any:
        outputs, prompt, requires, _, stage_list = arguments
        if stage_list:  # ai-dynamo 1.1: [original_prompt]
            prompt = prompt[0] if isinstance(prompt, list) and prompt else prompt
            requires = bool(requires)
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
        if stage_list:  # the stage-list form passes [original_prompt]
            prompt = prompt[0] if isinstance(prompt, list) and prompt else prompt
        return processor(outputs, context(prompt, requires, streaming))

    _named_after(adapted, processor, "(source_outputs, ctx) adapter")
    return adapted
