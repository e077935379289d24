"""A zero-device stand-in for vLLM-Omni's platform, for machines without an accelerator.

With no accelerator, vLLM-Omni falls back to ``UnspecifiedOmniPlatform``, whose
``get_device_count()`` raises while ``dynamo.vllm.omni`` imports. This subclass reports zero
devices instead. The one definition: ``check_platform.activate_if_needed()`` installs it in
the process of ``omni-sizefix check`` / ``doctor``, and the test-support plugin
(``tests/support/cpu_platform``) names it to vLLM-Omni's platform resolution. Importing this
module imports vLLM-Omni; nothing imports it in a serving worker.
"""

from __future__ import annotations

from vllm_omni.platforms.interface import UnspecifiedOmniPlatform


class CpuOmniPlatform(UnspecifiedOmniPlatform):
    """vLLM-Omni's fallback platform with zero devices instead of NotImplementedError."""

    device_type = "cpu"
    device_name = "cpu"

    @classmethod
    def get_device_count(cls) -> int:
        return 0
