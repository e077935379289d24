"""Hook specifications of the ``omni_sizefix`` pluggy project.

Third-party packages implement these with ``omni_sizefix.hookimpl`` and register the
module through the ``omni_sizefix`` entry-point group. Every hook is ``firstresult``:
the first implementation that returns something other than None decides; the default
implementations (``omni_sizefix.runtime.hooks``) runs last.
"""

from __future__ import annotations

from typing import Any

import pluggy

from omni_sizefix.runtime.settings import Shape
from omni_sizefix.runtime.sizing import TargetGeometry

hookspec = pluggy.HookspecMarker("omni_sizefix")
hookimpl = pluggy.HookimplMarker("omni_sizefix")


@hookspec(firstresult=True)
def omni_sizefix_target_geometry(
    request: dict, parsed: dict, output_modalities: list
) -> TargetGeometry | None:
    """Decide the target geometry of a parsed request; None leaves it as the host parsed it."""


@hookspec(firstresult=True)
def omni_sizefix_stage0_prompt(engine_inputs: Any, geometry: TargetGeometry, request: dict) -> Any:
    """Return the stage-0 engine prompt carrying ``geometry`` (a new object, input untouched)."""


@hookspec(firstresult=True)
def omni_sizefix_original_prompt(
    original_prompt: dict | None, geometry: TargetGeometry, shape: Shape | None
) -> dict | None:
    """Return the ``original_prompt`` with the size written in ``shape`` (None: read nowhere)."""


@hookspec(firstresult=True)
def omni_sizefix_sampling_params(
    sampling_params: dict | None, geometry: TargetGeometry, request: dict
) -> dict | None:
    """Return the later stages' sampling overrides with height/width equal to ``geometry``."""
