"""Fixtures for contract tests that run inside a host cell (real ai-dynamo / vLLM-Omni)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

import omni_sizefix
from omni_sizefix.runtime import version_policy
from omni_sizefix.tools import stage_configs

# Host tests never need the model hub; without this some loaders retry it for ~30 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

UPSTREAM_PROCESSOR = "vllm_omni.model_executor.stage_input_processors.glm_image.ar2diffusion"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a cell whose release pair cannot start a stage worker (``test_startable.STARTABLE``),
    only ``test_startable`` runs: every other host test needs a host that starts."""
    import test_startable

    if not test_startable.cannot_start():
        return
    dynamo, omni = test_startable.installed_pair()
    skip = pytest.mark.skip(
        reason=f"ai-dynamo {dynamo} + vLLM-Omni {omni} cannot start (test_startable.py)"
    )
    for item in items:
        if item.path.name != "test_startable.py":
            item.add_marker(skip)


@dataclass
class DynamoHost:
    """The real Dynamo omni modules of this cell."""

    utils: ModuleType
    stage_worker: ModuleType
    types: ModuleType
    versions: dict[str, str | None]

    @property
    def parse_is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.utils.parse_omni_request)

    def parse(self, request: dict, modalities: list) -> dict:
        """Call the parse function the stage worker calls (sync or async)."""
        result = self.stage_worker.parse_omni_request(request, modalities, 16)
        return asyncio.run(result) if inspect.isawaitable(result) else result


@pytest.fixture(scope="session")
def dynamo_host() -> DynamoHost:
    """Import the real Dynamo omni stage worker, or skip when this cell has no Dynamo."""
    try:
        stage_worker = importlib.import_module("dynamo.vllm.omni.stage_worker")
        utils = importlib.import_module("dynamo.vllm.omni.utils")
        types = importlib.import_module("dynamo.vllm.omni.types")
    except ImportError as exc:
        pytest.skip(f"no Dynamo omni stage worker in this cell: {exc}")
    return DynamoHost(utils, stage_worker, types, version_policy.host_versions())


@pytest.fixture
def patched(dynamo_host: DynamoHost) -> DynamoHost:
    """The host with the plugin's patch applied (removed afterwards)."""
    assert omni_sizefix.patch(), "the plugin refused to patch this host"
    yield dynamo_host
    omni_sizefix.unpatch()


@pytest.fixture
def unpatched(dynamo_host: DynamoHost) -> DynamoHost:
    """The host exactly as released."""
    omni_sizefix.unpatch()
    return dynamo_host


@pytest.fixture(scope="session")
def legacy_stage_configs(dynamo_host: DynamoHost) -> list[Any]:
    """The shipped legacy GLM-Image config, loaded by the installed vLLM-Omni's loader."""
    try:
        return stage_configs.load_with_host_loader(stage_configs.config_path(schema="legacy"))
    except LookupError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def upstream_stage_configs(legacy_stage_configs: list[Any]) -> list[Any]:
    """Stage configs whose stage 1 runs vLLM-Omni's own GLM-Image ``ar2diffusion``."""
    from omegaconf import OmegaConf

    configs = [OmegaConf.create(OmegaConf.to_container(c)) for c in legacy_stage_configs]
    configs[1].custom_process_input_func = UPSTREAM_PROCESSOR
    return configs


def run_python(code: str, env: dict[str, str] | None = None, timeout: int = 300) -> dict:
    """Run ``code`` in a fresh interpreter of this cell; it must print one JSON line last."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[-1])
    result["_stderr"] = proc.stderr
    return result
