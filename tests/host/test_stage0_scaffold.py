"""Issue 7: stage 0 proven at token level.

The stage-0 prompt comes from the real (patched or released) ``parse_omni_request`` of this
cell and goes through the installed vLLM-Omni's real preprocessing against a weightless
GLM-Image folder; the AR prompt token ids must end in GLM-Image's generation scaffold for
the requested size. The expected grids are computed here by plain arithmetic from the
pixel size; the synthetic AR output of the closed-loop test is laid out from the grids
read back from the real scaffold.
"""

from __future__ import annotations

import json
import math

import pytest
from conftest import DynamoHost, run_python

from omni_sizefix.tools import stage_configs
from omni_sizefix.tools.simulation import dryrun, stage0, weightless

PROMPT = "a red apple on a wooden table"
SIZES = ["512x512", "768x512", "512x768", "1024x768", "768x1024", "1024x1024", "2048x2048"]
# Requests say "WIDTHxHEIGHT".


def image_request(size: str) -> dict:
    return {"model": "zai-org/GLM-Image", "prompt": PROMPT, "size": size}


def expected_scaffold(size: str) -> str:
    """GLM-Image's text-to-image scaffold for ``size``, from the size alone."""
    width, height = (int(v) for v in size.split("x"))
    rows, cols = height // 32, width // 32
    preview_rows = int(math.sqrt(rows / cols) * 16)
    preview_cols = int(math.sqrt(cols / rows) * 16)
    return f"<sop>{rows} {cols}<eop><sop>{preview_rows} {preview_cols}<eop><bos>"


@pytest.fixture(scope="module")
def preprocessing() -> str:
    """Set up the real stage-0 preprocessing once, or skip with the reason."""
    reason = stage0.unavailable_reason()
    if reason:
        pytest.skip(f"stage-0 preprocessing unavailable: {reason}")
    try:
        return stage0.prepare()
    except (weightless.WeightlessUnavailable, stage0.Stage0Unavailable) as exc:
        pytest.skip(f"stage-0 preprocessing unavailable: {exc}")


