"""The shipped GLM-Image stage configs, loaded by the real loader of this cell's host.

Expectations follow the loader the installed host actually calls (read from its modules),
not the cell's name.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import glm_upstream
import pytest

from omni_sizefix.runtime import settings
from omni_sizefix.tools import host, host_profile, hosts, stage_configs

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "disagg_glm_image.sh"


# --- fixtures ---------------------------------------------------------------------------


def real_loader_kind() -> str:
    """Which loader this host's stage worker calls, read from the real modules."""
    try:
        stage_worker = importlib.import_module(stage_configs.STAGE_WORKER_MODULE)
        utils = importlib.import_module(stage_configs.UTILS_MODULE)
    except ImportError:
        return "omni"
    if callable(getattr(utils, "resolve_stage_configs", None)):
        return "resolve_stage_configs"
    if hasattr(stage_worker, "load_stage_configs_from_yaml"):
        return "load_stage_configs_from_yaml"
    params = inspect.signature(stage_worker.load_and_resolve_stage_configs).parameters
    if "stage_configs_path" in params:
        return "load_and_resolve(path)"
    return "load_and_resolve(deploy_config_path)"


def stage_field(config: Any, *path: str) -> Any:
    """A (nested) field of a loaded stage config, None when absent."""
    for name in path:
        if config is None:
            return None
        config = config.get(name) if hasattr(config, "get") else getattr(config, name, None)
    return config


def load(schema: str, model: str) -> list[Any]:
    return stage_configs.load_with_host_loader(
        stage_configs.config_path(schema=schema), hf_model=model
    )


# --- which schema --------------------------------------------------------------------------


def test_fitting_schema_follows_the_loader_the_host_calls() -> None:
    kind = real_loader_kind()
    decision = stage_configs.decide_schema()
    if kind == "omni":
        utils = importlib.import_module("vllm_omni.entrypoints.utils")
        has_legacy = hasattr(utils, "load_stage_configs_from_yaml")
        assert decision.schema == (stage_configs.LEGACY if has_legacy else stage_configs.DEPLOY)
    elif kind in ("load_stage_configs_from_yaml", "load_and_resolve(path)"):
        assert decision.schema == stage_configs.LEGACY, decision.reason
    else:
        assert decision.schema == stage_configs.DEPLOY, decision.reason
    assert stage_configs.fitting_schema() == decision.schema
    assert decision.reason


def test_host_loader_makes_the_call_the_probe_recorded(
    fake_glm_image_model: str, cpu_platform_named: Any
) -> None:
    """The loader ``stage_configs`` calls is the one the host's ``init_omni_stage`` calls.

    Both calls go through the host profile's recorders (real vLLM-Omni signatures): the probe
    ran the stage worker's own code; here ``stage_configs`` loads the shipped config.
    """
    found = host.probed()
    loader = stage_configs.host_loader()
    if loader.kind == stage_configs.OMNI:
        pytest.skip("no Dynamo: vLLM-Omni's own loader, no stage-worker call to compare")
    probe = found.loader
    assert probe is not None and probe.function, probe
    modules = [
        importlib.import_module(name)
        for name in (stage_configs.STAGE_WORKER_MODULE, stage_configs.UTILS_MODULE)
    ]
    recorders, undo = host_profile._install_recorders(modules)
    try:
        with pytest.raises(host_profile._Stop):
            stage_configs._call_host_loader(
                loader,
                stage_configs.config_path(schema=loader.preferred),
                fake_glm_image_model,
                False,
            )
    finally:
        for owner, name, real in reversed(undo):
            setattr(owner, name, real)
    (ours,) = [r for r in recorders if r.call]
    assert (ours.name, ours.positional, sorted(ours.keywords)) == (
        probe.function,
        probe.positional,
        sorted(probe.keywords),
    ), (ours.call, probe.call)
    if loader.kind == stage_configs.DYNAMO_RESOLVE:
        assert ours.caller == probe.caller  # both through Dynamo's resolve_stage_configs
    if probe.startable:
        assert ours.error is None, ours.error


def test_path_for_installed_host_is_a_shipped_file() -> None:
    path = stage_configs.path_for_installed_host("glm_image")
    assert path == stage_configs.config_path("glm_image", stage_configs.fitting_schema())
    assert path.is_file()
    assert stage_configs.file_schema(path) == stage_configs.fitting_schema()
    assert stage_configs.path_for_installed_host(schema="deploy").name == "glm_image.deploy.yaml"


# --- loading through the real loader ----------------------------------------------------


@pytest.mark.parametrize("schema", stage_configs.SCHEMAS)
def test_shipped_config_loads_through_the_real_loader(
    schema: str, fake_glm_image_model: str, cpu_platform_named: Any
) -> None:
    loader = stage_configs.host_loader()
    if schema not in loader.schemas:
        pytest.skip(f"{loader.description} does not read the {schema} schema (next test)")
    stage0, stage1 = load(schema, fake_glm_image_model)
    largest = glm_upstream.grids(2048, 2048).token_count  # the shipped configs hold 2048x2048
    assert stage0.default_sampling_params.max_tokens == largest
    assert list(stage0.default_sampling_params.stop_token_ids) == [glm_upstream.EOS]
    assert stage0.engine_args.model_stage == "ar"
    assert stage1.engine_args.model_stage == "dit"
    assert list(stage1.engine_input_source) == [0]
    assert stage1.stage_type == "diffusion" and stage1.final_output
    assert stage1.default_sampling_params.height == 1024  # the DiT default; requests override
    # vLLM-Omni's own processor in both schemas (legacy: the config names it; deploy: the
    # topology comes from vLLM-Omni's GLM-Image pipeline), so the config outlives the package.
    assert stage_configs.stage_processor(stage1) == hosts.GLM_IMAGE_PROCESSOR
    assert stage_configs.stage_processor(stage0) is None


