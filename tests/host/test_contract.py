"""The plugin's contract, checked against the real host releases of this cell.

Expectations follow the versions and features detected in the cell, not the cell's name.
"""

from __future__ import annotations

import inspect
import json
from importlib import metadata

import glm_upstream
import pytest
from cell import no_expectation
from conftest import UPSTREAM_PROCESSOR, DynamoHost, image_request, run_python
from packaging.version import Version

import omni_sizefix
from omni_sizefix.runtime import settings
from omni_sizefix.runtime.patches.parse import SENTINEL
from omni_sizefix.tools.simulation import dryrun

SIZES = [(512, 512), (768, 1024), (1024, 768), (1024, 1024), (1152, 768), (2048, 2048)]
# (height, width); requests say "WIDTHxHEIGHT".


# --- loading ------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["vllm_omni.general_plugins", "vllm.general_plugins"])
def test_entry_points_are_declared(group: str) -> None:
    found = {ep.name: ep.value for ep in metadata.entry_points(group=group)}
    assert found.get("omni_sizefix") == "omni_sizefix:register"


WORKER_START = """
import json, logging
import dynamo.vllm.omni.stage_worker as sw      # dynamo/vllm/omni/main.py imports this first
import dynamo.vllm.omni.utils as utils
from vllm_omni.engine.arg_utils import OmniEngineArgs
import tempfile
OmniEngineArgs(model=tempfile.mkdtemp(), worker_cls="unused")   # from_cli_args builds this
import omni_sizefix
ours, theirs = (logging.getLogger(n) for n in ("omni_sizefix", "vllm"))
out = {
    "patched": omni_sizefix.is_patched(),
    "alias_is_wrapper": sw.parse_omni_request is utils.parse_omni_request,
    "wrapped": hasattr(utils.parse_omni_request, "__omni_sizefix_original__"),
    "handlers_shared": bool(ours.handlers) and ours.handlers == theirs.handlers,
    "propagate": ours.propagate,
    "sizes": {},
}
try:   # the acceptance run: real parse, router models and upstream ar2diffusion
    from omegaconf import OmegaConf
    from omni_sizefix.tools.simulation import dryrun
    from omni_sizefix.runtime import sizing
    from omni_sizefix.tools import stage_configs
    path, configs = stage_configs.load_for_installed_host()
    if stage_configs.file_schema(path) == "legacy":   # deploy configs run upstream's already
        configs = [OmegaConf.create(OmegaConf.to_container(c)) for c in configs]
        configs[1].custom_process_input_func = UPSTREAM
    for h, w in SIZES:
        request = {"model": "zai-org/GLM-Image", "prompt": "a red apple", "size": f"{w}x{h}"}
        grids = sizing.grids_for(h, w)   # AR output as the scaffold asks: stage 1 alone
        alone = dryrun.run_request(request, configs, scaffold_reader=lambda p, g=grids: g)
        full = dryrun.run_request(request, configs)   # AR output follows what stage 0 got
        out["sizes"][f"{w}x{h}"] = [alone.verdict(h, w), full.verdict(h, w),
                                    alone.height, alone.width, len(alone.prior or [])]
except Exception as exc:
    out["e2e_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""
E2E_SIZES = [(512, 512), (1024, 768), (1024, 1024), (2048, 2048)]


def _worker_start(env: dict[str, str]) -> dict:
    code = WORKER_START.replace("UPSTREAM", repr(UPSTREAM_PROCESSOR))
    return run_python(code.replace("SIZES", repr(E2E_SIZES)), env=env)


@pytest.fixture(scope="module")
def worker_on(dynamo_host: DynamoHost) -> dict:
    """A fresh worker process started as Dynamo starts one, plugin installed."""
    return _worker_start({})


@pytest.fixture(scope="module")
def worker_off(dynamo_host: DynamoHost) -> dict:
    """The same with OMNI_SIZEFIX_DISABLE=1."""
    return _worker_start({"OMNI_SIZEFIX_DISABLE": "1"})


def test_loaded_by_vllm_omni_at_worker_start(worker_on: dict) -> None:
    """As in a Dynamo stage worker: stage_worker imported, then OmniEngineArgs loads plugins."""
    assert worker_on["patched"] and worker_on["alias_is_wrapper"] and worker_on["wrapped"]
    assert "omni-sizefix: patched dynamo.vllm.omni.utils.parse_omni_request" in worker_on["_stderr"]


def test_log_lines_go_through_vllm_handlers_once(worker_on: dict) -> None:
    """The start-up line is formatted by vLLM's own handlers (so it reads like the worker's
    vLLM lines) and appears exactly once."""
    assert worker_on["handlers_shared"] and not worker_on["propagate"]
    assert worker_on["_stderr"].count("omni-sizefix: patched") == 1


VLLM_LOADER = """
import json
from vllm.plugins import load_general_plugins
load_general_plugins()
import omni_sizefix
import dynamo.vllm.omni.stage_worker as sw      # imported after the plugin was loaded
import dynamo.vllm.omni.utils as utils
print(json.dumps({
    "patched": omni_sizefix.is_patched(),
    "alias_is_wrapper": sw.parse_omni_request is utils.parse_omni_request,
}))
"""


def test_loaded_by_vllm_general_plugins_before_dynamo_import(dynamo_host: DynamoHost) -> None:
    result = run_python(VLLM_LOADER)
    assert result["patched"] and result["alias_is_wrapper"]


def test_kill_switch_leaves_host_untouched(worker_off: dict) -> None:
    assert not worker_off["patched"] and not worker_off["wrapped"]
    assert "disabled by OMNI_SIZEFIX_DISABLE" in worker_off["_stderr"]
    assert worker_off["_stderr"].count("disabled by OMNI_SIZEFIX_DISABLE") == 1


def test_stage_worker_calls_the_patched_function(patched: DynamoHost) -> None:
    wrapper = patched.stage_worker.parse_omni_request
    assert wrapper is patched.utils.parse_omni_request
    assert getattr(wrapper, SENTINEL) is not None
    assert inspect.iscoroutinefunction(wrapper) == inspect.iscoroutinefunction(
        getattr(wrapper, SENTINEL)
    )


def test_unpatch_restores_the_same_objects(dynamo_host: DynamoHost) -> None:
    omni_sizefix.unpatch()
    before = (dynamo_host.utils.parse_omni_request, dynamo_host.utils.build_original_prompt)
    assert omni_sizefix.patch()
    assert dynamo_host.stage_worker.parse_omni_request is not before[0]
    assert omni_sizefix.unpatch()
    after = (dynamo_host.utils.parse_omni_request, dynamo_host.utils.build_original_prompt)
    assert after == before
    assert dynamo_host.stage_worker.parse_omni_request is before[0]


# --- requests that must not change ---------------------------------------------------

UNCHANGED = [
    ({"messages": [{"role": "user", "content": "hello"}]}, ["text"]),
    ({"prompt": "hello"}, ["text"]),
    ({"messages": [{"role": "user", "content": "say hi"}], "size": "512x512"}, ["text"]),
    ({"model": "tts", "input": "hello", "prompt": "hello"}, ["audio"]),
]


@pytest.mark.parametrize(("request_", "modalities"), UNCHANGED)
def test_text_chat_audio_requests_are_unchanged(
    dynamo_host: DynamoHost, request_: dict, modalities: list
) -> None:
    omni_sizefix.unpatch()
    try:
        host = dynamo_host.parse(dict(request_), modalities)
    except Exception as exc:  # the host itself rejects it: the plugin must do the same
        assert omni_sizefix.patch()
        with pytest.raises(type(exc)):
            dynamo_host.parse(dict(request_), modalities)
        omni_sizefix.unpatch()
        return
    assert omni_sizefix.patch()
    try:
        ours = dynamo_host.parse(dict(request_), modalities)
    finally:
        omni_sizefix.unpatch()
    assert ours == host


# --- the size reaches every place ----------------------------------------------------


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_image_request_carries_size_everywhere(patched: DynamoHost, height: int, width: int):
    parsed = patched.parse(image_request(height, width), ["image"])
    json.dumps(parsed)  # JSON-serialisable
    stage0 = parsed["engine_inputs"]
    assert stage0["mm_processor_kwargs"] == {"target_h": height, "target_w": width}
    assert stage0["modalities"] == ["image"]
    assert parsed["sampling_params_list"]["height"] == height
    assert parsed["sampling_params_list"]["width"] == width
    # in a place the installed vLLM-Omni's own processor reads, which hands it to the DiT
    assert glm_upstream.carries_size(parsed["original_prompt"], height, width)
    for value in (
        *stage0["mm_processor_kwargs"].values(),
        *parsed["sampling_params_list"].values(),
    ):
        assert type(value) is int


def test_chat_with_image_output_is_sized(patched: DynamoHost) -> None:
    request = {"messages": [{"role": "user", "content": "a red apple"}], "size": "768x512"}
    parsed = patched.parse(request, ["image"])
    assert parsed["engine_inputs"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}
    assert parsed["sampling_params_list"]["height"] == 512
    assert parsed["sampling_params_list"]["width"] == 768


def test_video_request_is_sized(patched: DynamoHost) -> None:
    request = {"model": "wan", "prompt": "a red apple rolling", "size": "832x480"}
    parsed = patched.parse(request, ["video"])
    assert parsed["engine_inputs"]["mm_processor_kwargs"] == {"target_h": 480, "target_w": 832}
    assert "modalities" not in parsed["engine_inputs"] or parsed["engine_inputs"]["modalities"]
    assert parsed["sampling_params_list"]["height"] == 480
    assert parsed["sampling_params_list"]["num_frames"] >= 1


def test_host_already_right_means_no_change(dynamo_host: DynamoHost) -> None:
    """Where the host already sends the size to both stages in a place they read, the plugin
    adds nothing."""
    if not _host_sizes_everything(dynamo_host):
        pytest.skip("this host does not size both stages itself (test_host_defect_size_lost_...)")
    omni_sizefix.unpatch()
    host = dynamo_host.parse(image_request(768, 1024), ["image"])
    assert omni_sizefix.patch()
    try:
        ours = dynamo_host.parse(image_request(768, 1024), ["image"])
    finally:
        omni_sizefix.unpatch()
    assert ours == host


# --- end to end through the real stage workers ---------------------------------------


def _requested_layout(height: int, width: int):
    """Synthetic AR output as if stage 0 had its scaffold: isolates stage 1."""
    return lambda prompt: glm_upstream.grids(height, width)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_stage1_gets_requested_geometry_through_router(
    patched: DynamoHost, upstream_stage_configs: list, height: int, width: int
) -> None:
    result = dryrun.run_request(image_request(height, width), upstream_stage_configs)
    original = json.loads(result.router_payload)["original_prompt"] if result.router_payload else {}
    assert original.get("mm_processor_kwargs", {}).get("target_h", height) == height
    # Where this Dynamo cannot dispatch vLLM-Omni's own ar2diffusion (1.2/1.3), the patched
    # _load_processor runs the package's in its place (test_stage1_runtime.py).
    assert result.verdict(height, width) == "ok"


def expected_host_defects() -> tuple[bool, bool]:
    """(stage 0 unsized, stage 1 unsized) without the plugin, from the releases' code:
    ai-dynamo 1.1.x sends no ``mm_processor_kwargs`` and no size in ``original_prompt``
    (ai-dynamo==1.1.1:dynamo/vllm/omni/utils.py:52-69); 1.2.0 on send ``mm_processor_kwargs``
    to both (ai-dynamo==1.2.1:dynamo/vllm/omni/utils.py:163-170), which vLLM-Omni's processor
    reads from 0.20.0rc1 on (``glm_upstream.READS_BY_RELEASE``)."""
    dynamo = settings.installed_version("ai-dynamo")
    omni = settings.installed_version("vllm-omni")
    declared = glm_upstream.declared_reads(omni) if omni else None
    if dynamo is None:
        pytest.skip("no ai-dynamo in this cell (the conftest fails a cell that pins one)")
    if declared is None:
        no_expectation((dynamo, omni), "glm_upstream.READS_BY_RELEASE")
    before_1_2 = Version(dynamo) < Version("1.2.0")
    return before_1_2, before_1_2 or glm_upstream.MM_KWARGS not in declared[0]


@pytest.mark.parametrize(("height", "width"), [(512, 512), (768, 1024), (2048, 2048)])
def test_host_defect_size_lost_without_the_plugin(
    unpatched: DynamoHost, upstream_stage_configs: list, height: int, width: int
) -> None:
    """Plugin off: stage 0 without scaffold and/or stage 1 at the wrong size, exactly where
    the releases' code says so (fails once a release stops losing it: the patch can go)."""
    stage0_lost, stage1_lost = expected_host_defects()
    result = dryrun.run_request(image_request(height, width), upstream_stage_configs)
    stage0 = result.stage0_prompt
    assert (isinstance(stage0, dict) and "mm_processor_kwargs" in stage0) != stage0_lost
    if stage0_lost:
        assert result.verdict(height, width) != "ok"
    isolated = dryrun.run_request(
        image_request(height, width),
        upstream_stage_configs,
        scaffold_reader=_requested_layout(height, width),
    )
    original = isolated.original_prompt or {}
    assert glm_upstream.carries_size(original, height, width) != stage1_lost, original
    if stage1_lost:
        assert isolated.verdict(height, width) != "ok"


