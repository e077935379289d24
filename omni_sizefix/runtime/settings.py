"""Environment variables that steer the plugin; every one is documented in the README."""

from __future__ import annotations

import os
from enum import Enum

DISABLE_VAR = "OMNI_SIZEFIX_DISABLE"
SHAPE_VAR = "OMNI_SIZEFIX_SHAPE"
SIZE_POLICY_VAR = "OMNI_SIZEFIX_SIZE_POLICY"
PLUGINS_VAR = "OMNI_SIZEFIX_PLUGINS"

_TRUE = {"1", "true", "yes", "on"}


class Shape(str, Enum):
    """Where the stage-1 processor of the installed vLLM-Omni reads the target size."""

    TOP_LEVEL = "top-level"
    MM_KWARGS = "mm-kwargs"
    BOTH = "both"


class SizePolicy(str, Enum):
    """What happens to a requested size the model cannot render exactly."""

    REJECT = "reject"
    SNAP = "snap"
    OFF = "off"


def disabled() -> bool:
    """True when the kill switch ``OMNI_SIZEFIX_DISABLE`` is set to 1/true/yes/on."""
    return os.environ.get(DISABLE_VAR, "").strip().lower() in _TRUE


def shape_override() -> Shape | None:
    """The shape forced by ``OMNI_SIZEFIX_SHAPE``, or None for ``auto``/unset.

    Raises ValueError for a value that is not one of auto|top-level|mm-kwargs|both.
    """
    raw = os.environ.get(SHAPE_VAR, "auto").strip().lower()
    if raw in ("", "auto"):
        return None
    try:
        return Shape(raw)
    except ValueError:
        raise ValueError(
            f"{SHAPE_VAR}={raw!r} is not one of auto, top-level, mm-kwargs, both"
        ) from None


def size_policy() -> SizePolicy:
    """The size policy from ``OMNI_SIZEFIX_SIZE_POLICY`` (default ``reject``).

    Raises ValueError for a value that is not one of reject|snap|off.
    """
    raw = os.environ.get(SIZE_POLICY_VAR, "reject").strip().lower() or "reject"
    try:
        return SizePolicy(raw)
    except ValueError:
        raise ValueError(f"{SIZE_POLICY_VAR}={raw!r} is not one of reject, snap, off") from None


def allowed_plugins() -> set[str] | None:
    """Names of third-party hook plugins allowed by ``OMNI_SIZEFIX_PLUGINS`` (None: all)."""
    raw = os.environ.get(PLUGINS_VAR)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}
