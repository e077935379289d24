"""Sides under 32 px (let through by OMNI_SIZEFIX_SIZE_POLICY=off) get a clear ValueError."""

from __future__ import annotations

import pytest

from omni_sizefix.runtime.patches import stage1

#: GLM-Image's processor divides each side by 32 for its token grid (vLLM-Omni).
GLM_FACTOR = 32


@pytest.mark.parametrize(("height", "width"), [(16, 1024), (1024, 16), (GLM_FACTOR - 1, 31)])
def test_small_side_is_a_value_error_not_a_division_by_zero(height: int, width: int) -> None:
    assert min(height, width) // GLM_FACTOR == 0
    with pytest.raises(ValueError, match=f"under {GLM_FACTOR} px"):
        stage1.target_tokens([1, 2, 3], height, width)
