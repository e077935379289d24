"""Which AR->DiT model this worker serves, and where its stage-1 processor reads the size.

A worker learns its model from its stage config (``record``, called by
``patches.stage_worker``): a stage's ``custom_process_input_func``, stage 0's ``model_arch``
or GLM-Image's EOS as stop token; without one GLM-Image is assumed. Where the processor reads
the size is probed by calling the installed one on a synthetic AR output with the size in one
place at a time (``probe_reads``), never read from version numbers; the plugin writes it only
there (``OMNI_SIZEFIX_SHAPE`` overrides).

==============  ========================================  =================================
model           stage-1 processor (vLLM-Omni 0.16-0.32)   size read from (probed)
==============  ========================================  =================================
GLM-Image       ``glm_image.ar2diffusion``                top level (<= 0.18), mm kwargs
HunyuanImage-3  ``hunyuan_image3.ar2diffusion`` (0.20+)   top level
MammothModa2    ``mammoth_moda2.ar2dit``/``ar2diffusion``  additional info (<= 0.22), mm kwargs
BAGEL, Ming     none / ``thinker2image(gen)``             nothing: requests pass through
==============  ========================================  =================================
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omni_sizefix.runtime import settings, sizing
from omni_sizefix.runtime.patches import stage1
from omni_sizefix.runtime.patches.stage1 import GLM_IMAGE_PROCESSOR, MM_KWARGS, TOP_LEVEL
from omni_sizefix.runtime.settings import Shape

logger = logging.getLogger("omni_sizefix")

#: vLLM-Omni's stage-1 input processors (one module per model).
PROCESSORS = "vllm_omni.model_executor.stage_input_processors"


@dataclass(frozen=True)
class Pipeline:
    """One AR->DiT model as vLLM-Omni ships it."""

    name: str
    #: Prefixes of stage 0's ``engine_args.model_arch``.
    stage0_archs: tuple[str, ...]
    #: Qualified names of the stage-1 processors its configs name (any release).
    processors: tuple[str, ...]
    #: Stage 0 needs ``mm_processor_kwargs`` (its multimodal processor builds the scaffold).
    stage0_size: bool = False
    #: GLM-Image's size policy and stage-0 budget apply.
    size_policy: bool = False
    #: The probe's synthetic AR output: ``glm`` (GLM-Image's token layout) or ``latent``.
    probe_output: str = "latent"


GLM_IMAGE = Pipeline(
    "GLM-Image",
    ("GlmImage",),
    (GLM_IMAGE_PROCESSOR, stage1.PROCESSOR),
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
        """True when the default hooks size a request of ``kind``: GLM-Image's image and video
        requests, another model's image requests where its stage 1 reads the size."""
        if kind == "video":
            return self.is_glm
        return kind == "image" and (self.stage0 or self.shape is not None)


# --- which pipeline -------------------------------------------------------------------------


def config_value(config: Any, name: str) -> Any:
    """``config[name]`` of a dict, else attribute ``name`` (None: missing)."""
    if isinstance(config, dict):
        return config.get(name)
    return getattr(config, name, None)


def by_processor(func_path: str | None) -> Pipeline | None:
    """The pipeline whose stage-1 processor is ``func_path``."""
    return next((p for p in KNOWN if func_path and func_path in p.processors), None)


def by_arch(arch: str | None) -> Pipeline | None:
    """The pipeline whose stage-0 ``model_arch`` starts with one of its prefixes."""
    return next((p for p in KNOWN if arch and arch.startswith(p.stage0_archs)), None)


#: Where a stage config names its ``model_arch`` (vLLM-Omni 0.31 adds the last two).
ARCH_HOLDERS = ("engine_args", "model_config", "stage_pipeline_config")


def identify(stage_config: Any) -> tuple[Pipeline | None, str]:
    """(pipeline or None when unknown, what named it) for one stage's config entry."""
    func_path = config_value(stage_config, "custom_process_input_func")
    found = by_processor(str(func_path) if func_path else None)
    if found is not None:
        return found, f"custom_process_input_func {func_path}"
    holders = (config_value(stage_config, holder) for holder in ARCH_HOLDERS)
    archs = [str(arch) for holder in holders if (arch := config_value(holder, "model_arch"))]
    for arch in archs:
        if (found := by_arch(arch)) is not None:
            return found, f"model_arch {arch}"
    try:
        sampling = config_value(stage_config, "default_sampling_params")
        if sizing.EOS_TOKEN_ID in list(config_value(sampling, "stop_token_ids") or ()):
            return GLM_IMAGE, f"stop token {sizing.EOS_TOKEN_ID} (GLM-Image's EOS)"
    except Exception:  # an odd config: the model stays unknown
        pass
    arch = config_value(config_value(stage_config, "engine_args"), "model_arch")
    return None, f"model_arch {arch!r}, custom_process_input_func {func_path!r}"


# --- where the processor reads the size -----------------------------------------------------

#: (height, width) per place: non-square, distinct, multiples of 32, neither is the 1024 default.
PROBE_SIZES = {TOP_LEVEL: (768, 1024), MM_KWARGS: (1024, 768)}


def synthetic_output(kind: str, height: int, width: int) -> stage1.SyntheticAROutput:
    """A synthetic AR output (stands for the GPU engine) the processor can consume."""
    if kind == "glm":
        return stage1.glm_output(height, width, prompt_token_ids=(1, 2))
    import torch

    latent = torch.zeros(4, 4)  # one hidden state per prompt and generated token but the last
    return stage1.ar_output(
        [3, 4, 5], prompt_token_ids=(1, 2), multimodal_output={"latent": latent}
    )


