"""Where the host's code lives: every Dynamo and vLLM-Omni module name the package names.

One definition each; the patches, the probes and the tools import them from here. Names
only: importing this module imports nothing of the host.
"""

from __future__ import annotations

#: ``python -m dynamo.vllm.omni``: the disaggregated vLLM-Omni worker.
WORKER_MODULE = "dynamo.vllm.omni"
#: ``parse_omni_request``, ``build_original_prompt``, the stage-config loaders.
UTILS_MODULE = "dynamo.vllm.omni.utils"
#: ``OmniStageWorker``, ``_load_processor``, ``init_omni_stage``.
STAGE_WORKER_MODULE = "dynamo.vllm.omni.stage_worker"
#: The router's ``StageOutput`` / ``StageRequest`` models.
TYPES_MODULE = "dynamo.vllm.omni.types"
#: ``python -m dynamo.frontend``: the OpenAI-compatible HTTP frontend.
FRONTEND_MODULE = "dynamo.frontend"
#: ``InvalidArgument`` (answered with HTTP 400 where the release has it).
EXCEPTIONS_MODULE = "dynamo.llm.exceptions"
#: Dynamo's native runtime (loaded in every Dynamo process).
RUNTIME_MODULE = "dynamo._core"

#: The same modules as files of the ``ai-dynamo`` distribution (read without importing).
UTILS_FILE = "dynamo/vllm/omni/utils.py"
STAGE_WORKER_FILE = "dynamo/vllm/omni/stage_worker.py"

#: vLLM-Omni's stage-1 input processors (one module per model).
PROCESSORS_PACKAGE = "vllm_omni.model_executor.stage_input_processors"
#: vLLM-Omni's GLM-Image processors (``ar2diffusion``).
GLM_IMAGE_PROCESSORS = f"{PROCESSORS_PACKAGE}.glm_image"
#: vLLM-Omni's own GLM-Image stage-1 processor (what its GLM-Image stage configs name).
GLM_IMAGE_PROCESSOR = f"{GLM_IMAGE_PROCESSORS}.ar2diffusion"
