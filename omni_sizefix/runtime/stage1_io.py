"""What goes into a stage-1 processor (AR -> DiT) and what comes out of it.

One definition each, for the probes that run in a worker (``runtime.pipelines``,
``runtime.stage1_profile``), the stage-1 patches (``patches.glm_image_processor``,
``patches.processor_adapter``) and the offline simulation (``tools.simulation.dryrun``):

* **a synthetic AR output** (``ar_output``, ``glm_output``): stands for what the GPU engine
  of stage 0 yields (no model weights here), shaped as vLLM's ``RequestOutput`` with one
  ``CompletionOutput``;
* **the two calling conventions**: ``stage_list`` (``(stage_list, engine_input_source,
  prompts, requires_mm)``: ai-dynamo 1.1.x, vLLM-Omni <= 0.20.0rc1) and ``source_outputs``
  (``(source_outputs, prompt, requires_mm[, streaming_context])``), read from a processor's
  parameter names (``convention_of``) or from a caller's arguments (``caller_convention``);
  ``call`` calls a processor in its own convention, as vLLM-Omni's orchestrator does;
  ``stage1_processor`` gives a processor the parameters that every supported Dynamo calls;
* **where a prompt carries the size** (``TOP_LEVEL``, ``MM_KWARGS``; ``probe_prompt``);
* **what reaches the DiT**: ``dit_input``, ``dit_size``, ``dit_prior``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from omni_sizefix.runtime import glm_layout
from omni_sizefix.runtime.settings import Shape

STAGE_LIST = "stage_list"
SOURCE_OUTPUTS = "source_outputs"
_STAGE_LIST_PARAMETERS = ["stage_list", "engine_input_source"]
#: The request id of the synthetic outputs the probes build.
PROBE_REQUEST_ID = "omni-sizefix-probe"
#: The places a prompt carries the size: top-level ``height``/``width``,
#: ``mm_processor_kwargs`` ``target_h``/``target_w``.
TOP_LEVEL = Shape.TOP_LEVEL.value
MM_KWARGS = Shape.MM_KWARGS.value


# --- a synthetic AR output ----------------------------------------------------------------


@dataclass
class SyntheticCompletion:
    """Synthetic stand-in for vLLM's ``CompletionOutput`` (no model weights here), with the
    ``cumulative_token_ids`` vLLM-Omni's output processing adds."""

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
    """A synthetic AR output whose one completion emitted ``tokens``.

    ``cumulative`` False: the completion has no ``cumulative_token_ids`` attribute at all, as
    it reaches ai-dynamo 1.1.x's stage 1 through vLLM-Omni's shared-memory connector.
    """
    ids = list(tokens)
    completion = SyntheticCompletion(ids, list(ids), multimodal_output=multimodal_output)
    if not cumulative:
        del completion.cumulative_token_ids  # a field without default: no class attribute
    return SyntheticAROutput(request_id, [completion], list(prompt_token_ids))


def glm_output(height: int, width: int, **kwargs: Any) -> SyntheticAROutput:
    """A synthetic GLM-Image text-to-image output for a pixel size (``ar_output`` options)."""
    return ar_output(glm_layout.t2i_tokens(glm_layout.grids_for(height, width)), **kwargs)


class CompletionView:
    """Read-only view of a completion output with ``token_ids`` and ``cumulative_token_ids``
    (``token_ids``: other ids; default: the completion's own); the original is kept."""

    def __init__(self, completion: Any, token_ids: list[int] | None = None) -> None:
        self._completion = completion
        ids = list(completion.token_ids) if token_ids is None else token_ids
        self.token_ids = ids
        self.cumulative_token_ids = ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completion, name)


class OutputView:
    """Read-only view of an AR request output with other completions; the original is kept."""

    def __init__(self, output: Any, completions: list) -> None:
        self._output = output
        self.outputs = completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._output, name)


# --- calling conventions ------------------------------------------------------------------


class Stage:
    """The ``stage_list`` item shape (``engine_outputs``) of stage-list-era processors."""

    def __init__(self, engine_outputs: list) -> None:
        self.engine_outputs = engine_outputs


def positional_names(function: Callable[..., Any]) -> list[str]:
    """The names of ``function``'s positional-or-keyword parameters."""
    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def convention_of(function: Callable[..., Any]) -> str:
    """``stage_list`` when the first two parameters are named so, else ``source_outputs``."""
    if positional_names(function)[:2] == _STAGE_LIST_PARAMETERS:
        return STAGE_LIST
    return SOURCE_OUTPUTS


