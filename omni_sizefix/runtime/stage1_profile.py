"""What stage 1 of this host does with vLLM-Omni's GLM-Image processor, found by probing.

Computed once per process (``profile()``), the first time a stage worker loads vLLM-Omni's
GLM-Image ``ar2diffusion``. Nothing here is decided from version numbers: every answer comes
from calling the installed code on synthetic inputs.

* **dispatch**: the installed ``OmniStageWorker._process_stage_inputs`` is called with a
  recorder that carries upstream's signature: does it call the processor, and in which
  convention (stage list or source outputs)? ai-dynamo 1.1.x has no such method and always
  calls ``(stage_list, engine_input_source, [original_prompt], requires_mm)``.
* **token field**: does upstream read ``cumulative_token_ids`` (called on a completion that
  has only ``token_ids``), and does the host's stage worker add it back after the connector
  (``_ensure_cumulative_token_ids``, called on a probe object)?
* **size and prior**: upstream is called in its own convention on a synthetic AR output for a
  non-square size, the size given only as ``mm_processor_kwargs`` (what ai-dynamo >= 1.2 and
  the parse patch write): the DiT input must have that size and the prior must be the target
  grid (vLLM-Omni <= 0.18 read only top-level ``height``/``width`` and slice the prior at a
  ``h//2 x w//2`` preview-grid offset).

``defects`` lists what is wrong; ``needs_fix`` is true when the package's processor
(``omni_sizefix.processors.glm_image.ar2diffusion``) must run instead of upstream's.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from omni_sizefix.runtime import stage1_io
from omni_sizefix.runtime.host_modules import GLM_IMAGE_PROCESSORS, STAGE_WORKER_MODULE
from omni_sizefix.runtime.stage1_io import (
    PROBE_SIZE,
    SOURCE_OUTPUTS,
    STAGE_LIST,
    convention_of,
    upstream_verdict,
)

logger = logging.getLogger("omni_sizefix")


DISPATCH = "dispatch"
TOKEN_FIELD = "token-field"
SIZE = "size"
PRIOR = "prior"


@dataclass(frozen=True)
class Stage1Profile:
    """How this host's stage 1 treats vLLM-Omni's GLM-Image ``ar2diffusion``."""

    #: ``stage_list`` / ``source_outputs``: how the host calls a processor of upstream's
    #: signature; None: it refuses to (raises before calling it).
    host_call: str | None
    #: Upstream's own calling convention (from its parameter names).
    upstream_convention: str
    #: Upstream reads ``cumulative_token_ids`` (vLLM-Omni >= 0.20.0rc1).
    upstream_reads_cumulative: bool
    #: The host's stage worker restores ``cumulative_token_ids`` after the connector.
    host_bridges_cumulative: bool
    #: What upstream made of the probe: ``ok``, or what went wrong.
    upstream_verdict: str
    #: The package's processor is dispatchable by this host (same probe as ``host_call``).
    package_dispatchable: bool
    #: Short keys of what is wrong (``dispatch``, ``token-field``, ``size``, ``prior``).
    defects: tuple[str, ...] = field(default=())
    #: One sentence per defect.
    reasons: tuple[str, ...] = field(default=())

    @property
    def needs_fix(self) -> bool:
        """True when upstream's processor, as this host runs it, gets stage 1 wrong."""
        return bool(self.defects)


# --- probes ---------------------------------------------------------------------------------


class _Recorder:
    """A callable carrying another function's signature; records how it was called."""

    def __init__(self, function: Any) -> None:
        self.__signature__ = inspect.signature(function)
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> list:
        self.calls.append(args)
        return []


def host_call(stage_worker: Any, function: Any) -> str | None:
    """How this host's stage worker calls a processor with ``function``'s signature.

    Runs the host's own ``OmniStageWorker._process_stage_inputs`` with a recorder. Hosts
    without that method (ai-dynamo 1.1.x) call every processor in the stage-list form.
    """
    dispatch = getattr(stage_worker.OmniStageWorker, "_process_stage_inputs", None)
    if dispatch is None:
        return STAGE_LIST
    recorder = _Recorder(function)
    marker = object()
    worker = SimpleNamespace(
        _processor=recorder, stage_id=1, _engine_input_source=[0], _requires_mm=False
    )
    try:
        dispatch(worker, [stage1_io.Stage([marker])], {"prompt": ""})
    except TypeError:
        return None
    if not recorder.calls:
        return None
    first = recorder.calls[0][0]
    if isinstance(first, list) and first and isinstance(first[0], stage1_io.Stage):
        return STAGE_LIST
    return SOURCE_OUTPUTS


