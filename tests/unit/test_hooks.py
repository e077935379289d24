"""The per-request fast paths, both only while the default plugin is the only plugin
registered: its hooks called directly, and "host already sized".

Both must behave exactly like the hooks called through pluggy, and a third-party plugin
(here a FAKE one, registered in-process) must take effect whenever it is registered.
"""

from __future__ import annotations

import copy
from typing import Any

import pluggy
import pytest
from host_shapes import chat_text, dynamo_1_1_image, dynamo_1_2_image
from hypothesis import given, settings
from hypothesis import strategies as st

from omni_sizefix.hookspecs import hookimpl
from omni_sizefix.runtime import default_plugin, plugins, repair
from omni_sizefix.runtime.errors import SizeRejected
from omni_sizefix.runtime.geometry import TargetGeometry
from omni_sizefix.runtime.settings import Shape

IMAGE = {"model": "zai-org/GLM-Image", "prompt": "a red apple", "size": "768x512"}


class FakeSquarePlugin:
    """A FAKE third-party hook plugin: renders every image as a square."""

    @hookimpl
    def omni_sizefix_target_geometry(
        self, request: dict, parsed: dict, output_modalities: list
    ) -> TargetGeometry | None:
        side = parsed["sampling_params_list"]["height"]
        return TargetGeometry(side, side, kind="image", requested=(side, side))


class FakeBystanderPlugin:
    """A FAKE third-party plugin implementing every hook and deciding nothing."""

    @hookimpl
    def omni_sizefix_target_geometry(self, request: dict, parsed: dict) -> None:
        return None

    @hookimpl
    def omni_sizefix_stage0_prompt(self, engine_inputs: Any) -> None:
        return None

    @hookimpl
    def omni_sizefix_original_prompt(self, original_prompt: Any) -> None:
        return None

    @hookimpl
    def omni_sizefix_sampling_params(self, sampling_params: Any) -> None:
        return None


def test_only_the_default_plugin_is_called_directly() -> None:
    assert plugins.hooks() is default_plugin
    plugins.get_plugin_manager().set_blocked("fake_blocked")
    assert plugins.hooks() is plugins.get_plugin_manager().hook


def test_plugin_registered_after_first_use_takes_effect_and_leaves() -> None:
    before = repair.repair_parsed(IMAGE, ["image"], dynamo_1_1_image(512, 768), Shape.BOTH)
    assert before["sampling_params_list"] == {"height": 512, "width": 768}
    fake = FakeSquarePlugin()
    plugins.get_plugin_manager().register(fake, name="fake_square")
    assert isinstance(plugins.hooks().omni_sizefix_target_geometry, pluggy.HookCaller)
    squared = repair.repair_parsed(IMAGE, ["image"], dynamo_1_1_image(512, 768), Shape.BOTH)
    assert squared["sampling_params_list"] == {"height": 512, "width": 512}
    assert squared["original_prompt"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 512}
    plugins.get_plugin_manager().unregister(fake)
    assert plugins.hooks() is default_plugin
    after = repair.repair_parsed(IMAGE, ["image"], dynamo_1_1_image(512, 768), Shape.BOTH)
    assert after == before


def test_a_plugin_that_decides_nothing_falls_through_to_the_defaults() -> None:
    plugins.get_plugin_manager().register(FakeBystanderPlugin(), name="fake_bystander")
    assert plugins.hooks() is plugins.get_plugin_manager().hook
    fixed = repair.repair_parsed(IMAGE, ["image"], dynamo_1_1_image(512, 768), Shape.MM_KWARGS)
    assert fixed["engine_inputs"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}


