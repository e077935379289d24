"""vLLM-Omni's own GLM-Image stage-1 processor, as the host tests see it.

Everything here is the tests' own, so that no expectation comes from the package under test:

* the GLM-Image rules (grids, token counts, EOS, the prior): ``glm_rules`` (tests/support,
  shared with the unit and live suites), re-exported here;
* ``ar_output``: a synthetic AR output (stands for the GPU engine) laid out by plain
  arithmetic from the pixel size (GLM-Image's scaffold: preview grid, target grid, EOS);
* ``call``: upstream's ``ar2diffusion`` called the way vLLM-Omni's own orchestrator calls it;
* ``reads``: where the installed processor takes the size from, found by calling it with the
  size in one place at a time, and ``READS_BY_RELEASE``: the same, read from each release;
* ``dispatch_convention``: how this Dynamo's stage-1 dispatch calls a processor (its rules).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from glm_rules import EOS as EOS
from glm_rules import FACTOR
from glm_rules import TARGET_TOKEN_BASE as TARGET_TOKEN_BASE
from glm_rules import Grids as Grids
from glm_rules import expected_prior as expected_prior
from glm_rules import grids as grids
from glm_rules import t2i_tokens as t2i_tokens
from glm_rules import upsampled as upsampled
from packaging.version import Version

UPSTREAM_PROCESSOR = "vllm_omni.model_executor.stage_input_processors.glm_image.ar2diffusion"
STAGE_LIST = "stage_list"
SOURCE_OUTPUTS = "source_outputs"
TOP_LEVEL = "top-level"
MM_KWARGS = "mm_processor_kwargs"

#: Where vLLM-Omni's GLM-Image ``ar2diffusion`` takes the target size from, per release
#: (first release of a range, places, source of the fact in that release's wheel,
#: ``vllm_omni/model_executor/stage_input_processors/glm_image.py``).
READS_BY_RELEASE: list[tuple[str, frozenset[str], tuple[int, int]]] = [
    # 0.16.0-0.18.0: original_prompt.get("height"/"width", 1024); never mm_processor_kwargs
    ("0.16.0", frozenset({TOP_LEVEL}), (182, 183)),
    # 0.20.0rc1: mm_processor_kwargs target_h/target_w, then top level, then 1024
    ("0.20.0rc1", frozenset({MM_KWARGS, TOP_LEVEL}), (256, 274)),
    # 0.20.0-0.23.0rc1: same reading order, moved (0.23.0rc1: 252-271)
    ("0.20.0", frozenset({MM_KWARGS, TOP_LEVEL}), (251, 271)),
    # 0.24.0-0.32.0rc1: same reading order, dict | None return
    ("0.24.0", frozenset({MM_KWARGS, TOP_LEVEL}), (254, 272)),
]


def declared_reads(version: str) -> tuple[frozenset[str], tuple[int, int]] | None:
    """(places, cited line span) for vLLM-Omni ``version`` (None: older than the table)."""
    found = None
    for first, places, lines in READS_BY_RELEASE:
        if Version(version) >= Version(first):
            found = (places, lines)
    return found


def function() -> Any:
    """The installed vLLM-Omni's ``glm_image.ar2diffusion``."""
    module_name, name = UPSTREAM_PROCESSOR.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), name)


def positional_names(processor: Any) -> list[str]:
    """The positional parameter names, as Dynamo's dispatch lists them."""
    params = inspect.signature(processor).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def declared_convention(processor: Any) -> str:
    """The calling convention ``processor`` declares by its parameter names."""
    names = positional_names(processor)
    return STAGE_LIST if names[:2] == ["stage_list", "engine_input_source"] else SOURCE_OUTPUTS


