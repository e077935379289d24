"""The AR worker for CPU: vLLM's CPUWorker + vLLM-Omni's worker mixin and AR model runner.

The runner's MRO puts vLLM-Omni's AR runner first and vLLM's ``CPUModelRunner`` under it
(both derive from vLLM's ``GPUModelRunner``), so the omni hooks run and the CPU runner's
tensor handling and no-op accelerator calls apply.
"""

from __future__ import annotations

import torch

from omni_sizefix_cpu_platform import releases

_ARRunner = releases.resolve(releases.AR_MODEL_RUNNER)
_CPURunner = releases.resolve(releases.CPU_MODEL_RUNNER)
_Mixin = releases.resolve(releases.WORKER_MIXIN)
_CPUWorker = releases.resolve(releases.CPU_WORKER)


class CpuOmniARModelRunner(_ARRunner, _CPURunner):  # type: ignore[misc, valid-type]
    """vLLM-Omni's AR model runner on vLLM's CPU model runner."""


class CpuOmniARWorker(_Mixin, _CPUWorker):  # type: ignore[misc, valid-type]
    """vLLM's CPU worker with vLLM-Omni's mixin, running ``CpuOmniARModelRunner``."""

    model_runner_cls = CpuOmniARModelRunner

    def init_device(self) -> None:
        super().init_device()
        # vLLM's v2 model runner has no omni hooks: the v1 runner, combined as above.
        self.use_v2_model_runner = False
        self.model_runner = self.model_runner_cls(self.vllm_config, torch.device("cpu"))
