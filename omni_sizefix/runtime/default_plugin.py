"""Default hook implementations: GLM-Image and other AR->DiT pipelines.

Registered like any third-party plugin (``omni_sizefix.runtime.plugins``), but with
``trylast`` so that a third-party implementation is asked first.

Requests, and what the host parses from them, are JSON-shaped: containers are checked with
``isinstance(value, dict)`` (a ``Mapping`` check costs an ABC lookup, several per request).
"""

from __future__ import annotations

from typing import Any

from omni_sizefix.hookspecs import hookimpl
from omni_sizefix.runtime import modalities, pipelines, size_policy, sizing
from omni_sizefix.runtime.errors import SizeRejected
from omni_sizefix.runtime.geometry import TargetGeometry
from omni_sizefix.runtime.settings import Shape

DEFAULT_IMAGE_SIZE = (1024, 1024)
_SIZE_KEYS = frozenset({"height", "width", "size"})


def as_dimension(value: Any, name: str) -> int:
    """Coerce one requested dimension to a positive int, or raise SizeRejected."""
    if type(value) is int and value > 0:  # what the hosts parse
        return value
    if isinstance(value, bool):
        raise SizeRejected(f"{name} must be a positive integer, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdecimal():  # isdigit() admits "²"
        number = int(value.strip())
    else:
        raise SizeRejected(f"{name} must be a positive integer, got {value!r}")
    if number <= 0:
        raise SizeRejected(f"{name} must be a positive integer, got {value!r}")
    return number


def _dict_or_empty(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _copy_or_empty(value: Any) -> dict:
    """A new dict with the items of ``value`` (empty when ``value`` is not a dict)."""
    return dict(value) if isinstance(value, dict) else {}


def _parse_size(size: Any) -> tuple[int, int] | None:
    """(height, width) from ``WIDTHxHEIGHT``, or None when malformed (or not a string).

    Exactly the host's ``parse_size`` rule (a lowercase ``x``, ``int()`` of each side), so
    a chat request gets the size ai-dynamo >= 1.2 would give it.
    """
    try:
        width, height = sizing.parse_size(size)
    except ValueError:
        return None
    return height, width


#: ``size`` values that mean "the default size" (OpenAI's enum), not a malformed size.
_DEFAULT_SIZE_WORDS = frozenset({"auto"})


def check_size_format(request: Any) -> None:
    """Raise SizeRejected when the request's ``size`` is not ``WIDTHxHEIGHT``.

    Every Dynamo release parses ``size`` with ``parse_size``, which turns a malformed value
    (``"abcxdef"``, ``"512"``, ``"x"``, ``"512X512"``) into 1024x1024 with only a log line.
    Checked where the host reads it (``size``, else ``extra_body.size``), unless explicit
    ``width`` and ``height`` replace it anyway. Empty and ``"auto"`` mean the default size.
    """
    if type(request) is not dict:
        return
    size = request.get("size")
    extra_body = request.get("extra_body")
    if not size and type(extra_body) is dict:
        size = extra_body.get("size")
    if not size or _parse_size(size) is not None:
        return
    if isinstance(size, str) and size.strip().lower() in _DEFAULT_SIZE_WORDS:
        return
    for source in (request, extra_body, request.get("nvext")):
        if isinstance(source, dict) and None not in (source.get("width"), source.get("height")):
            return
    raise SizeRejected(size_policy.malformed_message(size))


def size_from_request(request: dict) -> tuple[int, int]:
    """(height, width) of a chat image request, resolved as ai-dynamo >= 1.2 does.

    ``size`` | ``extra_body.size`` | 1024x1024 (a malformed size is rejected by
    ``check_size_format``; the host's ``parse_size`` would fall back to the default), then
    ``width``/``height`` from ``extra_body``, then from the request itself. Only the values
    that win are checked: one that a later source replaces never reaches the engine.
    """
    extra_body = _dict_or_empty(request.get("extra_body"))
    size = request.get("size") or extra_body.get("size")
    parsed = _parse_size(size) if size else None
    if parsed is None and size:
        check_size_format(request)  # raises unless "auto" or explicit sides replace it
    height, width = parsed or DEFAULT_IMAGE_SIZE
    for source in (extra_body, request):
        if source.get("width") is not None:
            width = source["width"]
        if source.get("height") is not None:
            height = source["height"]
    return as_dimension(height, "height"), as_dimension(width, "width")


@hookimpl(trylast=True)
def omni_sizefix_target_geometry(
    request: dict, parsed: dict, output_modalities: list
) -> TargetGeometry | None:
    """The host's height/width of an image or video request, checked by GLM-Image's size
    policy; None where this worker's model reads no size (``pipelines.Plan.writes``)."""
    kind = modalities.request_kind(output_modalities)
    if kind is None:
        return None
    plan = pipelines.plan()
    sampling = parsed.get("sampling_params_list")
    if isinstance(sampling, dict) and "height" in sampling and "width" in sampling:
        if kind == "image":
            check_size_format(request)  # the host turned a malformed size into 1024
        if not plan.writes(kind):
            return None
        height = as_dimension(sampling["height"], "height")
        width = as_dimension(sampling["width"], "width")
    elif kind == "image" and plan.is_glm:
        height, width = size_from_request(request)  # checks the size's format itself
    else:
        if kind == "image":
            check_size_format(request)
        return None
    as_asked = not plan.size_policy or kind == "video"  # GLM-Image's policy: its images
    if as_asked or size_policy.renders_as_asked(height, width, size_policy.budget()):
        return TargetGeometry(height, width, kind, (height, width))
    target = size_policy.apply(height, width)  # the size policy: reject, snap (logged) or off
    return TargetGeometry(target[0], target[1], kind, (height, width))


def _negative_prompt(request: dict) -> Any:
    for source in (request, request.get("extra_body"), request.get("nvext")):
        if isinstance(source, dict) and source.get("negative_prompt") is not None:
            return source["negative_prompt"]
    return None


@hookimpl(trylast=True)
def omni_sizefix_stage0_prompt(engine_inputs: Any, geometry: TargetGeometry, request: dict) -> Any:
    """Add ``mm_processor_kwargs`` (and image ``modalities``) to the stage-0 prompt.

    Keys already present are kept, except a ``target_h``/``target_w`` equal to the
    client's size when the size policy snapped it. A model whose stage 0 takes no size
    (``pipelines.Plan.stage0``) keeps the host's prompt.
    """
    if not pipelines.plan().stage0:
        return engine_inputs
    if isinstance(engine_inputs, str):
        prompt: dict = {"prompt": engine_inputs}
        negative = _negative_prompt(request)
        if negative is not None:
            prompt["negative_prompt"] = negative
        if request.get("multi_modal_data"):
            prompt["multi_modal_data"] = request["multi_modal_data"]
    elif isinstance(engine_inputs, dict):
        prompt = dict(engine_inputs)
    else:
        return None
    if geometry.kind == "image" and "modalities" not in prompt:
        prompt["modalities"] = ["image"]
    existing = prompt.get("mm_processor_kwargs")
    if existing is None:  # the common case (ai-dynamo 1.1): just add them
        prompt["mm_processor_kwargs"] = {"target_h": geometry.height, "target_w": geometry.width}
        return prompt
    kwargs = _copy_or_empty(existing)
    requested = geometry.requested or (geometry.height, geometry.width)
    for key, value, asked in (
        ("target_h", geometry.height, requested[0]),
        ("target_w", geometry.width, requested[1]),
    ):
        if key not in kwargs or (geometry.snapped and kwargs[key] == asked):
            kwargs[key] = value
    prompt["mm_processor_kwargs"] = kwargs
    return prompt


@hookimpl(trylast=True)
def omni_sizefix_original_prompt(
    original_prompt: dict | None, geometry: TargetGeometry, shape: Shape
) -> dict | None:
    """Write the size where this worker's stage-1 processor reads it (``shape``; None: it
    reads none, the prompt stays as the host built it)."""
    if shape is None:
        return None
    prompt = _copy_or_empty(original_prompt)
    if shape is not Shape.MM_KWARGS:  # top-level or both
        prompt["height"] = geometry.height
        prompt["width"] = geometry.width
    if shape is not Shape.TOP_LEVEL:  # mm-kwargs or both
        existing = _dict_or_empty(prompt.get("mm_processor_kwargs"))
        prompt["mm_processor_kwargs"] = {
            **existing,
            "target_h": geometry.height,
            "target_w": geometry.width,
        }
    return prompt


@hookimpl(trylast=True)
def omni_sizefix_sampling_params(
    sampling_params: dict | None, geometry: TargetGeometry, request: dict
) -> dict | None:
    """Set height/width; build ai-dynamo >= 1.2's overrides for a chat image request."""
    if isinstance(sampling_params, dict):
        overrides = dict(sampling_params)
    else:
        overrides = chat_overrides(request)
    overrides["height"] = geometry.height
    overrides["width"] = geometry.width
    return overrides


def chat_overrides(request: dict) -> dict:
    """The sampling overrides ai-dynamo >= 1.2 builds for a chat image request: the values
    of ``extra_body`` and ``nvext``, but the size."""
    overrides = {}
    for source in (request.get("extra_body"), request.get("nvext")):
        if isinstance(source, dict):
            overrides.update(
                (key, value)
                for key, value in source.items()
                if key not in _SIZE_KEYS and value is not None
            )
    return overrides