@pytest.mark.parametrize(
    ("parsed", "shape", "expected"),
    [
        (dynamo_1_2_image(512, 768), Shape.MM_KWARGS, True),
        (dynamo_1_2_image(512, 768), Shape.BOTH, False),  # no top-level size yet
        (dynamo_1_2_image(500, 768), Shape.MM_KWARGS, False),  # the size policy has a say
        (dynamo_1_1_image(512, 768), Shape.MM_KWARGS, False),
        (chat_text(), Shape.MM_KWARGS, False),
    ],
)
def test_host_already_sized(parsed: dict, shape: Shape, expected: bool) -> None:
    assert repair.host_already_sized(parsed, shape) is expected


def test_host_already_sized_wants_plain_ints_everywhere() -> None:
    parsed = dynamo_1_2_image(512, 768)
    parsed["sampling_params_list"]["height"] = 512.0
    assert not repair.host_already_sized(parsed, Shape.MM_KWARGS)
    parsed = dynamo_1_2_image(512, 768)
    del parsed["engine_inputs"]["modalities"]
    assert not repair.host_already_sized(parsed, Shape.MM_KWARGS)
    parsed = dynamo_1_2_image(512, 768)
    parsed["original_prompt"]["mm_processor_kwargs"] = {"target_h": 512, "target_w": 512}
    assert not repair.host_already_sized(parsed, Shape.MM_KWARGS)


def test_host_already_sized_result_is_served_as_built() -> None:
    parsed = dynamo_1_2_image(512, 768)
    assert repair.repair_parsed(IMAGE, ["image"], parsed, Shape.MM_KWARGS) is parsed


# --- the fast paths against the hooks through pluggy, on generated host results --------

SIDE = st.one_of(st.sampled_from([256, 512, 768, 1024, 2048]), st.integers(-5, 3000))
VALUE = st.one_of(SIDE, SIDE.map(float), st.booleans(), st.none())


@st.composite
def host_results(draw: st.DrawFn) -> tuple[dict, list[str]]:
    """Host-like parse results (ai-dynamo 1.1 and 1.2+ shapes) with perturbed sizes."""
    height, width = draw(SIDE), draw(SIDE)
    base = draw(st.sampled_from([dynamo_1_1_image, dynamo_1_2_image]))
    parsed = copy.deepcopy(base(height, width))
    for place, key in draw(
        st.lists(
            st.sampled_from(
                [
                    ("engine_inputs", "modalities"),
                    ("sampling_params_list", "height"),
                    ("sampling_params_list", "width"),
                    ("original_prompt", "mm_processor_kwargs"),
                    ("original_prompt", "height"),
                ]
            ),
            max_size=2,
        )
    ):
        if draw(st.booleans()):
            parsed[place].pop(key, None)
        elif key == "mm_processor_kwargs":
            parsed[place][key] = {"target_h": draw(VALUE), "target_w": draw(VALUE)}
        elif key != "modalities":
            parsed[place][key] = draw(VALUE)
    return parsed, draw(st.sampled_from([["image"], ["video"], ["text", "image"]]))


def _outcome(parsed: dict, modalities: list[str], shape: Shape) -> Any:
    try:
        return repair.repair_parsed(IMAGE, modalities, copy.deepcopy(parsed), shape)
    except SizeRejected as exc:
        return ("rejected", str(exc))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    host_results(),
    st.sampled_from(list(Shape)),
    st.sampled_from(["reject", "snap", "off"]),
)
def test_fast_paths_equal_the_hooks_through_pluggy(
    case: tuple[dict, list[str]], shape: Shape, policy: str
) -> None:
    parsed, modalities = case
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMNI_SIZEFIX_SIZE_POLICY", policy)
        plugins.reset_plugin_manager()
        assert plugins.hooks() is default_plugin
        fast = _outcome(parsed, modalities, shape)
        plugins.get_plugin_manager().register(FakeBystanderPlugin(), name="fake_bystander")
        assert plugins.hooks() is plugins.get_plugin_manager().hook
        through_pluggy = _outcome(parsed, modalities, shape)
        plugins.reset_plugin_manager()
    assert repr(fast) == repr(through_pluggy)
