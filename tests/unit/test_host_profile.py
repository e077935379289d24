"""The stage-config loader probe on FAKE hosts (module objects written here): each fake stage
worker copies one ai-dynamo release's loader call, each fake loader one vLLM-Omni signature
(read from the release wheels). The real pairs run in the host cells (tests/host)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import types
from pathlib import Path

import pytest

from omni_sizefix.tools import doctor, host_profile

#: vLLM-Omni loaders (FAKE bodies, real signatures and return shapes).
OMNI_0_20 = """
def load_and_resolve_stage_configs(
    model, stage_configs_path, kwargs, default_stage_cfg_factory=None,
    deploy_config_path=None, stage_overrides=None, **deprecated_kwargs,
):
    if deploy_config_path is not None:
        return deploy_config_path, []
    return stage_configs_path, []
"""
OMNI_0_22 = """
def load_and_resolve_stage_configs(model, stage_configs_path, kwargs):
    return stage_configs_path, []
"""
OMNI_0_26 = """
def load_and_resolve_stage_configs(model, stage_configs_path, kwargs, *, trust_remote_code):
    return stage_configs_path, [], None
"""
#: ai-dynamo stage workers (FAKE: only the start of init_omni_stage, as in each release).
DYNAMO_1_3 = """
async def init_omni_stage(runtime, config, shutdown_endpoints, shutdown_event=None):
    if config.stage_id is None:
        raise ValueError("--stage-id is required")
    path, stage_configs = load_and_resolve_stage_configs(
        config.model, config.stage_configs_path, kwargs={}
    )
    if len(stage_configs) <= config.stage_id:
        raise ValueError("out of range")
    raise AssertionError("the probe must stop before this line")
"""
DYNAMO_1_4 = """
async def init_omni_stage(runtime, config, shutdown_endpoints, shutdown_event=None):
    if config.stage_id is None:
        raise ValueError("--stage-id is required")
    path, stage_configs, _policy = load_and_resolve_stage_configs(
        config.model,
        config.stage_configs_path,
        kwargs={},
        trust_remote_code=getattr(config.engine_args, "trust_remote_code", False),
    )
    try:
        open(path)
    except Exception:
        pass  # a host that swallows errors must not swallow the probe's end
    raise AssertionError("the probe must stop before this line")
