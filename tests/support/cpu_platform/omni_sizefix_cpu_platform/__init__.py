"""Test support (not shipped): an OmniPlatform for machines without an accelerator.

vLLM-Omni resolves its platform through the ``vllm_omni.platform_plugins`` entry-point
group. With no GPU every built-in candidate declines and the fallback platform raises
``NotImplementedError`` from ``get_device_count()`` while ``dynamo.vllm.omni`` imports.
This plugin activates only when no accelerator is visible and reports zero devices.
"""

from __future__ import annotations

import os


def _has_accelerator() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/kfd")


def activate() -> str | None:
    """Qualified name of the CPU platform class, or None when an accelerator exists."""
    if _has_accelerator() and not os.environ.get("OMNI_SIZEFIX_FORCE_CPU_PLATFORM"):
        return None
    from omni_sizefix_cpu_platform import compat

    compat.install()
    return "omni_sizefix_cpu_platform.platform.CpuTestOmniPlatform"
