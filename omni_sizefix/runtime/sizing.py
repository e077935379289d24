"""Sizes: a request's size as the hosts parse it, GLM-Image's token grids and its size policy.

A size renders exactly on GLM-Image only when both sides are multiples of ``FACTOR`` (one AR
prior token per 32x32 px: the scaffold floors each side, the DiT gets the client's number)
within ``MIN_SIDE``..``MAX_SIDE`` (2048: stage-0 ``max_tokens`` 4353 of the shipped configs and
upstream's deploy config; 256: below it an extreme aspect ratio's preview grid collapses to one
row). A stage-0 worker's ``max_tokens`` is the **budget** (``set_budget``): a size whose
scaffold does not fit is rejected up front. Messages write sizes ``WIDTHxHEIGHT``.
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

from omni_sizefix.runtime import settings
from omni_sizefix.runtime.settings import SizePolicy

logger = logging.getLogger("omni_sizefix")

Kind = Literal["image", "video"]

#: Pixels per AR prior token along each side (vLLM-Omni and transformers use 32).
FACTOR = 32
EOS_TOKEN_ID = 16385
MIN_SIDE = 256
MAX_SIDE = 2048
DEFAULT_IMAGE_SIZE = (1024, 1024)
#: The command that prints a stage config holding every size the policy accepts.
RAISE_BUDGET_COMMAND = "omni-sizefix stage-config glm_image"


class TargetGeometry(NamedTuple):
    """Height and width (pixels) one request is rendered at, shared by every hook. ``kind`` is
    None where the caller cannot tell; ``requested`` is the host's size (differs when snapped)."""

    height: int
    width: int
    kind: Kind | None = "image"
    requested: tuple[int, int] | None = None

    @property
    def snapped(self) -> bool:
        """True when the size policy changed the client's size."""
        return self.requested is not None and self.requested != (self.height, self.width)

    def mm_processor_kwargs(self) -> dict[str, int]:
        return {"target_h": self.height, "target_w": self.width}


def request_kind(output_modalities: Iterable[str]) -> Kind | None:
    """``image``, ``video`` or None for a worker's output modalities, as Dynamo classifies them
    (its first; ai-dynamo >= 1.2: ``image`` if any is). TypeError for a non-name."""
    names = []
    for modality in output_modalities:
        if not isinstance(modality, str):
            raise TypeError(f"an output modality must be a name, got {modality!r}")
        names.append(modality.lower())
    if not names:
        return None
    if names[0] in ("image", "video"):
        return names[0]  # type: ignore[return-value]
    return "image" if "image" in names else None


_host_class: type[SizeRejected] | None = None


class SizeRejected(ValueError):
    """A requested size the size policy refuses; the only error the plugin raises on purpose.
    In a Dynamo process also Dynamo's ``InvalidArgument`` (HTTP 400 on ai-dynamo 1.6)."""

    def __new__(cls, *args: object, **kwargs: object) -> SizeRejected:
        if cls is SizeRejected:
            cls = host_rejection_class()
        return super().__new__(cls, *args, **kwargs)

    def __reduce__(self) -> tuple:
        return (SizeRejected, self.args)  # rebuilt as the receiving process's class


def host_rejection_class() -> type[SizeRejected]:
    """``SizeRejected``, or (cached) a subclass that is also Dynamo's ``InvalidArgument`` once
    Dynamo's runtime is loaded in this process; Dynamo is never imported otherwise."""
    global _host_class
    if _host_class is not None:
        return _host_class
    module = sys.modules.get("dynamo.llm.exceptions")
    if module is None and "dynamo._core" in sys.modules:
        try:
            module = importlib.import_module("dynamo.llm.exceptions")
        except Exception:  # an older or changed release: a plain ValueError then
            return SizeRejected
    invalid = getattr(module, "InvalidArgument", None)
    if not (isinstance(invalid, type) and issubclass(invalid, BaseException)):
        return SizeRejected  # not cached: Dynamo may be loaded later in this process
    both: type[SizeRejected] = SizeRejected
    try:
        candidate = type("SizeRejected", (SizeRejected, invalid), {"__doc__": both.__doc__})
        probe = candidate("probe")
        if isinstance(probe, invalid) and str(probe) == "probe":
            both = candidate
    except Exception:  # classes that cannot be combined: stay a plain ValueError
        pass
    _host_class = both
    return both