def test_end_to_end_loaded_by_the_real_loader(dynamo_host: DynamoHost, worker_on: dict) -> None:
    """Loaded by vLLM-Omni's real plugin loader at worker start; 512x512, 1024x768, 1024x1024
    and 2048x2048 go through the real parse, router models and upstream ar2diffusion (which
    the patched _load_processor replaces where this Dynamo cannot run it)."""
    assert "e2e_error" not in worker_on, worker_on.get("e2e_error")
    for h, w in E2E_SIZES:
        alone, full, height, width, prior = worker_on["sizes"][f"{w}x{h}"]
        assert (alone, full) == ("ok", "ok")
        assert (height, width, prior) == (h, w, (h // 16) * (w // 16))


def test_end_to_end_with_kill_switch_shows_the_defect(
    dynamo_host: DynamoHost, worker_off: dict
) -> None:
    """OMNI_SIZEFIX_DISABLE=1: broken hosts show their defect; right hosts stay right."""
    if not glm_upstream.dispatch_calls(dynamo_host.stage_worker):
        pytest.skip(
            "this Dynamo cannot dispatch vLLM-Omni's own ar2diffusion (shown by "
            "test_stage1_runtime.py::test_host_defect_with_vllm_omni_config)"
        )
    assert "e2e_error" not in worker_off, worker_off.get("e2e_error")
    verdicts = [worker_off["sizes"][f"{w}x{h}"][:2] for h, w in E2E_SIZES]
    broken = [v for v in verdicts if v != ["ok", "ok"]]
    assert bool(broken) != _host_sizes_everything(dynamo_host), verdicts


def _host_sizes_everything(dynamo_host: DynamoHost) -> bool:
    """Whether the bare host already sends the size to both stages in a place they read
    (stage 0: ``mm_processor_kwargs``; stage 1: where vLLM-Omni's own processor reads it)."""
    omni_sizefix.unpatch()
    parsed = dynamo_host.parse(image_request(768, 1024), ["image"])
    stage0 = parsed["engine_inputs"]
    stage0_sized = isinstance(stage0, dict) and stage0.get("mm_processor_kwargs") == {
        "target_h": 768,
        "target_w": 1024,
    }
    return stage0_sized and glm_upstream.carries_size(parsed["original_prompt"], 768, 1024)
