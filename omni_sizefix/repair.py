"""Apply the hooks to one parsed request: the per-request work of the patch."""

from __future__ import annotations

import logging
from typing import Any

from omni_sizefix.geometry import TargetGeometry
from omni_sizefix.plugins import get_plugin_manager
from omni_sizefix.settings import Shape

logger = logging.getLogger("omni_sizefix")


def is_candidate(parsed: Any, output_modalities: Any) -> bool:
    """Cheap pre-filter: only image/video results and image-modality chats reach the hooks."""
    if not isinstance(parsed, dict):
        return False
    if parsed.get("sampling_params_list") is not None:
        return True
    return any(str(modality).lower() == "image" for modality in output_modalities or ())


def repair_parsed(request: dict, output_modalities: list, parsed: dict, shape: Shape) -> dict:
    """Return ``parsed`` with the target geometry in every place the stages read it.

    Returns ``parsed`` itself (not a copy) when the hooks decide it is not a sized request.
    """
    if not is_candidate(parsed, output_modalities):
        return parsed
    hook = get_plugin_manager().hook
    geometry = hook.omni_sizefix_target_geometry(
        request=request, parsed=parsed, output_modalities=output_modalities
    )
    if geometry is None:
        return parsed
    engine_inputs = hook.omni_sizefix_stage0_prompt(
        engine_inputs=parsed.get("engine_inputs"), geometry=geometry, request=request
    )
    if engine_inputs is None:  # no stage-0 prompt to size: all places or none
        return parsed
    repaired = dict(parsed)
    repaired["engine_inputs"] = engine_inputs
    original_prompt = hook.omni_sizefix_original_prompt(
        original_prompt=parsed.get("original_prompt"), geometry=geometry, shape=shape
    )
    if original_prompt is not None:
        repaired["original_prompt"] = original_prompt
    sampling_params = hook.omni_sizefix_sampling_params(
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
            shape.value,
        )
    return repaired


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def repair_original_prompt(prompt: Any, height: Any, width: Any, shape: Shape) -> Any:
    """Add the size to a ``build_original_prompt`` result; return it unchanged if it cannot."""
    if not (_positive_int(height) and _positive_int(width) and isinstance(prompt, dict)):
        return prompt
    geometry = TargetGeometry(height, width, kind=None)
    repaired = get_plugin_manager().hook.omni_sizefix_original_prompt(
        original_prompt=prompt, geometry=geometry, shape=shape
    )
    return prompt if repaired is None else repaired