def parse_size(value: object) -> tuple[int, int]:
    """(width, height) from ``WIDTHxHEIGHT`` (``int()`` of each side, as the hosts do): the one
    size parser of the CLI and the runtime. Raises ValueError a client can act on."""
    if not isinstance(value, str):
        raise ValueError(f"size {value!r} is not a string like 1024x768")
    try:
        width_text, height_text = value.split("x")
        width, height = int(width_text), int(height_text)
    except ValueError:
        raise ValueError(
            f"size {value!r} is not WIDTHxHEIGHT: two integers joined by a lowercase 'x', "
            "e.g. 1024x768"
        ) from None
    if width <= 0 or height <= 0:
        raise ValueError(f"size {value!r}: width and height must be positive integers")
    return width, height


def positive_int(value: object) -> int | None:
    """One side as vLLM-Omni's processors read it (``int()``) when positive, else None (a bool
    is not a side)."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def as_dimension(value: Any, name: str) -> int:
    """A requested side (int, integral float, decimal string) as a positive int, else
    SizeRejected."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdecimal():  # isdigit() admits "²"
        number = int(value.strip())
    if number is None or number <= 0:
        raise SizeRejected(f"{name} must be a positive integer, got {value!r}")
    return number


def _height_width(size: Any) -> tuple[int, int] | None:
    try:
        width, height = parse_size(size)
    except ValueError:
        return None
    return height, width


def check_size_format(request: Any) -> None:
    """Raise SizeRejected when the ``size`` the host reads (``size``, else ``extra_body.size``)
    is not ``WIDTHxHEIGHT``: every Dynamo release silently renders 1024x1024 instead.

    Empty and ``auto`` mean the default size; explicit ``width`` and ``height`` replace it.
    """
    if type(request) is not dict:
        return
    size = request.get("size")
    extra_body = request.get("extra_body")
    if not size and type(extra_body) is dict:
        size = extra_body.get("size")
    if not size or _height_width(size) is not None:
        return
    if isinstance(size, str) and size.strip().lower() == "auto":
        return
    for source in (request, extra_body, request.get("nvext")):
        if isinstance(source, dict) and None not in (source.get("width"), source.get("height")):
            return
    raise SizeRejected(
        f"size {size!r} is not WIDTHxHEIGHT: width and height must be integers joined by a "
        f"lowercase 'x', e.g. 1024x768 (multiples of {FACTOR} between {MIN_SIDE} and "
        f"{MAX_SIDE} for GLM-Image)."
    )


def size_from_request(request: dict) -> tuple[int, int]:
    """(height, width) of a chat image request as ai-dynamo >= 1.2 resolves it: ``size`` |
    ``extra_body.size`` | 1024x1024, then ``width``/``height`` from ``extra_body``, then the
    request. Only the values that win are checked."""
    extra_body = request.get("extra_body")
    extra_body = extra_body if isinstance(extra_body, dict) else {}
    size = request.get("size") or extra_body.get("size")
    parsed = _height_width(size) if size else None
    if parsed is None and size:
        check_size_format(request)  # raises unless "auto" or explicit sides replace it
    height, width = parsed or DEFAULT_IMAGE_SIZE
    for source in (extra_body, request):
        if source.get("width") is not None:
            width = source["width"]
        if source.get("height") is not None:
            height = source["height"]
    return as_dimension(height, "height"), as_dimension(width, "width")


class Grids(NamedTuple):
    """Target and preview token grids (rows, columns) for one pixel size."""

    target: tuple[int, int]
    preview: tuple[int, int]

    @property
    def token_count(self) -> int:
        """Tokens the AR model emits for text-to-image, EOS included."""
        return self.target[0] * self.target[1] + self.preview[0] * self.preview[1] + 1


def grids_for(height: int, width: int) -> Grids:
    """The grids of GLM-Image's scaffold (transformers' ``GlmImageProcessor``). Raises
    ValueError for a side under ``FACTOR`` px (size policy ``off`` lets one through)."""
    rows, cols = height // FACTOR, width // FACTOR
    if rows < 1 or cols < 1:
        raise ValueError(
            f"size {width}x{height} has a side under {FACTOR} px: GLM-Image has no token grid "
            f"for it (sides must be at least {FACTOR} px)"
        )
    preview = (int(math.sqrt(rows / cols) * 16), int(math.sqrt(cols / rows) * 16))
    return Grids(target=(rows, cols), preview=preview)


