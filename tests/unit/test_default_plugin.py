"""Each default hook implementation, and the four hooks together through repair_request."""

from __future__ import annotations

import json

import pytest
from host_shapes import chat_text, dynamo_1_1_image, dynamo_1_2_image
from worker_plan import repair_with_shape

from omni_sizefix.runtime import hooks, sizing
from omni_sizefix.runtime.settings import Shape
from omni_sizefix.runtime.sizing import SizeRejected, TargetGeometry

IMAGE = {"model": "zai-org/GLM-Image", "prompt": "a red apple", "size": "768x512"}


# --- omni_sizefix_target_geometry ----------------------------------------------------


def test_target_geometry_of_an_image_request() -> None:
    geometry = hooks.omni_sizefix_target_geometry(
        request=IMAGE, parsed=dynamo_1_1_image(512, 768), output_modalities=["image"]
    )
    assert geometry == TargetGeometry(512, 768, kind="image", requested=(512, 768))


@pytest.mark.parametrize(
    ("request_", "modalities"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, ["text"]),
        ({"prompt": "hi"}, ["text"]),
        ({"input": "hi"}, ["audio"]),
    ],
)
def test_target_geometry_leaves_text_and_audio(request_: dict, modalities: list) -> None:
    assert (
        hooks.omni_sizefix_target_geometry(
            request=request_, parsed=chat_text(), output_modalities=modalities
        )
        is None
    )


def test_target_geometry_of_a_chat_image_request_without_host_size() -> None:
    # ai-dynamo 1.1 returns chat requests as plain text with no sampling overrides.
    request = {
        "messages": [{"role": "user", "content": "apple"}],
        "extra_body": {"size": "512x1024"},
    }
    geometry = hooks.omni_sizefix_target_geometry(
        request=request, parsed=chat_text("apple"), output_modalities=["image"]
    )
    assert (geometry.height, geometry.width) == (1024, 512)


def test_target_geometry_coerces_host_strings_to_ints() -> None:
    parsed = dynamo_1_1_image(512, 512)
    parsed["sampling_params_list"].update(height="768", width=1024.0)  # nvext overrides (1.1)
    geometry = hooks.omni_sizefix_target_geometry(
        request=IMAGE, parsed=parsed, output_modalities=["image"]
    )
    assert (geometry.height, geometry.width) == (768, 1024)
    assert type(geometry.height) is int and type(geometry.width) is int


@pytest.mark.parametrize("bad", [True, -512, 0, "big", 512.5, None, [512]])
def test_target_geometry_rejects_unusable_dimensions(bad) -> None:
    parsed = dynamo_1_1_image(512, 512)
    parsed["sampling_params_list"]["height"] = bad
    with pytest.raises(SizeRejected, match="height"):
        hooks.omni_sizefix_target_geometry(
            request=IMAGE, parsed=parsed, output_modalities=["image"]
        )


def test_target_geometry_rejects_sizes_glm_image_cannot_render() -> None:
    with pytest.raises(SizeRejected, match=r"1000x700.*Nearest valid sizes: 992x704"):
        hooks.omni_sizefix_target_geometry(
            request=IMAGE, parsed=dynamo_1_1_image(700, 1000), output_modalities=["image"]
        )


MALFORMED = ["abcxdef", "512", "x", "512X512", "512x512x2", "1024 by 768"]


@pytest.mark.parametrize("size", MALFORMED)
@pytest.mark.parametrize("host", [dynamo_1_1_image, dynamo_1_2_image])
def test_malformed_size_is_rejected_not_turned_into_1024(size: str, host) -> None:
    """The hosts' parse_size turns these into 1024x1024; the plugin refuses them."""
    request = {**IMAGE, "size": size}
    with pytest.raises(SizeRejected, match=r"is not WIDTHxHEIGHT") as caught:
        repair_with_shape(request, ["image"], host(1024, 1024), Shape.MM_KWARGS)
    assert repr(size) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "request_",
    [
        {**IMAGE, "size": ""},
        {**IMAGE, "size": "auto"},
        {"model": "m", "prompt": "p"},
        {**IMAGE, "size": "abcxdef", "nvext": {"width": 512, "height": 512}},
    ],
)
def test_default_or_replaced_size_is_not_malformed(request_: dict) -> None:
    sizing.check_size_format(request_)
    repaired = repair_with_shape(request_, ["image"], dynamo_1_2_image(1024, 1024), Shape.MM_KWARGS)
    assert repaired["sampling_params_list"]["height"] == 1024


