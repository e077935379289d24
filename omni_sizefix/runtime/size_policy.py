"""GLM-Image size policy: every accepted size renders at exactly that size.

GLM-Image's processor scaffold floors each side to a multiple of 32 (its 32x token grid),
while the host hands the client's number unchanged to the DiT. A size is therefore valid
when both sides are multiples of ``FACTOR`` within ``MIN_SIDE``..``MAX_SIDE``:

* ``FACTOR`` (``glm_layout``): one AR prior token per 32x32 pixels.
* ``MAX_SIDE`` = 2048: stage-0 ``max_tokens`` of the shipped configs (4353) holds the
  2048x2048 target grid (4096 tokens), the largest preview grid (256) and EOS; it is also
  the largest size upstream's GLM-Image deploy config is written for.
* ``MIN_SIDE`` = 256: an 8x8 target grid; below that the preview grid of an extreme
  aspect ratio collapses to a single row (``int(sqrt(H/W)*16)``).

A deployment's own stage config may hold less: when a stage-0 worker starts, its stage-0
``max_tokens`` becomes the **budget** (``set_budget``), and a size whose scaffold does not fit
(preview grid + target grid + EOS) is rejected up front with a message naming the largest
size this deployment holds and the command printing a config that raises it.

Sizes are written ``WIDTHxHEIGHT`` in messages, as clients send them.
"""

from __future__ import annotations

import logging

from omni_sizefix.runtime import glm_layout, settings
from omni_sizefix.runtime.errors import SizeRejected
from omni_sizefix.runtime.glm_layout import FACTOR
from omni_sizefix.runtime.settings import SizePolicy

MIN_SIDE = 256
MAX_SIDE = 2048

logger = logging.getLogger("omni_sizefix")

#: The command that prints a stage config holding every size the policy accepts.
RAISE_BUDGET_COMMAND = "omni-sizefix stage-config glm_image"

#: Stage-0 ``max_tokens`` of this deployment (None: not known, only MAX_SIDE applies).
_budget: int | None = None
_budget_source: str = ""


def tokens_needed(height: int, width: int) -> int:
    """AR tokens a text-to-image request needs: preview grid + target grid + EOS."""
    return glm_layout.grids_for(height, width).token_count


def largest_square_side(max_tokens: int) -> int | None:
    """The largest valid side S such that SxS fits ``max_tokens`` (None: not even the smallest)."""
    fitting = [
        s for s in range(MIN_SIDE, MAX_SIDE + 1, FACTOR) if tokens_needed(s, s) <= max_tokens
    ]
    return fitting[-1] if fitting else None


def set_budget(max_tokens: int | None, source: str = "") -> None:
    """Make stage-0 ``max_tokens`` (None: unknown) a limit of every accepted size."""
    global _budget, _budget_source
    _budget = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
    _budget_source = source


def budget() -> int | None:
    """The stage-0 ``max_tokens`` sizes are checked against (None: none known)."""
    return _budget


def over_budget_message(height: int, width: int, max_tokens: int) -> str:
    """A message naming the largest size this deployment holds and how to raise it."""
    side = largest_square_side(max_tokens)
    holds = f"up to {side}x{side}" if side else "no GLM-Image size at all"
    where = f" ({_budget_source})" if _budget_source else ""
    return (
        f"size {width}x{height} needs {tokens_needed(height, width)} AR tokens, but this "
        f"deployment's stage-0 max_tokens is {max_tokens}{where}: it holds {holds}. "
        f"A stage config that holds up to {MAX_SIDE}x{MAX_SIDE}: `{RAISE_BUDGET_COMMAND}`."
    )


