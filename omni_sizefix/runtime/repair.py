"""Apply the hooks to one parsed request: the per-request work of the patch."""

from __future__ import annotations

import logging
from typing import Any

from omni_sizefix.runtime import modalities, pipelines, plugins
from omni_sizefix.runtime.geometry import Kind, TargetGeometry
from omni_sizefix.runtime.pipelines import Plan
from omni_sizefix.runtime.settings import Shape

logger = logging.getLogger("omni_sizefix")


def is_candidate(parsed: Any, kind: Kind | None) -> bool:
    """Cheap pre-filter: only image/video results and image-modality chats reach the hooks."""
    if kind is None or not isinstance(parsed, dict):
        return False
    return kind == "image" or parsed.get("sampling_params_list") is not None


def repair_parsed(
    request: dict, output_modalities: list, parsed: dict, shape: Shape | None
) -> dict:
    """Return ``parsed`` with the target geometry in every place the stages read it.

    Returns ``parsed`` itself (not a copy) when the hooks decide it is not a sized request.
    """
    kind = modalities.request_kind(output_modalities or ())
    return _repair_all(request, output_modalities, parsed, shape, kind)


def _repair_all(
    request: dict, output_modalities: list, parsed: dict, shape: Shape | None, kind: Kind | None
) -> dict:
    """``repair_parsed`` of a request of ``kind`` (classified once, by the caller)."""
    if not is_candidate(parsed, kind):
        return parsed
    hooks = plugins.hooks()
    geometry = hooks.omni_sizefix_target_geometry(
        request=request, parsed=parsed, output_modalities=output_modalities
    )
    if geometry is None:
        return parsed
    engine_inputs = hooks.omni_sizefix_stage0_prompt(
        engine_inputs=parsed.get("engine_inputs"), geometry=geometry, request=request
    )
    if engine_inputs is None:  # no stage-0 prompt to size: all places or none
        return parsed
    repaired = dict(parsed)
    repaired["engine_inputs"] = engine_inputs
    original_prompt = hooks.omni_sizefix_original_prompt(
        original_prompt=parsed.get("original_prompt"), geometry=geometry, shape=shape
    )
    if original_prompt is not None:
        repaired["original_prompt"] = original_prompt
    sampling_params = hooks.omni_sizefix_sampling_params(
        sampling_params=parsed.get("sampling_params_list"), geometry=geometry, request=request
    )
    if sampling_params is not None:
        repaired["sampling_params_list"] = sampling_params
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "omni-sizefix: %s request sized %dx%d (WxH)%s, stage-1 shape %s",
            geometry.kind,
            geometry.width,
            geometry.height,
            f", snapped from {geometry.requested[1]}x{geometry.requested[0]}"
            if geometry.snapped and geometry.requested
            else "",
            shape.value if shape else "none",
        )
    return repaired


def repair_request(request: dict, output_modalities: list, parsed: dict, kind: Kind | None) -> dict:
    """``repair_parsed`` for the pipeline this worker serves (``pipelines.plan()``), of a
    request of ``kind`` (``modalities.request_kind``, classified once by the caller).

    Every model goes through the four hooks, a model the package does not know too: a
    third-party plugin is asked first; the default hooks then write only where the plan says
    the model reads the size (GLM-Image: everywhere; HunyuanImage-3, MammothModa2: the
    ``original_prompt`` of an image request; BAGEL and unknown models: nowhere). A malformed
    ``size`` is rejected for every model.
    """
    return _repair_all(request, output_modalities, parsed, pipelines.plan().shape, kind)


def repair_original_prompt(prompt: Any, height: Any, width: Any, plan: Plan) -> Any:
    """Add the size to a ``build_original_prompt`` result, in ``plan.shape``; return it
    unchanged if it cannot, or when ``plan`` does not size every kind of request the host
    builds an original prompt for (image and video: GLM-Image), since the kind is not known
    here: the parse wrapper then writes the size for the requests that need it."""
    shape = plan.shape
    if not (plan.writes("image") and plan.writes("video")) or shape is None:
        return prompt
    if not (type(height) is int and type(width) is int and isinstance(prompt, dict)):
        return prompt
    if height <= 0 or width <= 0:
        return prompt
    geometry = TargetGeometry(height, width, kind=None)
    repaired = plugins.hooks().omni_sizefix_original_prompt(
        original_prompt=prompt, geometry=geometry, shape=shape
    )
    return prompt if repaired is None else repaired