def is_sequence(value: Any) -> bool:
    """A sequence that is not a string."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def caller_convention(first: Any, second: Any) -> str:
    """How a caller called a processor, from its first two arguments: the items of a stage
    list carry ``engine_outputs``, and ``engine_input_source`` is a list of stage ids."""
    if is_sequence(first) and first and hasattr(first[0], "engine_outputs"):
        return STAGE_LIST
    if is_sequence(second) and second:
        if all(isinstance(i, int) and not isinstance(i, bool) for i in second):
            return STAGE_LIST
    return SOURCE_OUTPUTS


def stage_list_outputs(stage_list: Sequence[Any], engine_input_source: Sequence[int]) -> list:
    """The AR outputs a stage-list caller hands over (its first source stage's)."""
    if not engine_input_source:
        raise ValueError("engine_input_source cannot be empty")
    source = engine_input_source[0]
    if source >= len(stage_list):
        raise IndexError(f"Invalid stage_id: {source}")
    outputs = stage_list[source].engine_outputs
    if outputs is None:
        raise RuntimeError(f"Stage {source} has no outputs yet")
    return list(outputs)


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


def caller_arguments(first: Any, second: Any, third: Any, fourth: Any) -> CallerArguments:
    """Read a processor's four positional arguments in the caller's convention: stage-list
    callers pass ``(stage_list, engine_input_source, prompts, requires_mm)``, the others
    ``(source_outputs, prompt, requires_mm, streaming_context)``."""
    if caller_convention(first, second) == STAGE_LIST:
        return CallerArguments(stage_list_outputs(first, second), third, fourth, None, True)
    return CallerArguments(list(first) if first is not None else [], second, third, fourth, False)


def stage1_processor(body: Callable[[CallerArguments], Any]) -> Callable[..., Any]:
    """Make ``body`` (which takes ``CallerArguments``) a stage-1 processor that every
    supported Dynamo can call: exactly the four parameters below.

    Dynamo chooses how to call a processor from its parameter names (``inspect.signature``),
    and ai-dynamo 1.2+ dispatch these names as source outputs; a stage-list caller passes its
    four arguments in the same positions. Not ``functools.wraps``: its ``__wrapped__`` would
    make ``inspect.signature`` report ``body``'s single parameter.
    """

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


# --- vLLM-Omni's coming (source_outputs, ctx) convention (``patches.ctx_processor``) ---

#: The parameters of a processor in the refactored convention.
CTX_PARAMETERS = ("source_outputs", "ctx")
#: Where PR #6801 defines the context class.
CONTEXT_MODULE = "vllm_omni.model_executor.stage_input_processors"
CONTEXT_CLASS = "OrchestratorInputContext"


@dataclass(frozen=True)
class Context:
    """Stand-in for vLLM-Omni's ``OrchestratorInputContext`` (same fields) where the
    installed vLLM-Omni has none."""

    prompt: Any | None = None
    requires_multimodal_data: bool = False
    streaming_context: Any | None = None
    sampling_params: Any | None = None


def is_ctx(function: Any) -> bool:
    """True when ``function`` takes exactly ``(source_outputs, ctx)``."""
    try:
        return tuple(positional_names(function)) == CTX_PARAMETERS
    except (TypeError, ValueError):
        return False


def context(prompt: Any, requires_mm: Any = False, streaming_context: Any = None) -> Any:
    """The context a ``(source_outputs, ctx)`` processor reads."""
    try:
        cls = getattr(importlib.import_module(CONTEXT_MODULE), CONTEXT_CLASS, Context)
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
    if is_ctx(function):  # vLLM-Omni's coming convention (``patches.ctx_processor``)
        return function(outputs, context(prompt, requires_mm))
    if (convention or convention_of(function)) == STAGE_LIST:
        return function([Stage(outputs)], [0], [prompt], requires_mm)
    return function(outputs, prompt, requires_mm)


def probe_prompt(shape: str, height: int, width: int) -> dict:
    """A text-to-image ``original_prompt`` with the size only in ``shape`` (``top-level``,
    ``mm-kwargs`` or ``both``)."""
    prompt: dict = {"prompt": "a probe", "modalities": ["image"]}
    if shape in (MM_KWARGS, Shape.BOTH.value):
        prompt["mm_processor_kwargs"] = {"target_h": height, "target_w": width}
    if shape in (TOP_LEVEL, Shape.BOTH.value):
        prompt.update(height=height, width=width)
    return prompt


# --- what reaches the DiT -----------------------------------------------------------------


def dit_input(result: Any) -> dict | None:
    """The one DiT input a processor returned (a one-element list unwrapped); None: none."""
    if isinstance(result, list):
        if len(result) != 1:
            return None
        result = result[0]
    return result if isinstance(result, dict) else None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def dit_size(result: Any) -> tuple[Any, Any] | None:
    """(height, width) of the DiT input in ``result`` (None: no size found)."""
    found = dit_input(result)
    if found is None:
        return None
    if "height" in found or "width" in found:
        return found.get("height"), found.get("width")
    info = found.get("additional_information")
    if isinstance(info, dict) and "image_height" in info:  # MammothModa2 <= 0.28
        return _first(info.get("image_height")), _first(info.get("image_width"))
    return None


def dit_prior(result: Any) -> list[int] | None:
    """The GLM-Image prior (``extra.prior_token_ids``) of the DiT input, as ints."""
    found = dit_input(result)
    prior = (found.get("extra") or {}).get("prior_token_ids") if found is not None else None
    return None if prior is None else glm_layout.as_ints(prior)


# --- the probe's verdict ----------------------------------------------------------------

#: (height, width) of the probe: non-square, so both preview-grid rules and a 1024 fallback differ.
PROBE_SIZE = (768, 1024)


def dit_verdict(result: Any, height: int, width: int) -> str:
    """``ok`` when ``result`` is one DiT input of (height, width) with the target-grid prior."""
    if isinstance(result, list) and len(result) != 1:
        return f"{len(result)} DiT inputs"
    if dit_input(result) is None:
        return "no DiT input"
    got = dit_size(result) or (None, None)
    if got != (height, width):
        return f"wrong size {got[1]}x{got[0]}"
    prior = dit_prior(result)
    if prior != glm_layout.expected_prior(height, width):
        return f"wrong prior ({len(prior or [])} tokens)"
    return "ok"


def upstream_verdict(function: Any, shape: str = "mm-kwargs") -> str:
    """What upstream makes of a non-square request with the size in ``shape``
    (``mm-kwargs``: what ai-dynamo >= 1.2 and the parse patch write; ``top-level``; ``both``)."""
    height, width = PROBE_SIZE
    output = glm_output(height, width)
    try:
        result = call(function, [output], probe_prompt(shape, height, width))
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc}"
    return dit_verdict(result, height, width)
