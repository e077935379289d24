"""What vLLM-Omni's own GLM-Image DiT does with a stage-1 input, judged by its own code.

The verdict "renders the requested size" belongs to the installed release's
``GlmImagePipeline.forward`` (``vllm_omni/diffusion/models/glm_image/pipeline_glm_image.py``):
it picks the size (prompt first, then sampling params), floors it to its
``vae_scale_factor * patch_size`` and raises ``ValueError`` when the prior's length does not
match. This module runs that method on a pipeline object that holds no weights, and stops it
where it would first need them (``encode_prompt``). Nothing of the rule is restated here:

* the scale factors are the ones upstream's own ``get_glm_image_pre_process_func`` computes
  (from the model folder's ``vae/config.json`` when one is given, else from upstream's
  defaults for GLM-Image), read from that function's closure;
* the request is the release's own ``OmniDiffusionRequest`` (in a ``DiffusionRequestBatch``
  where the release has one), built from the prompt and sampling params the host handed
  to the DiT engine, and passed through upstream's pre-process function first;
* the size is the one ``forward`` hands to its own ``check_inputs``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import json
import shutil
import tempfile
import types
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PIPELINE_MODULE = "vllm_omni.diffusion.models.glm_image.pipeline_glm_image"
REQUEST_MODULE = "vllm_omni.diffusion.request"
BATCH_MODULE = "vllm_omni.diffusion.worker.request_batch"
SAMPLING_MODULE = "vllm_omni.inputs.data"


class OracleUnavailable(RuntimeError):
    """The installed vLLM-Omni's GLM-Image DiT code cannot be run here (the reason)."""


class _Reached(Exception):
    """Raised where ``forward`` first needs weights: every size check has passed."""


@dataclass
class DiTOutcome:
    """What the DiT does: renders ``width`` x ``height``, or raises ``error``."""

    height: int | None = None
    width: int | None = None
    error: str | None = None

    def verdict(self, height: int, width: int) -> str:
        """``ok``, or what the DiT does instead of rendering (height, width)."""
        if self.error:
            return f"DiT error: {self.error}"
        if (self.height, self.width) != (height, width):
            return f"DiT renders {self.width}x{self.height}"
        return "ok"


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a dependency failing at import time
        raise OracleUnavailable(f"cannot import {name}: {type(exc).__name__}: {exc}") from exc


def _closure(function: Any) -> dict[str, Any]:
    names = function.__code__.co_freevars
    return {n: c.cell_contents for n, c in zip(names, function.__closure__ or (), strict=True)}


def _empty_model_folder() -> str:
    folder = Path(tempfile.mkdtemp(prefix="omni-sizefix-dit-"))
    (folder / "vae").mkdir()
    (folder / "vae" / "config.json").write_text(json.dumps({}))
    return str(folder)


def pre_process(model_folder: str | None = None) -> tuple[Any, int, int]:
    """Upstream's GLM-Image pre-process function, its vae scale factor and patch size.

    ``model_folder``: a GLM-Image folder (its ``vae/config.json`` is read by upstream);
    None: a folder whose VAE config is empty, so upstream's own GLM-Image defaults apply.
    """
    module = _module(PIPELINE_MODULE)
    factory = getattr(module, "get_glm_image_pre_process_func", None)
    if factory is None:
        raise OracleUnavailable(f"{PIPELINE_MODULE} has no get_glm_image_pre_process_func")
    folder = model_folder or _empty_model_folder()
    try:
        function = factory(types.SimpleNamespace(model=folder, revision=None))
    finally:
        if model_folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    cells = _closure(function)
    try:
        return function, int(cells["vae_scale_factor"]), int(cells["patch_size"])
    except KeyError as exc:
        raise OracleUnavailable(f"upstream's pre-process function has no {exc}") from exc


