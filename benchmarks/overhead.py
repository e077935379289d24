"""What omni-sizefix costs a Dynamo vLLM-Omni worker: per request, and at start-up.

Run it with the Python of an environment that has the host installed::

    python benchmarks/overhead.py [--calls 20000] [--repeats 7]

It prints figures and one PASS/MISS line per target; it asserts nothing.

* Per call: the real ``parse_omni_request`` of the installed ai-dynamo, unpatched and
  patched, in one process (awaited in a loop on ai-dynamo >= 1.2), for an image request,
  a text chat request, and (for information) a chat-on-an-image-worker and a video request.
  Best of ``--repeats`` runs of ``--calls`` calls each, unpatched and patched interleaved.
* Start-up: ``import omni_sizefix; omni_sizefix.register()`` in a fresh process, once
  before the host is imported (a post-import hook is installed; the patch itself happens
  on import and is timed there) and once after it (``register()`` patches at once); with
  the modules it imported (``sys.modules`` before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

STAGE_WORKER = "dynamo.vllm.omni.stage_worker"
HEAVY = ("torch", "vllm", "vllm_omni", "dynamo", "transformers")

REQUESTS: dict[str, tuple[dict, list[str]]] = {
    "image": (
        {"model": "zai-org/GLM-Image", "prompt": "a red apple", "size": "768x512"},
        ["image"],
    ),
    "chat": ({"messages": [{"role": "user", "content": "hello"}]}, ["text"]),
    "chat-on-image-worker": (
        {"messages": [{"role": "user", "content": "a red apple"}], "size": "768x512"},
        ["image"],
    ),
    "video": ({"model": "wan", "prompt": "an apple rolling", "size": "832x480"}, ["video"]),
}

#: request name -> largest acceptable patched/unpatched time ratio (others: informational).
TARGETS = {"image": 1.5, "chat": 1.25}
REGISTER_TARGET_MS = 30.0


# --- per call ---------------------------------------------------------------------------


def per_call_seconds(parse: Callable, request: dict, modalities: list, calls: int) -> float:
    """Seconds per call of ``parse`` (awaited in one coroutine when it is async)."""
    if inspect.iscoroutinefunction(parse):

        async def loop() -> float:
            start = time.perf_counter()
            for _ in range(calls):
                await parse(request, modalities, 16)
            return time.perf_counter() - start

        return asyncio.run(loop()) / calls
    start = time.perf_counter()
    for _ in range(calls):
        parse(request, modalities, 16)
    return (time.perf_counter() - start) / calls


def best_of(repeats: int, *timers: Callable[[], float]) -> list[float]:
    """Run the timers interleaved ``repeats`` times; the best figure of each."""
    best = [float("inf")] * len(timers)
    for _ in range(repeats):
        for index, timer in enumerate(timers):
            best[index] = min(best[index], timer())
    return best


def _timed(function: Callable, kwargs: dict, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function(**kwargs)
    return (time.perf_counter() - start) / calls


def hook_breakdown(calls: int, repeats: int) -> None:
    """Where the image path's time goes: each hook through pluggy vs called directly."""
    from omni_sizefix.runtime import default_plugin, plugins, version_policy
    from omni_sizefix.runtime.geometry import TargetGeometry

    hook = plugins.get_plugin_manager().hook
    shape = version_policy.decide_shape().shape
    request, modalities = REQUESTS["image"]
    geometry = TargetGeometry(512, 768, kind="image", requested=(512, 768))
    parsed = {
        "engine_inputs": {"prompt": "a red apple"},
        "original_prompt": {},
        "sampling_params_list": {"height": 512, "width": 768},
    }
    cases = {
        "target_geometry": (
            {"request": request, "parsed": parsed, "output_modalities": modalities},
        ),
        "stage0_prompt": (
            {"engine_inputs": parsed["engine_inputs"], "geometry": geometry, "request": request},
        ),
        "original_prompt": ({"original_prompt": {}, "geometry": geometry, "shape": shape},),
        "sampling_params": (
            {
                "sampling_params": parsed["sampling_params_list"],
                "geometry": geometry,
                "request": request,
            },
        ),
    }
    print("  image path, per hook (µs): through pluggy / default called directly")
    total_pluggy = total_direct = 0.0
    for name, (kwargs,) in cases.items():
        through = getattr(hook, f"omni_sizefix_{name}")
        direct = getattr(default_plugin, f"omni_sizefix_{name}")

        via, plain = best_of(
            repeats,
            functools.partial(_timed, through, kwargs, calls),
            functools.partial(_timed, direct, kwargs, calls),
        )
        total_pluggy += via
        total_direct += plain
        print(f"    {name:<16} {via * 1e6:6.2f} / {plain * 1e6:6.2f}")
    print(f"    {'sum':<16} {total_pluggy * 1e6:6.2f} / {total_direct * 1e6:6.2f}")


