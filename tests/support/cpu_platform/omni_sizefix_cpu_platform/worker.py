"""The AR worker for CPU: vLLM's CPUWorker + vLLM-Omni's worker mixin and AR model runner.

The runner's MRO puts vLLM-Omni's AR runner first and vLLM's ``CPUModelRunner`` under it
(both derive from vLLM's ``GPUModelRunner``), so the omni hooks run and the CPU runner's
tensor handling and no-op accelerator calls apply.
"""

from __future__ import annotations

import torch
from vllm.logger import init_logger

from omni_sizefix_cpu_platform import releases

logger = init_logger("vllm.omni_sizefix_cpu_platform")
#: Log line (one per new request) with what the AR engine received: its prompt token count
#: and the last ids (GLM-Image's scaffold ends the prompt). Read by the live tooling.
PROMPT_LOG = "omni-sizefix-cpu: stage-0 request %s: num_prompt_tokens=%d last_ids=%s"
TAIL_IDS = 16

_ARRunner = releases.resolve(releases.AR_MODEL_RUNNER)
_CPURunner = releases.resolve(releases.CPU_MODEL_RUNNER)
_Mixin = releases.resolve(releases.WORKER_MIXIN)
_CPUWorker = releases.resolve(releases.CPU_WORKER)


class CpuOmniARModelRunner(_ARRunner, _CPURunner):  # type: ignore[misc, valid-type]
    """vLLM-Omni's AR model runner on vLLM's CPU model runner."""

    def _update_states(self, scheduler_output, *args, **kwargs):
        for new in getattr(scheduler_output, "scheduled_new_reqs", None) or ():
            ids = list(getattr(new, "prompt_token_ids", None) or ())
            logger.info(PROMPT_LOG, getattr(new, "req_id", "?"), len(ids), ids[-TAIL_IDS:])
        return super()._update_states(scheduler_output, *args, **kwargs)


class CpuOmniARWorker(_Mixin, _CPUWorker):  # type: ignore[misc, valid-type]
    """vLLM's CPU worker with vLLM-Omni's mixin, running ``CpuOmniARModelRunner``."""

    model_runner_cls = CpuOmniARModelRunner

    def init_device(self) -> None:
        super().init_device()
        # vLLM's v2 model runner has no omni hooks: the v1 runner, combined as above.
        self.use_v2_model_runner = False
        self.model_runner = self.model_runner_cls(self.vllm_config, torch.device("cpu"))