"""


_counter = iter(range(10**6))


def _module_from(source: str, folder: Path, name: str) -> types.ModuleType:
    """A module loaded from a file (so that ``inspect.getsource`` reads it, as for a wheel)."""
    path = folder / f"{name}_{next(_counter)}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_pair(dynamo_source: str, omni_source: str, folder: Path) -> types.ModuleType:
    """FAKE stage-worker module that imported the FAKE loader by name, as ai-dynamo does."""
    omni = _module_from(omni_source, folder, "fake_vllm_omni_entrypoints")
    source = f"from {omni.__name__} import load_and_resolve_stage_configs\n"
    sys.modules[omni.__name__] = omni
    try:
        return _module_from(source + textwrap.dedent(dynamo_source), folder, "fake_stage_worker")
    finally:
        sys.modules.pop(omni.__name__, None)


VERSIONS = {"ai-dynamo": "x", "vllm-omni": "y"}


@pytest.mark.parametrize(
    ("dynamo", "omni", "startable", "reason"),
    [
        (DYNAMO_1_3, OMNI_0_22, True, None),
        (DYNAMO_1_3, OMNI_0_26, False, "missing a required argument: 'trust_remote_code'"),
        (DYNAMO_1_4, OMNI_0_26, True, None),
        (DYNAMO_1_4, OMNI_0_22, False, "unexpected keyword argument 'trust_remote_code'"),
        (DYNAMO_1_4, OMNI_0_20, False, "not enough values to unpack (expected 3, got 2)"),
    ],
    ids=["1.3+0.22", "1.3+0.26", "1.4+0.26", "1.4+0.22", "1.4+0.20"],
)
def test_loader_probe_on_fake_pairs(
    dynamo: str, omni: str, startable: bool, reason: str | None, tmp_path: Path
) -> None:
    worker = fake_pair(dynamo, omni, tmp_path)
    real = worker.load_and_resolve_stage_configs
    found = host_profile.probe_loader(worker, None, VERSIONS)
    assert found.startable is startable, found.detail
    if reason:
        assert reason in found.detail
        assert found.detail.startswith("ai-dynamo x cannot start with vLLM-Omni y")
    assert worker.load_and_resolve_stage_configs is real  # recorders removed


def test_return_arity_reads_the_return_statements(tmp_path: Path) -> None:
    worker = fake_pair(DYNAMO_1_4, OMNI_0_26, tmp_path)
    assert host_profile.return_arity(worker.load_and_resolve_stage_configs) == 3
    assert host_profile.return_arity(len) is None  # no source


def test_a_stage_worker_without_the_call_is_undetermined() -> None:
    worker = types.ModuleType("fake_stage_worker")
    found = host_profile.probe_loader(worker, None, VERSIONS)
    assert found.startable is None


def test_doctor_exit_1_with_the_probes_sentence(tmp_path: Path) -> None:
    worker = fake_pair(DYNAMO_1_4, OMNI_0_22, tmp_path)
    loader = host_profile.probe_loader(worker, None, VERSIONS)
    profile = host_profile.HostProfile(
        versions={"ai-dynamo": "1.4.2", "vllm-omni": "0.26.0"},
        supported={"ai-dynamo": True, "vllm-omni": True},
        unsupported=(),
        probed=True,
        loader=loader,
    )
    report = doctor.diagnose(profile=profile)
    assert report.exit_code == doctor.PROBLEM  # a problem found (exit 2: could not check)
    assert report.startable is False
    text = doctor.render(report)
    assert "OK:" not in text
    assert f"UNSUPPORTED: {loader.detail}" in text


@pytest.mark.parametrize(
    ("dynamo", "omni", "kind", "keywords"),
    [
        (DYNAMO_1_3, OMNI_0_22, "resolve-path", ("kwargs",)),
        (DYNAMO_1_4, OMNI_0_26, "resolve-path-trust", ("kwargs", "trust_remote_code")),
        (DYNAMO_1_4, OMNI_0_22, "resolve-path-trust", ("kwargs", "trust_remote_code")),
    ],
    ids=["1.3+0.22", "1.4+0.26", "1.4+0.22 (cannot start)"],
)
@pytest.mark.parametrize("versions", [VERSIONS, {"ai-dynamo": "1.6.1", "vllm-omni": "0.30.0"}])
def test_stage_config_loader_follows_the_recorded_call(
    dynamo: str, omni: str, kind: str, keywords: tuple, versions: dict, tmp_path: Path
) -> None:
    """``stage_configs`` picks the loader from the call the probe recorded, not from versions."""
    from omni_sizefix.tools import stage_configs

    worker = fake_pair(dynamo, omni, tmp_path)
    probe = host_profile.probe_loader(worker, None, VERSIONS)
    assert (probe.function, probe.positional, probe.keywords) == (
        "load_and_resolve_stage_configs",
        2,
        keywords,
    )
    assert probe.caller == f"{worker.__name__}.init_omni_stage"
    found = host_profile.HostProfile(
        versions=versions, supported={}, unsupported=(), probed=True, loader=probe
    )
    reads = (stage_configs.LEGACY, stage_configs.DEPLOY)
    loader = stage_configs.loader_from_profile(found, reads)
    assert loader.kind == kind
    assert (loader.schemas, loader.preferred) == (reads, stage_configs.LEGACY)


def test_stage_config_loader_by_caller_and_keywords() -> None:
    """Dynamo's own ``resolve_stage_configs`` decides over the vLLM-Omni function it calls."""
    from omni_sizefix.tools import stage_configs
    from omni_sizefix.tools.hosts import STAGE_WORKER_MODULE, UTILS_MODULE

    def loader(function: str, keywords: tuple, caller: str) -> stage_configs.HostLoader:
        probe = host_profile.LoaderProbe(
            True, function=function, positional=1, keywords=keywords, caller=caller
        )
        found = host_profile.HostProfile(
            versions=VERSIONS, supported={}, unsupported=(), probed=True, loader=probe
        )
        return stage_configs.loader_from_profile(found, (stage_configs.DEPLOY,))

    in_worker = f"{STAGE_WORKER_MODULE}.init_omni_stage"
    in_utils = f"{UTILS_MODULE}.resolve_stage_configs"
    deploy_call = ("kwargs", "trust_remote_code", "deploy_config_path")
    assert loader("load_stage_configs_from_yaml", (), in_worker).kind == "yaml"
    assert loader("load_stage_configs_from_yaml", (), in_worker).schemas == ()
    assert loader("load_and_resolve_stage_configs", deploy_call, in_worker).kind == "resolve-deploy"
    assert loader("load_and_resolve_stage_configs", deploy_call, in_utils).kind == "dynamo-resolve"
    assert loader("resolve_omni_config", ("cli_overrides",), in_utils).kind == "dynamo-resolve"
    assert loader("resolve_omni_config", deploy_call, in_utils).schemas == (stage_configs.DEPLOY,)
    with pytest.raises(LookupError, match="does not know"):  # a call no release makes
        loader("resolve_omni_config", (), in_worker)
    with pytest.raises(LookupError, match="no stage-config loader call recorded"):
        stage_configs.loader_from_profile(
            host_profile.HostProfile(versions=VERSIONS, supported={}, unsupported=()), ()
        )