def dispatch_convention(stage_worker: Any, processor: Any) -> str | None:
    """How this Dynamo's stage-1 dispatch calls ``processor`` (None: it raises TypeError).

    Stage-list names are called in that form by every release; ai-dynamo 1.1.x (no
    ``_accepts_source_outputs_processor``) calls every processor in the stage-list form;
    later releases call the source-output form only for names their matcher accepts.
    """
    if declared_convention(processor) == STAGE_LIST:
        return STAGE_LIST
    accepts = getattr(stage_worker, "_accepts_source_outputs_processor", None)
    if accepts is None:
        return STAGE_LIST
    return SOURCE_OUTPUTS if accepts(positional_names(processor)) else None


def dispatch_calls(
    stage_worker: Any, processor: Any | None = None, *, either_convention: bool = False
) -> bool:
    """Whether this Dynamo calls ``processor`` (default: upstream's) in a convention it takes:
    the one its names declare, or either one (``either_convention``: a processor that tells
    a stage-list call by its arguments, as the package's does)."""
    processor = function() if processor is None else processor
    convention = dispatch_convention(stage_worker, processor)
    if either_convention:
        return convention is not None
    return convention == declared_convention(processor)


# --- calling it ----------------------------------------------------------------------------


@dataclass
class Completion:
    """FAKE vLLM ``CompletionOutput``: what the GPU AR engine would emit."""

    token_ids: list[int]
    cumulative_token_ids: list[int]
    index: int = 0
    text: str = ""
    finish_reason: str = "stop"


@dataclass
class AROutput:
    """FAKE vLLM ``RequestOutput`` of the AR stage."""

    outputs: list[Completion]
    request_id: str = "synthetic"
    prompt_token_ids: list[int] = field(default_factory=lambda: [1, 2])
    multimodal_output: dict = field(default_factory=dict)
    finished: bool = True


@dataclass
class StageListItem:
    """The ``stage_list[i]`` item a stage-list caller hands a processor."""

    engine_outputs: list


def ar_output(height: int, width: int, *, cumulative: bool = True) -> AROutput:
    """The AR output for a t2i request of this size: preview tokens, target tokens, EOS."""
    tokens = t2i_tokens(height, width)
    completion = Completion(list(tokens), list(tokens))
    if not cumulative:
        del completion.cumulative_token_ids
    return AROutput([completion])


def call(outputs: list, prompt: Any, requires_mm: bool = False, processor: Any = None) -> Any:
    """``processor`` (default: upstream's) called as vLLM-Omni's own orchestrator calls it."""
    processor = function() if processor is None else processor
    if declared_convention(processor) == STAGE_LIST:
        return processor([StageListItem(outputs)], [0], [prompt], requires_mm)
    return processor(outputs, prompt, requires_mm)


def dit_size(result: Any) -> tuple[Any, Any] | None:
    """(height, width) of the one DiT input a processor returned (None: none)."""
    if isinstance(result, list):
        result = result[0] if len(result) == 1 else None
    if not isinstance(result, dict):
        return None
    return result.get("height"), result.get("width")


def size_for(original_prompt: Any, height: int, width: int) -> tuple[Any, Any] | str:
    """What upstream's processor hands the DiT for ``original_prompt``, given the AR output
    of a ``height`` x ``width`` request; the error text when it raises."""
    try:
        return dit_size(call([ar_output(height, width)], original_prompt)) or "no DiT input"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@functools.cache
def reads() -> frozenset[str]:
    """Where the installed processor takes the size from: the size in one place at a time
    (distinct sizes, neither the 1024 default), compared with what reaches the DiT."""
    places = {TOP_LEVEL: (768, 1024), MM_KWARGS: (1024, 768)}
    found = set()
    for place, (height, width) in places.items():
        prompt: dict = {"prompt": "a red apple", "modalities": ["image"]}
        if place == MM_KWARGS:
            prompt[MM_KWARGS] = {"target_h": height, "target_w": width}
        else:
            prompt.update(height=height, width=width)
        if size_for(prompt, height, width) == (height, width):
            found.add(place)
    return frozenset(found)


