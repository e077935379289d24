"""What a live reply must be, judged by ``glm_rules`` (not by the package's live verdict).

The fake DiT draws, block by block, the prior tokens it received (``tools/live/fake_engines``);
the package's client only decodes the PNG. Whether that is the right image for the size asked
for is decided here: HTTP 200, that pixel size, and the prior GLM-Image needs for it.
"""

from __future__ import annotations

from typing import Any

import glm_rules


def parse(size: str) -> tuple[int, int]:
    """(height, width) of a ``WIDTHxHEIGHT`` size string."""
    width, height = (int(side) for side in size.split("x"))
    return height, width


def fits(size: str, max_tokens: int | None) -> bool:
    """The size's scaffold fits stage-0 ``max_tokens`` (None: no limit)."""
    return max_tokens is None or glm_rules.token_count(*parse(size)) <= max_tokens


def image_outcome(reply: Any, size: str) -> str:
    """``ok`` when ``reply`` (status, size, prior, message) is the image GLM-Image renders for
    ``size``; else what is wrong with it."""
    if reply.status != 200:
        return f"HTTP {reply.status}: {reply.message[:160]}"
    height, width = parse(size)
    if reply.size is None:
        return f"no image: {reply.message[:160]}"
    if tuple(reply.size) != (width, height):
        return f"wrong size {reply.size[0]}x{reply.size[1]}"
    if reply.prior is None:
        return "no prior grid in the picture"
    if reply.prior != glm_rules.expected_prior(height, width):
        return "wrong picture (prior cut for another size)"
    return "ok"
