"""Drive a request through the real Dynamo stage workers with the GPU parts faked.

What is real: Dynamo's ``OmniStageWorker.generate`` for stage 0 and stage 1 (request
parsing, the stage-1 processor dispatch of that release, ``_build_sampling_params``),
the router models ``StageOutput``/``StageRequest`` with a JSON round trip in between,
the stage configs as loaded by the host's loader, and the stage-1 processor the config
names. What is fake, because it cannot run here: the engines (``FakeAREngine`` emits a
synthetic AR output laid out as GLM-Image's scaffold asks, optionally in vLLM-Omni's and
vLLM's own output classes; ``FakeDiffusionEngine`` records what would reach the DiT) and by
default the inter-stage connector (``InMemoryConnector``; ``shared_memory_connector()``
is vLLM-Omni's real one, whose serialisation drops fields some releases need).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omni_sizefix.runtime import sizing
from omni_sizefix.runtime.patches import stage1
from omni_sizefix.tools.hosts import STAGE_WORKER_MODULE, TYPES_MODULE, UTILS_MODULE
from omni_sizefix.tools.simulation import dit_oracle

# --- AR outputs ----------------------------------------------------------------------

#: The synthetic AR output (``omni_sizefix.runtime.patches.stage1``; the probes use it too).
SyntheticAROutput = stage1.SyntheticAROutput
SyntheticCompletion = stage1.SyntheticCompletion


def collapsed_tokens(count: int = 16) -> list[int]:
    """What the AR model emits without a scaffold: a few repeated codes, then EOS."""
    return [7] * count + [sizing.EOS_TOKEN_ID]


def stage0_grids(prompt: Any) -> sizing.Grids | None:
    """The grids the GLM-Image scaffold asks for, given the stage-0 prompt; None: no scaffold.

    vLLM-Omni only runs GLM-Image's processor (which appends the scaffold) when the prompt
    carries ``mm_processor_kwargs``; ``target_h``/``target_w`` must be ints (floored to 32).
    """
    if not isinstance(prompt, dict) or "mm_processor_kwargs" not in prompt:
        return None
    kwargs = prompt.get("mm_processor_kwargs") or {}
    height, width = kwargs.get("target_h", 1024), kwargs.get("target_w", 1024)
    if not isinstance(height, int) or not isinstance(width, int):
        height, width = 1024, 1024
    return sizing.grids_for(height, width)


#: Given the stage-0 prompt, return the grids the scaffold would ask for (None: no scaffold).
ScaffoldReader = Callable[[Any], "sizing.Grids | None"]


def _construct(cls: type, **values: Any) -> Any:
    """``cls(**values)`` keeping only the parameters this release's ``cls`` takes."""
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls(**values)
    return cls(**{k: v for k, v in values.items() if k in params})


def vllm_request_output(
    request_id: str,
    tokens: list[int],
    *,
    prompt_token_ids: list[int] | None = None,
    finish_reason: str = "stop",
) -> Any:
    """A real vLLM ``RequestOutput`` holding the AR tokens, shaped as the AR engine yields it.

    ``cumulative_token_ids`` is set as a dynamic attribute of the ``CompletionOutput`` (it is
    not one of its dataclass fields), as vLLM-Omni's AR output processing sets it.
    """
    from vllm.outputs import CompletionOutput, RequestOutput

    completion = _construct(
        CompletionOutput,
        index=0,
        text="",
        token_ids=list(tokens),
        cumulative_logprob=None,
        logprobs=None,
        finish_reason=finish_reason,
        stop_reason=None,
    )
    completion.cumulative_token_ids = list(tokens)
    return _construct(
        RequestOutput,
        request_id=request_id,
        prompt=None,
        prompt_token_ids=[0] if prompt_token_ids is None else list(prompt_token_ids),
        prompt_logprobs=None,
        outputs=[completion],
        finished=True,
    )


