"""The hooks: the plugin manager, applying the hooks and their default implementations.

The plugin manager (built once per process when Dynamo is patched) holds this module's
defaults (``trylast``: a third-party plugin of the ``omni_sizefix`` entry-point group is asked
first). ``repair_request`` asks the hooks for every model (one the package does not know too);
the defaults write the size only where this worker's plan (``pipelines.plan()``) says its model
reads it. Requests are JSON-shaped: containers are checked with ``isinstance(value, dict)``.
"""

from __future__ import annotations

import logging
import sys
import threading
from importlib import metadata
from typing import Any

import pluggy

from omni_sizefix import hookspecs
from omni_sizefix.hookspecs import hookimpl
from omni_sizefix.runtime import pipelines, settings, sizing
from omni_sizefix.runtime.pipelines import Plan
from omni_sizefix.runtime.settings import Shape
from omni_sizefix.runtime.sizing import Kind, TargetGeometry

logger = logging.getLogger("omni_sizefix")

PROJECT_NAME = "omni_sizefix"
ENTRY_POINT_GROUP = "omni_sizefix"
#: The name this module is registered under in the plugin manager.
DEFAULT_PLUGIN = __name__
_SIZE_KEYS = frozenset({"height", "width", "size"})

_pm: pluggy.PluginManager | None = None
_lock = threading.RLock()  # an entry point may use the manager while it loads


def _load_third_party(pm: pluggy.PluginManager) -> None:
    allowed = settings.allowed_plugins()
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        name, value = entry_point.name, entry_point.value
        if allowed is not None and name not in allowed:
            logger.info("omni-sizefix: hook plugin %r skipped (%s)", name, settings.PLUGINS_VAR)
            continue
        if pm.get_plugin(name) is not None:
            continue
        try:
            pm.register(entry_point.load(), name=name)
        except Exception as exc:  # a broken third-party plugin must not stop the worker
            logger.warning(
                "omni-sizefix: hook plugin %r (%s) not loaded: %s: %s",
                name, value, type(exc).__name__, exc,
            )  # fmt: skip
            continue
        logger.info("omni-sizefix: hook plugin %r loaded from %s", name, value)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (no lock once built: every request asks for it)."""
    global _pm
    if _pm is not None:
        return _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager(PROJECT_NAME)
            pm.add_hookspecs(hookspecs)
            pm.register(sys.modules[__name__], name=DEFAULT_PLUGIN)
            _load_third_party(pm)
            _pm = pm
    return _pm


def third_party_plugins() -> list[str]:
    """Names of the registered plugins that are not this module."""
    pm = get_plugin_manager()
    return sorted(name for name, _ in pm.list_name_plugin() if name != DEFAULT_PLUGIN)


def reset_plugin_manager() -> None:
    """Forget the plugin manager so the next use rebuilds it (tests, ``unpatch``)."""
    global _pm
    with _lock:
        _pm = None


def repair_request(
    request: dict, output_modalities: list, parsed: Any, kind: Kind | None = None
) -> Any:
    """``parsed`` with the hooks' geometry wherever the stages read it (``kind`` None: classified
    here); ``parsed`` itself when the hooks leave it unsized."""
    if kind is None:
        kind = sizing.request_kind(output_modalities or ())
    if kind is None or not isinstance(parsed, dict):
        return parsed
    if kind == "video" and parsed.get("sampling_params_list") is None:
        return parsed
    hooks = get_plugin_manager().hook
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
    shape = pipelines.plan().shape
    repaired = dict(parsed, engine_inputs=engine_inputs)
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
        asked = geometry.requested or (0, 0)
        snapped = f", snapped from {asked[1]}x{asked[0]}" if geometry.snapped else ""
        where = shape.value if shape else "none"
        message = "omni-sizefix: %s request sized %dx%d (WxH)%s, stage-1 shape %s"
        logger.debug(message, geometry.kind, geometry.width, geometry.height, snapped, where)
    return repaired


def repair_original_prompt(prompt: Any, height: Any, width: Any, plan: Plan) -> Any:
    """A ``build_original_prompt`` result with the host's size in ``plan.shape``; unchanged when
    it cannot be, or unless ``plan`` sizes both kinds (the kind is unknown there: GLM-Image)."""
    writes = plan.writes("image") and plan.writes("video") and plan.shape is not None
    sides = type(height) is int and type(width) is int and height > 0 and width > 0
    if not (writes and sides and isinstance(prompt, dict)):
        return prompt
    repaired = get_plugin_manager().hook.omni_sizefix_original_prompt(
        original_prompt=prompt, geometry=TargetGeometry(height, width, None), shape=plan.shape
    )
    return prompt if repaired is None else repaired


@hookimpl(trylast=True)
def omni_sizefix_target_geometry(
    request: dict, parsed: dict, output_modalities: list
) -> TargetGeometry | None:
    """The host's size of an image or video request, GLM-Image's policy applied; None where
    this worker's model reads none. A malformed ``size`` is rejected for every model."""
    kind = sizing.request_kind(output_modalities)
    if kind is None:
        return None
    plan = pipelines.plan()
    if kind == "image":
        sizing.check_size_format(request)  # the host turned a malformed size into 1024x1024
    sampling = parsed.get("sampling_params_list")
    if isinstance(sampling, dict) and "height" in sampling and "width" in sampling:
        if not plan.writes(kind):
            return None
        height = sizing.as_dimension(sampling["height"], "height")
        width = sizing.as_dimension(sampling["width"], "width")
    elif kind == "image" and plan.is_glm:
        height, width = sizing.size_from_request(request)
    else:
        return None
    target = (height, width)
    if plan.size_policy and kind == "image":  # GLM-Image's policy: its images
        target = sizing.apply(height, width)  # reject, snap (logged) or off
    return TargetGeometry(*target, kind, (height, width))


