"""The GLM-Image stage-1 processor's own logic, without a host.

Delegation to the real vLLM-Omni processor and the real Dynamo dispatch are covered by
``tests/host/test_stage1_processor.py``; here are the pieces that decide what is delegated.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import namedtuple
from dataclasses import dataclass, field

import glm_rules
import pytest

from omni_sizefix.runtime.patches import stage1
from omni_sizefix.runtime.patches.stage1 import SyntheticAROutput, SyntheticCompletion

SIZES = [(512, 512), (768, 1024), (1024, 768), (1024, 1024), (768, 1152), (2048, 2048)]
# (height, width)


@dataclass
class StageProxy:
    """The ``stage_list[i]`` shape ai-dynamo 1.1.x hands a processor (its ``_Proxy``)."""

    engine_outputs: list = field(default_factory=list)


def ar_output(height: int, width: int, *, cumulative: bool = True) -> SyntheticAROutput:
    tokens = glm_rules.t2i_tokens(height, width)
    completion = SyntheticCompletion(token_ids=list(tokens), cumulative_token_ids=list(tokens))
    if not cumulative:
        del completion.cumulative_token_ids
    return SyntheticAROutput(request_id="r", outputs=[completion])


def test_module_import_pulls_in_no_host_or_torch() -> None:
    code = (
        "import json, sys\n"
        "import omni_sizefix.runtime.patches.stage1\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'vllm', 'vllm_omni', 'dynamo', 'transformers'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_names_every_dynamo_release_dispatches_as_source_outputs() -> None:
    """ai-dynamo 1.2/1.3 demand ``original_prompt`` second; 1.2+ read only these kinds."""
    import inspect

    params = list(inspect.signature(stage1.ar2diffusion).parameters.values())
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
    assert [p.name for p in params][:3] == [
        "source_outputs",
        "original_prompt",
        "requires_multimodal_data",
    ]


FOUR_PARAMETERS = (
    "(source_outputs: 'Any', original_prompt: 'Any' = None, "
    "requires_multimodal_data: 'Any' = False, streaming_context: 'Any' = None) -> 'Any'"
)


def test_every_stage1_processor_shows_exactly_the_four_parameters() -> None:
    """Dynamo reads the parameter names: the decorator must not expose the body's one."""
    import inspect

    adapted = stage1.adapt(lambda outputs, prompt, requires: None, frozenset())
    for processor in (stage1.ar2diffusion, adapted):
        assert str(inspect.signature(processor)) == FOUR_PARAMETERS
        assert not hasattr(processor, "__wrapped__")
    assert stage1.ar2diffusion.__name__ == "ar2diffusion"
    assert stage1.ar2diffusion.__module__ == stage1.__name__
    assert "every release pair" in stage1.ar2diffusion.__doc__


def test_stage1_processor_splits_both_conventions() -> None:
    seen = []
    processor = stage1.stage1_processor(seen.append)
    outputs = [object()]
    processor(outputs, {"prompt": "p"}, True, "ctx")
    processor([stage1.Stage(outputs)], [0], [{"prompt": "p"}], False)
    assert seen == [
        stage1.CallerArguments(outputs, {"prompt": "p"}, True, "ctx", False),
        stage1.CallerArguments(outputs, [{"prompt": "p"}], False, None, True),
    ]


# --- calling convention ------------------------------------------------------------------


def test_stage_list_call_is_recognised_from_its_items() -> None:
    stage_list = [StageProxy([ar_output(512, 512)])]
    assert stage1.caller_convention(stage_list, [0]) == stage1.STAGE_LIST
    assert stage1.caller_convention(stage_list, []) == stage1.STAGE_LIST


def test_stage_list_call_is_recognised_from_engine_input_source() -> None:
    assert stage1.caller_convention([], [0]) == stage1.STAGE_LIST


@pytest.mark.parametrize(
    "prompt",
    [
        {"prompt": "a", "mm_processor_kwargs": {"target_h": 512, "target_w": 512}},
        [{"prompt": "a"}],
        None,
        [],
        [True],
    ],
)
def test_source_outputs_call_is_recognised(prompt: object) -> None:
    assert stage1.caller_convention([ar_output(512, 512)], prompt) == stage1.SOURCE_OUTPUTS


def test_stage_list_outputs_follow_upstream_rules() -> None:
    outputs = [ar_output(512, 512)]
    assert stage1.stage_list_outputs([StageProxy(outputs)], [0]) == outputs
    with pytest.raises(ValueError, match="engine_input_source"):
        stage1.stage_list_outputs([StageProxy(outputs)], [])
    with pytest.raises(IndexError):
        stage1.stage_list_outputs([StageProxy(outputs)], [1])
    with pytest.raises(RuntimeError, match="no outputs"):
        stage1.stage_list_outputs([StageProxy(None)], [0])


# --- the size ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ({"mm_processor_kwargs": {"target_h": 768, "target_w": 1152}}, (768, 1152)),
        ({"height": 768, "width": 1152}, (768, 1152)),
        (
            {"mm_processor_kwargs": {"target_h": 512, "target_w": 768}, "height": 9, "width": 9},
            (512, 768),
        ),
        ({"mm_processor_kwargs": {"target_h": 512}, "width": 768}, (512, 768)),
        ({"mm_processor_kwargs": {"target_h": "640", "target_w": "480"}}, (640, 480)),
        ({"mm_processor_kwargs": {"target_h": 0, "target_w": None}, "height": 256}, (256, 1024)),
        ({"mm_processor_kwargs": "768x768", "height": 512, "width": 512}, (512, 512)),
        ({"prompt": "no size at all"}, (1024, 1024)),
        ({"height": "tall", "width": -5}, (1024, 1024)),
    ],
)
def test_requested_size_prefers_mm_kwargs_then_top_level_then_default(
    prompt: dict, expected: tuple[int, int]
) -> None:
    assert stage1.requested_size(prompt) == expected


