"""The CPU test platform class (imported by vLLM-Omni only when selected)."""

from __future__ import annotations

from vllm_omni.platforms.interface import UnspecifiedOmniPlatform


class CpuTestOmniPlatform(UnspecifiedOmniPlatform):
    """vLLM-Omni's fallback platform, but with zero devices instead of NotImplementedError."""

    device_type = "cpu"
    device_name = "cpu"

    @classmethod
    def get_device_count(cls) -> int:
        return 0