def assert_scaffold_for(result: stage0.Stage0Result, size: str) -> None:
    """The AR prompt is exactly PROMPT followed by the scaffold for ``size``, token by token."""
    tokenizer = stage0.tokenizer()
    suffix = expected_scaffold(size)
    prompt_ids = tokenizer.encode(PROMPT, add_special_tokens=False)
    suffix_ids = tokenizer.encode(suffix, add_special_tokens=False)
    assert result.prompt_token_ids == [*prompt_ids, *suffix_ids], result.text
    assert result.text == PROMPT + suffix
    assert result.input_type == "multimodal"
    width, height = (int(v) for v in size.split("x"))
    assert result.scaffold is not None
    assert result.scaffold.target == (height // 32, width // 32)
    assert result.scaffold.text == suffix


def assert_no_scaffold(result: stage0.Stage0Result) -> None:
    tokenizer = stage0.tokenizer()
    assert result.scaffold is None, result.text
    assert result.prompt_token_ids == tokenizer.encode(PROMPT, add_special_tokens=False)
    assert result.text == PROMPT


@pytest.mark.parametrize("size", SIZES)
def test_patched_stage0_prompt_gets_the_scaffold(
    patched: DynamoHost, preprocessing: str, size: str
) -> None:
    parsed = patched.parse(image_request(size), ["image"])
    result = stage0.process_prompt(parsed["engine_inputs"])
    assert result.route == preprocessing
    assert_scaffold_for(result, size)


@pytest.mark.parametrize("size", ["512x512", "768x512", "1024x768", "2048x2048"])
def test_released_host_stage0(unpatched: DynamoHost, preprocessing: str, size: str) -> None:
    """Plugin off: no scaffold where Dynamo sends no mm_processor_kwargs (ai-dynamo 1.1.x)."""
    parsed = unpatched.parse(image_request(size), ["image"])
    result = stage0.process_prompt(parsed["engine_inputs"])
    if not unpatched.parse_is_async:  # ai-dynamo 1.1.x: the defect this package fixes
        assert "mm_processor_kwargs" not in parsed["engine_inputs"]
        assert_no_scaffold(result)
    elif "mm_processor_kwargs" in parsed["engine_inputs"]:  # later hosts size stage 0 themselves
        assert_scaffold_for(result, size)
    else:
        assert_no_scaffold(result)


KILL_SWITCH = """
import asyncio, inspect, json, tempfile
import dynamo.vllm.omni.stage_worker as sw      # as a Dynamo stage worker starts
from vllm_omni.engine.arg_utils import OmniEngineArgs
OmniEngineArgs(model=tempfile.mkdtemp(), worker_cls="unused")   # loads the general plugins
import omni_sizefix
omni_sizefix.register()
from omni_sizefix.tools.simulation import stage0
request = {"model": "m", "prompt": %(prompt)r, "size": %(size)r}
parsed = sw.parse_omni_request(request, ["image"], 16)
if inspect.isawaitable(parsed):
    parsed = asyncio.run(parsed)
result = stage0.process_prompt(parsed["engine_inputs"])
print(json.dumps({
    "patched": omni_sizefix.is_patched(),
    "parse_is_async": inspect.iscoroutinefunction(sw.parse_omni_request),
    "has_kwargs": "mm_processor_kwargs" in parsed["engine_inputs"],
    "text": result.text,
    "scaffold": result.scaffold.text if result.scaffold else None,
}))
"""


def test_kill_switch_leaves_stage0_without_scaffold_on_1_1(
    dynamo_host: DynamoHost, preprocessing: str
) -> None:
    """A worker started with OMNI_SIZEFIX_DISABLE=1 runs the released stage-0 path."""
    code = KILL_SWITCH % {"prompt": PROMPT, "size": "768x512"}
    result = run_python(code, env={"OMNI_SIZEFIX_DISABLE": "1"}, timeout=600)
    assert not result["patched"]
    if result["parse_is_async"]:
        assert result["has_kwargs"] and result["scaffold"] == expected_scaffold("768x512")
    else:
        assert not result["has_kwargs"]
        assert result["scaffold"] is None and result["text"] == PROMPT


# --- the closed loop: stage-1 input laid out from the real scaffold ------------------------


@pytest.fixture(scope="module")
def closed_loop_configs(dynamo_host: DynamoHost, request: pytest.FixtureRequest) -> list:
    """The stage configs ``omni-sizefix check`` runs, else vLLM-Omni's own via the legacy YAML
    (where this Dynamo cannot call vLLM-Omni's processor, the patch puts the package's in
    place: test_stage1_runtime.py)."""
    try:
        return list(stage_configs.load_for_installed_host()[1])
    except LookupError:
        return request.getfixturevalue("upstream_stage_configs")


class RecordingReader:
    """The real-scaffold reader, recording what it read for each prompt."""

    def __init__(self) -> None:
        self.seen: list[stage0.Stage0Result] = []

    def __call__(self, prompt: object):
        result = stage0.process_prompt(prompt)
        self.seen.append(result)
        return result.grids


@pytest.mark.parametrize("size", ["512x512", "768x512", "1024x768", "1024x1024", "2048x2048"])
def test_closed_loop_from_real_scaffold(
    patched: DynamoHost, preprocessing: str, closed_loop_configs: list, size: str
) -> None:
    width, height = (int(v) for v in size.split("x"))
    reader = RecordingReader()
    result = dryrun.run_request(image_request(size), closed_loop_configs, scaffold_reader=reader)
    assert len(reader.seen) == 1, "the fake AR engine must consult the reader exactly once"
    assert_scaffold_for(reader.seen[0], size)
    assert result.verdict(height, width) == "ok", json.dumps(
        {"error": result.error, "size": [result.width, result.height]}
    )


def test_closed_loop_released_1_1_collapses(
    unpatched: DynamoHost, preprocessing: str, closed_loop_configs: list
) -> None:
    """Without the plugin on ai-dynamo 1.1.x the real prompt has no scaffold: no usable prior."""
    if unpatched.parse_is_async:
        pytest.skip("this Dynamo sends mm_processor_kwargs to stage 0 itself")
    reader = RecordingReader()
    result = dryrun.run_request(
        image_request("768x512"), closed_loop_configs, scaffold_reader=reader
    )
    assert [seen.scaffold for seen in reader.seen] == [None]
    assert result.verdict(512, 768) != "ok"
