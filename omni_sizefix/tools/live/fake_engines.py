"""FAKE GLM-Image stage engines for the live topology: no GPU, no weights.

They stand in for the ``AsyncOmni`` engines ai-dynamo builds in
``dynamo.vllm.omni.stage_worker._create_engine`` and nothing else; everything around
them (argument parsing, stage configs, connectors, discovery, router, formatter) is the
installed release's own code.

- ``FakeGlmImageAREngine`` (stage 0) runs the prompt it receives through the installed
  vLLM-Omni's real GLM-Image preprocessing (``tools.simulation.stage0``, against the weightless
  model folder given as ``--model``) and emits prior tokens laid out for the scaffold it
  found: preview grid, target grid, EOS, cut at the stage's ``max_tokens`` as a real
  model is. No scaffold: a short collapsed stream, as the real model produces.
- ``FakeGlmImageDiTEngine`` (stage 1) lets the installed vLLM-Omni's own GLM-Image pipeline
  decide the size and judge the prior's length (``tools.simulation.dit_oracle`` runs its
  ``forward`` without weights up to its size checks), then renders a PNG of that size whose
  16x16-pixel blocks encode the prior tokens it received (``encode_prior`` /
  ``decode_prior``): a prior cut for another size shows as a wrong picture, not only a
  wrong size. The picture is the fake part; the size and the errors are upstream's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from omni_sizefix.runtime import sizing
from omni_sizefix.runtime.patches import stage1
from omni_sizefix.tools.simulation import dit_oracle, dryrun

logger = logging.getLogger("omni_sizefix.tools.live")

#: Pixels per prior token along each side (GLM-Image: VAE factor 8 x patch size 2).
BLOCK = 16
#: Fill of an image rendered without any prior tokens.
NO_PRIOR_FILL = (128, 128, 128)


# --- the picture of a prior --------------------------------------------------------------


def _check_byte(red: int, green: int) -> int:
    return (red * 7 + green * 13 + 91) & 0xFF


def token_colour(token: int) -> tuple[int, int, int]:
    """The RGB colour of one prior token (value in R/G, a check byte in B)."""
    red, green = (int(token) >> 8) & 0xFF, int(token) & 0xFF
    return red, green, _check_byte(red, green)


def encode_prior(prior: Sequence[int] | None, height: int, width: int) -> Any:
    """A ``height`` x ``width`` PIL image showing ``prior`` as a grid of 16x16 blocks.

    The prior fills the (height/16) x (width/16) grid row by row; blocks with no token
    (or every block, when ``prior`` is None) are plain grey.
    """
    import numpy as np
    from PIL import Image

    rows, cols = height // BLOCK, width // BLOCK
    grid = np.empty((rows, cols, 3), dtype=np.uint8)
    grid[:, :] = NO_PRIOR_FILL
    if prior is not None:
        tokens = np.asarray([int(t) for t in prior][: rows * cols], dtype=np.int64)
        flat = grid.reshape(-1, 3)
        red, green = (tokens >> 8) & 0xFF, tokens & 0xFF
        flat[: len(tokens), 0] = red
        flat[: len(tokens), 1] = green
        flat[: len(tokens), 2] = (red * 7 + green * 13 + 91) & 0xFF
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    blocks = grid.repeat(BLOCK, axis=0).repeat(BLOCK, axis=1)
    pixels[: blocks.shape[0], : blocks.shape[1]] = blocks
    return Image.fromarray(pixels, mode="RGB")


def decode_prior(image: Any) -> list[int] | None:
    """The prior tokens an ``encode_prior`` picture shows; None if it shows no prior grid."""
    import numpy as np

    pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    height, width = pixels.shape[:2]
    rows, cols = height // BLOCK, width // BLOCK
    if rows == 0 or cols == 0:
        return None
    centres = pixels[BLOCK // 2 : rows * BLOCK : BLOCK, BLOCK // 2 : cols * BLOCK : BLOCK]
    red, green, blue = centres[..., 0], centres[..., 1], centres[..., 2]
    if not np.array_equal(blue, (red * 7 + green * 13 + 91) & 0xFF):
        return None
    return ((red << 8) | green).reshape(-1).tolist()


# --- output objects as the installed vLLM-Omni builds them ---------------------------------


def ar_output(
    request_id: str,
    prompt_token_ids: list[int],
    tokens: list[int],
    finish_reason: str,
    final_output_type: str,
) -> Any:
    """The stage-0 result ``AsyncOmni.generate`` yields: a vLLM ``RequestOutput`` wrapped
    in ``OmniRequestOutput`` (``from_stage_output`` in vLLM-Omni >= 0.29, else
    ``from_pipeline``), with ``cumulative_token_ids`` set as vLLM-Omni's output processor
    sets it."""
    from vllm_omni.outputs import OmniRequestOutput

    request_output = dryrun.vllm_request_output(
        request_id, tokens, prompt_token_ids=prompt_token_ids, finish_reason=finish_reason
    )
    completion = request_output.outputs[0]
    if not hasattr(completion, "multimodal_output"):
        completion.multimodal_output = {}
    if hasattr(OmniRequestOutput, "from_stage_output"):
        return OmniRequestOutput.from_stage_output(
            request_output,
            request_id=request_id,
            stage_id=0,
            final_output_type=final_output_type,
            finished=True,
        )
    return OmniRequestOutput.from_pipeline(
        stage_id=0, final_output_type=final_output_type, request_output=request_output
    )


def diffusion_output(request_id: str, image: Any, prompt: Any) -> Any:
    """The stage-1 result: ``OmniRequestOutput.from_diffusion`` with one image."""
    from vllm_omni.outputs import OmniRequestOutput

    return OmniRequestOutput.from_diffusion(
        request_id=request_id, images=[image], prompt=prompt, final_output_type="image"
    )


# --- the engines ---------------------------------------------------------------------------


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _param(sampling: Any, name: str) -> Any:
    params = _first(sampling)
    if params is None:
        return None
    if isinstance(params, dict):
        return params.get(name)
    return getattr(params, name, None)


def _tokenizer(folder: Path) -> Any:
    """The tokenizer of stage 0's preprocessing route (building the route once: the
    health check asks for it before the worker registers, so requests find it ready)."""
    from omni_sizefix.tools.simulation import stage0

    return stage0.tokenizer(folder)


class FakeGlmImageAREngine:
    """FAKE (no GPU, no weights): GLM-Image's AR stage (stage 0)."""

    def __init__(self, model: str, final_output_type: str = "text") -> None:
        self.folder = Path(model)
        self.final_output_type = final_output_type

    async def get_tokenizer(self) -> Any:
        return _tokenizer(self.folder)

    def prior_tokens(self, prompt: Any, max_tokens: int | None) -> tuple[list[int], list[int], str]:
        """(AR prompt ids, emitted tokens, finish reason) for one stage-0 prompt."""
        from omni_sizefix.tools.simulation import stage0

        if isinstance(prompt, str):
            prompt = {"prompt": prompt}
        if isinstance(prompt, dict) and "prompt" not in prompt:
            # A token prompt, e.g. Dynamo's health-check canary ({"token_ids": [bos], ...}):
            # nothing for GLM-Image's processor to scaffold.
            ids = prompt.get("prompt_token_ids") or prompt.get("token_ids") or []
            tokens = dryrun.collapsed_tokens()
            if max_tokens is not None:
                tokens = tokens[: max(1, max_tokens)]
            return [int(i) for i in ids], tokens, "length"
        result = stage0.process_prompt(prompt, self.folder)
        grids = result.grids
        tokens = stage1.t2i_tokens(grids) if grids else dryrun.collapsed_tokens()
        logger.info(
            "FAKE AR engine: scaffold %s -> %d tokens",
            result.scaffold.text if result.scaffold else None,
            len(tokens),
        )
        if max_tokens is not None and len(tokens) > max_tokens:
            return result.prompt_token_ids, tokens[:max_tokens], "length"
        return result.prompt_token_ids, tokens, "stop"

    async def generate(
        self, prompt: Any, request_id: str = "", *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        sampling = kwargs.get("sampling_params_list")
        max_tokens = _param(sampling, "max_tokens")
        ids, tokens, reason = self.prior_tokens(prompt, max_tokens)
        yield ar_output(str(request_id), ids, tokens, reason, self.final_output_type)


class FakeGlmImageDiTEngine:
    """FAKE (no GPU, no weights): GLM-Image's DiT stage (stage 1); renders its prior."""

    def __init__(self, model: str) -> None:
        self.folder = Path(model)
        self._tokenizer: Any = None

    async def get_tokenizer(self) -> Any:
        # The folder's own tokenizer: the DiT never preprocesses text prompts.
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        return self._tokenizer

    def inputs(self, prompt: Any, sampling: Any) -> tuple[int, int, list[int] | None]:
        """(height, width, prior): the size as the installed vLLM-Omni's own GLM-Image pipeline
        decides it (``dit_oracle``: its ``forward`` up to its size checks, which raise for a
        prior of the wrong length); the prior as it arrived, for the picture."""
        first = _first(prompt)
        if first is None:
            raise ValueError("the DiT received no prompt (stage 1 produced no diffusion input)")
        # A weightless folder has no VAE config: upstream's GLM-Image defaults apply then.
        vae_config = self.folder / "vae" / "config.json"
        oracle = dit_oracle.dit(str(self.folder) if vae_config.exists() else None)
        outcome = oracle.run(first, _first(sampling))
        if outcome.error:
            raise ValueError(outcome.error)
        extra_args = _param(sampling, "extra_args") or {}
        prior = extra_args.get("prior_token_ids") if isinstance(extra_args, dict) else None
        if prior is None and isinstance(first, dict):
            prior = (first.get("extra") or {}).get("prior_token_ids")
        prior = sizing.as_ints(prior) if prior is not None else None
        return int(outcome.height), int(outcome.width), prior

    async def generate(
        self, prompt: Any, request_id: str = "", *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        height, width, prior = self.inputs(prompt, kwargs.get("sampling_params_list"))
        logger.info(
            "FAKE DiT engine: %dx%d (WxH), prior %s tokens",
            width,
            height,
            len(prior) if prior is not None else "no",
        )
        image = encode_prior(prior, height, width)
        yield diffusion_output(str(request_id), image, _first(prompt))


def create_engine(model: str, stage_config: Any, stage_type: str, *args: Any, **kwargs: Any):
    """Stand-in for ``dynamo.vllm.omni.stage_worker._create_engine`` (any release's
    signature: the first three parameters are the same in all of them)."""
    if stage_type == "diffusion":
        return FakeGlmImageDiTEngine(model)
    final_output_type = getattr(stage_config, "final_output_type", None) or "text"
    return FakeGlmImageAREngine(model, final_output_type)
