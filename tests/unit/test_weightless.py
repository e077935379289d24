"""The weightless GLM-Image folder and the scaffold parser (need transformers >= 5 only).

No host is imported: the folder is checked with transformers' own loaders, and the parser
with the folder's real tokenizer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from omni_sizefix.tools.simulation import stage0, weightless


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = weightless.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return weightless.build_glm_image_folder(tmp_path_factory.mktemp("glm") / "weightless")


@pytest.fixture(scope="module")
def processor(folder: Path):
    from transformers.models.glm_image import GlmImageProcessor

    return GlmImageProcessor.from_pretrained(str(folder))


def test_unavailable_is_a_clear_error(tmp_path: Path) -> None:
    reason = weightless.unavailable_reason()
    if reason is None:
        pytest.skip("this transformers has glm_image; the build tests cover it")
    assert "glm_image" in reason or "not installed" in reason
    with pytest.raises(weightless.WeightlessUnavailable, match=r"transformers|tokenizers"):
        weightless.build_glm_image_folder(tmp_path / "m")
    with pytest.raises(weightless.WeightlessUnavailable):
        weightless.weightless_glm_image()


def test_folder_holds_no_weights(folder: Path) -> None:
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert weightless.MARKER_FILE in names and weightless.is_weightless_folder(folder)
    assert not [n for n in names if n.endswith((".safetensors", ".bin", ".pt", ".pth"))]
    assert json.loads((folder / weightless.MARKER_FILE).read_text())["weights"] is None


def test_config_agrees_with_tokenizer(folder: Path, processor) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder))
    tokenizer = processor.tokenizer
    assert config.model_type == "glm_image"
    assert config.architectures == [weightless.ARCHITECTURE]
    assert config.image_token_id == tokenizer.convert_tokens_to_ids(tokenizer.image_token)
    assert config.image_start_token_id == tokenizer.convert_tokens_to_ids(tokenizer.bos_token)
    assert config.text_config.vocab_size == len(tokenizer)


@pytest.mark.parametrize("text", ["a red apple", "16 24", "été 東京 🍎", "  two  spaces\n"])
def test_tokenizer_round_trips_any_text(processor, text: str) -> None:
    tokenizer = processor.tokenizer
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert len(ids) == len(text.encode())  # one token per byte, nothing added


@pytest.mark.parametrize(("height", "width"), [(512, 768), (1024, 1024), (1000, 600)])
def test_processor_builds_the_scaffold_with_the_chat_template(
    processor, height: int, width: int
) -> None:
    """The call vLLM-Omni <= 0.28 makes: apply_chat_template(..., target_h, target_w)."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "a red apple"}]}]
    out = processor.apply_chat_template(
        messages, tokenize=True, target_h=height, target_w=width, return_dict=True
    )
    rows, cols = height // 32, width // 32  # floored to a multiple of 32
    preview = (int(math.sqrt(rows / cols) * 16), int(math.sqrt(cols / rows) * 16))
    expected = f"a red apple<sop>{rows} {cols}<eop><sop>{preview[0]} {preview[1]}<eop><bos>"
    ids = out["input_ids"][0] if isinstance(out["input_ids"][0], list) else out["input_ids"]
    assert processor.tokenizer.decode(ids) == expected


def test_process_folder_is_built_once(folder: Path) -> None:
    first = weightless.weightless_glm_image()
    assert first == weightless.weightless_glm_image()
    assert weightless.is_weightless_folder(first) and first != folder


# --- parsing the scaffold back from token ids ----------------------------------------------


def encode(processor, text: str) -> list[int]:
    return processor.tokenizer.encode(text, add_special_tokens=False)


def test_text_to_image_scaffold_is_parsed(processor) -> None:
    ids = encode(processor, "a red apple 12 34<sop>16 24<eop><sop>13 19<eop><bos>")
    scaffold = stage0.parse_scaffold(ids, processor.tokenizer)
    assert scaffold == stage0.Scaffold((16, 24), (13, 19), "<sop>16 24<eop><sop>13 19<eop><bos>")
    assert scaffold.grids.target == (16, 24) and scaffold.grids.preview == (13, 19)


def test_image_to_image_scaffold_has_no_preview(processor) -> None:
    scaffold = stage0.parse_scaffold(
        encode(processor, "x<sop>32 32<eop><bos>"), processor.tokenizer
    )
    assert scaffold is not None and scaffold.target == (32, 32) and scaffold.preview is None
    assert scaffold.grids.preview == (0, 0)


@pytest.mark.parametrize(
    "text",
    [
        "a red apple",
        "a red apple<bos>",
        "a red apple<sop>16 24<eop><sop>13 19<eop>",  # no generation bos at the end
        "a<sop>16 24<eop><sop>13 19<eop><bos> and more text",  # not the tail
        "a<sop>sixteen 24<eop><bos>",
        "a<sop>16<eop><bos>",
        "a16 24<eop><bos>",  # no opening <sop>
    ],
)
def test_no_scaffold_is_none(processor, text: str) -> None:
    assert stage0.parse_scaffold(encode(processor, text), processor.tokenizer) is None
