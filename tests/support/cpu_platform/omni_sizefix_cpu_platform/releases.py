"""Where each vLLM-Omni release keeps the classes the CPU platform builds on (one place).

Each entry lists candidates, tried in order; the first that imports wins, so a new release
that renames a class gets one more line here.
"""

from __future__ import annotations

import importlib
from typing import Any

#: vLLM-Omni's autoregressive model runner (GPU flavour; combined with vLLM's CPUModelRunner).
AR_MODEL_RUNNER = ("vllm_omni.worker.gpu_ar_model_runner.GPUARModelRunner",)
#: vLLM-Omni's worker mixin (plugins, KV connector), put in front of vLLM's CPUWorker.
WORKER_MIXIN = ("vllm_omni.worker.mixins.OmniWorkerMixin",)
#: vLLM's CPU worker and model runner.
CPU_WORKER = ("vllm.v1.worker.cpu_worker.CPUWorker",)
CPU_MODEL_RUNNER = ("vllm.v1.worker.cpu_model_runner.CPUModelRunner",)
#: vLLM-Omni's diffusion attention implementation base (its ``forward`` dispatches per device).
DIFFUSION_ATTENTION_IMPL = ("vllm_omni.diffusion.attention.backends.abstract.AttentionImpl",)
#: The diffusion SDPA backend (qualified name handed to vLLM-Omni).
DIFFUSION_SDPA_BACKEND = ("vllm_omni.diffusion.attention.backends.sdpa.SDPABackend",)
#: Out-of-tree member of ``OmniPlatformEnum`` (older releases have only UNSPECIFIED).
OMNI_ENUM_MEMBERS = ("OOT", "UNSPECIFIED")


def resolve(candidates: tuple[str, ...]) -> Any:
    """The first candidate ``module.Name`` that imports; ImportError naming all otherwise."""
    errors = []
    for qualname in candidates:
        module, _, name = qualname.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            errors.append(f"{qualname}: {exc}")
    raise ImportError("none of the candidates imports: " + "; ".join(errors))


def first_importable(candidates: tuple[str, ...]) -> str:
    """The qualified name of the first candidate that imports."""
    for qualname in candidates:
        try:
            resolve((qualname,))
        except ImportError:
            continue
        return qualname
    resolve(candidates)  # raises with every reason
    raise AssertionError("unreachable")
