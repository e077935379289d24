"""What the host does by itself (``OMNI_SIZEFIX_DISABLE=1``) with two inputs, and the plugin.

* A malformed ``size`` (``"abcxdef"``, ``"512"``): every ai-dynamo release's ``parse_size``
  falls back to 1024x1024 with only a log line (``dynamo/common/utils/video_utils.py``); the
  plugin rejects it with a ``ValueError``.
* A size whose scaffold does not fit the loaded config's stage-0 ``max_tokens``: the host
  sends it to stage 0, whose engine stops at ``max_tokens`` (vLLM does), so the prior is cut
  short without any error; the plugin rejects it before stage 0 runs.

Through the real parse, the real stage workers of this release and the real stage-config
loader; the engines are fakes (``TruncatingFakeAREngine`` adds vLLM's ``max_tokens`` stop).
"""

from __future__ import annotations

from typing import Any, ClassVar

import glm_upstream
import pytest
from conftest import DynamoHost, config_with_budget

from omni_sizefix.runtime import sizing
from omni_sizefix.tools.simulation import dryrun

MALFORMED = ["abcxdef", "512"]
#: Stage-0 max_tokens of vLLM-Omni's legacy GLM-Image config: 1024x1024 fits, 1536x1024 not.
SMALL_BUDGET = 1281
TOO_BIG = (1024, 1536)  # (height, width)


def image_request(size: str) -> dict:
    return {"model": "zai-org/GLM-Image", "prompt": "a red apple", "size": size}


def sampling_size(parsed: dict) -> tuple[Any, Any]:
    sampling = parsed["sampling_params_list"]
    return sampling["height"], sampling["width"]


# --- malformed sizes ----------------------------------------------------------------------


@pytest.mark.parametrize("size", MALFORMED)
def test_host_alone_turns_a_malformed_size_into_1024(kill_switch: DynamoHost, size: str) -> None:
    parsed = kill_switch.parse(image_request(size), ["image"])
    assert sampling_size(parsed) == (1024, 1024)
    stage0 = parsed["engine_inputs"]
    if isinstance(stage0, dict) and "mm_processor_kwargs" in stage0:  # ai-dynamo >= 1.2
        assert stage0["mm_processor_kwargs"] == {"target_h": 1024, "target_w": 1024}


@pytest.mark.parametrize("size", MALFORMED)
def test_plugin_rejects_a_malformed_size(patched: DynamoHost, size: str) -> None:
    with pytest.raises(ValueError, match="is not WIDTHxHEIGHT") as caught:
        patched.parse(image_request(size), ["image"])
    assert repr(size) in str(caught.value)


# --- the stage-0 budget ---------------------------------------------------------------------


class TruncatingFakeAREngine(dryrun.FakeAREngine):
    """FAKE: the GLM-Image AR engine, stopping at the stage-0 ``max_tokens`` as vLLM does."""

    max_tokens = SMALL_BUDGET
    emitted: ClassVar[list[int]] = []

    async def generate(self, prompt: Any, *args: Any, **kwargs: Any):
        async for output in super().generate(prompt, *args, **kwargs):
            completion = output.outputs[0]
            completion.token_ids = list(completion.token_ids)[: self.max_tokens]
            completion.cumulative_token_ids = list(completion.token_ids)
            TruncatingFakeAREngine.emitted.append(len(completion.token_ids))
            yield output


@pytest.fixture(scope="module")
def small_budget_configs(load_configs: Any, tmp_path_factory: pytest.TempPathFactory) -> list:
    """The shipped config that fits this host, stage-0 max_tokens set to 1281, loaded by the
    host's own loader."""
    configs = load_configs(config_with_budget(tmp_path_factory.mktemp("budget"), SMALL_BUDGET))
    assert int(configs[0].default_sampling_params.max_tokens) == SMALL_BUDGET
    return configs


def run_too_big(configs: list[Any], monkeypatch: pytest.MonkeyPatch) -> dryrun.StageOneResult:
    """1536x1024 through stage 0, the router and stage 1, the AR engine cut at 1281 tokens.
    The AR output is laid out for the requested size (as if stage 0 had its scaffold), so
    only the budget can make it wrong."""
    height, width = TOO_BIG
    monkeypatch.setattr(dryrun, "FakeAREngine", TruncatingFakeAREngine)
    TruncatingFakeAREngine.emitted = []
    grids = glm_upstream.grids(height, width)
    try:
        return dryrun.run_request(
            image_request(f"{width}x{height}"), configs, scaffold_reader=lambda prompt: grids
        )
    except ValueError as exc:  # a release whose stage worker lets the parse error escape
        return dryrun.StageOneResult(error=f"stage 0: {type(exc).__name__}: {exc}")


def test_too_big_for_the_budget_by_its_own_layout() -> None:
    """The premise, from the scaffold layout alone: 1536x1024 needs more than 1281 tokens."""
    height, width = TOO_BIG
    assert glm_upstream.grids(height, width).token_count > SMALL_BUDGET
    assert glm_upstream.grids(1024, 1024).token_count <= SMALL_BUDGET


def test_host_alone_truncates_the_prior_silently(
    kill_switch: DynamoHost, small_budget_configs: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    height, width = TOO_BIG
    result = run_too_big(small_budget_configs, monkeypatch)
    assert TruncatingFakeAREngine.emitted == [SMALL_BUDGET], "stage 0 ran, cut at max_tokens"
    assert not (result.error or "").startswith("stage 0"), result.error
    assert result.verdict(height, width) != "ok"


def test_plugin_rejects_it_before_stage_0(
    patched: DynamoHost, small_budget_configs: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        result = run_too_big(small_budget_configs, monkeypatch)
    finally:
        sizing.set_budget(None)
    assert TruncatingFakeAREngine.emitted == [], "stage 0 must not run"
    assert result.error and result.error.startswith("stage 0"), result
    assert "up to 1024x1024" in result.error
    assert "omni-sizefix stage-config glm_image" in result.error
