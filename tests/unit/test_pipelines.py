"""Which pipeline a stage config names, where a processor reads the size, what each plan writes."""

from __future__ import annotations

import pytest

from omni_sizefix.runtime import hooks, pipelines
from omni_sizefix.runtime.patches import stage1
from omni_sizefix.runtime.settings import Shape
from omni_sizefix.runtime.sizing import SizeRejected


@pytest.fixture(autouse=True)
def _forget():
    pipelines.forget()
    yield
    pipelines.forget()


@pytest.mark.parametrize(
    ("config", "name"),
    [
        ({"engine_args": {"model_arch": "GlmImageForConditionalGeneration"}}, "GLM-Image"),
        ({"engine_args": {"model_arch": "HunyuanImage3ForCausalMM"}}, "HunyuanImage-3"),
        ({"engine_args": {"model_arch": "OmniBagelForConditionalGeneration"}}, "BAGEL"),
        (
            {
                "custom_process_input_func": (
                    "vllm_omni.model_executor.stage_input_processors.mammoth_moda2.ar2dit"
                )
            },
            "MammothModa2",
        ),
        ({"default_sampling_params": {"stop_token_ids": [16385]}}, "GLM-Image"),
        # vLLM-Omni 0.31 names the architecture in these (its offline Omni's stage configs)
        ({"model_config": {"model_arch": "GlmImageForConditionalGeneration"}}, "GLM-Image"),
        ({"stage_pipeline_config": {"model_arch": "HunyuanImage3ForCausalMM"}}, "HunyuanImage-3"),
    ],
)
def test_identify(config: dict, name: str) -> None:
    found, _ = pipelines.identify(config)
    assert found is not None and found.name == name


def test_unknown_model_passes_through() -> None:
    found, named_by = pipelines.identify({"engine_args": {"model_arch": "Qwen3OmniMoe"}})
    assert found is None
    plan = pipelines.build_plan(found, named_by=named_by)
    assert plan.shape is None and not plan.stage0 and not plan.size_policy


def _reads_top_level(source_outputs, prompt=None, requires_multimodal_data=False):
    return [{"height": prompt.get("height", 1024), "width": prompt.get("width", 1024)}]


def _reads_mm_kwargs(source_outputs, prompt=None, requires_multimodal_data=False):
    kwargs = prompt.get("mm_processor_kwargs") or {}
    return {"height": kwargs.get("target_h", 1024), "width": kwargs.get("target_w", 1024)}


def _needs_more(source_outputs, prompts=None, _requires_multimodal_data=False):
    return [{"height": prompts["additional_information"]["image_height"][0]}]


@pytest.mark.parametrize(
    ("function", "reads", "shape"),
    [
        (_reads_top_level, {"top-level"}, Shape.TOP_LEVEL),
        (_reads_mm_kwargs, {"mm-kwargs"}, Shape.MM_KWARGS),
        (_needs_more, set(), None),
    ],
)
def test_probe_finds_where_a_processor_reads(function, reads, shape) -> None:
    pytest.importorskip("torch")
    found = pipelines.probe_reads(function)
    assert found == reads
    assert pipelines.shape_for(found) is shape


def host_1_2_image(height: int, width: int) -> dict:
    kwargs = {"target_h": height, "target_w": width}
    stage0 = {"prompt": "x", "modalities": ["image"], "mm_processor_kwargs": kwargs}
    return {
        "engine_inputs": stage0,
        "original_prompt": dict(stage0),
        "sampling_params_list": {"height": height, "width": width},
    }


HUNYUAN = pipelines.Plan("HunyuanImage-3", False, Shape.TOP_LEVEL, False, "test")
BAGEL = pipelines.Plan("BAGEL", False, None, False, "test")


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch):
    """Make a plan this process's plan, as a worker's stage config would (``record``)."""
    return lambda plan: monkeypatch.setattr(pipelines, "_plan", plan)


def test_hunyuan_plan_writes_only_top_level_original_prompt(serving) -> None:
    serving(HUNYUAN)
    parsed = host_1_2_image(720, 1280)  # 720: not a GLM-Image size, fine for HunyuanImage-3
    fixed = hooks.repair_request({"prompt": "x", "size": "1280x720"}, ["image"], parsed, "image")
    assert fixed["engine_inputs"] is parsed["engine_inputs"]
    assert fixed["sampling_params_list"] == parsed["sampling_params_list"]
    assert fixed["original_prompt"] == {**parsed["original_prompt"], "height": 720, "width": 1280}
    again = hooks.repair_request({"prompt": "x", "size": "1280x720"}, ["image"], fixed, "image")
    assert again == fixed


def test_bagel_plan_passes_through_but_rejects_a_malformed_size(serving) -> None:
    serving(BAGEL)
    parsed = host_1_2_image(768, 1024)
    assert hooks.repair_request({"prompt": "x"}, ["image"], parsed, "image") is parsed
    with pytest.raises(SizeRejected):
        hooks.repair_request({"prompt": "x", "size": "abcxdef"}, ["image"], parsed, "image")


def test_adapter_sizes_and_converts_the_stage_list_call() -> None:
    from types import SimpleNamespace

    def output() -> SimpleNamespace:  # FAKE: a completion that came across without the field
        return SimpleNamespace(outputs=[SimpleNamespace(token_ids=[1, 2, 3])])

    def stage() -> SimpleNamespace:
        return SimpleNamespace(engine_outputs=[output()])

    seen = {}

    def upstream(source_outputs, prompt=None, requires_multimodal_data=False):
        seen.update(tokens=source_outputs[0].outputs[0].cumulative_token_ids, prompt=prompt)
        return {"height": prompt["height"], "width": prompt["width"]}

    wrapped = stage1.adapt(upstream, frozenset({"top-level"}))
    prompt = {"prompt": "x", "mm_processor_kwargs": {"target_h": 768, "target_w": 1024}}
    # ai-dynamo 1.1's call: (stage_list, engine_input_source, [original_prompt], requires_mm)
    assert wrapped([stage()], [0], [prompt], False) == {"height": 768, "width": 1024}
    assert seen["tokens"] == [1, 2, 3] and "height" not in prompt
    # ai-dynamo 1.2+: (source_outputs, original_prompt, requires_mm[, streaming_context])
    assert wrapped([output()], prompt, False, None) == {"height": 768, "width": 1024}
