"""Stage 1 right on every release pair: the shipped config, the real dispatch, the processor.

Requests go through the real patched parse, the real router models (JSON round trip), the
real stage-1 dispatch of this Dynamo release, and the processor the shipped config names
(``simulation.dryrun.run_request``; engines and connector are fakes). Without Dynamo
(vLLM-Omni alone), upstream's ``ar2diffusion`` and the package's are called directly with
synthetic AR outputs. Expectations follow the versions and features detected here.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

import glm_rules
import glm_upstream
import pytest
import test_stage_configs as configs_support
from conftest import DynamoHost, image_request
from packaging.version import Version
from size_messages import rejection_problems

from omni_sizefix.runtime import settings
from omni_sizefix.runtime.patches import stage1
from omni_sizefix.runtime.sizing import SizeRejected
from omni_sizefix.tools import stage_configs
from omni_sizefix.tools.simulation import dryrun

SIZES = [(512, 512), (768, 1024), (1024, 768), (1024, 1024), (768, 1152), (2048, 2048)]
# (height, width); requests say "WIDTHxHEIGHT" (1152x768 is 768 high, 1152 wide).
INVALID = [(700, 1000), (500, 500), (1024, 1000), (4096, 4096)]
#: sha256 of ``vllm_omni/model_executor/stage_input_processors/glm_image.py`` in the vLLM-Omni
#: 0.18.0 wheel. 0.16.0 ships the same bytes: the omni-0.16 and omni-0.18 cells both check it.
LEGACY_PROCESSOR_SHA256 = "0d40f02e44771450c3213f70b115f701fcdd0fd0e1b2664c8c3d107389283254"


# --- what this cell has ---------------------------------------------------------------------


def upstream_is_stage_list_era() -> bool:
    return glm_upstream.declared_convention(glm_upstream.function()) == glm_upstream.STAGE_LIST


def upstream_is_fixed() -> bool:
    """vLLM-Omni >= 0.20.0rc1 reads mm_processor_kwargs and the scaffold's preview grid."""
    return Version(settings.installed_version("vllm-omni")) >= Version("0.20.0rc1")


# --- direct calls (no Dynamo needed) ------------------------------------------------------

StageListItem = glm_upstream.StageListItem
ar_output = glm_upstream.ar_output
call_upstream = glm_upstream.call


direct_verdict = glm_upstream.verdict


def prompt_in_shape(shape: str, height: int, width: int) -> dict:
    prompt: dict = {"prompt": "a red apple"}
    if shape == "top-level":  # what the patch writes for vLLM-Omni <= 0.18
        prompt.update(height=height, width=width)
    else:  # what ai-dynamo 1.2+ send
        prompt.update(
            modalities=["image"], mm_processor_kwargs={"target_h": height, "target_w": width}
        )
    return prompt


def test_processor_probe_agrees_with_the_installed_release() -> None:
    found = stage1.upstream()
    assert found.scaffold_grid == upstream_is_fixed()
    assert (found.convention == stage1.STAGE_LIST) == upstream_is_stage_list_era()


def test_top_level_readers_ship_the_same_processor_file() -> None:
    """vLLM-Omni 0.16 and 0.18 ship one GLM-Image processor, byte for byte; later ones differ."""
    source = Path(importlib.import_module(stage1.GLM_IMAGE_PROCESSORS).__file__).read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    if upstream_is_fixed():
        assert digest != LEGACY_PROCESSOR_SHA256
    else:
        assert digest == LEGACY_PROCESSOR_SHA256, settings.installed_version("vllm-omni")