def host_bridges_cumulative(stage_worker: Any) -> bool:
    """True when the host adds ``cumulative_token_ids`` back to fetched AR outputs."""
    ensure = getattr(stage_worker, "_ensure_cumulative_token_ids", None)
    if not callable(ensure):
        return False
    completion = SimpleNamespace(token_ids=[1, 2, 3])
    try:
        ensure(SimpleNamespace(outputs=[completion]))
    except Exception:
        return False
    return list(getattr(completion, "cumulative_token_ids", None) or []) == [1, 2, 3]


def _probe_output(height: int, width: int, *, cumulative: bool) -> stage1_io.SyntheticAROutput:
    return stage1_io.glm_output(height, width, cumulative=cumulative)


def call_upstream(function: Any, output: Any, prompt: dict) -> Any:
    """Call upstream's processor in its own convention, as vLLM-Omni's orchestrator does."""
    return stage1_io.call(function, [output], prompt)


def reads_cumulative(function: Any) -> bool:
    """True when upstream fails on a completion that has only ``token_ids``."""
    height, width = PROBE_SIZE
    prompt = {"prompt": "", "mm_processor_kwargs": {"target_h": height, "target_w": width}}
    try:
        call_upstream(function, _probe_output(height, width, cumulative=False), prompt)
    except AttributeError as exc:
        return "cumulative_token_ids" in str(exc)
    return False


def build(stage_worker: Any, upstream: Any, package_processor: Any) -> Stage1Profile:
    """Probe ``stage_worker`` (a module, or None without Dynamo) and ``upstream``."""
    convention = convention_of(upstream)
    call = host_call(stage_worker, upstream) if stage_worker is not None else convention
    package_call = (
        host_call(stage_worker, package_processor) if stage_worker is not None else convention
    )
    cumulative = reads_cumulative(upstream)
    bridged = host_bridges_cumulative(stage_worker) if stage_worker is not None else True
    verdict = upstream_verdict(upstream, "mm-kwargs")
    # The size in both places isolates the prior from where the size is read.
    both = verdict if verdict == "ok" else upstream_verdict(upstream, "both")
    defects, reasons = [], []
    if call != convention:
        defects.append(DISPATCH)
        reasons.append(
            f"this Dynamo's stage-1 dispatch rejects vLLM-Omni's ar2diffusion ({convention} "
            "parameters): TypeError on every request"
            if call is None
            else f"this Dynamo calls vLLM-Omni's ar2diffusion ({convention} parameters) in the "
            f"{call} form"
        )
    if cumulative and not bridged:
        defects.append(TOKEN_FIELD)
        reasons.append(
            "vLLM-Omni's ar2diffusion reads cumulative_token_ids, which this Dynamo does not "
            "restore after the connector"
        )
    probe = f"vLLM-Omni's ar2diffusion on a {PROBE_SIZE[1]}x{PROBE_SIZE[0]} request"
    if verdict.startswith(("wrong size", "raised", "no DiT", "0 DiT")) and verdict != both:
        defects.append(SIZE)
        reasons.append(f"{probe} sized only in mm_processor_kwargs: {verdict}")
    if both != "ok":
        defects.append(PRIOR if "prior" in both else SIZE)
        reasons.append(f"{probe} sized in mm_processor_kwargs and at top level: {both}")
    return Stage1Profile(
        host_call=call,
        upstream_convention=convention,
        upstream_reads_cumulative=cumulative,
        host_bridges_cumulative=bridged,
        upstream_verdict=verdict,
        package_dispatchable=package_call is not None,
        defects=tuple(defects),
        reasons=tuple(reasons),
    )


@functools.lru_cache(maxsize=1)
def profile() -> Stage1Profile:
    """The profile of the installed host (imports it; computed once per process)."""
    from omni_sizefix.runtime.patches import glm_image_processor as glm_image

    try:
        stage_worker = importlib.import_module(STAGE_WORKER_MODULE)
    except ImportError:
        stage_worker = None
    upstream = importlib.import_module(GLM_IMAGE_PROCESSORS).ar2diffusion
    return build(stage_worker, upstream, glm_image.ar2diffusion)
