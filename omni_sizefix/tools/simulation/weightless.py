"""The weightless mode of ``model_folder`` under its historical module name (same builder)."""

from __future__ import annotations

from omni_sizefix.tools.simulation.model_folder import (
    ARCHITECTURE,
    BASIC_SPECIAL_TOKENS,
    BOS_TOKEN,
    CHAT_TEMPLATE,
    EOS_TOKEN,
    EXTRA_SPECIAL_TOKENS,
    GRID_BOS_TOKEN,
    GRID_EOS_TOKEN,
    IMAGE_TOKEN,
    MARKER_FILE,
    PAD_TOKEN,
    WeightlessUnavailable,
    build_glm_image_folder,
    is_weightless_folder,
    unavailable_reason,
    weightless_glm_image,
)

__all__ = [
    "ARCHITECTURE",
    "BASIC_SPECIAL_TOKENS",
    "BOS_TOKEN",
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "EXTRA_SPECIAL_TOKENS",
    "GRID_BOS_TOKEN",
    "GRID_EOS_TOKEN",
    "IMAGE_TOKEN",
    "MARKER_FILE",
    "PAD_TOKEN",
    "WeightlessUnavailable",
    "build_glm_image_folder",
    "is_weightless_folder",
    "unavailable_reason",
    "weightless_glm_image",
]
