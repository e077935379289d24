"""Which AR->DiT pipeline this worker serves, and where its stage-1 processor reads the size.

Every AR->DiT model vLLM-Omni ships hands the requested size from stage 0 to the DiT in its
own way; the plugin must write it only where that model's stage-1 processor reads it, and
never add GLM-Image's ``target_h``/``target_w`` to a model that does not use them.

* **Which pipeline:** a Dynamo stage worker is built from its entry of the stage config
  (``OmniStageWorker.__init__``, wrapped by ``patches.dynamo_stage_budget``): stage 0's
  ``engine_args.model_arch``, or a later stage's ``custom_process_input_func``, names the model
  (``identify``). The worker that parses requests (stage 0) thereby knows its pipeline.
  Where no stage config was seen (plain function calls, ``check``), GLM-Image is assumed,
  as before.
* **Where the processor reads the size:** found by calling the installed vLLM-Omni
  processor of that model on a synthetic AR output, with the size in one place at a time
  (``probe_reads``): top-level ``height``/``width`` or ``mm_processor_kwargs``
  ``target_h``/``target_w``. Nothing is read from version numbers.
* **The plan** (``plan()``): whether stage 0 gets ``mm_processor_kwargs`` (GLM-Image only:
  its multimodal processor builds the generation scaffold from it), the ``original_prompt``
  shape (None: the processor reads neither place, the request passes through), and whether
  GLM-Image's size policy applies. ``OMNI_SIZEFIX_SHAPE`` overrides the shape.

The models (surveyed in vLLM-Omni 0.16-0.32.0rc1 ``stage_input_processors/``, stage configs
and pipeline definitions):

========================  ======================================  =========================
model (stage-0 arch)      stage-1 processor                       size read from (probed)
========================  ======================================  =========================
GLM-Image                 ``glm_image.ar2diffusion``              top level (<= 0.18),
                                                                  ``mm_processor_kwargs``
HunyuanImage-3            ``hunyuan_image3.ar2diffusion``         top level only
                          (0.20+)                                 (an AR ratio token wins,
                                                                  0.24+)
MammothModa2              ``mammoth_moda2.ar2dit`` /              ``additional_information``
                          ``ar2diffusion`` (0.18+)                (<= 0.22: nothing Dynamo
                                                                  sends), then
                                                                  ``mm_processor_kwargs``
BAGEL                     none (stage 1 takes the KV cache)       nothing: passes through
========================  ======================================  =========================

Ming-Image (``ming_image.thinker2image``, 0.30+) and Ming-Flash-Omni's image stage
(``thinker2imagegen``) read no size from ``original_prompt`` (read from the source; no
matrix cell runs them), so they pass through like BAGEL.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from omni_sizefix.runtime import glm_layout, settings, stage1_io
from omni_sizefix.runtime.host_modules import GLM_IMAGE_PROCESSOR
from omni_sizefix.runtime.host_modules import PROCESSORS_PACKAGE as PROCESSORS
from omni_sizefix.runtime.patches.glm_image_processor import PROCESSOR as PACKAGE_GLM_PROCESSOR
from omni_sizefix.runtime.settings import Shape
from omni_sizefix.runtime.stage1_io import MM_KWARGS, TOP_LEVEL

logger = logging.getLogger("omni_sizefix")


@dataclass(frozen=True)
class Pipeline:
    """One AR->DiT model as vLLM-Omni ships it."""

    name: str
    #: Prefixes of stage 0's ``engine_args.model_arch``.
    stage0_archs: tuple[str, ...]
    #: Qualified names of the stage-1 processors its configs name (any release).
    processors: tuple[str, ...]
    #: Stage 0 needs ``mm_processor_kwargs`` ``target_h``/``target_w`` (its multimodal
    #: processor builds the generation scaffold from them).
    stage0_size: bool = False
    #: GLM-Image's size policy and stage-0 budget apply.
    size_policy: bool = False
    #: The synthetic AR output the probe hands the processor: ``glm`` (a GLM-Image token
    #: layout for the size) or ``latent`` (a few tokens and a zero hidden-state tensor).
    probe_output: str = "latent"


GLM_IMAGE = Pipeline(
    "GLM-Image",
    ("GlmImage",),
    (GLM_IMAGE_PROCESSOR, PACKAGE_GLM_PROCESSOR),
    stage0_size=True,
    size_policy=True,
    probe_output="glm",
)
HUNYUAN_IMAGE3 = Pipeline(
    "HunyuanImage-3", ("HunyuanImage3",), (f"{PROCESSORS}.hunyuan_image3.ar2diffusion",)
)
MAMMOTH_MODA2 = Pipeline(
    "MammothModa2",
    ("MammothModa2",),
    (f"{PROCESSORS}.mammoth_moda2.ar2dit", f"{PROCESSORS}.mammoth_moda2.ar2diffusion"),
)
BAGEL = Pipeline("BAGEL", ("OmniBagel", "Bagel"), ())
MING_IMAGE = Pipeline(
    "Ming-Image",
    ("MingImage", "MingFlashOmni"),
    (f"{PROCESSORS}.ming_image.thinker2image", f"{PROCESSORS}.ming_flash_omni.thinker2imagegen"),
)

#: Every pipeline this module knows, GLM-Image first (the default).
KNOWN: tuple[Pipeline, ...] = (GLM_IMAGE, HUNYUAN_IMAGE3, MAMMOTH_MODA2, BAGEL, MING_IMAGE)
#: Pipelines whose stage-1 processor reads no size from ``original_prompt``.
NO_SIZE = (BAGEL, MING_IMAGE)


@dataclass(frozen=True)
class Plan:
    """What the parse patch writes for the pipeline this worker serves."""

    pipeline: str
    #: Stage 0 gets ``mm_processor_kwargs`` (and image ``modalities``).
    stage0: bool
    #: Where ``original_prompt`` gets the size; None: nowhere (passes through).
    shape: Shape | None
    #: GLM-Image's size policy and stage-0 budget apply.
    size_policy: bool
    reason: str
    #: Where the probed processor read the size (``top-level``, ``mm-kwargs``).
    reads: frozenset[str] = field(default=frozenset())

    @property
    def is_glm(self) -> bool:
        return self.pipeline == GLM_IMAGE.name

    def writes(self, kind: str) -> bool:
        """True when the default hooks write a size for a request of ``kind``: GLM-Image's
        image and video requests, the image requests of another model whose stage 1 reads
        the size (``shape``); never for BAGEL or a model this module does not know."""
        if kind == "video":
            return self.is_glm
        return kind == "image" and (self.stage0 or self.shape is not None)


# --- which pipeline -----------------------------------------------------------------------


def config_value(config: Any, name: str) -> Any:
    """``config[name]`` of a dict, else attribute ``name`` (None: missing)."""
    if isinstance(config, dict):
        return config.get(name)
    return getattr(config, name, None)


def by_processor(func_path: str | None) -> Pipeline | None:
    """The pipeline whose stage-1 processor is ``func_path``."""
    if not func_path:
        return None
    for pipeline in KNOWN:
        if func_path in pipeline.processors:
            return pipeline
    return None


def by_arch(arch: str | None) -> Pipeline | None:
    """The pipeline whose stage-0 ``model_arch`` starts with one of its prefixes."""
    if not arch:
        return None
    for pipeline in KNOWN:
        if arch.startswith(pipeline.stage0_archs):
            return pipeline
    return None


def identify(stage_config: Any) -> tuple[Pipeline | None, str]:
    """(pipeline or None when unknown, what named it) for one stage's config entry."""
    func_path = config_value(stage_config, "custom_process_input_func")
    arch = config_value(config_value(stage_config, "engine_args"), "model_arch")
    found = by_processor(str(func_path) if func_path else None)
    if found is not None:
        return found, f"custom_process_input_func {func_path}"
    found = by_arch(str(arch) if arch else None)
    if found is not None:
        return found, f"model_arch {arch}"
    try:
        stops = (
            config_value(config_value(stage_config, "default_sampling_params"), "stop_token_ids")
            or ()
        )
        if glm_layout.EOS_TOKEN_ID in list(stops):
            return GLM_IMAGE, f"stop token {glm_layout.EOS_TOKEN_ID} (GLM-Image's EOS)"
    except Exception:  # an odd config: the model stays unknown
        pass
    return None, f"model_arch {arch!r}, custom_process_input_func {func_path!r}"


