"""The live topology (four real Dynamo processes, FAKE engines) as session fixtures.

One topology per plugin mode per test session, started one after the other (never
both at once: each costs 2-4 minutes of CPU on 2 cores) and stopped at the end.
Selected by nox only when ``OMNI_SIZEFIX_LIVE`` names the cell or is ``all``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_sizefix.tools.live import topology as live

os.environ.setdefault("HF_HUB_OFFLINE", "1")
START_TIMEOUT_S = float(os.environ.get("OMNI_SIZEFIX_LIVE_TIMEOUT", "900"))


def _host_or_skip() -> None:
    # find_spec, not import: importing vLLM here would cost a minute of CPU the
    # topology's processes need.
    for module in ("dynamo.frontend", "dynamo.vllm.omni", "vllm_omni"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            pytest.skip(f"no {module} in this cell")
    from omni_sizefix.tools.simulation import weightless

    reason = weightless.unavailable_reason()
    if reason:
        # vLLM-Omni's GLM-Image preprocessing (which the AR fake runs, as the real engine
        # would) needs transformers' glm_image: no GLM-Image deployment runs in this cell.
        # The release's -tf5 cell (transformers 5) is the GLM-Image deployment of it.
        pytest.skip(f"GLM-Image cannot be served in this cell: {reason}")


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
        topology = live.Topology(run_dir=self.base / key, progress=_progress, **kwargs)
        try:
            topology.start(timeout=START_TIMEOUT_S)
        except live.TopologyError as exc:
            self.failed[key] = f"live topology '{key}' did not start: {exc}"
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
    _host_or_skip()
    holder = _Topologies(tmp_path_factory.mktemp("live"))
    yield holder
    holder.close()


@pytest.fixture(scope="module")
def plugin_on(topologies: _Topologies) -> live.Topology:
    """Plugin on, vLLM-Omni's own GLM-Image stage config (what a deployment already runs)."""
    return topologies.get("own-plugin-on", stage_config="own", plugin=True)


@pytest.fixture(scope="module")
def plugin_off(topologies: _Topologies) -> live.Topology:
    """``OMNI_SIZEFIX_DISABLE=1``, vLLM-Omni's own GLM-Image stage config: the host as released."""
    return topologies.get("own-plugin-off", stage_config="own", plugin=False)


@pytest.fixture(scope="module")
def shipped_plugin_on(topologies: _Topologies) -> live.Topology:
    """Plugin on, the shipped stage config (stage-0 budget up to 2048x2048). Opt-in:
    ``OMNI_SIZEFIX_LIVE_SHIPPED=1`` (``scripts/test.sh --all`` sets it)."""
    if os.environ.get("OMNI_SIZEFIX_LIVE_SHIPPED") != "1":
        pytest.skip("set OMNI_SIZEFIX_LIVE_SHIPPED=1 (a third topology, 2-4 min)")
    return topologies.get("shipped-plugin-on", stage_config="shipped", plugin=True)
