"""Test support: a third-party hook plugin for a hypothetical square-only model.

For requests whose ``model`` is ``example/square-only`` it renders a square of the
shorter side; for every other request it returns None, so the defaults decide.
"""

from __future__ import annotations

from omni_sizefix.hookspecs import hookimpl
from omni_sizefix.runtime.sizing import TargetGeometry

MODEL = "example/square-only"


@hookimpl
def omni_sizefix_target_geometry(request, parsed, output_modalities):
    if request.get("model") != MODEL:
        return None
    sampling = parsed.get("sampling_params_list") or {}
    side = min(int(sampling.get("height", 1024)), int(sampling.get("width", 1024)))
    return TargetGeometry(
        side, side, kind="image", requested=(sampling["height"], sampling["width"])
    )
