"""The size policy: reject (default), snap or off, and the stage-0 budget it relies on.

``repair_with_shape`` (tests/support/worker_plan.py) is the unit entry point: it runs the
same hooks the patched ``parse_omni_request`` runs, on what the real hosts' parse returns
(``host_shapes``).
"""

from __future__ import annotations

import json
import logging

import glm_rules
import pytest
import yaml
from glm_rules import VALID_SIDES
from host_shapes import dynamo_1_1_image, dynamo_1_2_image
from hypothesis import given
from hypothesis import strategies as st
from size_messages import rejection_problems
from worker_plan import repair_with_shape

from omni_sizefix.runtime import settings, sizing
from omni_sizefix.runtime.settings import Shape
from omni_sizefix.runtime.sizing import SizeRejected
from omni_sizefix.tools import stage_configs

HOST_SHAPES = {"ai-dynamo 1.1": dynamo_1_1_image, "ai-dynamo 1.2+": dynamo_1_2_image}


def image_request(height: int, width: int) -> dict:
    return {"model": "zai-org/GLM-Image", "prompt": "a red apple", "size": f"{width}x{height}"}


# --- the rule itself -----------------------------------------------------------------------


def test_valid_sides_are_the_multiples_of_32_in_range() -> None:
    accepted = [side for side in range(1, 5000) if sizing.is_valid_side(side)]
    assert accepted == list(VALID_SIDES)  # 256, 288, ..., 2048 (glm_rules)


@given(st.integers(1, 5000), st.integers(1, 5000))
def test_nearest_valid_sizes_are_valid_and_nearest(height: int, width: int) -> None:
    nearest = sizing.nearest_valid_sizes(height, width)
    assert all(glm_rules.is_valid_size(h, w) for h, w in nearest)
    best = min(
        glm_rules.distance((h, w), (height, width)) for h in VALID_SIDES for w in VALID_SIDES
    )
    assert glm_rules.distance(nearest[0], (height, width)) == best
    distances = [glm_rules.distance(pair, (height, width)) for pair in nearest]
    assert distances == sorted(distances)
    # each side at its nearest valid value below or above: at most 2 x 2 sizes
    assert sorted(nearest) == sorted(glm_rules.nearest_sizes(height, width))


@given(st.integers(1, 5000))
def test_snap_side_is_the_nearest_valid_side_ties_up(value: int) -> None:
    best = min(abs(side - value) for side in VALID_SIDES)
    expected = max(side for side in VALID_SIDES if abs(side - value) == best)
    assert sizing.snap_side(value) == expected


# --- reject (default) --------------------------------------------------------------------


@pytest.mark.parametrize("host", HOST_SHAPES)
@pytest.mark.parametrize("shape", list(Shape))
def test_reject_is_a_value_error_naming_the_nearest_valid_sizes(host: str, shape: Shape) -> None:
    height, width = 700, 1000
    with pytest.raises(ValueError) as caught:
        repair_with_shape(
            image_request(height, width), ["image"], HOST_SHAPES[host](height, width), shape
        )
    assert isinstance(caught.value, SizeRejected)
    message = str(caught.value)
    assert not rejection_problems(message, height, width), message
    # worked out by hand: widths 992/1024, heights 704/672, closest first
    assert "Nearest valid sizes: 992x704, 1024x704, 992x672, 1024x672." in message


@pytest.mark.parametrize(
    ("height", "width", "named"),
    [(4096, 4096, "2048x2048"), (100, 512, "512x256"), (512, 2049, "2048x512")],
)
def test_reject_out_of_range_names_the_range_and_a_size_inside(
    height: int, width: int, named: str
) -> None:
    with pytest.raises(SizeRejected, match=r"between 256 and 2048") as caught:
        repair_with_shape(
            image_request(height, width), ["image"], dynamo_1_2_image(height, width), Shape.BOTH
        )
    assert named in str(caught.value)


@pytest.mark.parametrize(("height", "width"), [(512, 512), (768, 1152), (2048, 2048)])
def test_reject_lets_valid_sizes_through_unchanged(height: int, width: int) -> None:
    fixed = repair_with_shape(
        image_request(height, width), ["image"], dynamo_1_2_image(height, width), Shape.BOTH
    )
    assert fixed["engine_inputs"]["mm_processor_kwargs"] == {"target_h": height, "target_w": width}
    assert fixed["sampling_params_list"] == {"height": height, "width": width}


