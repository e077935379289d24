"""Stage 0 at token level: what GLM-Image's AR model really receives.

The stage-0 prompt Dynamo builds (``parse_omni_request(...)["engine_inputs"]``) is run
through the installed vLLM-Omni's own preprocessing, against a weightless GLM-Image folder
(``simulation.weightless``); the AR prompt token ids that come out are decoded and the
generation scaffold ``PROMPT<sop>H W<eop><sop>h w<eop><bos>`` is parsed back into grids.

The route is chosen by what the installed release has, not by its version string:
``OmniInputPreprocessor.preprocess`` (vLLM-Omni <= 0.28, which ends in ``_process_text``),
else the renderer from ``build_omni_renderer`` (vLLM-Omni >= 0.29) with ``render_cmpl``,
the raw-prompt path of vLLM's ``InputProcessor`` (or, failing that, ``_process_singleton``
on the tokenized prompt). The vLLM config and preprocessor are built once per process.
vLLM, vLLM-Omni and transformers are imported lazily, inside the functions.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni_sizefix.runtime import sizing
from omni_sizefix.tools.simulation import weightless

ROUTE_PREPROCESSOR = "OmniInputPreprocessor.preprocess"
ROUTE_PROCESS_TEXT = "OmniInputPreprocessor._process_text"
ROUTE_RENDER_CMPL = "build_omni_renderer().render_cmpl"
ROUTE_PROCESS_SINGLETON = "build_omni_renderer()._process_singleton"

_GRID_TEXT = re.compile(r"\s*(\d+)\s+(\d+)\s*")


class Stage0Unavailable(RuntimeError):
    """The installed vLLM-Omni offers no stage-0 preprocessing route this module knows."""


@dataclass(frozen=True)
class Scaffold:
    """The generation scaffold at the end of the AR prompt, parsed back from token ids."""

    target: tuple[int, int]
    """Target grid (rows, columns) from the first ``<sop>H W<eop>``."""
    preview: tuple[int, int] | None
    """Preview grid from the second group; None for the image-to-image scaffold."""
    text: str
    """The scaffold as decoded text, e.g. ``<sop>16 24<eop><sop>13 19<eop><bos>``."""

    @property
    def grids(self) -> sizing.Grids:
        """The grids the AR model is asked for (preview ``(0, 0)`` when there is none)."""
        return sizing.Grids(target=self.target, preview=self.preview or (0, 0))


@dataclass(frozen=True)
class Stage0Result:
    """What vLLM-Omni's preprocessing made of one stage-0 prompt."""

    prompt_token_ids: list[int]
    text: str
    """The AR prompt decoded with special tokens kept."""
    scaffold: Scaffold | None
    route: str
    input_type: str | None = None
    """vLLM's engine-input type: ``multimodal`` when GLM-Image's processor ran."""

    @property
    def grids(self) -> sizing.Grids | None:
        return self.scaffold.grids if self.scaffold else None


@dataclass
class _Runner:
    route: str
    tokenizer: Any
    run: Callable[[dict], Mapping]


_lock = threading.Lock()
_runners: dict[str, _Runner] = {}


# --- the route ------------------------------------------------------------------------


def preprocessor_route() -> str | None:
    """The preprocessing route the installed vLLM-Omni offers (None: none known / no import)."""
    try:
        from vllm_omni.inputs import preprocess
    except Exception:
        return None
    cls = getattr(preprocess, "OmniInputPreprocessor", None)
    if cls is not None:
        return ROUTE_PREPROCESSOR if hasattr(cls, "preprocess") else ROUTE_PROCESS_TEXT
    if getattr(preprocess, "build_omni_renderer", None) is not None:
        try:
            from vllm.renderers import BaseRenderer
        except ImportError:
            return ROUTE_PROCESS_SINGLETON
        if hasattr(BaseRenderer, "render_cmpl"):
            return ROUTE_RENDER_CMPL
        return ROUTE_PROCESS_SINGLETON
    return None


