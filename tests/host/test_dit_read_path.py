"""HunyuanImage-3, MammothModa2 and BAGEL: the size judged where each DiT reads it.

What a stage-1 processor hands on is not what the DiT renders: each DiT picks its size
itself from the prompt and the sampling parameters the host passes to the DiT engine.
Read from vLLM-Omni's DiT pipelines (``vllm_omni/diffusion/models/``):

* HunyuanImage-3 text-to-image: ``req.sampling_params.height or 1024`` (likewise width);
  the prompt's height/width only fill sampling params that are None, and only for an
  image input (0.20.0rc1 ``pipeline_hunyuan_image3.py:1014-1015``; 0.31.0rc1 ``:2469-2470``,
  pre-process ``:273-279``).
* BAGEL text-to-image: the sampling params' height/width (0.31.0rc1 ``pipeline_bagel.py``
  ``_bagel_canvas_requested``, ``:578``); its stage-1 processor carries no size and the
  plugin passes its requests through byte for byte (``test_pipelines``), so its DiT gets
  what the host sends with or without the plugin. (The dry run's fake DiT engine cannot
  stand in for BAGEL's stage 1 on ai-dynamo 1.6, which reads ``engine.engine``.)
* MammothModa2: the prompt's height/width first, then the sampling params, then 1024; run
  here through upstream's own ``_resolve_request_sampling_and_dims`` where the release has it.

Expected values come from those rules; what reached the DiT comes from the dry run of this
release's host with vLLM-Omni's own stage declarations (``test_pipelines``).
"""

from __future__ import annotations

import importlib

import pytest
from conftest import DynamoHost
from test_pipelines import (
    BAGEL,
    HUNYUAN,
    MAMMOTH,
    diffusion_sampling,
    expectation,
    image_request,
    own_stage_configs,
    run,
)

MAMMOTH_DIT = "vllm_omni.diffusion.models.mammoth_moda2.pipeline_mammothmoda2_dit"
SIZES = [(768, 1024), (720, 1280)]  # (height, width); 720 is a Hunyuan bucket side


def _sampling_size(sampling) -> tuple:
    return (getattr(sampling, "height", None), getattr(sampling, "width", None))


def dit_size(model: str, result) -> tuple | str:
    """(height, width) the model's DiT renders from what reached it, or the DiT's error."""
    prompt = result.dit_prompt[0] if isinstance(result.dit_prompt, list) else result.dit_prompt
    sampling = result.dit_sampling
    if model in (HUNYUAN, BAGEL):
        height, width = _sampling_size(sampling)
        return (height or 1024, width or 1024)
    module = importlib.import_module(MAMMOTH_DIT)
    resolve = getattr(module, "_resolve_request_sampling_and_dims", None)
    if resolve is None:
        pytest.skip("this vLLM-Omni's MammothModa2 DiT has no size function to call")
    try:
        height, width, *_ = resolve(dict(prompt or {}), sampling, "read-path")
    except ValueError as exc:
        return f"ValueError: {exc}"
    return height, width


def _through(host_fixture: DynamoHost, model: str, height: int, width: int):
    configs = own_stage_configs(model)
    result = run(configs)(image_request(height, width))
    if result.error:
        pytest.xfail(f"{model}: stage 1 does not run on this release pair: {result.error}")
    return configs, result


@pytest.mark.parametrize("model", [HUNYUAN, MAMMOTH])
@pytest.mark.parametrize(("height", "width"), SIZES)
def test_without_the_plugin_the_dit_renders_what_its_read_path_gets(
    kill_switch: DynamoHost, model: str, height: int, width: int
) -> None:
    """Where stage 1 runs and Dynamo builds the DiT's sampling params, the DiT already
    renders the requested size without the plugin."""
    configs, result = _through(kill_switch, model, height, width)
    got = dit_size(model, result)
    if diffusion_sampling(configs):
        assert _sampling_size(result.dit_sampling) == (height, width)
        assert got == (height, width)
    else:
        assert got != (height, width) or model == MAMMOTH  # no sampling params: the default


@pytest.mark.parametrize("model", [HUNYUAN, MAMMOTH])
@pytest.mark.parametrize(("height", "width"), SIZES)
def test_the_plugin_changes_no_dit_size_where_the_host_was_right(
    dynamo_host: DynamoHost, monkeypatch: pytest.MonkeyPatch, model: str, height: int, width: int
) -> None:
    import omni_sizefix

    omni_sizefix.unpatch()
    monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "1")
    configs = own_stage_configs(model)
    bare = run(configs)(image_request(height, width))
    monkeypatch.delenv("OMNI_SIZEFIX_DISABLE")
    assert omni_sizefix.patch()
    try:
        ours = run(configs)(image_request(height, width))
    finally:
        omni_sizefix.unpatch()
    if ours.error:  # only a processor that cannot run on what Dynamo sends (test_pipelines)
        assert expectation(model).host_output == "error", ours.error
        return
    if bare.error is None:
        assert dit_size(model, ours) == dit_size(model, bare)