def test_malformed_size_of_a_chat_image_request() -> None:
    chat = {"messages": [{"role": "user", "content": "an apple"}], "extra_body": {"size": "big"}}
    with pytest.raises(SizeRejected, match="'big' is not WIDTHxHEIGHT"):
        hooks.omni_sizefix_target_geometry(
            request=chat, parsed=chat_text(), output_modalities=["image"]
        )


def test_target_geometry_of_video_is_not_size_checked() -> None:
    parsed = dynamo_1_1_image(481, 833)
    parsed["sampling_params_list"]["num_frames"] = 33
    geometry = hooks.omni_sizefix_target_geometry(
        request={"prompt": "x", "size": "833x481"}, parsed=parsed, output_modalities=["video"]
    )
    assert (geometry.height, geometry.width, geometry.kind) == (481, 833, "video")


def _geometry_of(height: int, width: int, size: str | None = None) -> TargetGeometry:
    request = {**IMAGE, "size": size or f"{width}x{height}"}
    return hooks.omni_sizefix_target_geometry(
        request=request, parsed=dynamo_1_1_image(height, width), output_modalities=["image"]
    )


def test_repeated_sizes_are_decided_again_under_a_new_policy_or_budget(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Sizes are cached, decisions that depend on the policy or the budget are not."""

    assert _geometry_of(512, 768) == _geometry_of(512, 768)  # the cached path, twice
    for _ in range(2):  # a rejection raises every time (exceptions are not cached)
        with pytest.raises(SizeRejected, match="1000x700"):
            _geometry_of(700, 1000)
        with pytest.raises(SizeRejected, match="is not WIDTHxHEIGHT"):
            _geometry_of(512, 768, size="768X512")
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "snap")
    for _ in range(2):  # each snap is logged
        with caplog.at_level("INFO", logger="omni_sizefix"):
            caplog.clear()
            assert _geometry_of(700, 1000)[:2] == (704, 992)
        assert "snapped requested size 1000x700 to 992x704" in caplog.text
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "off")
    assert _geometry_of(700, 1000)[:2] == (700, 1000)
    monkeypatch.delenv("OMNI_SIZEFIX_SIZE_POLICY")
    monkeypatch.setattr(sizing, "_budget", None)
    assert _geometry_of(2048, 2048)[:2] == (2048, 2048)
    sizing.set_budget(1281)  # the shipped budget of a smaller config
    with pytest.raises(SizeRejected, match="max_tokens is 1281"):
        _geometry_of(2048, 2048)
    sizing.set_budget(None)
    assert _geometry_of(2048, 2048)[:2] == (2048, 2048)


def test_a_long_size_string_is_parsed_as_the_host_does() -> None:
    """Strings longer than the cached ones still follow the host's ``int()`` rule."""
    padded = "0" * 40 + "768x512"
    assert _geometry_of(512, 768, size=padded)[:2] == (512, 768)
    with pytest.raises(SizeRejected, match="is not WIDTHxHEIGHT"):
        _geometry_of(512, 768, size="7" * 40 + "X512")


# --- omni_sizefix_stage0_prompt ------------------------------------------------------


def test_stage0_prompt_from_plain_text_gets_kwargs_and_modalities() -> None:
    geometry = TargetGeometry(512, 768)
    prompt = hooks.omni_sizefix_stage0_prompt(
        engine_inputs="apple", geometry=geometry, request={"negative_prompt": "blur"}
    )
    assert prompt == {
        "prompt": "apple",
        "negative_prompt": "blur",
        "modalities": ["image"],
        "mm_processor_kwargs": {"target_h": 512, "target_w": 768},
    }


def test_stage0_prompt_keeps_existing_keys_and_does_not_mutate() -> None:
    engine_inputs = {"prompt": "apple", "mm_processor_kwargs": {"target_h": 512, "seed_hint": 3}}
    before = json.dumps(engine_inputs, sort_keys=True)
    prompt = hooks.omni_sizefix_stage0_prompt(
        engine_inputs=engine_inputs, geometry=TargetGeometry(512, 768), request={}
    )
    assert prompt["mm_processor_kwargs"] == {"target_h": 512, "seed_hint": 3, "target_w": 768}
    assert json.dumps(engine_inputs, sort_keys=True) == before


def test_stage0_prompt_of_video_has_no_image_modality() -> None:
    prompt = hooks.omni_sizefix_stage0_prompt(
        engine_inputs={"prompt": "wave"},
        geometry=TargetGeometry(480, 832, kind="video"),
        request={},
    )
    assert "modalities" not in prompt
    assert prompt["mm_processor_kwargs"] == {"target_h": 480, "target_w": 832}


def test_stage0_prompt_replaces_host_size_only_when_snapped() -> None:
    engine_inputs = {"prompt": "a", "mm_processor_kwargs": {"target_h": 500, "target_w": 700}}
    geometry = TargetGeometry(512, 704, requested=(500, 700))
    prompt = hooks.omni_sizefix_stage0_prompt(
        engine_inputs=engine_inputs, geometry=geometry, request={}
    )
    assert prompt["mm_processor_kwargs"] == {"target_h": 512, "target_w": 704}


# --- omni_sizefix_original_prompt ----------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "top", "kwargs"),
    [(Shape.TOP_LEVEL, True, False), (Shape.MM_KWARGS, False, True), (Shape.BOTH, True, True)],
)
def test_original_prompt_in_each_shape(shape: Shape, top: bool, kwargs: bool) -> None:
    prompt = hooks.omni_sizefix_original_prompt(
        original_prompt={"prompt": "a", "negative_prompt": None},
        geometry=TargetGeometry(512, 768),
        shape=shape,
    )
    assert prompt["prompt"] == "a" and prompt["negative_prompt"] is None
    assert (("height" in prompt) and prompt["height"] == 512 and prompt["width"] == 768) is top
    assert (prompt.get("mm_processor_kwargs") == {"target_h": 512, "target_w": 768}) is kwargs