def test_video_is_not_subject_to_the_image_policy() -> None:
    parsed = dynamo_1_1_image(481, 833)
    parsed["sampling_params_list"]["num_frames"] = 33
    fixed = repair_with_shape({"prompt": "x", "size": "833x481"}, ["video"], parsed, Shape.BOTH)
    assert fixed["sampling_params_list"]["height"] == 481


# --- snap -------------------------------------------------------------------------------


def _sizes_in_every_place(parsed: dict, shape: Shape) -> set[tuple[int, int]]:
    """Every (height, width) the three places carry, in the shapes they carry it."""
    found = set()
    kwargs = parsed["engine_inputs"]["mm_processor_kwargs"]
    found.add((kwargs["target_h"], kwargs["target_w"]))
    original = parsed["original_prompt"]
    if shape in (Shape.MM_KWARGS, Shape.BOTH):
        kwargs = original["mm_processor_kwargs"]
        found.add((kwargs["target_h"], kwargs["target_w"]))
    if shape in (Shape.TOP_LEVEL, Shape.BOTH):
        found.add((original["height"], original["width"]))
    sampling = parsed["sampling_params_list"]
    found.add((sampling["height"], sampling["width"]))
    return found


@pytest.mark.parametrize("host", HOST_SHAPES)
@pytest.mark.parametrize("shape", list(Shape))
@pytest.mark.parametrize(("height", "width"), [(700, 1000), (500, 700), (4000, 100), (1023, 767)])
def test_snap_moves_all_three_places_together_and_logs_it(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    host: str,
    shape: Shape,
    height: int,
    width: int,
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "snap")
    snapped = (glm_rules.snap_side(height), glm_rules.snap_side(width))
    assert snapped != (height, width)
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        fixed = repair_with_shape(
            image_request(height, width), ["image"], HOST_SHAPES[host](height, width), shape
        )
    assert _sizes_in_every_place(fixed, shape) == {snapped}
    json.dumps(fixed)
    assert f"snapped requested size {width}x{height} to {snapped[1]}x{snapped[0]}" in caplog.text


def test_snap_keeps_the_other_sampling_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "snap")
    parsed = dynamo_1_2_image(700, 1000)
    parsed["sampling_params_list"]["num_inference_steps"] = 30
    fixed = repair_with_shape(image_request(700, 1000), ["image"], parsed, Shape.BOTH)
    assert fixed["sampling_params_list"] == {
        "height": 704,
        "width": 992,
        "num_inference_steps": 30,
    }


def test_a_valid_size_is_not_logged_as_snapped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "snap")
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        repair_with_shape(
            image_request(768, 1024), ["image"], dynamo_1_2_image(768, 1024), Shape.BOTH
        )
    assert "snapped" not in caplog.text


# --- off ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(Shape))
def test_off_passes_the_client_size_everywhere(monkeypatch: pytest.MonkeyPatch, shape) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "off")
    fixed = repair_with_shape(
        image_request(700, 1000), ["image"], dynamo_1_1_image(700, 1000), shape
    )
    assert _sizes_in_every_place(fixed, shape) == {(700, 1000)}


@pytest.mark.parametrize(
    ("value", "expected"), [("SNAP", (704, 992)), (" snap ", (704, 992)), ("Off", (700, 1000))]
)
def test_policy_variable_is_case_and_space_tolerant(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[int, int]
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", value)
    assert sizing.apply(700, 1000) == expected


def test_empty_policy_variable_means_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "")
    with pytest.raises(SizeRejected):
        sizing.apply(700, 1000)


def test_unknown_policy_applies_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "round")
    with pytest.raises(ValueError, match="reject, snap, off"):
        settings.checked_size_policy()
    with pytest.raises(SizeRejected):  # reject, the default: a typo never turns checks off
        sizing.apply(700, 1000)


# --- the stage-0 budget the policy relies on ---------------------------------------------


def _stage0_max_tokens(schema: str) -> int:
    data = yaml.safe_load(stage_configs.config_path(schema=schema).read_text(encoding="utf-8"))
    stages = data["stage_args"] if schema == stage_configs.LEGACY else data["stages"]
    stage0 = next(stage for stage in stages if stage["stage_id"] == 0)
    return stage0["default_sampling_params"]["max_tokens"]


