"""What omni-sizefix costs a Dynamo vLLM-Omni worker: per request, and at start-up.

Run it with the Python of an environment that has the host installed::

    python benchmarks/overhead.py [--calls 20000] [--repeats 7]

It prints figures and one PASS/MISS line per target; it asserts nothing.

* Per call: the real ``parse_omni_request`` of the installed ai-dynamo, unpatched and
  patched, in one process (awaited in a loop on ai-dynamo >= 1.2), for an image request,
  a text chat request, a chat-on-an-image-worker and a video request (also on a worker
  whose stage config names a video model). Best of ``--repeats`` runs of ``--calls`` calls
  each, unpatched and patched interleaved. The budget is absolute:
  at most ``BUDGET_US`` µs added per request, for every request kind; the ratio to the
  host's own parse is printed for information. The hooks are timed apart too, through
  pluggy (as the plugin calls them) and called directly (what pluggy's dispatch costs), with
  the machine's load average, since a busy machine inflates every figure.
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
import os
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

#: Requests timed on a worker whose stage config names its model (recorded as the
#: stage-config patch does at worker start); the others run on a worker without one, which
#: is taken for GLM-Image (so "video" there is a worst case no deployment sends).
WORKER_CONFIGS: dict[str, tuple[str, dict]] = {
    "video-on-video-worker": ("video", {"model_arch": "WanPipeline"}),
}

#: Largest time the patch may add to one request (µs) on a quiet machine, whatever the host's
#: own parse costs: invisible next to the seconds a request spends on the GPU, with every hook
#: through pluggy. A busy machine inflates every figure (the load average is printed).
BUDGET_US = 10.0
REGISTER_TARGET_MS = 30.0


# --- per call ---------------------------------------------------------------------------

#: Per-call figures count this thread's CPU time, not wall time: on a shared machine the
#: time the process waits for a CPU is not the plugin's (``--wall`` for wall time).
clock = time.thread_time


def per_call_seconds(parse: Callable, request: dict, modalities: list, calls: int) -> float:
    """Seconds per call of ``parse`` (awaited in one coroutine when it is async)."""
    if inspect.iscoroutinefunction(parse):

        async def loop() -> float:
            start = clock()
            for _ in range(calls):
                await parse(request, modalities, 16)
            return clock() - start

        return asyncio.run(loop()) / calls
    start = clock()
    for _ in range(calls):
        parse(request, modalities, 16)
    return (clock() - start) / calls


def best_of(repeats: int, *timers: Callable[[], float]) -> list[float]:
    """Run the timers interleaved ``repeats`` times; the best figure of each."""
    best = [float("inf")] * len(timers)
    for _ in range(repeats):
        for index, timer in enumerate(timers):
            best[index] = min(best[index], timer())
    return best


def _timed(function: Callable, kwargs: dict, calls: int) -> float:
    start = clock()
    for _ in range(calls):
        function(**kwargs)
    return (clock() - start) / calls


def hook_breakdown(calls: int, repeats: int) -> None:
    """Where the image path's time goes: each hook through pluggy vs called directly."""
    from omni_sizefix.runtime import hooks, pipelines
    from omni_sizefix.runtime.sizing import TargetGeometry

    hook = hooks.get_plugin_manager().hook
    shape = pipelines.plan().shape
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
    print(
        "  image path, per hook (µs): through pluggy (as the plugin calls them) / the default "
        "called directly"
    )
    total_pluggy = total_direct = 0.0
    for name, (kwargs,) in cases.items():
        through = getattr(hook, f"omni_sizefix_{name}")
        direct = getattr(hooks, f"omni_sizefix_{name}")

        via, plain = best_of(
            repeats,
            functools.partial(_timed, through, kwargs, calls),
            functools.partial(_timed, direct, kwargs, calls),
        )
        total_pluggy += via
        total_direct += plain
        print(f"    {name:<16} {via * 1e6:6.2f} / {plain * 1e6:6.2f}")
    print(f"    {'sum':<16} {total_pluggy * 1e6:6.2f} / {total_direct * 1e6:6.2f}")


class DecidesNothing:
    """A hook plugin that implements every hook and decides nothing (returns None).

    Registered, it puts every hook call of a request back on pluggy's dispatch: what a
    request costs when a third-party hook plugin is installed.
    """

    def __init__(self) -> None:
        from omni_sizefix.hookspecs import hookimpl

        for name in (
            "omni_sizefix_target_geometry",
            "omni_sizefix_stage0_prompt",
            "omni_sizefix_original_prompt",
            "omni_sizefix_sampling_params",
        ):
            setattr(self, name, hookimpl(lambda **_: None))