# --- where the processor reads the size ------------------------------------------------------

#: (height, width) per place: non-square, distinct, multiples of 32, neither is the 1024 default.
PROBE_SIZES = {TOP_LEVEL: (768, 1024), MM_KWARGS: (1024, 768)}


#: The prompt token ids of the synthetic outputs (a latent output holds a hidden state each).
PROBE_PROMPT_IDS = (1, 2)


def synthetic_output(kind: str, height: int, width: int) -> stage1_io.SyntheticAROutput:
    """A synthetic AR output (stands for the GPU engine) the processor can consume."""
    if kind == "glm":
        return stage1_io.glm_output(height, width, prompt_token_ids=PROBE_PROMPT_IDS)
    import torch

    tokens = [3, 4, 5]
    latent = torch.zeros(len(PROBE_PROMPT_IDS) + len(tokens) - 1, 4)
    return stage1_io.ar_output(
        tokens, prompt_token_ids=PROBE_PROMPT_IDS, multimodal_output={"latent": latent}
    )


class _ThisThreadOnly(logging.Filter):
    """Drops the records logged by one thread (the probe's), lets every other thread's through."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextmanager
def _quiet(function: Callable[..., Any]) -> Iterator[None]:
    """Keep the probed processor's own log lines out of the worker's log.

    A probe call with the size where the processor does not read it makes the processor
    log what it would do with a mismatched grid (vLLM-Omni <= 0.18: "Adjusted grid to ...");
    that is the probe's signal, not something the operator should see on the first request.
    """
    target = logging.getLogger(getattr(function, "__module__", None) or PROCESSORS)
    dropped = _ThisThreadOnly()
    target.addFilter(dropped)
    try:
        yield
    finally:
        target.removeFilter(dropped)


def probe_reads(function: Callable[..., Any], output_kind: str = "latent") -> frozenset[str]:
    """The places ``function`` takes the size from: call it once per place, compare the DiT size.

    A call that raises counts as "not read there" (e.g. MammothModa2 <= 0.22 needs
    ``additional_information``, which no Dynamo release sends).
    """
    reads = set()
    for where, (height, width) in PROBE_SIZES.items():
        try:
            with _quiet(function):
                result = stage1_io.call(
                    function,
                    [synthetic_output(output_kind, height, width)],
                    stage1_io.probe_prompt(where, height, width),
                )
        except Exception as exc:
            logger.debug("omni-sizefix: probe %s with the size at %s: %s", function, where, exc)
            continue
        if stage1_io.dit_size(result) == (height, width):
            reads.add(where)
    return frozenset(reads)


def shape_for(reads: frozenset[str]) -> Shape | None:
    """The shape to write for a processor that reads ``reads`` (None: it reads neither)."""
    if MM_KWARGS in reads:
        return Shape.MM_KWARGS  # what ai-dynamo >= 1.2 writes itself: nothing to add there
    if TOP_LEVEL in reads:
        return Shape.TOP_LEVEL
    return None


def _load(func_path: str) -> Callable[..., Any]:
    module_name, name = func_path.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), name)


def installed_processor(pipeline: Pipeline, func_path: str | None = None) -> str | None:
    """``func_path`` when given, else the first of the pipeline's vLLM-Omni processors that
    the installed vLLM-Omni has (None: none)."""
    if func_path:
        return func_path
    for candidate in pipeline.processors:
        if not candidate.startswith(PROCESSORS):
            continue
        try:
            _load(candidate)
        except (ImportError, AttributeError):
            continue
        except Exception as exc:  # importable in principle, broken here
            logger.debug("omni-sizefix: cannot import %s: %s", candidate, exc)
            continue
        return candidate
    return None


def build_plan(pipeline: Pipeline | None, func_path: str | None = None, named_by: str = "") -> Plan:
    """The plan for ``pipeline`` (None: a model this module does not know: pass through)."""
    if pipeline is None:
        return Plan("unknown", False, None, False, f"{named_by}: not an AR->DiT model it knows")
    if pipeline in NO_SIZE:
        return Plan(
            pipeline.name, False, None, False, f"{pipeline.name}: its stage 1 reads no size"
        )
    path = installed_processor(pipeline, func_path if func_path in pipeline.processors else None)
    if path is None:
        reads: frozenset[str] = frozenset()
        reason = f"{pipeline.name}: no stage-1 processor of it in the installed vLLM-Omni"
    else:
        if path.startswith("omni_sizefix."):  # the package's own wraps upstream's GLM-Image one
            path = GLM_IMAGE.processors[0]
        try:
            reads = probe_reads(_load(path), pipeline.probe_output)
            where = " and ".join(sorted(reads)) or "neither top-level nor mm_processor_kwargs"
            short = ".".join(path.rsplit(".", 2)[-2:])
            reason = f"{pipeline.name}: {short} reads {where} (probed)"
        except Exception as exc:
            reads = frozenset()
            reason = f"{pipeline.name}: probing {path} failed ({type(exc).__name__}: {exc})"
    shape = shape_for(reads)
    if shape is None and pipeline is GLM_IMAGE:
        shape = Shape.BOTH  # the package's processor reads both; never leave GLM-Image unsized
        reason += "; both written"
    return Plan(pipeline.name, pipeline.stage0_size, shape, pipeline.size_policy, reason, reads)


# --- this process's plan ------------------------------------------------------------------

_lock = threading.RLock()
_plan: Plan | None = None
#: True once a stage config named the pipeline (a recorded plan is not replaced by the default).
_recorded = False


def _with_override(plan: Plan) -> Plan:
    forced = settings.shape_override()  # raises ValueError on a bad value
    if forced is None or plan.shape is None:
        return plan
    return Plan(
        plan.pipeline,
        plan.stage0,
        forced,
        plan.size_policy,
        f"{settings.SHAPE_VAR}={forced.value} ({plan.reason})",
        plan.reads,
    )


def default_plan() -> Plan:
    """GLM-Image, probed (no stage config seen yet: the behaviour before pipelines)."""
    try:
        return build_plan(GLM_IMAGE, named_by="no stage config seen")
    except Exception as exc:  # e.g. vLLM-Omni not installed
        return Plan(GLM_IMAGE.name, True, Shape.BOTH, True, f"GLM-Image assumed ({exc})")


def plan() -> Plan:
    """The plan of this process (cheap after the first call); ``OMNI_SIZEFIX_SHAPE`` applied.

    Raises ValueError when ``OMNI_SIZEFIX_SHAPE`` has a value it does not know.
    """
    found = _plan
    if found is None:
        with _lock:
            found = _plan
            if found is None:
                found = _set(default_plan())
    return found


def _set(new: Plan) -> Plan:
    global _plan
    try:
        new = _with_override(new)
    except ValueError as exc:
        # reported once at start-up (``settings.problems()``)
        logger.debug("omni-sizefix: %s; using the probed shape", exc)
    _plan = new
    return new


def record(stage_config: Any, stage_id: Any) -> Plan | None:
    """Learn the pipeline from the stage config a worker was built from; log the plan once.

    Returns the new plan, or None when this stage config names nothing new.
    """
    global _recorded
    pipeline, named_by = identify(stage_config)
    if pipeline is None and stage_id != 0:
        return None  # a later stage without a known processor says nothing about stage 0
    func_path = config_value(stage_config, "custom_process_input_func")
    with _lock:
        if (
            _recorded
            and _plan is not None
            and pipeline is not None
            and _plan.pipeline == pipeline.name
        ):
            return None
        new = _set(build_plan(pipeline, str(func_path) if func_path else None, named_by))
        _recorded = True
    logger.info(
        "omni-sizefix: serving %s (stage-%s worker); %s", new.pipeline, stage_id, describe(new)
    )
    return new


def describe(found: Plan) -> str:
    """One line: what the parse patch writes under ``found``."""
    if found.shape is None:
        return f"requests pass through as the host builds them ({found.reason})"
    stage0 = (
        "stage 0 gets target_h/target_w, " if found.stage0 else "stage 0 as the host builds it, "
    )
    return f"{stage0}original_prompt gets the size as {found.shape.value} ({found.reason})"


def forget() -> None:
    """Drop the recorded plan (``unpatch``, tests): the next ``plan()`` probes again."""
    global _plan, _recorded
    with _lock:
        _plan = None
        _recorded = False


@dataclass(frozen=True)
class ShapeDecision:
    """The prompt shape chosen for stage 1 and the reason for it (None: no size written)."""

    shape: Shape | None
    reason: str


def decide_shape() -> ShapeDecision:
    """The ``original_prompt`` shape of this process: ``OMNI_SIZEFIX_SHAPE`` when set, else
    the one probed for the pipeline this worker serves.

    Raises ValueError for an ``OMNI_SIZEFIX_SHAPE`` value it does not know.
    """
    forced = settings.shape_override()
    if forced is not None:
        return ShapeDecision(forced, f"{settings.SHAPE_VAR}={forced.value}")
    found = plan()
    return ShapeDecision(found.shape, found.reason)