@pytest.mark.parametrize("shape", ["top-level", "mm-kwargs"])
@pytest.mark.parametrize(("height", "width"), SIZES)
def test_package_processor_right_where_upstream_alone_is_not(
    shape: str, height: int, width: int
) -> None:
    """Upstream alone vs the package's processor, same synthetic AR output and prompt."""
    prompt = prompt_in_shape(shape, height, width)
    upstream_result = call_upstream([ar_output(height, width)], dict(prompt))
    upstream = direct_verdict(upstream_result, height, width)
    legacy_grid_right = (height // 64, width // 64) == glm_upstream.grids(height, width).preview
    if upstream_is_fixed():
        expected_ok = True
    elif shape == "top-level":  # vLLM-Omni <= 0.18: right size, legacy preview-grid offset
        expected_ok = legacy_grid_right
    else:  # vLLM-Omni <= 0.18 never reads mm_processor_kwargs: it renders 1024x1024
        expected_ok = (height, width) == (1024, 1024)
    assert (upstream == "ok") == expected_ok, upstream
    source_form = stage1.ar2diffusion([ar_output(height, width)], dict(prompt), False, None)
    stage_list_form = stage1.ar2diffusion(
        [StageListItem([ar_output(height, width)])], [0], [dict(prompt)], False
    )
    assert direct_verdict(source_form, height, width) == "ok"
    assert direct_verdict(stage_list_form, height, width) == "ok"
    assert isinstance(stage_list_form, list)


def test_legacy_upstream_with_top_level_size_is_wrong_and_the_package_is_right() -> None:
    """The ≤0.18 defect kept visible: right size given, prior sliced at the wrong offset."""
    if upstream_is_fixed():
        pytest.skip(f"vLLM-Omni {settings.installed_version('vllm-omni')} is fixed")
    height, width = 768, 1024
    prompt = prompt_in_shape("top-level", height, width)
    assert call_upstream([ar_output(height, width)], dict(prompt))[0]["height"] == height
    assert (
        direct_verdict(call_upstream([ar_output(height, width)], dict(prompt)), height, width)
        != "ok"
    )
    fixed = stage1.ar2diffusion([StageListItem([ar_output(height, width)])], [0], [prompt], False)
    assert direct_verdict(fixed, height, width) == "ok"


def test_completion_without_cumulative_token_ids() -> None:
    """vLLM-Omni >= 0.20.0rc1 reads cumulative_token_ids, which ai-dynamo 1.1 does not add."""
    prompt = prompt_in_shape("mm-kwargs", 768, 1024)
    if upstream_is_fixed():
        with pytest.raises(AttributeError):
            call_upstream([ar_output(768, 1024, cumulative=False)], dict(prompt))
    result = stage1.ar2diffusion(
        [StageListItem([ar_output(768, 1024, cumulative=False)])], [0], [prompt], False
    )
    assert direct_verdict(result, 768, 1024) == "ok"


def test_unparsable_output_in_stage_list_form() -> None:
    """A too-short AR output: upstream's own answer, as a list, or a ValueError for None."""
    short = glm_upstream.t2i_tokens(512, 512)[:40]
    completion = dryrun.SyntheticCompletion(token_ids=short, cumulative_token_ids=short)
    output = dryrun.SyntheticAROutput(request_id="short", outputs=[completion])
    prompt = prompt_in_shape("mm-kwargs", 512, 512)
    sized = stage1.sized_prompt(prompt)
    try:
        expected = call_upstream([output], sized)
    except Exception as exc:  # the release raises itself: the package raises the same
        with pytest.raises(type(exc)):
            stage1.ar2diffusion([StageListItem([output])], [0], [prompt], False)
        return
    if expected is None:
        with pytest.raises(ValueError, match="no DiT input"):
            stage1.ar2diffusion([StageListItem([output])], [0], [prompt], False)
    else:
        got = stage1.ar2diffusion([StageListItem([output])], [0], [prompt], False)
        assert isinstance(got, list)
        assert direct_verdict(got, 512, 512) == direct_verdict(expected, 512, 512)


# --- through the real Dynamo stage workers --------------------------------------------------


@pytest.fixture(scope="session")
def shipped_configs(
    dynamo_host: DynamoHost, fake_glm_image_model: str, cpu_platform_named: Any
) -> list[Any]:
    """The config ``omni-sizefix stage-config glm_image`` prints, via the host's loader."""
    _, configs = stage_configs.load_for_installed_host(hf_model=fake_glm_image_model)
    return configs


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_shipped_config_renders_the_requested_size(
    patched: DynamoHost, shipped_configs: list, height: int, width: int
) -> None:
    result = dryrun.run_request(image_request(height, width), shipped_configs)
    assert result.verdict(height, width) == "ok"
    assert (result.height, result.width) == (height, width)
    assert len(result.prior) == (height // 16) * (width // 16)
    stage0 = result.stage0_prompt["mm_processor_kwargs"]
    assert (stage0["target_h"], stage0["target_w"]) == (height, width)


@pytest.mark.parametrize("schema", stage_configs.SCHEMAS)
@pytest.mark.parametrize(("height", "width"), [(768, 1024), (1024, 768), (2048, 2048)])
def test_every_readable_schema_where_this_dispatch_can_call_its_processor(
    patched: DynamoHost,
    fake_glm_image_model: str,
    cpu_platform_named: Any,
    schema: str,
    height: int,
    width: int,
) -> None:
    loader = stage_configs.host_loader()
    if schema not in loader.schemas:
        pytest.skip(f"{loader.description} does not read the {schema} schema")
    configs = configs_support.load(schema, fake_glm_image_model)
    processor = patched.stage_worker._load_processor(stage_configs.stage_processor(configs[1]))
    result = dryrun.run_request(image_request(height, width), configs)
    either = processor is stage1.ar2diffusion  # the package's takes both conventions
    if glm_upstream.dispatch_calls(patched.stage_worker, processor, either_convention=either):
        assert result.verdict(height, width) == "ok"
        return
    # ai-dynamo 1.2/1.3 with a deploy config: vLLM-Omni's own processor, which they reject
    assert schema == stage_configs.DEPLOY and processor is glm_upstream.function()
    assert result.error and "TypeError" in result.error
    assert stage_configs.fitting_schema() != schema


def test_this_dispatch_calls_the_package_processor(dynamo_host: DynamoHost) -> None:
    sw = dynamo_host.stage_worker
    assert glm_upstream.dispatch_calls(sw, stage1.ar2diffusion, either_convention=True)
    if hasattr(sw, "_accepts_source_outputs_processor"):  # 1.2+: by name, as source outputs
        assert glm_upstream.dispatch_calls(sw, stage1.ar2diffusion)


@pytest.mark.parametrize(("height", "width"), [(512, 512), (768, 1152)])
def test_stage_list_call_with_the_real_proxy(
    dynamo_host: DynamoHost, height: int, width: int
) -> None:
    """ai-dynamo 1.1's call shape, with its real ``_Proxy``, against this cell's upstream."""
    proxy = dynamo_host.stage_worker._Proxy(engine_outputs=[ar_output(height, width)])
    prompt = prompt_in_shape("mm-kwargs", height, width)
    result = stage1.ar2diffusion([proxy], [0], [prompt], True)
    assert isinstance(result, list)
    assert direct_verdict(result, height, width) == "ok"


# --- the size policy at the real patched parse ---------------------------------------------


@pytest.mark.parametrize(("height", "width"), INVALID)
def test_invalid_size_gets_the_documented_error(
    patched: DynamoHost, shipped_configs: list, height: int, width: int
) -> None:
    with pytest.raises(ValueError) as caught:
        patched.parse(image_request(height, width), ["image"])
    assert isinstance(caught.value, SizeRejected)
    message = str(caught.value)
    # what a client needs: the size asked for, the rule, the nearest valid sizes (glm_rules)
    assert not rejection_problems(message, height, width), message
    # through the stage worker: raised out of it, or as its error chunk, by release
    try:
        result = dryrun.run_request(image_request(height, width), shipped_configs)
    except SizeRejected as exc:
        assert str(exc) == message
    else:
        assert result.error and message in result.error


def test_the_host_alone_accepts_a_size_it_cannot_render(unpatched: DynamoHost) -> None:
    """Without the plugin the host passes 1000x700 on; the scaffold would floor it."""
    parsed = unpatched.parse(image_request(700, 1000), ["image"])
    sampling = parsed["sampling_params_list"]
    assert (sampling["height"], sampling["width"]) == (700, 1000)
    rows, cols = glm_upstream.grids(700, 1000).target
    assert (rows * 32, cols * 32) != (700, 1000)


@pytest.mark.parametrize(("height", "width"), [(700, 1000), (500, 500)])
def test_snap_renders_the_snapped_size_end_to_end(
    patched: DynamoHost,
    shipped_configs: list,
    monkeypatch: pytest.MonkeyPatch,
    height: int,
    width: int,
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "snap")
    snapped = glm_rules.snap_side(height), glm_rules.snap_side(width)
    result = dryrun.run_request(image_request(height, width), shipped_configs)
    assert result.verdict(*snapped) == "ok"
    stage0 = result.stage0_prompt["mm_processor_kwargs"]
    assert (stage0["target_h"], stage0["target_w"]) == snapped