def measure_per_call(calls: int, repeats: int) -> dict[str, bool]:
    """Unpatched vs patched parse, in this process; returns target -> met."""
    stage_worker = importlib.import_module(STAGE_WORKER)
    import omni_sizefix
    from omni_sizefix.runtime import hooks, pipelines
    from omni_sizefix.tools import hosts

    omni_sizefix.unpatch()
    original = stage_worker.parse_omni_request
    omni_sizefix.register()  # as the worker's plugin loader does (also sets up logging)
    if not omni_sizefix.is_patched():
        print("the plugin refused to patch this host; nothing to measure")
        return {}
    versions = hosts.host_versions()
    kind = "async" if inspect.iscoroutinefunction(original) else "sync"
    level = logging.getLevelName(logging.getLogger("omni_sizefix").getEffectiveLevel())
    print(
        f"host: ai-dynamo {versions['ai-dynamo']} ({kind} parse), "
        f"vllm-omni {versions['vllm-omni']}, pluggy {versions['pluggy']}, "
        f"Python {sys.version.split()[0]}; third-party hook plugins: "
        f"{hooks.third_party_plugins() or 'none'}; omni_sizefix log level {level}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    clock_name = "wall" if clock is time.perf_counter else "thread CPU"
    print(
        f"per request, best of {repeats} x {calls} calls, {clock_name} time (µs): host / "
        f"patched / added (budget <= {BUDGET_US:g} µs) / ratio; added with a hook plugin "
        "that decides nothing"
    )
    results = {}
    logger = logging.getLogger("omni_sizefix")
    quiet, logger.disabled = logger.disabled, True  # no patched/unpatched lines per repeat
    pm = hooks.get_plugin_manager()

    def timer(
        patch: bool,
        request: dict,
        modalities: list,
        bystander: bool = False,
        config: dict | None = None,
    ) -> float:
        # The unpatched host must run with its own build_original_prompt too, so the
        # patch is really taken off (and put back) around each run; unpatch() also
        # forgets the model a stage config named.
        omni_sizefix.patch() if patch else omni_sizefix.unpatch()
        parse = stage_worker.parse_omni_request
        assert (parse is original) != patch
        if config is not None:
            pipelines.record(config, 0)
        plugin = DecidesNothing() if bystander else None
        if plugin is not None:
            pm.register(plugin, name="benchmark-decides-nothing")
        try:
            return per_call_seconds(parse, request, modalities, calls)
        finally:
            if plugin is not None:
                pm.unregister(plugin)

    cases = [(name, name, None) for name in REQUESTS]
    cases += [(name, base, config) for name, (base, config) in WORKER_CONFIGS.items()]
    for name, base, config in cases:
        request, modalities = REQUESTS[base]
        host, ours, through_pluggy = best_of(
            repeats,
            functools.partial(timer, False, request, modalities),
            functools.partial(timer, True, request, modalities, config=config),
            functools.partial(timer, True, request, modalities, True, config),
        )
        added = (ours - host) * 1e6
        ok = added <= BUDGET_US
        print(
            f"  {name:<22} {host * 1e6:6.2f} / {ours * 1e6:6.2f} / {added:+5.2f} "
            f"{'PASS' if ok else 'MISS'} / {ours / host:4.2f}x; "
            f"{(through_pluggy - host) * 1e6:+5.2f}"
        )
        results[f"{name} request: <= {BUDGET_US:g} µs added"] = ok
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
    parser.add_argument("--no-startup", action="store_true", help="per-request figures only")
    parser.add_argument(
        "--wall", action="store_true", help="time calls by wall clock, not thread CPU time"
    )
    parser.add_argument("--child", choices=("before", "after"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.wall:
        global clock
        clock = time.perf_counter
    try:
        importlib.import_module(STAGE_WORKER)
    except ImportError as exc:
        print(f"no Dynamo vLLM-Omni stage worker in this environment ({exc}); nothing to measure")
        return
    results = measure_per_call(args.calls, args.repeats)
    if not args.no_startup:
        results.update(measure_startup())
    print("targets:")
    for name, met in results.items():
        print(f"  {'PASS' if met else 'MISS'}  {name}")


if __name__ == "__main__":
    main()