def probe_reads(function: Callable[..., Any], output_kind: str = "latent") -> frozenset[str]:
    """The places ``function`` takes the size from: called once per place, the DiT size
    compared. A call that raises counts as "not read there"; the processor's own log lines
    (its reaction to a mismatched grid) are kept out of the worker's log."""
    reads = set()
    quiet = logging.getLogger(getattr(function, "__module__", None) or PROCESSORS)
    thread = threading.get_ident()
    drop = lambda record: record.thread != thread  # noqa: E731 - this thread's records only
    for where, (height, width) in PROBE_SIZES.items():
        quiet.addFilter(drop)
        try:
            result = stage1.call(
                function,
                [synthetic_output(output_kind, height, width)],
                stage1.probe_prompt(where, height, width),
            )
        except Exception as exc:
            logger.debug("omni-sizefix: probe %s with the size at %s: %s", function, where, exc)
            continue
        finally:
            quiet.removeFilter(drop)
        if stage1.dit_size(result) == (height, width):
            reads.add(where)
    return frozenset(reads)


def shape_for(reads: frozenset[str]) -> Shape | None:
    """The shape to write for a processor that reads ``reads`` (None: it reads neither)."""
    if MM_KWARGS in reads:
        return Shape.MM_KWARGS  # what ai-dynamo >= 1.2 writes itself: nothing to add there
    return Shape.TOP_LEVEL if TOP_LEVEL in reads else None


def load(func_path: str) -> Callable[..., Any]:
    """The function a ``custom_process_input_func`` path names."""
    module_name, name = func_path.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), name)


def installed_processor(pipeline: Pipeline, func_path: str | None = None) -> str | None:
    """``func_path`` when given, else the first of the pipeline's vLLM-Omni processors the
    installed vLLM-Omni has (None: none)."""
    if func_path:
        return func_path
    for candidate in pipeline.processors:
        try:
            if candidate.startswith(PROCESSORS) and load(candidate):
                return candidate
        except Exception as exc:  # not in this release, or broken here
            logger.debug("omni-sizefix: cannot import %s: %s", candidate, exc)
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
    reads: frozenset[str] = frozenset()
    if path is None:
        reason = f"{pipeline.name}: no stage-1 processor of it in the installed vLLM-Omni"
    else:
        if path.startswith("omni_sizefix."):  # the package's own wraps upstream's GLM-Image one
            path = GLM_IMAGE_PROCESSOR
        try:
            reads = probe_reads(load(path), pipeline.probe_output)
            where = " and ".join(sorted(reads)) or "neither top-level nor mm_processor_kwargs"
            reason = f"{pipeline.name}: {'.'.join(path.rsplit('.', 2)[-2:])} reads {where} (probed)"
        except Exception as exc:
            reason = f"{pipeline.name}: probing {path} failed ({type(exc).__name__}: {exc})"
    shape = shape_for(reads)
    if shape is None and pipeline is GLM_IMAGE:
        shape = Shape.BOTH  # the package's processor reads both; never leave GLM-Image unsized
        reason += "; both written"
    return Plan(pipeline.name, pipeline.stage0_size, shape, pipeline.size_policy, reason, reads)


# --- this process's plan --------------------------------------------------------------------

_lock = threading.RLock()
_plan: Plan | None = None
#: True once a stage config named the pipeline (a recorded plan is not replaced by the default).
_recorded = False


def _set(new: Plan) -> Plan:
    global _plan
    try:
        forced = settings.shape_override()
    except ValueError:  # reported once at start-up (``settings.problems()``)
        forced = None
    if forced is not None and new.shape is not None:
        reason = f"{settings.SHAPE_VAR}={forced.value} ({new.reason})"
        new = Plan(new.pipeline, new.stage0, forced, new.size_policy, reason, new.reads)
    _plan = new
    return new


def plan() -> Plan:
    """The plan of this process (probed on the first call: GLM-Image until a stage config
    names the model); ``OMNI_SIZEFIX_SHAPE`` applied."""
    found = _plan
    if found is None:
        with _lock:
            found = _plan
            if found is None:
                try:
                    found = _set(build_plan(GLM_IMAGE, named_by="no stage config seen"))
                except Exception as exc:  # e.g. vLLM-Omni not installed
                    reason = f"GLM-Image assumed ({exc})"
                    found = _set(Plan(GLM_IMAGE.name, True, Shape.BOTH, True, reason))
    return found


def record(stage_config: Any, stage_id: Any) -> Plan | None:
    """Learn the pipeline from the stage config a worker was built from; log the plan once.
    Returns the new plan, or None when this stage config names nothing new."""
    global _recorded
    pipeline, named_by = identify(stage_config)
    if pipeline is None and stage_id != 0:
        return None  # a later stage without a known processor says nothing about stage 0
    func_path = config_value(stage_config, "custom_process_input_func")
    with _lock:
        if _recorded and _plan is not None and pipeline and _plan.pipeline == pipeline.name:
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
    stage0 = "stage 0 gets target_h/target_w" if found.stage0 else "stage 0 as the host builds it"
    return f"{stage0}, original_prompt gets the size as {found.shape.value} ({found.reason})"


def forget() -> None:
    """Drop the recorded plan (``unpatch``, tests): the next ``plan()`` probes again."""
    global _plan, _recorded
    with _lock:
        _plan = None
        _recorded = False