def measure_per_call(calls: int, repeats: int) -> dict[str, bool]:
    """Unpatched vs patched parse, in this process; returns target -> met."""
    stage_worker = importlib.import_module(STAGE_WORKER)
    import omni_sizefix
    from omni_sizefix.runtime import plugins, version_policy

    omni_sizefix.unpatch()
    original = stage_worker.parse_omni_request
    omni_sizefix.register()  # as the worker's plugin loader does (also sets up logging)
    if not omni_sizefix.is_patched():
        print("the plugin refused to patch this host; nothing to measure")
        return {}
    versions = version_policy.host_versions()
    kind = "async" if inspect.iscoroutinefunction(original) else "sync"
    level = logging.getLevelName(logging.getLogger("omni_sizefix").getEffectiveLevel())
    print(
        f"host: ai-dynamo {versions['ai-dynamo']} ({kind} parse), "
        f"vllm-omni {versions['vllm-omni']}, pluggy {versions['pluggy']}, "
        f"Python {sys.version.split()[0]}; third-party hook plugins: "
        f"{plugins.third_party_plugins() or 'none'}; omni_sizefix log level {level}"
    )
    print(f"per call, best of {repeats} x {calls} calls (µs): host / patched / ratio / added")
    results = {}
    logger = logging.getLogger("omni_sizefix")
    quiet, logger.disabled = logger.disabled, True  # no patched/unpatched lines per repeat

    def timer(patch: bool, request: dict, modalities: list) -> float:
        # The unpatched host must run with its own build_original_prompt too, so the
        # patch is really taken off (and put back) around each run.
        omni_sizefix.patch() if patch else omni_sizefix.unpatch()
        parse = stage_worker.parse_omni_request
        assert (parse is original) != patch
        return per_call_seconds(parse, request, modalities, calls)

    for name, (request, modalities) in REQUESTS.items():
        host, ours = best_of(
            repeats,
            functools.partial(timer, False, request, modalities),
            functools.partial(timer, True, request, modalities),
        )
        ratio = ours / host
        target = TARGETS.get(name)
        verdict = "" if target is None else ("PASS" if ratio <= target else "MISS")
        limit = "" if target is None else f" (target <= {target}x)"
        print(
            f"  {name:<22} {host * 1e6:6.2f} / {ours * 1e6:6.2f} / {ratio:4.2f}x / "
            f"{(ours - host) * 1e6:+5.2f}  {verdict}{limit}"
        )
        if target is not None:
            results[f"{name} path <= {target}x"] = ratio <= target
    logger.disabled = quiet
    hook_breakdown(calls, repeats)
    omni_sizefix.unpatch()
    return results


# --- start-up (fresh processes) ---------------------------------------------------------


