"""Run the package's request repair as a GLM-Image worker whose stage 1 reads a given shape."""

from __future__ import annotations

from typing import Any

from omni_sizefix.runtime import hooks, pipelines
from omni_sizefix.runtime.settings import Shape


def glm_plan(shape: Shape | None) -> pipelines.Plan:
    """The plan of a GLM-Image worker whose stage-1 processor reads the size in ``shape``."""
    return pipelines.Plan(pipelines.GLM_IMAGE.name, True, shape, True, f"test: {shape}")


def repair_with_shape(request: Any, modalities: list, parsed: Any, shape: Shape | None) -> Any:
    """``hooks.repair_request`` (what the patched parse calls) under ``glm_plan(shape)``."""
    saved = pipelines._plan
    pipelines._plan = glm_plan(shape)
    try:
        return hooks.repair_request(request, modalities, parsed)
    finally:
        pipelines._plan = saved
