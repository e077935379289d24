"""Patch: a Dynamo stage worker learns its model and budget, and runs a stage 1 that works.

Target
    ``dynamo.vllm.omni.stage_worker.OmniStageWorker.__init__`` (given ``stage_config`` and
    ``stage_id``) and ``_load_processor(func_path)``, which every ai-dynamo 1.1-1.7 calls from
    that ``__init__`` to load a config's ``custom_process_input_func``.
How
    Both wrappers call the host first; a failure of the plugin logs one WARNING and leaves the
    worker as the host built it; both signatures are checked before anything is replaced.
    What is wrong on this host is probed once per process on synthetic inputs (``profile``),
    never read from version numbers. The numbered fixes:

1. Model and budget: the stage config goes to ``pipelines.record`` (the parse patch writes
   the size only where the model reads it); a stage-0 GLM-Image worker's ``max_tokens``
   becomes the size policy's budget (vLLM-Omni's legacy config: 1281 tokens, 1024x1024 only;
   larger priors would be cut silently).
2. Request id (ai-dynamo 1.1): ``self.engine.generate(prompt, request_id, ...)`` hands the id
   as vLLM-Omni's ``sampling_params``: every request runs as ``""`` and a second one in flight
   kills the AR engine core (``duplicate request id``). Where the host's source and the
   engine's signature say so, the engine gets an instance ``generate`` passing ``request_id=``.
3. Which stage-1 processor: where this host runs vLLM-Omni's GLM-Image ``ar2diffusion`` wrong
   (dispatch refused, ``cumulative_token_ids`` not restored, wrong size or prior),
   ``stage1.ar2diffusion`` runs instead; other models' processors go behind ``stage1.adapt``
   where this host cannot dispatch them, ``(source_outputs, ctx)`` ones behind
   ``stage1.legacy``. Elsewhere the host's own runs.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import logging
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

from omni_sizefix.runtime import pipelines, sizing
from omni_sizefix.runtime.patches import (
    SENTINEL,
    Replacement,
    describe,
    marked,
    signature_text,
    stage1,
    warn_failed,
    warn_once,
)

logger = logging.getLogger("omni_sizefix")

STAGE_WORKER_MODULE = "dynamo.vllm.omni.stage_worker"
INIT = "OmniStageWorker.__init__"
LOAD = "_load_processor"

_init = Replacement("__init__", f"{STAGE_WORKER_MODULE}.{INIT}")
_load = Replacement(LOAD, f"{STAGE_WORKER_MODULE}.{LOAD}")


# --- fix 1: model and budget ----------------------------------------------------------------


def stage0_budget(stage_config: Any) -> int | None:
    """Stage-0 ``max_tokens`` of a GLM-Image stage config (None: not GLM-Image or not set)."""
    if pipelines.identify(stage_config)[0] is not pipelines.GLM_IMAGE:
        return None
    sampling = pipelines.config_value(stage_config, "default_sampling_params")
    max_tokens = pipelines.config_value(sampling, "max_tokens")
    return max_tokens if type(max_tokens) is int else None


def record_budget(stage_config: Any, stage_id: Any) -> None:
    """Make a stage-0 GLM-Image worker's ``max_tokens`` the size policy's budget (logged)."""
    budget = stage0_budget(stage_config) if stage_id == 0 else None
    if budget is None or budget == sizing.budget():
        return
    sizing.set_budget(budget)
    side = sizing.largest_square_side(budget)
    logger.info(
        "omni-sizefix: stage-0 max_tokens %d holds GLM-Image sizes up to %s; larger requests "
        "are rejected (a config holding %dx%d: `%s`)",
        budget, f"{side}x{side}" if side else "none", sizing.MAX_SIDE, sizing.MAX_SIDE,
        sizing.RAISE_BUDGET_COMMAND,
    )  # fmt: skip


# --- fix 2: request id ----------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def host_passes_id_positionally(worker_class: type) -> bool:
    """True when the worker's ``generate`` calls ``self.engine.generate(x, request_id, ...)``."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(worker_class.generate)))
    except (AttributeError, OSError, TypeError):
        return False
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr == "generate":
            owner, args = func.value, node.args  # type: ignore[union-attr]
            if isinstance(owner, ast.Attribute) and owner.attr == "engine" and len(args) >= 2:
                if isinstance(args[1], ast.Name) and args[1].id == "request_id":
                    return True
    return False