class _CompileClock:
    """Adds up the time spent compiling Python source to bytecode during imports.

    Where no bytecode can be cached (``PYTHONDONTWRITEBYTECODE``, or a site-packages
    installed without ``.pyc`` files, which uv does by default) every import compiles;
    an installation with bytecode does not, so that time is reported apart.
    """

    def __init__(self) -> None:
        from importlib import _bootstrap_external

        self.loader = _bootstrap_external.SourceLoader
        self.real = self.loader.source_to_code
        self.ms = 0.0

    def __enter__(self) -> _CompileClock:
        clock, real = self, self.real

        def source_to_code(loader: Any, data: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return real(loader, data, path, *args, **kwargs)
            finally:
                clock.ms += (time.perf_counter() - begin) * 1e3

        self.loader.source_to_code = source_to_code
        return self

    def __exit__(self, *_: object) -> None:
        self.loader.source_to_code = self.real


def child(order: str) -> None:
    """Run in a fresh process: time ``register()`` before or after the host import.

    "before": as vLLM's plugin loader in a process that has not imported Dynamo yet (vLLM
    itself is imported: the loader is part of it).
    """
    importlib.import_module("vllm.plugins")
    if order == "after":
        importlib.import_module(STAGE_WORKER)
    before = set(sys.modules)
    with _CompileClock() as compiling:
        start = time.perf_counter()
        import omni_sizefix

        omni_sizefix.register()
        register_ms = (time.perf_counter() - start) * 1e3
    new = sorted(set(sys.modules) - before)
    report: dict[str, Any] = {
        "register_ms": register_ms,
        "compile_ms": compiling.ms,
        "patched_by_register": omni_sizefix.is_patched(),
        "new_modules": new,
    }
    if order == "before":
        from omni_sizefix.runtime import activation

        spent: list[float] = []
        real_patch = activation.patch

        compiled: list[float] = []

        def timed_patch() -> bool:  # the patch that the post-import hook runs
            begin = time.perf_counter()
            with _CompileClock() as compiling:
                try:
                    return real_patch()
                finally:
                    spent.append((time.perf_counter() - begin) * 1e3)
                    compiled.append(compiling.ms)

        activation.patch = timed_patch
        importlib.import_module(STAGE_WORKER)
        activation.patch = real_patch
        report["patch_on_import_ms"] = sum(spent)
        report["patch_compile_ms"] = sum(compiled)
        report["patched_on_import"] = omni_sizefix.is_patched()
    stage_worker = sys.modules[STAGE_WORKER]
    request, modalities = REQUESTS["image"]
    start = time.perf_counter()
    result = stage_worker.parse_omni_request(dict(request), modalities, 16)
    if inspect.isawaitable(result):
        asyncio.run(result)
    report["first_request_ms"] = (time.perf_counter() - start) * 1e3
    print(json.dumps(report))


def run_child(order: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", order], capture_output=True, text=True, check=True
    )
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def measure_startup() -> dict[str, bool]:
    """register() in fresh processes; returns target -> met."""
    results = {}
    print("register() in a fresh process:")
    for order in ("before", "after"):
        report = run_child(order)
        new = report["new_modules"]
        heavy = sorted({m for m in new if m.split(".")[0] in HEAVY})
        top = sorted({m.split(".")[0] for m in new})
        total, compiling = report["register_ms"], report["compile_ms"]
        ok = total - compiling < REGISTER_TARGET_MS
        print(
            f"  {order} the host import: register() {total - compiling:.1f} ms with bytecode "
            f"{'PASS' if ok else 'MISS'} (target < {REGISTER_TARGET_MS:.0f} ms); "
            f"{total:.1f} ms measured, of which {compiling:.1f} ms compiling source "
            f"(no .pyc here); patched by register(): {report['patched_by_register']}"
        )
        if "patch_on_import_ms" in report:
            patch_ms, patch_compile = report["patch_on_import_ms"], report["patch_compile_ms"]
            print(
                f"    patch run by the post-import hook: {patch_ms - patch_compile:.1f} ms with "
                f"bytecode ({patch_ms:.1f} ms measured); patched: {report['patched_on_import']}"
            )
        first = report["first_request_ms"]
        print(f"    first request after start: {first:.1f} ms (builds the hook manager)")
        print(
            f"    modules imported by register(): {len(new)}; top-level packages: {', '.join(top)}"
        )
        print(f"    torch/vLLM/vLLM-Omni/Dynamo/transformers imported: {heavy or 'none'}")
        results[f"register() {order} host import < {REGISTER_TARGET_MS:.0f} ms"] = ok
        results[f"register() {order} host import imports no host module"] = not heavy
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--child", choices=("before", "after"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    try:
        importlib.import_module(STAGE_WORKER)
    except ImportError as exc:
        print(f"no Dynamo vLLM-Omni stage worker in this environment ({exc}); nothing to measure")
        return
    results = measure_per_call(args.calls, args.repeats)
    results.update(measure_startup())
    print("targets:")
    for name, met in results.items():
        print(f"  {'PASS' if met else 'MISS'}  {name}")


if __name__ == "__main__":
    main()