@hookimpl(trylast=True)
def omni_sizefix_stage0_prompt(engine_inputs: Any, geometry: TargetGeometry, request: dict) -> Any:
    """The stage-0 prompt with ``mm_processor_kwargs`` (and image ``modalities``); keys present
    are kept, except a ``target_h``/``target_w`` equal to the client's size when snapped."""
    if not pipelines.plan().stage0:
        return engine_inputs
    if isinstance(engine_inputs, str):
        prompt: dict = {"prompt": engine_inputs}
        for source in (request, request.get("extra_body"), request.get("nvext")):
            if isinstance(source, dict) and source.get("negative_prompt") is not None:
                prompt["negative_prompt"] = source["negative_prompt"]
                break
        if request.get("multi_modal_data"):
            prompt["multi_modal_data"] = request["multi_modal_data"]
    elif isinstance(engine_inputs, dict):
        prompt = dict(engine_inputs)
    else:
        return None
    if geometry.kind == "image" and "modalities" not in prompt:
        prompt["modalities"] = ["image"]
    existing = prompt.get("mm_processor_kwargs")
    kwargs = dict(existing) if isinstance(existing, dict) else {}
    asked = geometry.requested or (geometry.height, geometry.width)
    for key, value, client in (
        ("target_h", geometry.height, asked[0]),
        ("target_w", geometry.width, asked[1]),
    ):
        if key not in kwargs or (geometry.snapped and kwargs[key] == client):
            kwargs[key] = value
    prompt["mm_processor_kwargs"] = kwargs
    return prompt


@hookimpl(trylast=True)
def omni_sizefix_original_prompt(
    original_prompt: dict | None, geometry: TargetGeometry, shape: Shape | None
) -> dict | None:
    """The prompt with the size where this worker's stage-1 processor reads it (``shape``)."""
    if shape is None:
        return None
    prompt = dict(original_prompt) if isinstance(original_prompt, dict) else {}
    if shape is not Shape.MM_KWARGS:  # top-level or both
        prompt["height"] = geometry.height
        prompt["width"] = geometry.width
    if shape is not Shape.TOP_LEVEL:  # mm-kwargs or both
        existing = prompt.get("mm_processor_kwargs")
        existing = existing if isinstance(existing, dict) else {}
        prompt["mm_processor_kwargs"] = {**existing, **geometry.mm_processor_kwargs()}
    return prompt


@hookimpl(trylast=True)
def omni_sizefix_sampling_params(
    sampling_params: dict | None, geometry: TargetGeometry, request: dict
) -> dict | None:
    """Set height/width; build ai-dynamo >= 1.2's overrides for a chat image request."""
    overrides = dict(sampling_params) if isinstance(sampling_params, dict) else {}
    if not isinstance(sampling_params, dict):  # a chat: extra_body and nvext, but the size
        for source in (request.get("extra_body"), request.get("nvext")):
            if isinstance(source, dict):
                overrides.update(
                    (key, value)
                    for key, value in source.items()
                    if key not in _SIZE_KEYS and value is not None
                )
    overrides["height"] = geometry.height
    overrides["width"] = geometry.width
    return overrides