def bind_request_id(worker: Any) -> bool:
    """Fix the worker's engine call where the host needs it; True when fixed (logged once)."""
    global _announced
    engine = getattr(worker, "engine", None)
    generate = getattr(engine, "generate", None)
    if generate is None or getattr(generate, "__omni_sizefix_request_id__", False):
        return False
    if not host_passes_id_positionally(type(worker)):
        return False
    try:  # the engine takes generate(prompt, sampling_params, ..., request_id=...)
        names = list(inspect.signature(generate).parameters)
    except (TypeError, ValueError):
        return False
    if len(names) < 2 or names[1] != "sampling_params" or "request_id" not in names:
        return False

    @functools.wraps(generate)
    def fixed(prompt: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and isinstance(args[0], str) and "request_id" not in kwargs:
            return generate(prompt, request_id=args[0], **kwargs)
        return generate(prompt, *args, **kwargs)

    fixed.__omni_sizefix_request_id__ = True  # type: ignore[attr-defined]
    engine.generate = fixed
    if not _announced:
        _announced = True
        logger.info(
            "omni-sizefix: patched OmniStageWorker.generate -> engine.generate(prompt, "
            "request_id, ...): the stage engine gets each request's own id (the host passes "
            "it where the engine expects sampling params)"
        )
    return True


#: The request-id fix was logged in this process.
_announced = False


def wrap_init(original: Callable) -> Callable:
    """A wrapper of ``OmniStageWorker.__init__``: fixes 1 and 2 after the host's ``__init__``."""
    names = list(inspect.signature(original).parameters)[1:]
    largest = f"{sizing.MAX_SIDE}x{sizing.MAX_SIDE}"
    steps = (
        ("pipeline", pipelines.record, "could not tell the model from the stage config",
         "requests are sized for GLM-Image"),
        ("record", record_budget, "could not read the stage-0 budget",
         f"sizes are checked against {largest} only"),
    )  # fmt: skip

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        bound = {**dict(zip(names, args, strict=False)), **kwargs}
        for key, learn, failed, instead in steps:
            try:
                learn(bound.get("stage_config"), bound.get("stage_id"))
            except Exception as exc:  # never take the worker down
                warn_failed(key, exc, failed, instead)
        try:
            bind_request_id(self)
        except Exception as exc:  # never take the worker down
            warn_failed("request_id", exc, "could not check the engine call",
                        "the engine is called as the host calls it")  # fmt: skip

    return marked(__init__, original)


# --- fix 3: which stage-1 processor ---------------------------------------------------------


class _Recorder:
    """A callable with another function's signature; records how it was called."""

    def __init__(self, function: Any) -> None:
        self.__signature__ = inspect.signature(function)
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> list:
        self.calls.append(args)
        return []


def host_call(stage_worker: Any, function: Any) -> str | None:
    """How this host's ``OmniStageWorker._process_stage_inputs`` calls a processor with
    ``function``'s signature (None: it refuses to). Without that method (ai-dynamo 1.1) every
    processor is called in the stage-list form."""
    dispatch = getattr(stage_worker.OmniStageWorker, "_process_stage_inputs", None)
    if dispatch is None:
        return stage1.STAGE_LIST
    recorder = _Recorder(function)
    worker = SimpleNamespace(
        _processor=recorder, stage_id=1, _engine_input_source=[0], _requires_mm=False
    )
    try:
        dispatch(worker, [stage1.Stage([object()])], {"prompt": ""})
    except TypeError:
        return None
    if not recorder.calls:
        return None
    first = recorder.calls[0][0]
    if isinstance(first, list) and first and isinstance(first[0], stage1.Stage):
        return stage1.STAGE_LIST
    return stage1.SOURCE_OUTPUTS


def host_bridges_cumulative(stage_worker: Any) -> bool:
    """True when the host adds ``cumulative_token_ids`` back to fetched AR outputs."""
    ensure = getattr(stage_worker, "_ensure_cumulative_token_ids", None)
    completion = SimpleNamespace(token_ids=[1, 2, 3])
    try:
        ensure(SimpleNamespace(outputs=[completion]))  # type: ignore[misc]
    except Exception:  # missing (ai-dynamo 1.1) or failing
        return False
    return list(getattr(completion, "cumulative_token_ids", None) or []) == [1, 2, 3]


def reads_cumulative(function: Any) -> bool:
    """True when upstream fails on a completion that has only ``token_ids``."""
    height, width = stage1.PROBE_SIZE
    output = stage1.glm_output(height, width, cumulative=False)
    try:
        stage1.call(function, [output], stage1.probe_prompt(stage1.MM_KWARGS, height, width))
    except AttributeError as exc:
        return "cumulative_token_ids" in str(exc)
    return False


@dataclass(frozen=True)
class Stage1Profile:
    """How this host's stage 1 treats vLLM-Omni's GLM-Image ``ar2diffusion``."""

    #: How the host calls upstream's signature (``stage_list``/``source_outputs``; None: refuses).
    host_call: str | None
    host_bridges_cumulative: bool
    #: This host dispatches the package's processor.
    package_dispatchable: bool
    #: Short keys of what is wrong (``dispatch``, ``token-field``, ``size``, ``prior``).
    defects: tuple[str, ...] = ()
    #: One sentence per defect.
    reasons: tuple[str, ...] = ()

    @property
    def needs_fix(self) -> bool:
        """True when upstream's processor, as this host runs it, gets stage 1 wrong."""
        return bool(self.defects)


def build_profile(stage_worker: Any, upstream: Any, package_processor: Any) -> Stage1Profile:
    """Probe ``stage_worker`` (a module, or None without Dynamo) and ``upstream``."""
    convention = stage1.convention_of(upstream)
    host = host_call(stage_worker, upstream) if stage_worker is not None else convention
    package = host_call(stage_worker, package_processor) if stage_worker is not None else convention
    cumulative = reads_cumulative(upstream)
    bridged = host_bridges_cumulative(stage_worker) if stage_worker is not None else True
    verdict = stage1.upstream_verdict(upstream, stage1.MM_KWARGS)
    # The size in both places isolates the prior from where the size is read.
    both = verdict if verdict == "ok" else stage1.upstream_verdict(upstream, stage1.BOTH)
    probe = f"vLLM-Omni's ar2diffusion on a {stage1.PROBE_SIZE[1]}x{stage1.PROBE_SIZE[0]} request"
    found: list[tuple[str, str]] = []
    if host is None:
        found.append(
            (
                "dispatch",
                f"this Dynamo's stage-1 dispatch rejects vLLM-Omni's "
                f"ar2diffusion ({convention} parameters): TypeError on every request",
            )
        )
    elif host != convention:
        found.append(
            (
                "dispatch",
                f"this Dynamo calls vLLM-Omni's ar2diffusion ({convention} "
                f"parameters) in the {host} form",
            )
        )
    if cumulative and not bridged:
        found.append(
            (
                "token-field",
                "vLLM-Omni's ar2diffusion reads cumulative_token_ids, "
                "which this Dynamo does not restore after the connector",
            )
        )
    if verdict.startswith(("wrong size", "raised", "no DiT", "0 DiT")) and verdict != both:
        found.append(("size", f"{probe} sized only in mm_processor_kwargs: {verdict}"))
    if both != "ok":
        key = "prior" if "prior" in both else "size"
        found.append((key, f"{probe} sized in mm_processor_kwargs and at top level: {both}"))
    return Stage1Profile(
        host, bridged, package is not None, tuple(k for k, _ in found), tuple(r for _, r in found)
    )  # fmt: skip


@functools.lru_cache(maxsize=1)
def profile() -> Stage1Profile:
    """The profile of the installed host (imports it; computed once per process)."""
    try:
        stage_worker = importlib.import_module(STAGE_WORKER_MODULE)
    except ImportError:
        stage_worker = None
    upstream = pipelines.load(stage1.GLM_IMAGE_PROCESSOR)
    return build_profile(stage_worker, upstream, stage1.ar2diffusion)


@functools.lru_cache(maxsize=4)
def choose(upstream: Callable) -> Callable:
    """The processor stage 1 runs in place of GLM-Image's ``upstream`` (once per process)."""
    try:
        found = profile()
        if not found.needs_fix:
            logger.info(
                "omni-sizefix: stage 1 keeps vLLM-Omni's GLM-Image ar2diffusion: this host "
                "dispatches it and it renders the requested size"
            )
            return upstream
        reasons = "; ".join(found.reasons)
        if not found.package_dispatchable:
            warn_once("undispatchable",
                      "omni-sizefix: stage 1 would need omni-sizefix's GLM-Image processor "
                      "(%s), but this Dynamo cannot dispatch it either; stage 1 runs "
                      "vLLM-Omni's own", reasons)  # fmt: skip
            return upstream
        logger.info(
            "omni-sizefix: stage 1 runs %s in place of vLLM-Omni's GLM-Image ar2diffusion: %s",
            stage1.PROCESSOR, reasons,
        )  # fmt: skip
        return stage1.ar2diffusion
    except Exception as exc:
        warn_failed("probe-failed", exc, "could not check stage 1's GLM-Image processor",
                    "stage 1 runs vLLM-Omni's own")  # fmt: skip
        return upstream


@functools.lru_cache(maxsize=8)
def choose_other(func_path: str, processor: Callable) -> Callable:
    """Another model's processor: the host's own where this Dynamo dispatches it and restores
    ``cumulative_token_ids``, else ``stage1.adapt`` around it."""
    pipeline = pipelines.by_processor(func_path)
    stage_worker = sys.modules.get(STAGE_WORKER_MODULE)
    if pipeline in (None, pipelines.GLM_IMAGE, *pipelines.NO_SIZE) or stage_worker is None:
        return processor
    convention = stage1.convention_of(processor)
    dispatched = host_call(stage_worker, processor) == convention
    if dispatched and host_bridges_cumulative(stage_worker):
        return processor  # ai-dynamo >= 1.4: dispatched as vLLM-Omni's orchestrator does
    reads = pipelines.probe_reads(processor)
    wrapped = stage1.adapt(processor, reads)
    if host_call(stage_worker, wrapped) is None:
        return processor
    logger.info(
        "omni-sizefix: stage 1 runs %s through omni-sizefix's adapter: %s; the size is read "
        "from %s",
        func_path,
        f"this Dynamo cannot call it as it is ({convention} parameters)" if not dispatched
        else "this Dynamo does not restore cumulative_token_ids after the connector",
        " and ".join(sorted(reads)) or "nowhere it is sent",
    )  # fmt: skip
    return wrapped


def choose_ctx(func_path: str, processor: Callable) -> Callable:
    """A ``(source_outputs, ctx)`` processor behind ``stage1.legacy``, or the host's own with
    one WARNING where this Dynamo cannot dispatch even that."""
    stage_worker = sys.modules.get(STAGE_WORKER_MODULE)
    adapted = stage1.legacy(processor)
    if stage_worker is None or host_call(stage_worker, adapted) is None:
        warn_once("ctx-undispatchable",
                  "omni-sizefix: stage 1's processor %s takes (source_outputs, ctx), which this "
                  "Dynamo does not dispatch, and neither does it dispatch the adapter; stage 1 "
                  "runs it as the host loads it", func_path)  # fmt: skip
        return processor
    logger.info(
        "omni-sizefix: stage 1 runs %s (source_outputs, ctx) through omni-sizefix's adapter: "
        "this Dynamo dispatches only the older processor parameters",
        func_path,
    )
    return adapted


def is_upstream_glm_image(processor: Any) -> bool:
    """True when ``processor`` is vLLM-Omni's own GLM-Image ``ar2diffusion``."""
    module = sys.modules.get(stage1.GLM_IMAGE_PROCESSORS)
    return module is not None and processor is getattr(module, "ar2diffusion", None)


def wrap_load(original: Callable) -> Callable:
    """A wrapper of ``_load_processor`` that swaps in a processor this host runs right."""

    @functools.wraps(original)
    def _load_processor(func_path):
        processor = original(func_path)
        try:
            if processor is None:
                return processor
            if stage1.is_ctx(processor):
                return choose_ctx(str(func_path), processor)
            if is_upstream_glm_image(processor):
                return choose(processor)
            return choose_other(str(func_path), processor)
        except Exception as exc:  # never take the worker down
            warn_failed("load-failed", exc, "stage-1 processor check failed", "using the host's")
            return processor

    return marked(_load_processor, original)


# --- applying -------------------------------------------------------------------------------


def _worker_class(stage_worker: ModuleType | None) -> type | None:
    cls = getattr(stage_worker, "OmniStageWorker", None)
    return cls if isinstance(cls, type) else None


def init_problem(stage_worker: ModuleType) -> str | None:
    """None when ``OmniStageWorker.__init__`` takes ``stage_config`` and ``stage_id``."""
    init = vars(_worker_class(stage_worker) or object).get("__init__")
    if not callable(init):
        return f"{STAGE_WORKER_MODULE}.{INIT}: not found"
    names = tuple(inspect.signature(init).parameters)
    if not {"stage_config", "stage_id"} <= set(names):
        return (
            f"{STAGE_WORKER_MODULE}.{INIT}: expected parameters stage_config, stage_id, "
            f"found ({', '.join(names)})"
        )
    return None


def load_problem(stage_worker: ModuleType) -> str | None:
    """None when ``stage_worker`` has the ``_load_processor(func_path)`` its ``__init__`` calls."""
    expected = signature_text(("func_path",), is_async=False)
    found = describe(stage_worker.__dict__.get(LOAD))
    if found != expected:
        return f"{_load.where}: expected {expected}, found {found}"
    init = getattr(_worker_class(stage_worker), "__init__", None)
    code = getattr(getattr(init, SENTINEL, init), "__code__", None)  # under the init wrapper
    if code is None or LOAD not in code.co_names:
        return f"{STAGE_WORKER_MODULE}.{INIT} no longer calls {LOAD}"
    return None


def apply(stage_worker: ModuleType) -> list[str]:
    """Wrap both targets (idempotent); the targets newly wrapped. A target whose signature
    changed is left alone with one WARNING (the other is still wrapped)."""
    done = []
    for target, owner, wrap, problem, what in (
        (_load, stage_worker, wrap_load, load_problem,
         "stage-1 processor left as the host loads it"),
        (_init, _worker_class(stage_worker), wrap_init, init_problem,
         "stage-0 budget not read (sizes checked up to the policy's max)"),
    ):  # fmt: skip
        try:
            if target.apply(owner, wrap, lambda p=problem: p(stage_worker)):
                done.append(target.where)
        except LookupError as exc:
            warn_once(target.where, "omni-sizefix: %s, the host changed: %s", what, exc)
    return done


def is_patched() -> bool:
    """True while ``_load_processor`` or ``OmniStageWorker.__init__`` is wrapped."""
    return _load.original is not None or _init.original is not None


def remove() -> bool:
    """Put the host's own functions back and forget the budget; True when restored."""
    stage_worker = sys.modules.get(STAGE_WORKER_MODULE)
    restored = _load.remove(stage_worker)
    restored = _init.remove(_worker_class(stage_worker)) or restored
    if restored:
        sizing.set_budget(None)
        choose.cache_clear()
        choose_other.cache_clear()
    return restored