def unavailable_reason() -> str | None:
    """Why stage 0 cannot be run here (no glm_image, no known route); None if it can."""
    reason = weightless.unavailable_reason()
    if reason:
        return reason
    if preprocessor_route() is None:
        return (
            "the installed vLLM-Omni has neither OmniInputPreprocessor nor "
            "build_omni_renderer in vllm_omni.inputs.preprocess"
        )
    return None


def _vllm_config(folder: str) -> Any:
    from vllm_omni.engine import arg_utils

    register = getattr(arg_utils, "register_omni_models_to_vllm", None)
    if register is not None:
        register()
    from vllm.config import DeviceConfig, ModelConfig, VllmConfig

    model_config = ModelConfig(
        model=folder, tokenizer=folder, trust_remote_code=True, dtype="float32"
    )
    return VllmConfig(model_config=model_config, device_config=DeviceConfig(device="cpu"))


def _preprocessor_runner(vllm_config: Any, route: str) -> _Runner:
    from vllm_omni.inputs.preprocess import OmniInputPreprocessor

    preprocessor = OmniInputPreprocessor(vllm_config=vllm_config)
    if route == ROUTE_PREPROCESSOR:
        run: Callable[[dict], Mapping] = preprocessor.preprocess
    else:
        run = preprocessor._process_text
    return _Runner(route, preprocessor.get_tokenizer(), run)


def _parse_prompt(model_config: Any, prompt: dict) -> Any:
    try:
        from vllm.renderers.inputs.preprocess import parse_model_prompt
    except ImportError:
        return prompt
    return parse_model_prompt(model_config, prompt)


def _renderer_runner(vllm_config: Any, route: str) -> _Runner:
    from vllm_omni.inputs.preprocess import build_omni_renderer

    renderer = build_omni_renderer(vllm_config)
    tokenizer = renderer.get_tokenizer()
    tok_params = getattr(renderer, "default_cmpl_tok_params", None)

    def render_cmpl(prompt: dict) -> Mapping:
        parsed = _parse_prompt(vllm_config.model_config, prompt)
        (engine_input,) = renderer.render_cmpl([parsed], tok_params)
        return engine_input

    def process_singleton(prompt: dict) -> Mapping:
        if "prompt_token_ids" not in prompt:
            ids = tokenizer.encode(prompt["prompt"], add_special_tokens=False)
            prompt = {**prompt, "prompt_token_ids": list(ids)}
        return renderer._process_singleton(prompt)

    run = render_cmpl if route == ROUTE_RENDER_CMPL else process_singleton
    return _Runner(route, tokenizer, run)


def _runner(folder: Path | None) -> _Runner:
    reason = unavailable_reason()
    if reason:
        if weightless.unavailable_reason():
            raise weightless.WeightlessUnavailable(reason)
        raise Stage0Unavailable(reason)
    path = str(folder if folder is not None else weightless.weightless_glm_image())
    with _lock:
        runner = _runners.get(path)
        if runner is None:
            route = preprocessor_route() or ""
            vllm_config = _vllm_config(path)
            if route in (ROUTE_PREPROCESSOR, ROUTE_PROCESS_TEXT):
                runner = _preprocessor_runner(vllm_config, route)
            else:
                runner = _renderer_runner(vllm_config, route)
            _runners[path] = runner
        return runner


def prepare(folder: Path | None = None) -> str:
    """Build the folder, vLLM config and preprocessor now (cached); return the route name.

    Raises ``WeightlessUnavailable`` or ``Stage0Unavailable`` with the reason.
    """
    return _runner(folder).route


# --- parsing the scaffold back ---------------------------------------------------------


def _marker_ids(tokenizer: Any) -> tuple[int, int, int]:
    names = (
        ("grid_bos_token", weightless.GRID_BOS_TOKEN),
        ("grid_eos_token", weightless.GRID_EOS_TOKEN),
        ("bos_token", weightless.BOS_TOKEN),
    )
    ids = []
    for attribute, default in names:
        token = getattr(tokenizer, attribute, None) or default
        ids.append(int(tokenizer.convert_tokens_to_ids(token)))
    return ids[0], ids[1], ids[2]


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False)


