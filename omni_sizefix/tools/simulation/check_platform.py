"""A CPU stand-in for vLLM-Omni's platform, used only by ``omni-sizefix check``.

With no accelerator, vLLM-Omni falls back to ``UnspecifiedOmniPlatform``, whose
``get_device_count()`` raises while ``dynamo.vllm.omni`` imports. ``check`` swaps in this
subclass (zero devices) in its own process only, and says so.
"""

from __future__ import annotations


def activate_if_needed() -> bool:
    """Install a zero-device platform when vLLM-Omni found none; True if it did."""
    import vllm_omni.platforms as platforms
    from vllm_omni.platforms.interface import UnspecifiedOmniPlatform

    current = platforms.current_omni_platform
    if type(current) is not UnspecifiedOmniPlatform:
        return False

    class CheckCpuOmniPlatform(UnspecifiedOmniPlatform):
        """Zero devices instead of NotImplementedError (omni-sizefix check only)."""

        device_type = "cpu"
        device_name = "cpu"

        @classmethod
        def get_device_count(cls) -> int:
            return 0

    instance = CheckCpuOmniPlatform()
    platforms._current_omni_platform = instance
    platforms.current_omni_platform = instance
    return True
