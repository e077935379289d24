"""Fixtures for contract tests that run inside a host cell (real ai-dynamo / vLLM-Omni)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from cell import host_missing
from glm_upstream import UPSTREAM_PROCESSOR

import omni_sizefix
from omni_sizefix.tools import hosts, stage_configs

# Host tests never need the model hub; without this some loaders retry it for ~30 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = [
    "UPSTREAM_PROCESSOR",
    "DynamoHost",
    "config_with_budget",
    "image_request",
    "run_python",
]


def image_request(height: int, width: int, model: str = "zai-org/GLM-Image") -> dict:
    """A text-to-image request of ``height`` x ``width`` (requests say "WIDTHxHEIGHT")."""
    return {"model": model, "prompt": "a red apple", "size": f"{width}x{height}"}


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

    def worker(self, config: Any, stage_id: int) -> Any:
        """The real ``OmniStageWorker`` of this release for one stage config (no engine)."""
        from omni_sizefix.tools.simulation import dryrun

        return dryrun._make_worker(self.stage_worker, None, config, {}, stage_id, ["image"])


@pytest.fixture(scope="session")
def dynamo_host() -> DynamoHost:
    """Import the real Dynamo omni stage worker; skip only in a cell that holds no Dynamo."""
    try:
        stage_worker = importlib.import_module("dynamo.vllm.omni.stage_worker")
        utils = importlib.import_module("dynamo.vllm.omni.utils")
        types = importlib.import_module("dynamo.vllm.omni.types")
    except ImportError as exc:
        host_missing("dynamo", exc)  # fails where ai-dynamo is installed or pinned
    return DynamoHost(utils, stage_worker, types, hosts.host_versions())


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


@pytest.fixture
def kill_switch(dynamo_host: DynamoHost, monkeypatch: pytest.MonkeyPatch) -> DynamoHost:
    """OMNI_SIZEFIX_DISABLE=1: the plugin refuses to patch; the host as released."""
    omni_sizefix.unpatch()
    monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "1")
    assert omni_sizefix.patch() is False
    return dynamo_host


def cli_command() -> list[str]:
    """The installed ``omni-sizefix`` command of this environment."""
    script = Path(sys.executable).parent / "omni-sizefix"
    return [str(script)] if script.exists() else ["omni-sizefix"]


def run_doctor(*extra: str) -> subprocess.CompletedProcess:
    """``omni-sizefix doctor`` in a fresh process, the plugin enabled."""
    env = {k: v for k, v in os.environ.items() if k != "OMNI_SIZEFIX_DISABLE"}
    return subprocess.run(
        [*cli_command(), "doctor", *extra], capture_output=True, text=True, timeout=900, env=env
    )


@pytest.fixture(scope="session")
def doctor_json() -> subprocess.CompletedProcess:
    """``omni-sizefix doctor --json``, run once per session and shared: it imports the host
    (as long as a worker's start), so each extra run costs about a minute."""
    return run_doctor("--json")


@pytest.fixture(scope="session")
def fake_glm_image_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """FAKE (no weights, no network): a model folder holding only GLM-Image's
    ``model_index.json``, from which vLLM-Omni resolves its GLM-Image pipeline."""
    folder = tmp_path_factory.mktemp("fake_glm_image")
    (folder / "model_index.json").write_text(
        json.dumps({"_class_name": "GlmImagePipeline", "_diffusers_version": "0.37.0"}),
        encoding="utf-8",
    )
    return str(folder)


@pytest.fixture(scope="session")
def cpu_platform_named() -> Any:
    """The CPU test platform (a stand-in for the GPU one) gets a ``device_name``.

    vLLM-Omni 0.20-0.27 look up a platform section of the deploy config by
    ``current_omni_platform.device_name``; a real GPU platform has one.
    """
    try:
        from vllm_omni.platforms import current_omni_platform
    except ImportError:
        yield None
        return
    with pytest.MonkeyPatch.context() as mp:
        if getattr(current_omni_platform, "device_name", None) is None:
            mp.setattr(type(current_omni_platform), "device_name", "cpu", raising=False)
        yield current_omni_platform


@pytest.fixture(scope="session")
def load_configs(
    dynamo_host: DynamoHost, fake_glm_image_model: str, cpu_platform_named: Any
) -> Callable[[Path], list[Any]]:
    """Load a stage-config file with this host's own loader, for the fake GLM-Image model."""
    return lambda path: stage_configs.load_with_host_loader(path, hf_model=fake_glm_image_model)


def config_with_budget(folder: Path, max_tokens: int) -> Path:
    """The shipped config that fits this host, with stage-0 ``max_tokens`` set, in ``folder``."""
    source = stage_configs.path_for_installed_host()
    data = yaml.safe_load(source.read_text())
    stages = data["stage_args"] if "stage_args" in data else data["stages"]
    stages[0]["default_sampling_params"]["max_tokens"] = max_tokens
    path = folder / source.name
    path.write_text(yaml.safe_dump(data))
    return path


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
