"""The tests' restated GLM-Image rules (``glm_rules``, which ``glm_upstream`` and the unit and
live suites use) agree with the installed upstream code."""

from __future__ import annotations

import importlib
import importlib.util
import types
from pathlib import Path

import glm_rules
import pytest

SIZES = [(1024, 1024), (768, 1344), (1344, 768), (1000, 700), (512, 2048), (33, 65)]


def _upstream(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"{module}.{name} is not in this cell: {exc}")


def _vllm_omni_file(relative: str) -> Path:
    """A file of the installed vLLM-Omni (skip: this release has none)."""
    spec = importlib.util.find_spec("vllm_omni")
    path = Path(spec.origin).parent / relative if spec and spec.origin else None
    if path is None or not path.exists():
        pytest.skip(f"this vLLM-Omni has no {relative}")
    return path


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
    assert glm_rules.grids(height, width) == ((token_h, token_w), (prev_h, prev_w))


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_token_count_is_vllm_omnis_max_tokens(height: int, width: int) -> None:
    compute = _upstream(
        "vllm_omni.model_executor.stage_input_processors.glm_image", "compute_max_tokens"
    )
    assert glm_rules.grids(height, width).token_count == compute(height, width)


@pytest.mark.parametrize(("token_h", "token_w"), [(2, 3), (4, 4), (3, 1)])
def test_upsampled_is_vllm_omnis_upsample(token_h: int, token_w: int) -> None:
    import torch

    upsample = _upstream(
        "vllm_omni.model_executor.stage_input_processors.glm_image", "_upsample_token_ids"
    )
    tokens = list(range(100, 100 + token_h * token_w))
    expected = upsample(torch.tensor(tokens), token_h, token_w).tolist()
    assert glm_rules.upsampled(tokens, token_h, token_w) == expected


def test_eos_is_the_one_vllm_omni_strips() -> None:
    module = importlib.import_module("vllm_omni.model_executor.stage_input_processors.glm_image")
    source = importlib.util.find_spec(module.__name__).origin
    with open(source, encoding="utf-8") as handle:
        assert f"eos_token_id = {glm_rules.EOS}" in handle.read()


def test_max_side_is_what_vllm_omnis_deploy_config_holds() -> None:
    """Stage-0 ``max_tokens`` of vLLM-Omni's GLM-Image deploy config is the scaffold of
    MAX_SIDE x MAX_SIDE (its comment: "the theoretical maximum (2048x2048 t2i)")."""
    yaml = pytest.importorskip("yaml")
    config = _vllm_omni_file("deploy/glm_image.yaml")
    stages = yaml.safe_load(config.read_text(encoding="utf-8"))["stages"]
    stage0 = next(stage for stage in stages if stage["stage_id"] == 0)
    side = glm_rules.MAX_SIDE
    assert stage0["default_sampling_params"]["max_tokens"] == glm_rules.token_count(side, side)


def test_legacy_budget_is_vllm_omnis_legacy_config() -> None:
    """vLLM-Omni <= 0.18's legacy GLM-Image config caps stage 0 at LEGACY_MAX_TOKENS."""
    yaml = pytest.importorskip("yaml")
    config = _vllm_omni_file("model_executor/stage_configs/glm_image.yaml")
    stages = yaml.safe_load(config.read_text(encoding="utf-8"))["stage_args"]
    stage0 = next(stage for stage in stages if stage["stage_id"] == 0)
    assert stage0["default_sampling_params"]["max_tokens"] == glm_rules.LEGACY_MAX_TOKENS
    # its comment: "For 1024x1024: small 256 + large 1024 + EOS"
    assert glm_rules.largest_square_side(glm_rules.LEGACY_MAX_TOKENS) == 1024