def sized_places(original_prompt: Any) -> dict[str, tuple[Any, Any]]:
    """The (height, width) ``original_prompt`` carries in each place that has one."""
    found = {}
    if isinstance(original_prompt, dict):
        kwargs = original_prompt.get(MM_KWARGS)
        if isinstance(kwargs, dict) and ("target_h" in kwargs or "target_w" in kwargs):
            found[MM_KWARGS] = (kwargs.get("target_h"), kwargs.get("target_w"))
        if "height" in original_prompt or "width" in original_prompt:
            found[TOP_LEVEL] = (original_prompt.get("height"), original_prompt.get("width"))
    return found


def readable_size(original_prompt: Any, height: int, width: int) -> bool:
    """``original_prompt`` has the size in a place the installed processor reads (``reads``),
    and no place it reads says another size. Cheap: no processor call."""
    found = sized_places(original_prompt)
    readable = [found[place] for place in reads() if place in found]
    return bool(readable) and all(size == (height, width) for size in readable)


def carries_size(original_prompt: Any, height: int, width: int) -> bool:
    """``readable_size``, and the installed processor hands that size to the DiT."""
    return readable_size(original_prompt, height, width) and size_for(
        original_prompt, height, width
    ) == (height, width)


# --- the DiT (vllm_omni/diffusion/models/glm_image/pipeline_glm_image.py) -----------------

DIT_MODULE = "vllm_omni.diffusion.models.glm_image.pipeline_glm_image"
#: The AR scaffold's pixels per prior token (transformers' GlmImageProcessor floors each side
#: to this); ar2diffusion upsamples the target grid x2 for the DiT.
AR_FACTOR = FACTOR


def dit_multiple() -> int:
    """``vae_scale_factor * patch_size`` of the installed GLM-Image DiT: read from upstream's
    own ``get_glm_image_pre_process_func`` (its GLM-Image defaults, empty VAE config)."""
    import json
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    factory = importlib.import_module(DIT_MODULE).get_glm_image_pre_process_func
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vae").mkdir()
        (Path(folder) / "vae" / "config.json").write_text(json.dumps({}))
        function = factory(SimpleNamespace(model=folder, revision=None))
    cells = dict(zip(function.__code__.co_freevars, function.__closure__ or (), strict=True))
    return cells["vae_scale_factor"].cell_contents * cells["patch_size"].cell_contents


@dataclass(frozen=True)
class DiTExpectation:
    """What upstream's DiT does with an AR prior for (height, width) and that size."""

    renders: tuple[int, int] | None  # (height, width), or None: it raises
    prior_len: int
    expected_len: int


def dit_expectation(height: int, width: int, multiple: int) -> DiTExpectation:
    """The DiT floors the size to ``multiple`` and raises unless the prior's length is
    (H/multiple)*(W/multiple); the AR prior for the scaffold is (H//32*2)*(W//32*2)."""
    dit_h, dit_w = height // multiple * multiple, width // multiple * multiple
    prior_len = (height // AR_FACTOR * 2) * (width // AR_FACTOR * 2)
    expected_len = (dit_h // multiple) * (dit_w // multiple)
    renders = (dit_h, dit_w) if prior_len == expected_len else None
    return DiTExpectation(renders, prior_len, expected_len)


def verdict(result: Any, height: int, width: int) -> str:
    """``ok`` when ``result`` is one DiT input of (height, width) with the prior upstream's
    rules give for ``ar_output`` (GLM-Image's own code and glm_rules; nothing of the package)."""
    if isinstance(result, list):
        if len(result) != 1:
            return f"{len(result)} DiT inputs"
        result = result[0]
    if not isinstance(result, dict):
        return f"no DiT input ({result!r})"
    if (result.get("height"), result.get("width")) != (height, width):
        return f"wrong size {result.get('width')}x{result.get('height')}"
    prior = result.get("extra", {}).get("prior_token_ids")
    prior = [int(v) for v in prior.flatten().tolist()] if prior is not None else None
    if prior != expected_prior(height, width):
        return f"wrong prior ({len(prior or [])} tokens)"
    return "ok"
