"""The plugin's settings (environment variables, each in the README) and its supported hosts.

Every setting is read here and validated once at start-up (``problems()``): an unknown value
gives one WARNING naming the valid values and the default that applies, never a silently
disabled fix.
"""

from __future__ import annotations

import os
from enum import Enum
from importlib import metadata
from typing import TypeVar

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

#: This package's version (``omni_sizefix.__version__``; the build reads it here).
__version__ = "0.2.0"

#: Distribution name -> PEP 440 specifier of the host releases the patches are written for
#: (the ``hosts`` extra of ``pyproject.toml`` repeats them; ``tests/unit/test_package.py``).
SUPPORTED_HOSTS: dict[str, str] = {
    "ai-dynamo": ">=1.1.0,<1.8",
    "vllm-omni": ">=0.16.0,<0.33",
}

DISABLE_VAR = "OMNI_SIZEFIX_DISABLE"
SHAPE_VAR = "OMNI_SIZEFIX_SHAPE"
SIZE_POLICY_VAR = "OMNI_SIZEFIX_SIZE_POLICY"
PLUGINS_VAR = "OMNI_SIZEFIX_PLUGINS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


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


DEFAULT_SIZE_POLICY = SizePolicy.REJECT

_E = TypeVar("_E", Shape, SizePolicy)


def _read_choice(var: str, enum: type[_E], auto: bool) -> _E | None:
    """The member of ``enum`` set in ``var``; None when unset or empty (or ``auto`` where
    ``auto`` is allowed). Raises ValueError naming the valid values."""
    raw = os.environ.get(var, "").strip().lower()
    if not raw or (auto and raw == "auto"):
        return None
    try:
        return enum(raw)
    except ValueError:
        valid = ", ".join(member.value for member in enum)
        raise ValueError(f"{var}={raw!r} is not one of {'auto, ' if auto else ''}{valid}") from None


def disabled() -> bool:
    """True when the kill switch ``OMNI_SIZEFIX_DISABLE`` is set to 1/true/yes/on."""
    return os.environ.get(DISABLE_VAR, "").strip().lower() in _TRUE


def shape_override() -> Shape | None:
    """The shape forced by ``OMNI_SIZEFIX_SHAPE`` (None: auto); ValueError for an unknown one."""
    return _read_choice(SHAPE_VAR, Shape, auto=True)


def checked_size_policy() -> SizePolicy:
    """``OMNI_SIZEFIX_SIZE_POLICY`` (default reject); ValueError for an unknown value."""
    return _read_choice(SIZE_POLICY_VAR, SizePolicy, auto=False) or DEFAULT_SIZE_POLICY


def size_policy() -> SizePolicy:
    """The size policy in force: the default for an unknown value (a typo never turns it off)."""
    try:
        return checked_size_policy()
    except ValueError:
        return DEFAULT_SIZE_POLICY


def problems() -> list[str]:
    """One message per setting with an unknown value, naming the valid values and what
    applies instead (logged once at start-up by ``activation.patch``)."""
    found = []
    try:
        shape_override()
    except ValueError as exc:
        found.append(f"{exc}; auto-detection applies")
    try:
        checked_size_policy()
    except ValueError as exc:
        found.append(f"{exc}; the default {DEFAULT_SIZE_POLICY.value} applies")
    raw = os.environ.get(DISABLE_VAR, "").strip().lower()
    if raw not in _TRUE | _FALSE:
        found.append(
            f"{DISABLE_VAR}={raw!r} is not one of {', '.join(sorted(_TRUE | _FALSE - {''}))}; "
            "the plugin stays enabled"
        )
    return found


def allowed_plugins() -> set[str] | None:
    """Names of third-party hook plugins allowed by ``OMNI_SIZEFIX_PLUGINS`` (None: all)."""
    raw = os.environ.get(PLUGINS_VAR)
    return None if raw is None else {name.strip() for name in raw.split(",") if name.strip()}


def installed_version(dist: str) -> str | None:
    """The installed version of ``dist``, or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def is_supported(dist: str, version: str | None) -> bool:
    """True when ``version`` of ``dist`` lies in the declared supported range."""
    try:
        parsed = Version(version or "")
    except InvalidVersion:
        return False
    return SpecifierSet(SUPPORTED_HOSTS[dist]).contains(parsed, prereleases=True)


def unsupported_hosts() -> list[str]:
    """One sentence per installed host distribution outside the supported range."""
    found = []
    for dist, spec in SUPPORTED_HOSTS.items():
        version = installed_version(dist)
        if version is not None and not is_supported(dist, version):
            found.append(f"{dist} {version} is outside the supported range {spec}")
    return found