def parse_scaffold(token_ids: Sequence[int], tokenizer: Any) -> Scaffold | None:
    """The scaffold at the end of an AR prompt, read from its token ids; None when absent.

    Recognises ``<sop>H W<eop><sop>h w<eop><bos>`` (text-to-image) and
    ``<sop>H W<eop><bos>`` (image-to-image) as the tail of the prompt, with the marker
    tokens taken from ``tokenizer`` (GLM-Image's ``grid_bos_token``/``grid_eos_token``/
    ``bos_token``).
    """
    sop, eop, bos = _marker_ids(tokenizer)
    ids = [int(i) for i in token_ids]
    if not ids or ids[-1] != bos:
        return None
    groups: list[tuple[int, int]] = []
    start = end = len(ids) - 1  # ``end`` indexes the token after the current group
    while len(groups) < 2 and end > 0 and ids[end - 1] == eop:
        opening = end - 2
        while opening >= 0 and ids[opening] not in (sop, eop, bos):
            opening -= 1
        if opening < 0 or ids[opening] != sop:
            break
        match = _GRID_TEXT.fullmatch(_decode(tokenizer, ids[opening + 1 : end - 1]))
        if not match:
            break
        groups.insert(0, (int(match.group(1)), int(match.group(2))))
        start = end = opening
    if not groups:
        return None
    return Scaffold(
        target=groups[0],
        preview=groups[1] if len(groups) == 2 else None,
        text=_decode(tokenizer, ids[start:]),
    )


# --- public entry points -----------------------------------------------------------------


def _copy_prompt(prompt: Mapping) -> dict:
    copied = dict(prompt)
    if isinstance(copied.get("mm_processor_kwargs"), Mapping):
        copied["mm_processor_kwargs"] = dict(copied["mm_processor_kwargs"])
    return copied


def process_prompt(prompt: Mapping, folder: Path | None = None) -> Stage0Result:
    """Run a stage-0 prompt through the installed vLLM-Omni's preprocessing.

    ``prompt`` is what Dynamo hands the AR engine (``engine_inputs``); it is copied, not
    changed. ``folder`` defaults to this process's weightless GLM-Image folder.
    """
    if not isinstance(prompt, Mapping):
        raise TypeError(f"expected a stage-0 prompt dict, got {type(prompt).__name__}")
    runner = _runner(folder)
    engine_input = runner.run(_copy_prompt(prompt))
    ids = [int(i) for i in engine_input["prompt_token_ids"]]
    return Stage0Result(
        prompt_token_ids=ids,
        text=_decode(runner.tokenizer, ids),
        scaffold=parse_scaffold(ids, runner.tokenizer),
        route=runner.route,
        input_type=engine_input.get("type"),
    )


def tokenizer(folder: Path | None = None) -> Any:
    """The tokenizer the preprocessing route uses (to encode expectations in tests)."""
    return _runner(folder).tokenizer


def read_grids(prompt: Any) -> sizing.Grids | None:
    """Scaffold reader for ``simulation.dryrun``: grids read back from the real scaffold."""
    return process_prompt(prompt).grids


def real_scaffold_reader() -> Callable[[Any], sizing.Grids | None]:
    """``read_grids``, after setting everything up (raises here, not mid-request)."""
    prepare()
    return read_grids


def describe_scaffold(prompt: Any) -> str:
    """One line on what the AR model receives for ``prompt``, for people to read."""
    if prompt is None:
        return "no stage-0 prompt"
    try:
        result = process_prompt(prompt)
    except Exception as exc:
        return f"preprocessing failed: {type(exc).__name__}: {exc}"
    scaffold = result.scaffold
    if scaffold is None:
        shown = result.text if len(result.text) <= 60 else result.text[:57] + "..."
        return f"no scaffold (AR prompt {shown!r})"
    grids = f"target {scaffold.target[0]}x{scaffold.target[1]}"
    if scaffold.preview is not None:
        grids += f", preview {scaffold.preview[0]}x{scaffold.preview[1]}"
    return f"{scaffold.text} ({grids})"
