"""One builder for local GLM-Image model folders, in two modes, built in seconds without network.

- ``weightless``: the AR config, a tokenizer and the real ``GlmImageProcessor`` in one flat
  folder, no weights. Enough for stage 0's preprocessing (vLLM-Omni decides there whether the
  AR prompt gets GLM-Image's scaffold ``PROMPT<sop>H W<eop><sop>h w<eop><bos>``).
- ``random``: a whole GLM-Image pipeline folder with tiny RANDOM weights for every component
  (``model_index.json`` of ``GlmImagePipeline``; ``vision_language_encoder/`` AR model with its
  tokenizer and processor; ``processor/``; ``transformer/`` DiT; ``vae/`` with 4 blocks;
  ``scheduler/``; ``text_encoder/`` + ``tokenizer/`` the T5/ByT5 glyph encoder). vLLM-Omni's real
  engines run on it (on CPU too) and draw noise of exactly the requested size.

Both share GLM-Image's real token-id layout: the vision vocabulary is 0..16511 (the AR head's
width), the generation bos / image start is 16384, the image end (the stage config's stop
token) 16385; text tokens follow: one per byte (any prompt and grid number tokenizes and
decodes exactly), then the named special tokens the processor reads. Head sizes are 64
(vLLM's CPU attention takes 32, 64, 80, ... only). Random weights come from ``seed``: the same
seed writes identical files. transformers (>= 5, for ``glm_image``), torch and diffusers are
imported lazily.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Literal

Mode = Literal["weightless", "random"]
MODES: tuple[str, ...] = ("weightless", "random")

#: The AR architecture vLLM-Omni registers for GLM-Image's stage 0.
ARCHITECTURE = "GlmImageForConditionalGeneration"
PIPELINE_CLASS = "GlmImagePipeline"
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<eos>"
PAD_TOKEN = "<pad>"
IMAGE_TOKEN = "<|image|>"
GRID_BOS_TOKEN = "<sop>"
GRID_EOS_TOKEN = "<eop>"
#: GLM-Image's token-id layout (its AR config and deploy config).
VISION_VOCAB_SIZE = 16512
IMAGE_START_ID = 16384
IMAGE_END_ID = 16385
#: The tokenizer's basic special tokens (``PreTrainedTokenizerFast`` keyword -> token).
BASIC_SPECIAL_TOKENS = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN}
#: Named special tokens ``GlmImageProcessor`` reads from its tokenizer.
EXTRA_SPECIAL_TOKENS = {
    "image_token": IMAGE_TOKEN,
    "grid_bos_token": GRID_BOS_TOKEN,
    "grid_eos_token": GRID_EOS_TOKEN,
}
#: Renders the text parts of the messages and nothing else, so the AR prompt is exactly
#: the user's prompt followed by whatever the processor appends.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endfor -%}"
)
#: Written into every folder so a person who finds one knows what it is.
MARKER_FILE = "omni_sizefix_model_folder.json"
#: The marker of folders written before the builder had modes (still recognised).
OLD_MARKER_FILE = "omni_sizefix_weightless.json"
MAX_POSITIONS = 8192
DEFAULT_SEED = 0
#: Tiny sizes: head size 64 everywhere attention runs on vLLM's CPU backend.
AR_TEXT = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 1}
AR_HEADS = {"num_attention_heads": 2, "num_key_value_heads": 1}
AR_VISION = {"depth": 1, "hidden_size": 64, "num_heads": 1, "intermediate_size": 128}
AR_VQ = {"embed_dim": 8, "num_embeddings": 16384, "latent_channels": 16}
DIT = {
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 1,
    "attention_head_dim": 64,
    "num_attention_heads": 1,
    "time_embed_dim": 64,
    "condition_dim": 32,
    # random AR weights emit any id of the 16512-wide head: the codebook must cover it
    "prior_vq_quantizer_codebook_size": VISION_VOCAB_SIZE,
}
#: 4 blocks: 8x downscale, so the DiT's prior length (H/16)*(W/16) is what ar2diffusion sends.
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 16,
    "block_out_channels": [16, 16, 16, 16],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 1,
    "norm_num_groups": 4,
}
T5 = {"d_model": 32, "d_kv": 16, "num_heads": 2, "d_ff": 64, "num_layers": 1}
SCHEDULER = {
    "num_train_timesteps": 1000,
    "use_dynamic_shifting": True,
    "base_shift": 0.25,
    "max_shift": 0.75,
    "base_image_seq_len": 256,
}

_lock = threading.Lock()
_cached: Path | None = None


class ModelFolderUnavailable(RuntimeError):
    """The folder cannot be built here (e.g. transformers has no glm_image, no diffusers)."""


def unavailable_reason(mode: Mode = "weightless") -> str | None:
    """Why a folder of ``mode`` cannot be built in this environment; None if it can."""
    try:
        import transformers
    except ImportError as exc:
        return f"transformers is not installed ({exc})"
    try:
        import tokenizers  # noqa: F401
    except ImportError as exc:
        return f"the tokenizers package is not installed ({exc})"
    try:
        from transformers.models import glm_image  # noqa: F401
    except ImportError as exc:
        return (
            f"transformers {transformers.__version__} has no GLM-Image support "
            f"(transformers.models.glm_image needs transformers >= 5): {exc}"
        )
    if mode == "random":
        try:
            import torch  # noqa: F401
            from diffusers import AutoencoderKL, GlmImageTransformer2DModel  # noqa: F401
        except ImportError as exc:
            return f"random weights need torch and diffusers with GLM-Image ({exc})"
    return None


def _byte_alphabet() -> list[str]:
    """The byte-level BPE alphabet, indexed by byte value (GPT-2's bytes-to-unicode map)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def vocabulary() -> dict[str, int]:
    """The base vocabulary: vision ids 0..16511 (16384 = bos, 16385 = eos), then the bytes."""
    vocab = {f"<|vision_{i}|>": i for i in range(VISION_VOCAB_SIZE)}
    vocab = {token: i for token, i in vocab.items() if i not in (IMAGE_START_ID, IMAGE_END_ID)}
    vocab[BOS_TOKEN], vocab[EOS_TOKEN] = IMAGE_START_ID, IMAGE_END_ID
    for byte, char in enumerate(_byte_alphabet()):
        vocab[char] = VISION_VOCAB_SIZE + byte
    return vocab


def _tokenizer():
    """A fast tokenizer in GLM-Image's id layout: one text token per byte, special tokens last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(vocab=vocabulary(), merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        extra_special_tokens=dict(EXTRA_SPECIAL_TOKENS),
        model_max_length=MAX_POSITIONS,
        **BASIC_SPECIAL_TOKENS,
    )


def _image_processor(glm_image):
    """The GLM-Image image processor class this transformers release ships."""
    names = ("GlmImageImageProcessor", "GlmImageImageProcessorFast", "GlmImageImageProcessorPil")
    for name in names:
        cls = getattr(glm_image, name, None)
        if cls is not None:
            try:
                return cls()
            except ImportError:  # e.g. the torchvision backend without torchvision
                continue
    raise ModelFolderUnavailable("transformers.models.glm_image has no usable image processor")


def _ar_config(glm_image, tokenizer):
    """A tiny GLM-Image AR config in the real id layout, agreeing with ``tokenizer``."""

    def token_id(token: str) -> int:
        return int(tokenizer.convert_tokens_to_ids(token))

    return glm_image.GlmImageConfig(
        text_config={
            **AR_TEXT,
            **AR_HEADS,
            "vocab_size": len(tokenizer),
            "vision_vocab_size": VISION_VOCAB_SIZE,
            "max_position_embeddings": MAX_POSITIONS,
            "pad_token_id": token_id(PAD_TOKEN),
            "eos_token_id": token_id(EOS_TOKEN),
        },
        vision_config={**AR_VISION, "image_size": 64, "patch_size": 16},
        vq_config=dict(AR_VQ),
        image_token_id=token_id(IMAGE_TOKEN),
        # GLM-Image's generation bos doubles as the image-start token.
        image_start_token_id=token_id(BOS_TOKEN),
        image_end_token_id=token_id(EOS_TOKEN),
        architectures=[ARCHITECTURE],
    )


def _write_ar(folder: Path, *, weights: bool, seed: int):
    """The AR folder: config, tokenizer, processor (+ random weights). Returns the config."""
    from transformers.models import glm_image

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    processor = glm_image.GlmImageProcessor(
        image_processor=_image_processor(glm_image),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(folder))
    config = _ar_config(glm_image, tokenizer)
    if not weights:
        config.save_pretrained(str(folder))
        return config
    import torch

    torch.manual_seed(seed)
    model = glm_image.GlmImageForConditionalGeneration(config)
    model.save_pretrained(str(folder))
    return config


def _write_processor(folder: Path) -> None:
    """``processor/``: the stage-0 tokenizer and processor (no model config)."""
    from transformers.models import glm_image

    folder.mkdir(parents=True, exist_ok=True)
    glm_image.GlmImageProcessor(
        image_processor=_image_processor(glm_image),
        tokenizer=_tokenizer(),
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(str(folder))


def _write_diffusion(root: Path, seed: int) -> dict[str, list[str]]:
    """DiT, VAE, scheduler and glyph encoder; returns their ``model_index.json`` entries."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, GlmImageTransformer2DModel
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    tokenizer = ByT5Tokenizer()
    torch.manual_seed(seed + 1)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), **T5))
    text_encoder.save_pretrained(str(root / "text_encoder"))
    tokenizer.save_pretrained(str(root / "tokenizer"))
    torch.manual_seed(seed + 2)
    GlmImageTransformer2DModel(text_embed_dim=T5["d_model"], **DIT).save_pretrained(
        str(root / "transformer")
    )
    torch.manual_seed(seed + 3)
    channels = VAE["latent_channels"]
    vae = AutoencoderKL(**VAE, latents_mean=[0.0] * channels, latents_std=[1.0] * channels)
    vae.save_pretrained(str(root / "vae"))
    FlowMatchEulerDiscreteScheduler(**SCHEDULER).save_pretrained(str(root / "scheduler"))
    return {
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "ByT5Tokenizer"],
        "transformer": ["diffusers", "GlmImageTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def build(dest: str | Path, mode: Mode = "weightless", seed: int = DEFAULT_SEED) -> Path:
    """Write a GLM-Image folder of ``mode`` into ``dest`` (created if needed); return it.

    ``weightless``: one flat AR folder (``config.json``, tokenizer, processor, chat template)
    that serves as both ``model`` and ``tokenizer`` of a vLLM ``ModelConfig``. ``random``: the
    pipeline folder described in the module docstring. Raises ``ModelFolderUnavailable`` when
    this environment lacks what the mode needs.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    reason = unavailable_reason(mode)
    if reason:
        raise ModelFolderUnavailable(reason)
    import transformers

    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    marker: dict[str, object] = {
        "what": f"GLM-Image folder built by omni-sizefix ({mode}); not a real model",
        "mode": mode,
        "weights": None,
        "transformers": transformers.__version__,
        "special_tokens": {**BASIC_SPECIAL_TOKENS, **EXTRA_SPECIAL_TOKENS},
    }
    if mode == "weightless":
        _write_ar(folder, weights=False, seed=seed)
    else:
        import diffusers

        _write_ar(folder / "vision_language_encoder", weights=True, seed=seed)
        _write_processor(folder / "processor")
        components = {
            "processor": ["transformers", "GlmImageProcessor"],
            "vision_language_encoder": ["transformers", ARCHITECTURE],
            **_write_diffusion(folder, seed),
        }
        index = {"_class_name": PIPELINE_CLASS, "_diffusers_version": diffusers.__version__}
        (folder / "model_index.json").write_text(
            json.dumps({**index, **dict(sorted(components.items()))}, indent=2) + "\n"
        )
        marker.update(weights=f"random, seed {seed}", diffusers=diffusers.__version__)
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
    return folder


def folder_mode(path: str | Path) -> str | None:
    """The mode of a folder this module wrote (``weightless`` / ``random``), else None."""
    path = Path(path)
    if (path / MARKER_FILE).is_file():
        try:
            return str(json.loads((path / MARKER_FILE).read_text()).get("mode", "weightless"))
        except (OSError, ValueError):
            return None
    return "weightless" if (path / OLD_MARKER_FILE).is_file() else None


# --- the weightless mode under its historical names ---------------------------------------

WeightlessUnavailable = ModelFolderUnavailable


def build_glm_image_folder(dest: str | Path) -> Path:
    """``build(dest, "weightless")``: the flat weightless AR folder."""
    return build(dest, "weightless")


def is_weightless_folder(path: str | Path) -> bool:
    """True when ``path`` is a weightless folder written by this module."""
    return folder_mode(path) == "weightless"


def weightless_glm_image() -> Path:
    """This process's weightless GLM-Image folder (built once, removed at exit)."""
    global _cached
    with _lock:
        if _cached is not None and is_weightless_folder(_cached):
            return _cached
        reason = unavailable_reason()
        if reason:
            raise ModelFolderUnavailable(reason)
        folder = Path(tempfile.mkdtemp(prefix="omni-sizefix-glm-image-"))
        try:
            build(folder, "weightless")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        atexit.register(shutil.rmtree, folder, True)
        _cached = folder
        return folder