# --- omni_sizefix_sampling_params ----------------------------------------------------


def test_sampling_params_are_plain_ints() -> None:
    params = hooks.omni_sizefix_sampling_params(
        sampling_params={"height": "512", "width": 768, "seed": 1},
        geometry=TargetGeometry(512, 768),
        request={},
    )
    assert params == {"height": 512, "width": 768, "seed": 1}


def test_sampling_params_of_chat_image_follow_ai_dynamo_1_2() -> None:
    request = {"extra_body": {"size": "1x1", "num_inference_steps": 20}, "nvext": {"seed": 7}}
    params = hooks.omni_sizefix_sampling_params(
        sampling_params=None, geometry=TargetGeometry(512, 512), request=request
    )
    assert params == {"num_inference_steps": 20, "seed": 7, "height": 512, "width": 512}


# --- the hooks together --------------------------------------------------------------


def test_repair_fixes_a_dynamo_1_1_image_request() -> None:
    fixed = repair_with_shape(IMAGE, ["image"], dynamo_1_1_image(512, 768), Shape.TOP_LEVEL)
    assert fixed["engine_inputs"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}
    assert (fixed["original_prompt"]["height"], fixed["original_prompt"]["width"]) == (512, 768)
    json.dumps(fixed)


def test_repair_adds_nothing_where_the_host_is_right() -> None:
    host = dynamo_1_2_image(512, 768)
    assert repair_with_shape(IMAGE, ["image"], host, Shape.MM_KWARGS) == dynamo_1_2_image(512, 768)


def test_repair_returns_chat_as_is() -> None:
    host = chat_text()
    assert repair_with_shape({"messages": []}, ["text"], host, Shape.BOTH) is host


def test_repair_snaps_all_three_places(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "snap")
    with caplog.at_level("INFO", logger="omni_sizefix"):
        fixed = repair_with_shape(IMAGE, ["image"], dynamo_1_2_image(500, 700), Shape.BOTH)
    assert fixed["engine_inputs"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 704}
    assert fixed["original_prompt"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 704}
    assert (fixed["original_prompt"]["height"], fixed["original_prompt"]["width"]) == (512, 704)
    assert fixed["sampling_params_list"] == {"height": 512, "width": 704}
    assert "snapped requested size 700x500 to 704x512" in caplog.text
