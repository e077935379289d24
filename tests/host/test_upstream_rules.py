"""The tests' restated GLM-Image rules (``glm_upstream``) agree with the installed upstream code."""

from __future__ import annotations

import importlib
import types

import glm_upstream
import pytest

SIZES = [(1024, 1024), (768, 1344), (1344, 768), (1000, 700), (512, 2048), (33, 65)]


def _upstream(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"{module}.{name} is not in this cell: {exc}")


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_grids_are_transformers_processor_grids(height: int, width: int) -> None:
    processor = _upstream("transformers.models.glm_image.processing_glm_image", "GlmImageProcessor")
    if hasattr(processor, "_get_target_shape"):  # transformers >= 5.2x: the grids alone
        token_h, token_w, prev_h, prev_w = processor._get_target_shape(None, height, width)
    else:  # older: the grids come with the prompt they are written into
        tokens = types.SimpleNamespace(grid_bos_token="<b>", grid_eos_token="<e>", bos_token="<s>")
        _, token_h, token_w, prev_h, prev_w = processor._build_prompt_with_target_shape(
            tokens, "p", height, width, True
        )
    assert glm_upstream.grids(height, width) == ((token_h, token_w), (prev_h, prev_w))


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_token_count_is_vllm_omnis_max_tokens(height: int, width: int) -> None:
    compute = _upstream(
        "vllm_omni.model_executor.stage_input_processors.glm_image", "compute_max_tokens"
    )
    assert glm_upstream.grids(height, width).token_count == compute(height, width)


@pytest.mark.parametrize(("token_h", "token_w"), [(2, 3), (4, 4), (3, 1)])
def test_upsampled_is_vllm_omnis_upsample(token_h: int, token_w: int) -> None:
    import torch

    upsample = _upstream(
        "vllm_omni.model_executor.stage_input_processors.glm_image", "_upsample_token_ids"
    )
    tokens = list(range(100, 100 + token_h * token_w))
    expected = upsample(torch.tensor(tokens), token_h, token_w).tolist()
    assert glm_upstream.upsampled(tokens, token_h, token_w) == expected


def test_eos_is_the_one_vllm_omni_strips() -> None:
    module = importlib.import_module("vllm_omni.model_executor.stage_input_processors.glm_image")
    source = importlib.util.find_spec(module.__name__).origin
    with open(source, encoding="utf-8") as handle:
        assert f"eos_token_id = {glm_upstream.EOS}" in handle.read()