def omni_stage_output(request_id: str, tokens: list[int]) -> Any:
    """The AR stage's output as vLLM-Omni's engine yields it: its ``OmniRequestOutput``
    wrapping ``vllm_request_output`` (``from_pipeline`` in vLLM-Omni <= 0.28,
    ``from_stage_output`` later); the bare ``RequestOutput`` where neither exists."""
    request_output = vllm_request_output(request_id, tokens)
    try:
        from vllm_omni.outputs import OmniRequestOutput
    except ImportError:
        return request_output
    if hasattr(OmniRequestOutput, "from_stage_output"):
        return OmniRequestOutput.from_stage_output(
            request_output, request_id=request_id, stage_id=0, final_output_type="text"
        )
    if hasattr(OmniRequestOutput, "from_pipeline"):
        return OmniRequestOutput.from_pipeline(
            stage_id=0, final_output_type="text", request_output=request_output
        )
    return request_output


def shared_memory_connector(stage_id: int = 0) -> Any:
    """vLLM-Omni's own ``SharedMemoryConnector`` (real serialisation and shared memory)."""
    from vllm_omni.distributed.omni_connectors.connectors.shm_connector import (
        SharedMemoryConnector,
    )

    return SharedMemoryConnector({"stage_id": stage_id})


def max_tokens(sampling: Any) -> int | None:
    """The ``max_tokens`` of the stage-0 sampling params the host passed (None: none)."""
    first = sampling[0] if isinstance(sampling, (list, tuple)) and sampling else sampling
    value = (
        first.get("max_tokens") if isinstance(first, dict) else getattr(first, "max_tokens", None)
    )
    return int(value) if value is not None else None


class FakeAREngine:
    """FAKE (no GPU, no weights): the GLM-Image AR engine.

    Emits the preview grid, the target grid and EOS when the prompt would get a
    scaffold, else a collapsed stream of repeated codes, as the real model does, and stops
    at the ``max_tokens`` of the sampling params the host passes to stage 0.
    """

    def __init__(
        self, scaffold_reader: ScaffoldReader = stage0_grids, *, real_outputs: bool = False
    ) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.scaffold_reader = scaffold_reader
        #: Yield vLLM-Omni's / vLLM's own output objects (``omni_stage_output``) instead of
        #: the synthetic one.
        self.real_outputs = real_outputs

    async def get_tokenizer(self) -> Any:
        raise RuntimeError("no tokenizer in a dry run")

    async def generate(self, prompt: Any, *args: Any, **kwargs: Any):
        sampling = kwargs.get("sampling_params_list")
        self.calls.append((prompt, sampling))
        grids = self.scaffold_reader(prompt)
        tokens = stage1.t2i_tokens(grids) if grids else collapsed_tokens()
        limit = max_tokens(sampling)
        if limit is not None:  # a real engine stops at the max_tokens the host passes
            tokens = tokens[: max(1, limit)]
        request_id = kwargs.get("request_id") or (args[0] if args else "dryrun")
        if self.real_outputs:
            yield omni_stage_output(str(request_id), list(tokens))
            return
        yield stage1.ar_output(tokens, request_id=str(request_id))


