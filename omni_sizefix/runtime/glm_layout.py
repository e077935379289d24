"""GLM-Image token geometry: the grids its processor scaffold asks the AR model for.

The rules are those of transformers' ``GlmImageProcessor`` (and vLLM-Omni >= 0.20.0rc1):
each side is floored to a multiple of 32, the target grid is (H/32, W/32) and the preview
grid is ``int(sqrt(th/tw)*16) x int(sqrt(tw/th)*16)``. In text-to-image the AR model
emits the preview grid, then the target grid, then EOS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Pixels per AR prior token along each side (vLLM-Omni and transformers use 32).
FACTOR = 32
EOS_TOKEN_ID = 16385
PREVIEW_TOKEN_ID = 1
#: Target-grid tokens are numbered from here, so a prior can be traced back to its source.
TARGET_TOKEN_BASE = 1000


@dataclass(frozen=True)
class Grids:
    """Target and preview token grids (rows, columns) for one pixel size."""

    target: tuple[int, int]
    preview: tuple[int, int]

    @property
    def token_count(self) -> int:
        """Tokens the AR model emits for text-to-image, EOS included."""
        return self.target[0] * self.target[1] + self.preview[0] * self.preview[1] + 1


def grids_for(height: int, width: int) -> Grids:
    """The grids GLM-Image's processor scaffold requests for a pixel size.

    Raises ValueError for a side under ``FACTOR`` px: no token grid (size policy ``off``
    lets such a size through).
    """
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


def t2i_tokens(grids: Grids) -> list[int]:
    """A synthetic AR output laid out as the scaffold asks: preview, target, EOS."""
    preview = [PREVIEW_TOKEN_ID] * (grids.preview[0] * grids.preview[1])
    target = [TARGET_TOKEN_BASE + i for i in range(grids.target[0] * grids.target[1])]
    return [*preview, *target, EOS_TOKEN_ID]


def collapsed_tokens(count: int = 16) -> list[int]:
    """What the AR model emits without a scaffold: a few repeated codes, then EOS."""
    return [7] * count + [EOS_TOKEN_ID]


def expected_prior(height: int, width: int) -> list[int]:
    """The 16x prior the DiT must receive: the target grid upsampled x2 (nearest)."""
    rows, cols = height // FACTOR, width // FACTOR
    prior = []
    for r in range(rows * 2):
        for c in range(cols * 2):
            prior.append(TARGET_TOKEN_BASE + (r // 2) * cols + (c // 2))
    return prior