@pytest.mark.parametrize("schema", stage_configs.SCHEMAS)
def test_stage0_max_tokens_holds_the_largest_accepted_size(schema: str) -> None:
    """max_tokens must hold preview + target grid + EOS of every size the policy accepts."""
    needed = max(
        glm_rules.token_count(height, width) for height in VALID_SIDES for width in VALID_SIDES
    )
    largest = glm_rules.token_count(glm_rules.MAX_SIDE, glm_rules.MAX_SIDE)
    assert needed == largest  # the square MAX_SIDE x MAX_SIDE is the worst case
    assert _stage0_max_tokens(schema) == needed


def test_upstream_legacy_budget_would_truncate_sizes_the_policy_accepts() -> None:
    """vLLM-Omni <= 0.18 ships max_tokens 1281: enough only up to 1024x1024."""
    truncated = [
        (height, width)
        for height in VALID_SIDES
        for width in VALID_SIDES
        if glm_rules.token_count(height, width) > glm_rules.LEGACY_MAX_TOKENS
    ]
    assert (1024, 1024) not in truncated
    assert (2048, 2048) in truncated and (1024, 1536) in truncated


# --- the stage-0 budget of this deployment -------------------------------------------


@pytest.fixture
def legacy_budget():
    """vLLM-Omni's legacy GLM-Image config: stage-0 max_tokens 1281."""
    sizing.set_budget(glm_rules.LEGACY_MAX_TOKENS)
    yield glm_rules.LEGACY_MAX_TOKENS
    sizing.set_budget(None)


def test_tokens_needed_matches_the_scaffold_layout() -> None:
    for height, width in [(1024, 1024), (768, 1152), (2048, 2048), (256, 2048), (1000, 700)]:
        assert sizing.tokens_needed(height, width) == glm_rules.token_count(height, width)


@pytest.mark.parametrize("max_tokens", [100, 1280, 1281, 2000, 4352, 4353, 10_000])
def test_largest_square_side_of_a_budget(max_tokens: int) -> None:
    expected = glm_rules.largest_square_side(max_tokens)
    assert sizing.largest_square_side(max_tokens) == expected


def test_largest_square_side_of_the_upstream_budgets() -> None:
    assert sizing.largest_square_side(glm_rules.LEGACY_MAX_TOKENS) == 1024
    assert sizing.largest_square_side(4353) == 2048  # vLLM-Omni's deploy config
    assert sizing.largest_square_side(100) is None


@pytest.mark.parametrize("host", list(HOST_SHAPES))
def test_over_budget_size_is_rejected_naming_the_largest_and_the_fix(
    legacy_budget: int, host: str
) -> None:
    parsed = HOST_SHAPES[host](1536, 1024)
    with pytest.raises(SizeRejected) as caught:
        repair_with_shape(image_request(1536, 1024), ["image"], parsed, Shape.MM_KWARGS)
    message = str(caught.value)
    assert "1024x1536" in message and "max_tokens is 1281" in message
    assert "up to 1024x1024" in message
    assert "`omni-sizefix stage-config glm_image`" in message


@pytest.mark.parametrize("host", list(HOST_SHAPES))
def test_sizes_within_budget_pass(legacy_budget: int, host: str) -> None:
    for height, width in [(1024, 1024), (768, 1024), (512, 512)]:
        parsed = HOST_SHAPES[host](height, width)
        repaired = repair_with_shape(
            image_request(height, width), ["image"], parsed, Shape.MM_KWARGS
        )
        assert repaired["sampling_params_list"]["height"] == height


def test_without_a_budget_the_policy_limit_applies() -> None:
    sizing.set_budget(None)
    assert sizing.apply(2048, 2048) == (2048, 2048)
    assert sizing.fits(2048, 2048, sizing.budget())


def test_snap_lands_within_the_budget_or_rejects(
    legacy_budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "snap")
    assert sizing.apply(1000, 1000) == (992, 992)
    with pytest.raises(SizeRejected, match="max_tokens is 1281"):
        sizing.apply(1500, 1000)


def test_policy_off_ignores_the_budget(legacy_budget: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "off")
    assert sizing.apply(2048, 2048) == (2048, 2048)
