"""GLM-Image's size and token rules, restated by the tests from upstream code.

Every suite takes its expected grids, token counts, priors and valid sizes from here, never
from the package under test (nothing here imports it). ``tests/host/test_upstream_rules.py``
checks each rule against the installed transformers and vLLM-Omni in every host cell.
Importable from every suite: pytest's ``pythonpath`` (pyproject.toml) holds this folder.

Sources:

* ``FACTOR``, ``grids``: transformers' ``GlmImageProcessor`` (``_get_target_shape``, older
  ``_build_prompt_with_target_shape``): each side floored to 32, preview ``int(sqrt(ratio)*16)``.
* ``Grids.token_count``: vLLM-Omni's ``compute_max_tokens`` (text-to-image: preview + target
  + EOS), ``vllm_omni/model_executor/stage_input_processors/glm_image.py``.
* ``EOS``: the ``eos_token_id`` that file's ``ar2diffusion`` strips.
* ``upsampled``, ``expected_prior``: that file's ``_upsample_token_ids`` (target grid x2).
* ``MAX_SIDE``: vLLM-Omni's ``deploy/glm_image.yaml`` (0.20.0rc1+): stage-0 ``max_tokens``
  4353, "the theoretical maximum (2048x2048 t2i)".
* ``MIN_SIDE``: the documented range of sizes GLM-Image renders exactly (README, "Size
  policy" in docs/releases.md): 256..2048, multiples of 32.
* ``PREVIEW_TOKEN``, ``TARGET_TOKEN_BASE``: the tests' own numbering of a synthetic AR
  output (the live fake engines number target tokens from 1000 too), so that a prior can be
  traced back to the target token it came from.
"""

from __future__ import annotations

import math
from typing import NamedTuple

FACTOR = 32
EOS = 16385
PREVIEW_TOKEN = 1
TARGET_TOKEN_BASE = 1000
MIN_SIDE = 256
MAX_SIDE = 2048
#: Stage-0 ``max_tokens`` of vLLM-Omni's legacy GLM-Image config (0.16/0.18,
#: ``model_executor/stage_configs/glm_image.yaml``: "small 256 + large 1024 + EOS").
LEGACY_MAX_TOKENS = 1281


class Grids(NamedTuple):
    """(target rows, cols), (preview rows, cols) of GLM-Image's scaffold for a pixel size."""

    target: tuple[int, int]
    preview: tuple[int, int]

    @property
    def token_count(self) -> int:
        """Text-to-image AR tokens, preview + target + EOS (vLLM-Omni's ``compute_max_tokens``)."""
        return self.target[0] * self.target[1] + self.preview[0] * self.preview[1] + 1


def grids(height: int, width: int) -> Grids:
    """transformers' ``GlmImageProcessor`` grids: sides floored to 32, preview
    ``int(sqrt(ratio) * 16)`` (``test_upstream_rules.py`` runs upstream's)."""
    rows, cols = height // FACTOR, width // FACTOR
    return Grids((rows, cols), (int(math.sqrt(rows / cols) * 16), int(math.sqrt(cols / rows) * 16)))


def token_count(height: int, width: int) -> int:
    """AR tokens a text-to-image request of this size needs (its stage-0 budget)."""
    return grids(height, width).token_count


def upsampled(target_tokens: list[int], rows: int, cols: int) -> list[int]:
    """vLLM-Omni's ``_upsample_token_ids``: the target grid scaled x2, nearest, row-major."""
    return [
        target_tokens[(row // 2) * cols + col // 2]
        for row in range(rows * 2)
        for col in range(cols * 2)
    ]


def expected_prior(height: int, width: int) -> list[int]:
    """The prior the DiT must receive for ``t2i_tokens(height, width)``: its target grid x2."""
    rows, cols = grids(height, width).target
    return upsampled([TARGET_TOKEN_BASE + i for i in range(rows * cols)], rows, cols)


def t2i_tokens(height: int, width: int) -> list[int]:
    """The AR tokens of a t2i request of this size: preview tokens, target tokens, EOS."""
    (rows, cols), (p_rows, p_cols) = grids(height, width)
    tokens = [PREVIEW_TOKEN] * (p_rows * p_cols)
    return tokens + [TARGET_TOKEN_BASE + i for i in range(rows * cols)] + [EOS]


# --- the sizes GLM-Image renders exactly -----------------------------------------------------

#: Every side GLM-Image renders exactly: the multiples of 32 in MIN_SIDE..MAX_SIDE.
VALID_SIDES: tuple[int, ...] = tuple(range(MIN_SIDE, MAX_SIDE + 1, FACTOR))


def is_valid_side(side: int) -> bool:
    return side in VALID_SIDES


def is_valid_size(height: int, width: int) -> bool:
    return is_valid_side(height) and is_valid_side(width)


def distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Pixels between two (height, width) sizes, side by side (L1)."""
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def snap_side(value: int) -> int:
    """The valid side nearest to ``value``; of two equally near, the larger."""
    best = min(abs(side - value) for side in VALID_SIDES)
    return max(side for side in VALID_SIDES if abs(side - value) == best)


def side_neighbours(value: int) -> list[int]:
    """The valid sides next to ``value``: the nearest one below it and above it (one when
    ``value`` is valid or outside the range)."""
    below = [side for side in VALID_SIDES if side <= value] or [MIN_SIDE]
    above = [side for side in VALID_SIDES if side >= value] or [MAX_SIDE]
    return sorted({below[-1], above[0]})


def nearest_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """The valid (height, width) sizes around a request, each side its neighbour below or
    above, closest first (equally close: smaller height, then smaller width first)."""
    pairs = [(h, w) for h in side_neighbours(height) for w in side_neighbours(width)]
    return sorted(pairs, key=lambda pair: (distance(pair, (height, width)), pair))


def largest_square_side(max_tokens: int) -> int | None:
    """The largest valid side S whose SxS scaffold fits ``max_tokens`` (None: none does)."""
    fitting = [side for side in VALID_SIDES if token_count(side, side) <= max_tokens]
    return fitting[-1] if fitting else None
