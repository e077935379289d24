"""The model-folder builder's modes: weightless (configs only) and tiny random weights.

Expected token ids come from transformers' own GLM-Image defaults (the real model's layout).
The random mode needs torch and diffusers with GLM-Image: skipped without them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from omni_sizefix.tools.simulation import model_folder, weightless

#: Head sizes vLLM's CPU attention backend accepts (vllm/v1/attention/backends/cpu_attn.py).
CPU_HEAD_SIZES = {32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512}


def upstream_layout() -> dict[str, int]:
    from transformers.models.glm_image import GlmImageConfig

    default = GlmImageConfig()
    return {
        "image_start": default.image_start_token_id,
        "image_end": default.image_end_token_id,
        "vision_vocab": default.text_config.vision_vocab_size,
    }


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def random_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = model_folder.unavailable_reason("random")
    if reason:
        pytest.skip(reason)
    return model_folder.build(tmp_path_factory.mktemp("glm") / "random", "random", seed=7)


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        model_folder.build(tmp_path, "heavy")  # type: ignore[arg-type]


def test_weightless_is_a_mode_of_the_same_builder() -> None:
    assert weightless.build_glm_image_folder.__module__ == model_folder.__name__
    assert weightless.weightless_glm_image is model_folder.weightless_glm_image


def test_weightless_mode_is_recognised(tmp_path: Path) -> None:
    if model_folder.unavailable_reason():
        pytest.skip(model_folder.unavailable_reason() or "")
    folder = model_folder.build(tmp_path / "w", "weightless")
    assert model_folder.folder_mode(folder) == "weightless"
    assert weightless.is_weightless_folder(folder)


def test_weightless_folder_uses_the_real_token_layout(tmp_path: Path) -> None:
    if model_folder.unavailable_reason():
        pytest.skip(model_folder.unavailable_reason() or "")
    from transformers import AutoConfig, AutoTokenizer

    folder = model_folder.build(tmp_path / "w", "weightless")
    config, tokenizer, layout = (
        AutoConfig.from_pretrained(folder),
        AutoTokenizer.from_pretrained(folder),
        upstream_layout(),
    )
    assert config.image_start_token_id == layout["image_start"]
    assert config.image_end_token_id == layout["image_end"]
    assert config.text_config.vision_vocab_size == layout["vision_vocab"]
    assert tokenizer.convert_tokens_to_ids(tokenizer.bos_token) == layout["image_start"]
    assert tokenizer.convert_tokens_to_ids(tokenizer.eos_token) == layout["image_end"]
    # text tokens come after the vision vocabulary
    assert min(tokenizer.encode("a red apple", add_special_tokens=False)) >= layout["vision_vocab"]


def test_random_folder_has_every_component(random_folder: Path) -> None:
    index = json.loads((random_folder / "model_index.json").read_text())
    assert index["_class_name"] == "GlmImagePipeline"
    expected = {
        "vision_language_encoder",
        "processor",
        "transformer",
        "vae",
        "scheduler",
        "text_encoder",
        "tokenizer",
    }
    assert expected <= set(index)
    for name in expected:
        assert (random_folder / name).is_dir(), name
    for name in ("vision_language_encoder", "transformer", "vae", "text_encoder"):
        assert list((random_folder / name).glob("*.safetensors")), name
    assert model_folder.folder_mode(random_folder) == "random"


def test_random_folder_loads_with_upstream_classes(random_folder: Path) -> None:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, GlmImageTransformer2DModel
    from safetensors import safe_open
    from transformers import AutoConfig

    layout = upstream_layout()
    ar = AutoConfig.from_pretrained(random_folder / "vision_language_encoder")
    heads = ar.text_config.num_attention_heads
    assert ar.text_config.hidden_size // heads in CPU_HEAD_SIZES
    with safe_open(str(random_folder / "vision_language_encoder" / "model.safetensors"), "pt") as f:
        head = next(f.get_slice(k) for k in f.keys() if k.endswith("lm_head.weight"))
        assert head.get_shape()[0] == layout["vision_vocab"]
    dit = GlmImageTransformer2DModel.from_pretrained(random_folder / "transformer")
    assert dit.config.prior_vq_quantizer_codebook_size >= layout["vision_vocab"]
    assert dit.config.attention_head_dim in CPU_HEAD_SIZES
    vae = AutoencoderKL.from_pretrained(random_folder / "vae")
    assert len(vae.config.block_out_channels) == 4
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(random_folder / "scheduler")
    assert scheduler.config.use_dynamic_shifting


def test_same_seed_writes_identical_files(random_folder: Path, tmp_path: Path) -> None:
    again = model_folder.build(tmp_path / "again", "random", seed=7)
    assert digests(again) == digests(random_folder)


def test_another_seed_changes_the_weights(random_folder: Path, tmp_path: Path) -> None:
    other = digests(model_folder.build(tmp_path / "other", "random", seed=8))
    same = digests(random_folder)
    weights = [n for n in same if n.endswith(".safetensors")]
    assert weights and all(other[n] != same[n] for n in weights)
    assert other["model_index.json"] == same["model_index.json"]
