"""Patch: the worker learns its model and the stage-0 token budget from its stage config.

Target
    ``dynamo.vllm.omni.stage_worker.OmniStageWorker.__init__`` (ai-dynamo 1.1-1.7), which
    receives the worker's own stage config (``stage_config``) and ``stage_id``.
Why
    GLM-Image's AR stage stops at stage-0 ``max_tokens``. vLLM-Omni's legacy GLM-Image config
    sets 1281 (enough for 1024x1024), while the size policy accepts up to 2048x2048: on that
    config a larger request's prior is silently truncated and the DiT gets a wrong image.
How
    After the host's ``__init__`` returns, a stage-0 GLM-Image worker (``stage_id`` 0, stage
    config with ``model_arch`` GlmImage* or GLM-Image's EOS 16385 as stop token) hands its
    ``default_sampling_params.max_tokens`` to ``size_policy.set_budget``; from then on a
    size whose scaffold does not fit is rejected before stage 0 runs, with a message naming
    the largest size this deployment holds and ``omni-sizefix stage-config glm_image``.
    Other workers and models are not touched. Every worker also hands its stage config to
    ``omni_sizefix.runtime.pipelines.record``: stage 0's ``model_arch`` (or a later stage's
    ``custom_process_input_func``) names the model, so the parse patch of the stage-0 worker
    writes the size only where that model's stage-1 processor reads it (GLM-Image's
    ``target_h``/``target_w`` never reach BAGEL, HunyuanImage-3 gets top-level
    ``height``/``width``). A failure here logs one WARNING and leaves
    the worker as the host built it. The signature (``stage_config`` and ``stage_id``
    parameters) is checked before anything is replaced.
Upstream
    vLLM-Omni's deploy config (0.20.0rc1+) sets 4353 ("theoretical maximum (2048x2048 t2i)");
    no Dynamo release adjusts ``max_tokens`` per request (ai-dynamo/dynamo#8679).
Removal
    Not while the plugin writes per model: this is where a worker learns its model. The budget
    part matters for any deployment config below 4353 stage-0 tokens, whichever vLLM-Omni
    (the legacy 1281 config is vLLM-Omni <= 0.18's, and operators copy it).
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from omni_sizefix.runtime import pipelines, size_policy
from omni_sizefix.runtime.host_modules import STAGE_WORKER_MODULE
from omni_sizefix.runtime.patches import dynamo_stage_request_id
from omni_sizefix.runtime.patching import Replacement, marked, warn_failed

logger = logging.getLogger("omni_sizefix")

TARGET = "OmniStageWorker.__init__"
REQUIRED_PARAMETERS = ("stage_config", "stage_id")

_target = Replacement("__init__", f"{STAGE_WORKER_MODULE}.{TARGET}")
_warned: set[str] = set()


def stage0_budget(stage_config: Any) -> int | None:
    """Stage-0 ``max_tokens`` of a GLM-Image stage config (None: not GLM-Image or not set)."""
    sampling = pipelines.config_value(stage_config, "default_sampling_params")
    if pipelines.identify(stage_config)[0] is not pipelines.GLM_IMAGE:
        return None
    max_tokens = pipelines.config_value(sampling, "max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return None
    return max_tokens


def record(stage_config: Any, stage_id: Any) -> None:
    """Hand a stage-0 GLM-Image worker's budget to the size policy (logged once)."""
    if stage_id != 0:
        return
    budget = stage0_budget(stage_config)
    if budget is None or budget == size_policy.budget():
        return
    size_policy.set_budget(budget)
    side = size_policy.largest_square_side(budget)
    logger.info(
        "omni-sizefix: stage-0 max_tokens %d holds GLM-Image sizes up to %s; larger "
        "requests are rejected (a config holding %dx%d: `%s`)",
        budget,
        f"{side}x{side}" if side else "none",
        size_policy.MAX_SIDE,
        size_policy.MAX_SIDE,
        size_policy.RAISE_BUDGET_COMMAND,
    )


def wrap(original: Callable) -> Callable:
    """A wrapper of ``OmniStageWorker.__init__`` that records the stage-0 budget."""
    names = list(inspect.signature(original).parameters)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        bound = dict(zip(names[1:], args, strict=False))
        bound.update(kwargs)
        largest = f"{size_policy.MAX_SIDE}x{size_policy.MAX_SIDE}"
        for key, learn, failed, instead in (
            ("pipeline", pipelines.record, "could not tell the model from the stage config",
             "requests are sized for GLM-Image"),
            ("record", record, "could not read the stage-0 budget",
             f"sizes are checked against {largest} only"),
        ):  # fmt: skip
            try:
                learn(bound.get("stage_config"), bound.get("stage_id"))
            except Exception as exc:  # never take the worker down
                warn_failed(_warned, key, exc, failed, instead)
        try:
            dynamo_stage_request_id.bind(self, bound.get("stage_id"))
        except Exception as exc:  # never take the worker down
            warn_failed(_warned, "request_id", exc, "could not check the engine call",
                        "the engine is called as the host calls it")  # fmt: skip

    return marked(__init__, original)


def signature_problem(stage_worker: ModuleType) -> str | None:
    """None when ``OmniStageWorker.__init__`` takes ``stage_config`` and ``stage_id``."""
    cls = getattr(stage_worker, "OmniStageWorker", None)
    init = cls.__dict__.get("__init__") if isinstance(cls, type) else None
    if not callable(init):
        return f"{STAGE_WORKER_MODULE}.{TARGET}: not found"
    names = tuple(inspect.signature(init).parameters)
    if not all(name in names for name in REQUIRED_PARAMETERS):
        return (
            f"{STAGE_WORKER_MODULE}.{TARGET}: expected parameters "
            f"{', '.join(REQUIRED_PARAMETERS)}, found ({', '.join(names)})"
        )
    return None


def _worker_class(stage_worker: ModuleType | None) -> type | None:
    cls = getattr(stage_worker, "OmniStageWorker", None)
    return cls if isinstance(cls, type) else None


def apply(stage_worker: ModuleType) -> bool:
    """Wrap ``OmniStageWorker.__init__`` (idempotent); True when newly wrapped.

    Raises LookupError (nothing replaced) when the target is not the expected one.
    """
    return _target.apply(_worker_class(stage_worker), wrap, lambda: signature_problem(stage_worker))


def remove() -> bool:
    """Put the host's own ``__init__`` back and forget the budget; True when restored."""
    if not _target.remove(_worker_class(sys.modules.get(STAGE_WORKER_MODULE))):
        return False
    size_policy.set_budget(None)
    return True