def test_sized_prompt_writes_both_shapes_on_a_copy() -> None:
    original = {
        "prompt": "a red apple",
        "mm_processor_kwargs": {"target_h": 768, "target_w": 1024, "other": 1},
    }
    before = json.dumps(original, sort_keys=True)
    sized = stage1.sized_prompt(original)
    assert json.dumps(original, sort_keys=True) == before
    assert (sized["height"], sized["width"]) == (768, 1024)
    assert sized["mm_processor_kwargs"] == {"target_h": 768, "target_w": 1024, "other": 1}
    assert sized["prompt"] == "a red apple"


def test_sized_prompt_converts_like_upstream() -> None:
    Prompt = namedtuple("Prompt", "prompt height width")

    class Obj:
        def __init__(self) -> None:
            self.prompt, self.height, self.width = "b", 512, 768

    assert stage1.sized_prompt(Prompt("a", 256, 512))["mm_processor_kwargs"] == {
        "target_h": 256,
        "target_w": 512,
    }
    assert (stage1.sized_prompt(Obj())["height"], stage1.sized_prompt(Obj())["width"]) == (
        512,
        768,
    )
    assert stage1.requested_size(stage1.sized_prompt("text")) == (1024, 1024)


# --- the legacy preview grid ------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_target_tokens_cut_at_the_scaffold_offset(height: int, width: int) -> None:
    grids = glm_rules.grids(height, width)
    tokens = glm_rules.t2i_tokens(height, width)
    cut = stage1.target_tokens(tokens, height, width)
    rows, cols = grids.target
    if (rows // 2, cols // 2) == grids.preview:
        assert cut is None  # the legacy parser is right here: nothing to do
        return
    assert cut is not None
    assert cut[-1] == glm_rules.EOS
    target = cut[:-1]
    assert target == [glm_rules.TARGET_TOKEN_BASE + i for i in range(rows * cols)]


def test_legacy_rule_is_wrong_for_every_size_but_1024() -> None:
    """The defect the realignment exists for (version-matrix §B1, cpu-findings §5)."""
    wrong = [
        (h, w) for h, w in SIZES if (h // 32 // 2, w // 32 // 2) != glm_rules.grids(h, w).preview
    ]
    assert wrong == [s for s in SIZES if s != (1024, 1024)]


def test_target_tokens_leave_a_short_output_alone(caplog: pytest.LogCaptureFixture) -> None:
    tokens = glm_rules.t2i_tokens(512, 512)[:100]
    with caplog.at_level(logging.WARNING, logger="omni_sizefix"):
        assert stage1.target_tokens(tokens, 512, 512) is None
    assert "left to vLLM-Omni's parser" in caplog.text


def test_prepared_output_realigns_a_copy_for_a_legacy_parser() -> None:
    output = ar_output(768, 1024)
    original_tokens = list(output.outputs[0].token_ids)
    prompt = stage1.sized_prompt({"height": 768, "width": 1024})
    view = stage1.prepared_output(output, prompt, scaffold_grid=False)
    assert view is not output
    assert output.outputs[0].token_ids == original_tokens
    rows, cols = glm_rules.grids(768, 1024).target
    target = [glm_rules.TARGET_TOKEN_BASE + i for i in range(rows * cols)]
    assert view.outputs[0].token_ids == [*target, glm_rules.EOS]
    assert view.outputs[0].cumulative_token_ids == view.outputs[0].token_ids
    assert view.request_id == output.request_id  # everything else reads through


def test_prepared_output_is_the_same_object_when_nothing_is_needed() -> None:
    output = ar_output(768, 1024)
    prompt = stage1.sized_prompt({"height": 768, "width": 1024})
    assert stage1.prepared_output(output, prompt, scaffold_grid=True) is output


def test_prepared_output_adds_cumulative_token_ids_when_missing() -> None:
    output = ar_output(768, 1024, cumulative=False)
    assert not hasattr(output.outputs[0], "cumulative_token_ids")
    prompt = stage1.sized_prompt({"height": 768, "width": 1024})
    view = stage1.prepared_output(output, prompt, scaffold_grid=True)
    assert view.outputs[0].cumulative_token_ids == output.outputs[0].token_ids
    assert not hasattr(output.outputs[0], "cumulative_token_ids")


@pytest.mark.parametrize(
    ("mm_output", "prompt"),
    [
        ({"prior_token_image_ids": [[1, 2]]}, {}),
        ({"ids": {"prior_image": [[1, 2]]}}, {}),
        ({}, {"modalities": ["img2img"]}),
        ({}, {"multi_modal_data": {"image": object()}}),
        ({}, {"multi_modal_data": {"images": [object()]}}),
    ],
)
def test_image_to_image_outputs_are_never_realigned(mm_output: dict, prompt: dict) -> None:
    output = ar_output(768, 1024)
    output.multimodal_output = mm_output
    sized = stage1.sized_prompt({**prompt, "height": 768, "width": 1024})
    assert stage1.is_image_to_image(output, sized)
    assert stage1.prepared_output(output, sized, scaffold_grid=False) is output


def test_text_to_image_is_not_mistaken_for_image_to_image() -> None:
    output = ar_output(768, 1024)
    sized = stage1.sized_prompt({"modalities": ["image"], "height": 768, "width": 1024})
    assert not stage1.is_image_to_image(output, sized)
