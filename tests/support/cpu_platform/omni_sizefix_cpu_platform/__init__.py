"""Test support (not shipped): selects omni-sizefix's CPU platform where there is no GPU.

vLLM-Omni resolves its platform through the ``vllm_omni.platform_plugins`` entry-point
group. With no GPU every built-in candidate declines and the fallback platform raises
``NotImplementedError`` from ``get_device_count()`` while ``dynamo.vllm.omni`` imports.
This plugin activates only when no accelerator is visible and names the package's own
zero-device stand-in (``omni_sizefix.tools.simulation.cpu_platform``, the one definition).
"""

from __future__ import annotations

import os

#: The platform class vLLM-Omni imports when this plugin is selected.
PLATFORM = "omni_sizefix.tools.simulation.cpu_platform.CpuOmniPlatform"


def _has_accelerator() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/kfd")


def activate() -> str | None:
    """Qualified name of the CPU platform class, or None when an accelerator exists."""
    if _has_accelerator() and not os.environ.get("OMNI_SIZEFIX_FORCE_CPU_PLATFORM"):
        return None
    return PLATFORM