def as_ints(token_ids: Any) -> list[int]:
    """Token ids (a tensor of any shape, or a sequence) as a flat list of ints."""
    if hasattr(token_ids, "flatten"):
        token_ids = token_ids.flatten()
    if hasattr(token_ids, "tolist"):
        token_ids = token_ids.tolist()
    return [int(v) for v in token_ids]


#: Stage-0 ``max_tokens`` of this deployment (None: not known, only MAX_SIDE applies).
_budget: int | None = None


def tokens_needed(height: int, width: int) -> int:
    """AR tokens a text-to-image request needs: preview grid + target grid + EOS."""
    return grids_for(height, width).token_count


def largest_square_side(max_tokens: int) -> int | None:
    """The largest valid side S such that SxS fits ``max_tokens`` (None: not even the smallest)."""
    sides = range(MIN_SIDE, MAX_SIDE + 1, FACTOR)
    return max((s for s in sides if tokens_needed(s, s) <= max_tokens), default=None)


def set_budget(max_tokens: int | None) -> None:
    """Make stage-0 ``max_tokens`` (None: unknown) a limit of every accepted size."""
    global _budget
    _budget = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None


def budget() -> int | None:
    return _budget


def fits(height: int, width: int, limit: int | None) -> bool:
    """True when the size's scaffold fits ``limit`` stage-0 tokens (None: no limit)."""
    return limit is None or tokens_needed(height, width) <= limit


def is_valid_side(value: int) -> bool:
    """True when one side renders exactly."""
    return MIN_SIDE <= value <= MAX_SIDE and value % FACTOR == 0


def snap_side(value: int) -> int:
    """The nearest valid side (ties round up)."""
    return min(MAX_SIDE, max(MIN_SIDE, (value + FACTOR // 2) // FACTOR * FACTOR))


def nearest_valid_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Valid (height, width) pairs nearest to the request, closest first (at most 4)."""

    def sides(value: int) -> set[int]:
        low, high = value // FACTOR * FACTOR, -(-value // FACTOR) * FACTOR
        return {min(MAX_SIDE, max(MIN_SIDE, side)) for side in (low, high)}

    pairs = sorted(
        ((h, w) for h in sides(height) for w in sides(width)),
        key=lambda hw: (abs(hw[0] - height) + abs(hw[1] - width), hw),
    )
    return pairs[:4]


def over_budget_message(height: int, width: int, max_tokens: int) -> str:
    """A message naming the largest size this deployment holds and how to raise it."""
    side = largest_square_side(max_tokens)
    holds = f"up to {side}x{side}" if side else "no GLM-Image size at all"
    return (
        f"size {width}x{height} needs {tokens_needed(height, width)} AR tokens, but this "
        f"deployment's stage-0 max_tokens is {max_tokens}: it holds {holds}. "
        f"A stage config that holds up to {MAX_SIDE}x{MAX_SIDE}: `{RAISE_BUDGET_COMMAND}`."
    )


def rejection_message(height: int, width: int) -> str:
    """Why a size is refused, with the nearest valid sizes."""
    nearest = ", ".join(f"{w}x{h}" for h, w in nearest_valid_sizes(height, width))
    return (
        f"size {width}x{height} cannot be rendered exactly by GLM-Image: width and height "
        f"must be multiples of {FACTOR} between {MIN_SIDE} and {MAX_SIDE}. "
        f"Nearest valid sizes: {nearest}."
    )


def apply(height: int, width: int, policy: SizePolicy | None = None) -> tuple[int, int]:
    """The size to render for a requested one under ``policy`` (default: the setting):
    ``reject`` raises SizeRejected, ``snap`` moves each side to the nearest valid one."""
    policy = policy or settings.size_policy()
    valid = is_valid_side(height) and is_valid_side(width)
    if policy is SizePolicy.OFF or (valid and fits(height, width, _budget)):
        return height, width
    if valid or policy is SizePolicy.SNAP:
        snapped = snap_side(height), snap_side(width)
        if not fits(*snapped, _budget):
            raise SizeRejected(over_budget_message(*snapped, _budget or 0))
        if snapped != (height, width):
            logger.info(
                "omni-sizefix: snapped requested size %dx%d to %dx%d (%s=snap)",
                width, height, snapped[1], snapped[0], settings.SIZE_POLICY_VAR,
            )  # fmt: skip
        return snapped
    raise SizeRejected(rejection_message(height, width))
