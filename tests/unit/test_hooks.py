"""Hooks through pluggy: a third-party plugin (here a FAKE one, registered in-process) takes
effect whenever it is registered, and one that decides nothing leaves the defaults."""

from __future__ import annotations

from typing import Any

from host_shapes import dynamo_1_1_image
from worker_plan import repair_with_shape

from omni_sizefix.hookspecs import hookimpl
from omni_sizefix.runtime import hooks
from omni_sizefix.runtime.settings import Shape
from omni_sizefix.runtime.sizing import TargetGeometry

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


def test_plugin_registered_after_first_use_takes_effect_and_leaves() -> None:
    before = repair_with_shape(IMAGE, ["image"], dynamo_1_1_image(512, 768), Shape.BOTH)
    assert before["sampling_params_list"] == {"height": 512, "width": 768}
    fake = FakeSquarePlugin()
    hooks.get_plugin_manager().register(fake, name="fake_square")
    squared = repair_with_shape(IMAGE, ["image"], dynamo_1_1_image(512, 768), Shape.BOTH)
    assert squared["sampling_params_list"] == {"height": 512, "width": 512}
    assert squared["original_prompt"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 512}
    hooks.get_plugin_manager().unregister(fake)
    after = repair_with_shape(IMAGE, ["image"], dynamo_1_1_image(512, 768), Shape.BOTH)
    assert after == before


def test_a_plugin_that_decides_nothing_falls_through_to_the_defaults() -> None:
    hooks.get_plugin_manager().register(FakeBystanderPlugin(), name="fake_bystander")
    fixed = repair_with_shape(IMAGE, ["image"], dynamo_1_1_image(512, 768), Shape.MM_KWARGS)
    assert fixed["engine_inputs"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}
