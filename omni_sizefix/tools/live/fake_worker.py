"""Launcher for ``python -m dynamo.vllm.omni`` with FAKE stage engines (demo/test support).

    python -m omni_sizefix.tools.live.fake_worker [dynamo.vllm.omni arguments...]

In this process only, and without touching any installed file, it:

1. sets vLLM's current platform to its CPU platform when no GPU is visible (a CUDA build
   of vLLM otherwise dies parsing the worker's arguments: "Failed to infer device type"),
   and vLLM-Omni's platform to a zero-device one (``omni_sizefix.tools.simulation.check_platform``);
2. replaces ``dynamo.vllm.omni.stage_worker._create_engine`` with
   ``omni_sizefix.tools.live.fake_engines.create_engine``;
3. runs the installed ``dynamo.vllm.omni`` module as ``__main__`` (``runpy``), so argument
   parsing, stage configs, connectors, discovery, request plane, the router and the
   output formatter are the release's own. The plugin loads itself as in a deployment
   (vLLM-Omni's general-plugin loader, while the arguments are parsed).
"""

from __future__ import annotations

import logging
import os
import runpy
import sys

from omni_sizefix.tools.hosts import STAGE_WORKER_MODULE, WORKER_MODULE

logger = logging.getLogger("omni_sizefix.tools.live")


def _has_gpu() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/kfd")


def install_cpu_platforms() -> list[str]:
    """Make vLLM and vLLM-Omni run on CPU in this process; return what was changed."""
    changed = []
    if not _has_gpu():
        import vllm.platforms as vllm_platforms
        from vllm.platforms.cpu import CpuPlatform

        if not isinstance(vllm_platforms._current_platform, CpuPlatform):
            vllm_platforms._current_platform = CpuPlatform()
            changed.append("vLLM platform: CpuPlatform")
    from omni_sizefix.tools.simulation import check_platform

    if check_platform.activate_if_needed():
        changed.append("vLLM-Omni platform: zero-device CPU platform")
    return changed


def install_fake_engines() -> None:
    """Replace the stage-engine factory of the installed ``dynamo.vllm.omni``."""
    import importlib

    from omni_sizefix.tools.live import fake_engines

    stage_worker = importlib.import_module(STAGE_WORKER_MODULE)
    if not hasattr(stage_worker, "_create_engine"):
        raise RuntimeError(f"{STAGE_WORKER_MODULE} has no _create_engine; cannot fake engines")
    stage_worker._create_engine = fake_engines.create_engine


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    changed = install_cpu_platforms()
    install_fake_engines()
    from omni_sizefix.tools.live import error_probe

    if os.environ.get(error_probe.PROBE_VAR) == "1":  # measurement only (error_probe.py)
        error_probe.install()
        changed.append("error probe in stage 0")
    print(
        "omni-sizefix live: FAKE stage engines (no GPU, no weights) in this "
        f"{WORKER_MODULE} process" + (f"; {'; '.join(changed)}" if changed else ""),
        file=sys.stderr,
        flush=True,
    )
    sys.argv = [WORKER_MODULE, *(sys.argv[1:] if argv is None else argv)]
    runpy.run_module(WORKER_MODULE, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