@dataclass
class GlmImageDiT:
    """The installed release's ``GlmImagePipeline`` without weights, run to its size checks."""

    model_folder: str | None = None

    def __post_init__(self) -> None:
        self._module = _module(PIPELINE_MODULE)
        self._pre_process, self.vae_scale_factor, self.patch_size = pre_process(self.model_folder)

    def _pipeline(self, seen: dict) -> Any:
        import torch

        cls = self._module.GlmImagePipeline
        pipeline = cls.__new__(cls)
        torch.nn.Module.__init__(pipeline)  # no weights: only the module bookkeeping
        pipeline.device = torch.device("cpu")
        pipeline.vae_scale_factor = self.vae_scale_factor
        pipeline._patch_size = self.patch_size
        pipeline.default_sample_size = 128  # only used when no size is given at all
        pipeline.transformer = types.SimpleNamespace(dtype=torch.float32)
        check_inputs = cls.check_inputs

        def recording_check_inputs(*args: Any, **kwargs: Any) -> Any:
            bound = inspect.signature(check_inputs).bind(pipeline, *args, **kwargs)
            seen.update(height=bound.arguments.get("height"), width=bound.arguments.get("width"))
            return check_inputs(pipeline, *args, **kwargs)

        def stop(*args: Any, **kwargs: Any) -> Any:
            raise _Reached

        pipeline.check_inputs = recording_check_inputs
        pipeline.encode_prompt = stop
        return pipeline

    def request(self, prompt: Any, sampling: Any) -> Any:
        """The release's own request object for one prompt, as its engine builds it."""
        request_cls = _module(REQUEST_MODULE).OmniDiffusionRequest
        params = copy.deepcopy(sampling)
        request_id = f"omni-sizefix-dit-{uuid.uuid4().hex[:8]}"
        fields = {f.name for f in dataclasses.fields(request_cls)}
        if "prompts" in fields:
            request = request_cls(
                prompts=[prompt],
                sampling_params=params,
                request_ids=[request_id],
                request_id=request_id,
            )
        else:
            request = request_cls(prompt=prompt, sampling_params=params, request_id=request_id)
        return request

    @staticmethod
    def _sampling(sampling: Any) -> Any:
        """The release's ``OmniDiffusionSamplingParams`` for what the host passed: as is, built
        from a dict, or its defaults when the host passed none (GLM-Image's DiT takes the
        size from the prompt first)."""
        cls = _module(SAMPLING_MODULE).OmniDiffusionSamplingParams
        if isinstance(sampling, cls):
            return sampling
        if sampling is None:
            return cls()
        if isinstance(sampling, dict):
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in sampling.items() if k in names})
        raise OracleUnavailable(f"sampling params of type {type(sampling).__name__}")

    def _batch(self, request: Any) -> Any:
        try:
            batch_cls = importlib.import_module(BATCH_MODULE).DiffusionRequestBatch
        except (ImportError, AttributeError):
            return request
        return batch_cls(requests=[request])

    def run(self, prompt: Any, sampling: Any) -> DiTOutcome:
        """What the DiT does with ``prompt`` (one stage-1 output) and its sampling params."""
        if isinstance(prompt, list):
            prompt = prompt[0]
        prompt = copy.deepcopy(prompt)
        seen: dict = {}
        pipeline = self._pipeline(seen)
        try:
            request = self.request(prompt, self._sampling(sampling))
        except OracleUnavailable:
            raise
        except Exception as exc:
            raise OracleUnavailable(f"cannot build the DiT request: {exc!r}") from exc
        try:  # the engine's pre-processing, then the pipeline
            pipeline.forward(self._batch(self._pre_process(request) or request))
        except _Reached:
            if seen.get("height") is None:
                raise OracleUnavailable("forward never showed its size to check_inputs") from None
            return DiTOutcome(height=int(seen["height"]), width=int(seen["width"]))
        except AttributeError as exc:
            if getattr(exc, "obj", None) is pipeline:  # a part this weightless object lacks
                raise OracleUnavailable(f"this release's forward needs {exc.name!r}") from exc
            return DiTOutcome(error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # upstream's own rejection of this input
            return DiTOutcome(error=f"{type(exc).__name__}: {exc}")
        raise OracleUnavailable("forward returned without reaching encode_prompt")


def sampling_params(**values: Any) -> Any:
    """The release's ``OmniDiffusionSamplingParams`` with ``values`` (a DiT request's own)."""
    cls = _module(SAMPLING_MODULE).OmniDiffusionSamplingParams
    return cls(**values)


_cached: dict[str | None, GlmImageDiT] = {}


def dit(model_folder: str | None = None) -> GlmImageDiT:
    """A shared ``GlmImageDiT`` (one per model folder)."""
    if model_folder not in _cached:
        _cached[model_folder] = GlmImageDiT(model_folder)
    return _cached[model_folder]