def fits(height: int, width: int, limit: int | None) -> bool:
    """True when the size's scaffold fits ``limit`` stage-0 tokens (None: no limit)."""
    # Cheap upper bound first (a preview grid is at most 16x16 = 256 tokens).
    if limit is None or (height // FACTOR) * (width // FACTOR) + 257 <= limit:
        return True
    return tokens_needed(height, width) <= limit


def fits_budget(height: int, width: int) -> bool:
    """True when the size's scaffold fits the budget (or no budget is known)."""
    return fits(height, width, _budget)


def _check_budget(height: int, width: int) -> None:
    if not fits_budget(height, width):
        raise SizeRejected(over_budget_message(height, width, _budget or 0))


def is_valid_side(value: int) -> bool:
    """True when one side renders exactly."""
    return MIN_SIDE <= value <= MAX_SIDE and value % FACTOR == 0


def renders_as_asked(height: int, width: int, limit: int | None) -> bool:
    """True when every policy renders the size unchanged: valid sides whose scaffold fits
    ``limit`` (a stage-0 ``max_tokens``; None: no limit). A pure function of its arguments."""
    return is_valid_side(height) and is_valid_side(width) and fits(height, width, limit)


def snap_side(value: int) -> int:
    """The nearest valid side (ties round up)."""
    snapped = (value + FACTOR // 2) // FACTOR * FACTOR
    return min(MAX_SIDE, max(MIN_SIDE, snapped))


def _candidates(value: int) -> list[int]:
    low = min(MAX_SIDE, max(MIN_SIDE, value // FACTOR * FACTOR))
    high = min(MAX_SIDE, max(MIN_SIDE, -(-value // FACTOR) * FACTOR))
    return sorted({low, high})


def nearest_valid_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Valid (height, width) pairs nearest to the request, closest first (at most 4)."""
    pairs = [(h, w) for h in _candidates(height) for w in _candidates(width)]
    pairs.sort(key=lambda hw: (abs(hw[0] - height) + abs(hw[1] - width), hw))
    return pairs[:4]


def rejection_message(height: int, width: int) -> str:
    """A message a client can act on."""
    nearest = ", ".join(f"{w}x{h}" for h, w in nearest_valid_sizes(height, width))
    return (
        f"size {width}x{height} cannot be rendered exactly by GLM-Image: width and height "
        f"must be multiples of {FACTOR} between {MIN_SIDE} and {MAX_SIDE}. "
        f"Nearest valid sizes: {nearest}."
    )


def malformed_message(size: object) -> str:
    """The message for a ``size`` that is not ``WIDTHxHEIGHT`` (hosts silently use 1024x1024)."""
    return (
        f"size {size!r} is not WIDTHxHEIGHT: width and height must be integers joined by a "
        f"lowercase 'x', e.g. 1024x768 (multiples of {FACTOR} between {MIN_SIDE} and "
        f"{MAX_SIDE} for GLM-Image)."
    )


def apply(height: int, width: int, policy: SizePolicy | None = None) -> tuple[int, int]:
    """Return the size to render for a requested (height, width) under ``policy``.

    ``reject`` raises SizeRejected for an invalid size, ``snap`` moves each side to the
    nearest valid value (and logs it), ``off`` returns the request unchanged.
    """
    # Every policy keeps a valid size: checked first (inline), so the common case is cheap.
    if MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE:
        if height % FACTOR == 0 and width % FACTOR == 0:
            if _budget is not None and not fits_budget(height, width):
                if (policy or settings.size_policy()) is not SizePolicy.OFF:
                    raise SizeRejected(over_budget_message(height, width, _budget))
            return height, width
    policy = policy or settings.size_policy()
    if policy is SizePolicy.OFF:
        return height, width
    if policy is SizePolicy.REJECT:
        raise SizeRejected(rejection_message(height, width))
    snapped = snap_side(height), snap_side(width)
    _check_budget(*snapped)
    logger.info(
        "omni-sizefix: snapped requested size %dx%d to %dx%d (%s=snap)",
        width,
        height,
        snapped[1],
        snapped[0],
        settings.SIZE_POLICY_VAR,
    )
    return snapped
