"""A weightless GLM-Image model folder, built locally from transformers' own classes.

vLLM-Omni decides at stage 0 whether GLM-Image's AR model gets its generation scaffold
(``PROMPT<sop>H W<eop><sop>h w<eop><bos>``). That preprocessing needs a model folder (the
AR config, a tokenizer, the processor) but no weights, so this module writes one in
seconds, without network: a tiny ``GlmImageConfig``, a byte-level fast tokenizer (every
byte is a token, so any prompt and the grid numbers tokenize and decode exactly) that
defines the special tokens GLM-Image's processor reads, the real ``GlmImageProcessor``,
and a chat template (vLLM-Omni <= 0.28 calls ``apply_chat_template``).

The folder can drive preprocessing only; there is nothing in it to run a model with.
transformers is imported lazily: ``transformers.models.glm_image`` exists from 5.0 on.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
from pathlib import Path

#: The AR architecture vLLM-Omni registers for GLM-Image's stage 0.
ARCHITECTURE = "GlmImageForConditionalGeneration"
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<eos>"
PAD_TOKEN = "<pad>"
IMAGE_TOKEN = "<|image|>"
GRID_BOS_TOKEN = "<sop>"
GRID_EOS_TOKEN = "<eop>"
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
MARKER_FILE = "omni_sizefix_weightless.json"
MAX_POSITIONS = 8192

_lock = threading.Lock()
_cached: Path | None = None


class WeightlessUnavailable(RuntimeError):
    """The weightless folder cannot be built here (e.g. transformers has no glm_image)."""


def unavailable_reason() -> str | None:
    """Why a weightless GLM-Image folder cannot be built in this environment; None if it can."""
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


def _tokenizer():
    """A fast tokenizer: one token per byte, plus GLM-Image's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: byte for byte, char in enumerate(_byte_alphabet())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
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
    raise WeightlessUnavailable("transformers.models.glm_image has no usable image processor")


def _config(glm_image, token_id):
    """A tiny GLM-Image AR config whose token ids agree with the tokenizer."""
    return glm_image.GlmImageConfig(
        text_config={
            "vocab_size": token_id(None),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": MAX_POSITIONS,
            "pad_token_id": token_id(PAD_TOKEN),
            "eos_token_id": token_id(EOS_TOKEN),
            "vision_vocab_size": 64,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "num_heads": 2,
            "intermediate_size": 32,
            "image_size": 64,
            "patch_size": 16,
        },
        vq_config={"embed_dim": 8, "num_embeddings": 64, "latent_channels": 16},
        image_token_id=token_id(IMAGE_TOKEN),
        # GLM-Image's generation bos doubles as the image-start token.
        image_start_token_id=token_id(BOS_TOKEN),
        image_end_token_id=token_id(EOS_TOKEN),
        architectures=[ARCHITECTURE],
    )


def build_glm_image_folder(dest: str | Path) -> Path:
    """Write a weightless GLM-Image AR folder into ``dest`` (created if needed); return it.

    One flat folder: ``config.json``, the tokenizer, ``processor_config.json`` and the chat
    template, so it serves as both ``model`` and ``tokenizer`` of a vLLM ``ModelConfig``.
    Raises ``WeightlessUnavailable`` when transformers lacks GLM-Image.
    """
    reason = unavailable_reason()
    if reason:
        raise WeightlessUnavailable(reason)
    import transformers
    from transformers.models import glm_image

    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()

    def token_id(token: str | None) -> int:
        return len(tokenizer) if token is None else int(tokenizer.convert_tokens_to_ids(token))

    processor = glm_image.GlmImageProcessor(
        image_processor=_image_processor(glm_image),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(folder))
    _config(glm_image, token_id).save_pretrained(str(folder))
    marker = {
        "what": "weightless GLM-Image AR folder built by omni-sizefix for stage-0 checks",
        "weights": None,
        "transformers": transformers.__version__,
        "special_tokens": {**BASIC_SPECIAL_TOKENS, **EXTRA_SPECIAL_TOKENS},
    }
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
    return folder


def is_weightless_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder written by ``build_glm_image_folder``."""
    return (Path(path) / MARKER_FILE).is_file()


def weightless_glm_image() -> Path:
    """This process's weightless GLM-Image folder (built once, removed at exit)."""
    global _cached
    with _lock:
        if _cached is not None and is_weightless_folder(_cached):
            return _cached
        reason = unavailable_reason()
        if reason:
            raise WeightlessUnavailable(reason)
        folder = Path(tempfile.mkdtemp(prefix="omni-sizefix-glm-image-"))
        try:
            build_glm_image_folder(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        atexit.register(shutil.rmtree, folder, True)
        _cached = folder
        return folder
