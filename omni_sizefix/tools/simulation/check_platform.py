"""Install the CPU stand-in for vLLM-Omni's platform in this process, where none was found.

Used by ``omni-sizefix check``, ``doctor`` (``omni_sizefix.tools.host``) and the live fake
workers; the stand-in itself is ``cpu_platform.CpuOmniPlatform``.
"""

from __future__ import annotations


def activate_if_needed() -> bool:
    """Install a zero-device platform when vLLM-Omni found none; True if it did."""
    import vllm_omni.platforms as platforms
    from vllm_omni.platforms.interface import UnspecifiedOmniPlatform

    current = platforms.current_omni_platform
    if type(current) is not UnspecifiedOmniPlatform:
        return False
    from omni_sizefix.tools.simulation.cpu_platform import CpuOmniPlatform

    instance = CpuOmniPlatform()
    platforms._current_omni_platform = instance
    platforms.current_omni_platform = instance
    return True