@pytest.mark.parametrize("schema", stage_configs.SCHEMAS)
def test_real_loader_refuses_what_the_package_says_it_cannot_read(
    schema: str, fake_glm_image_model: str, cpu_platform_named: Any
) -> None:
    loader = stage_configs.host_loader()
    if schema in loader.schemas:
        pytest.skip(f"{loader.description} reads the {schema} schema (previous test)")
    path = stage_configs.config_path(schema=schema)
    with pytest.raises(LookupError, match=schema):
        stage_configs.load_with_host_loader(path, hf_model=fake_glm_image_model)
    with pytest.raises(Exception):  # noqa: B017 - each release fails its own way
        stage_configs._call_host_loader(loader, path, fake_glm_image_model, False)


def test_loaded_configs_build_real_stage_workers(
    dynamo_host: Any, fake_glm_image_model: str, cpu_platform_named: Any
) -> None:
    """What the host's stage worker makes of the fitting config: processor and inputs."""
    configs = load(stage_configs.fitting_schema(), fake_glm_image_model)
    workers = [dynamo_host.worker(config, i) for i, config in enumerate(configs)]
    assert workers[0]._processor is None
    processor = workers[1]._processor
    module, _, name = stage_configs.stage_processor(configs[1]).rpartition(".")
    # The function the config names (a re-export keeps its defining module's __module__).
    assert processor is getattr(importlib.import_module(module), name)
    assert list(workers[1]._engine_input_source) == [0]
    assert workers[1]._requires_mm is (installed_pair() not in DROPS_REQUIRES_MM)


#: (ai-dynamo, vLLM-Omni) pairs whose stage 1 loses the GLM-Image config's
#: ``requires_multimodal_data``: vLLM-Omni 0.28's loader keeps the pipeline's value under
#: ``runtime``, ai-dynamo 1.5's stage worker reads it from the top level only (ai-dynamo 1.6's
#: ``resolve_stage_configs`` copies it up). Stage 1 then never hands the source image of an
#: image-to-image request to the DiT. Not a size defect: the plugin leaves it alone.
DROPS_REQUIRES_MM = {("1.5.1", "0.28.0")}


def installed_pair() -> tuple[str | None, str | None]:
    return (
        settings.installed_version("ai-dynamo"),
        settings.installed_version("vllm-omni"),
    )


def test_host_defect_stage1_drops_requires_multimodal_data(
    dynamo_host: Any, fake_glm_image_model: str, cpu_platform_named: Any
) -> None:
    """Fails once this release pair keeps the field (then the entry above can go)."""
    if installed_pair() not in DROPS_REQUIRES_MM:
        pytest.skip("this release pair keeps requires_multimodal_data (previous test)")
    (config,) = load(stage_configs.fitting_schema(), fake_glm_image_model)[1:2]
    assert stage_field(config, "requires_multimodal_data") is None
    assert stage_field(config, "runtime", "requires_multimodal_data") is True
    worker = dynamo_host.worker(config, 1)
    assert worker._requires_mm is False


def test_fitting_config_wires_the_stage_edge(fake_glm_image_model: str) -> None:
    """vLLM-Omni's own connector set-up finds the AR -> DiT edge the stage workers use."""
    from vllm_omni.distributed.omni_connectors import initialize_orchestrator_connectors

    _, connectors = initialize_orchestrator_connectors(str(stage_configs.path_for_installed_host()))
    assert ("0", "1") in connectors


def test_deploy_config_already_has_the_edge_dynamo_would_add(
    dynamo_host: Any, fake_glm_image_model: str, cpu_platform_named: Any
) -> None:
    ensure = getattr(dynamo_host.stage_worker, "_ensure_stage_connectors", None)
    loader = stage_configs.host_loader()
    if ensure is None or stage_configs.DEPLOY not in loader.schemas:
        pytest.skip("this Dynamo neither reads deploy configs nor synthesizes connector edges")
    ours = stage_configs.config_path(schema=stage_configs.DEPLOY)
    assert ensure(str(ours), load(stage_configs.DEPLOY, fake_glm_image_model)) == str(ours)
    # vLLM-Omni's own deploy config lacks the edge: Dynamo writes a patched copy of it
    import vllm_omni

    upstream = Path(vllm_omni.__file__).parent / "deploy" / "glm_image.yaml"
    configs = stage_configs._call_host_loader(loader, upstream, fake_glm_image_model, False)
    synthesized = ensure(str(upstream), configs)
    assert synthesized != str(upstream)
    shutil.rmtree(Path(synthesized).parent, ignore_errors=True)


# --- the launch example -----------------------------------------------------------------


def test_example_script_parses() -> None:
    subprocess.run(["bash", "-n", str(EXAMPLE)], check=True)


@pytest.mark.parametrize("schema", [None, *stage_configs.SCHEMAS])
def test_example_script_uses_the_shipped_config(schema: str | None) -> None:
    """The script resolves its config with ``omni-sizefix stage-config`` of this environment."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("STAGE_CONFIG", None)
    args = ["bash", str(EXAMPLE), *(["--schema", schema] if schema else []), "--print-config"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    printed = Path(out.stdout.strip().splitlines()[-1])
    assert printed.is_file()
    assert printed == stage_configs.path_for_installed_host(schema=schema)