class FakeDiffusionEngine:
    """FAKE (no GPU, no weights): the DiT stage; records what would reach it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    async def get_tokenizer(self) -> Any:
        raise RuntimeError("no tokenizer in a dry run")

    async def generate(self, prompt: Any, *args: Any, **kwargs: Any):
        self.calls.append((prompt, kwargs.get("sampling_params_list")))
        yield {"dryrun": "image"}


class InMemoryConnector:
    """FAKE: the inter-stage connector (shared memory / NIXL in a deployment)."""

    def __init__(self) -> None:
        self.store: dict[str, Any] = {}

    def put(self, from_stage: Any, to_stage: Any, request_id: str, payload: Any):
        key = f"{from_stage}->{to_stage}:{request_id}"
        self.store[key] = payload
        return True, 0, {"key": key}

    def get(self, from_stage: Any, to_stage: Any, request_id: str, metadata: Any = None):
        return self.store.pop(metadata["key"])


class _Context:
    def __init__(self, request_id: str) -> None:
        self._id = request_id

    def id(self) -> str:
        return self._id


# --- what reached the DiT ------------------------------------------------------------


@dataclass
class StageOneResult:
    """What stage 1 handed to the DiT for one request."""

    height: int | None = None
    width: int | None = None
    sampling_height: Any = None
    sampling_width: Any = None
    prior: list[int] | None = None
    error: str | None = None
    stage0_prompt: Any = None
    original_prompt: Any = None
    router_payload: str | None = None
    #: What vLLM-Omni's own DiT code does with the input (None: not run, see below).
    dit: dit_oracle.DiTOutcome | None = None
    dit_unavailable: str | None = None
    #: The DiT engine's inputs as the host passed them (prompt, first sampling params).
    dit_prompt: Any = None
    dit_sampling: Any = None

    def verdict(self, height: int, width: int) -> str:
        """``ok`` or the first way it differs from a (height, width) render.

        Whether the DiT renders (height, width) is decided by vLLM-Omni's own DiT code
        (``dit_oracle``), run on what reached the DiT; then the prior's content is checked
        against the target grid the AR output carried (its layout, not its length).
        """
        if self.error:
            return f"error: {self.error}"
        if self.height is None and self.prior is None:
            return "no DiT input (stage 1 skipped the AR output)"
        if self.dit is None:
            return f"DiT not judged: {self.dit_unavailable or 'no DiT call recorded'}"
        dit_verdict = self.dit.verdict(height, width)
        if dit_verdict != "ok":
            return dit_verdict
        if self.prior != stage1.expected_prior(height, width):
            return f"wrong prior content ({len(self.prior or [])} tokens, not the target grid)"
        return "ok"


def serves_glm_image(stage1_config: Any) -> bool:
    """Stage 1 runs a GLM-Image processor (vLLM-Omni's or the plugin's): its DiT is judged."""
    value = getattr(stage1_config, "custom_process_input_func", None)
    if value is None and isinstance(stage1_config, dict):
        value = stage1_config.get("custom_process_input_func")
    return value is None or ".glm_image." in str(value)


def _dit_view(prompt: Any, sampling: Any, *, glm_image: bool = True) -> StageOneResult:
    result = StageOneResult()
    result.height, result.width = stage1.dit_size(prompt) or (None, None)
    result.prior = stage1.dit_prior(prompt)
    first = sampling[0] if isinstance(sampling, list) and sampling else sampling
    result.dit_prompt, result.dit_sampling = prompt, first
    result.sampling_height = getattr(first, "height", None)
    result.sampling_width = getattr(first, "width", None)
    if not glm_image:
        result.dit_unavailable = "not GLM-Image's DiT (judged by its own tests)"
        return result
    if prompt in (None, []) or (isinstance(prompt, list) and prompt[0] is None):
        # e.g. vLLM-Omni's ar2diffusion skipped an AR output it could not parse
        result.dit_unavailable = "no prompt reached the DiT"
        return result
    try:
        result.dit = dit_oracle.dit().run(prompt, first)
    except dit_oracle.OracleUnavailable as exc:
        result.dit_unavailable = str(exc)
    return result


# --- the pipeline --------------------------------------------------------------------


def _make_worker(
    stage_worker: Any,
    engine: Any,
    stage_config: Any,
    connectors: dict,
    stage_id: int,
    output_modalities: list,
) -> Any:
    cls = stage_worker.OmniStageWorker
    params = inspect.signature(cls.__init__).parameters
    kwargs = {
        "engine": engine,
        "stage_config": stage_config,
        "connectors": connectors,
        "stage_id": stage_id,
        "output_modalities": output_modalities,
        "default_video_fps": 16,
    }
    return cls(**{k: v for k, v in kwargs.items() if k in params})


async def _collect(agen: Any) -> list[dict]:
    return [chunk async for chunk in agen]


def _connector_key(stage_worker: Any, a: Any, b: Any) -> Any:
    return stage_worker._connector_key(a, b)


async def run_request_async(
    request: dict,
    stage_configs: list,
    *,
    output_modalities: list | None = None,
    scaffold_reader: ScaffoldReader = stage0_grids,
    connector: Any = None,
    real_outputs: bool = False,
    ar_engine: Any = None,
) -> StageOneResult:
    """Send ``request`` through stage 0, the router models and stage 1 of the real host.

    ``connector``: the inter-stage connector (default: ``InMemoryConnector``, which keeps the
    AR output object as is; ``shared_memory_connector()`` runs vLLM-Omni's own serialisation).
    ``real_outputs``: the fake AR engine yields vLLM-Omni's ``OmniRequestOutput`` around a
    vLLM ``RequestOutput`` (``omni_stage_output``).
    ``ar_engine``: another fake AR engine (another model's output layout); default
    ``FakeAREngine`` (GLM-Image).
    """
    stage_worker = importlib.import_module(STAGE_WORKER_MODULE)
    types = importlib.import_module(TYPES_MODULE)
    modalities = output_modalities or ["image"]
    connector = connector if connector is not None else InMemoryConnector()
    connectors = {_connector_key(stage_worker, 0, 1): connector}
    ar = ar_engine or FakeAREngine(scaffold_reader, real_outputs=real_outputs)
    dit = FakeDiffusionEngine()
    worker0 = _make_worker(stage_worker, ar, stage_configs[0], connectors, 0, modalities)
    worker1 = _make_worker(stage_worker, dit, stage_configs[1], connectors, 1, modalities)
    request_id = f"dryrun-{uuid.uuid4().hex[:12]}"
    chunks = await _collect(
        worker0.generate({"request_id": request_id, **request}, _Context(request_id))
    )
    stage0_prompt = ar.calls[0][0] if ar.calls else None
    out = chunks[-1] if chunks else {}
    if out.get("error"):
        return StageOneResult(error=f"stage 0: {out['error']}", stage0_prompt=stage0_prompt)
    wire = json.dumps(out)  # the worker's chunk travels to the router as JSON
    stage_output = types.StageOutput.model_validate(json.loads(wire))
    next_request = json.loads(json.dumps(stage_output.to_next_stage_request(request_id)))
    try:
        chunks = await _collect(worker1.generate(next_request, _Context(request_id)))
    except Exception as exc:  # the release's own dispatch may raise (e.g. TypeError)
        return StageOneResult(
            error=f"stage 1: {type(exc).__name__}: {exc}",
            stage0_prompt=stage0_prompt,
            original_prompt=next_request.get("original_prompt"),
            router_payload=wire,
        )
    if not dit.calls:
        error = next((c.get("error") for c in chunks if c.get("error")), "DiT never called")
        return StageOneResult(
            error=f"stage 1: {error}",
            stage0_prompt=stage0_prompt,
            original_prompt=next_request.get("original_prompt"),
            router_payload=wire,
        )
    _release_final_output(chunks)
    result = _dit_view(*dit.calls[0], glm_image=serves_glm_image(stage_configs[1]))
    result.stage0_prompt = stage0_prompt
    result.original_prompt = next_request.get("original_prompt")
    result.router_payload = wire
    return result


def _release_final_output(chunks: list[dict]) -> None:
    """Read back (and so free) the final stage's shared-memory output, as the router does."""
    for chunk in chunks:
        if isinstance(chunk, dict) and chunk.get("shm_meta"):
            try:
                importlib.import_module(UTILS_MODULE).shm_deserialize(chunk["shm_meta"])
            except Exception:
                pass


def run_request(request: dict, stage_configs: list, **kwargs: Any) -> StageOneResult:
    """Synchronous form of ``run_request_async``."""
    return asyncio.run(run_request_async(request, stage_configs, **kwargs))
