"""A cell whose pinned host is installed but does not import fails here, with the error."""

from __future__ import annotations

import importlib

import pytest
from cell import expected_hosts

#: The modules the plugin patches or reads, per host (import name -> modules).
MODULES = {
    "dynamo": ("dynamo.vllm.omni.stage_worker", "dynamo.vllm.omni.utils", "dynamo.vllm.omni.types"),
    "vllm_omni": ("vllm_omni", "vllm_omni.model_executor.stage_input_processors.glm_image"),
}


@pytest.mark.parametrize("host", sorted(MODULES))
def test_the_expected_host_imports(host: str) -> None:
    why = expected_hosts().get(host)
    if why is None:
        pytest.skip(f"this cell holds no {host}")
    for module in MODULES[host]:
        try:
            importlib.import_module(module)
        except Exception as exc:
            pytest.fail(f"{why} but {module} does not import: {exc!r}", pytrace=False)
