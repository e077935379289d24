"""Version policy: which prompt shape each vLLM-Omni release reads."""

from __future__ import annotations

import pytest

from omni_sizefix import version_policy
from omni_sizefix.settings import Shape


@pytest.mark.parametrize(
    ("version", "shape"),
    [
        ("0.16.0", Shape.TOP_LEVEL),
        ("0.18.0", Shape.TOP_LEVEL),
        ("0.20.0", Shape.MM_KWARGS),
        ("0.26.0", Shape.MM_KWARGS),
        ("0.31.0", Shape.MM_KWARGS),
        (None, Shape.BOTH),
    ],
)
def test_final_releases_map_by_number(version: str | None, shape: Shape) -> None:
    assert version_policy.shape_for_version(version).shape is shape


def test_prerelease_uses_the_source_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    # A git build numbered 0.19.0rc1 may read either shape: the probe decides.
    monkeypatch.setattr(version_policy, "probe_processor_source", lambda dist="": Shape.TOP_LEVEL)
    decision = version_policy.shape_for_version("0.19.0rc1")
    assert decision.shape is Shape.TOP_LEVEL and "probed" in decision.reason
    monkeypatch.setattr(version_policy, "probe_processor_source", lambda dist="": Shape.MM_KWARGS)
    assert version_policy.shape_for_version("0.20.1.dev3+g1234").shape is Shape.MM_KWARGS


def test_prerelease_without_probe_falls_back_to_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version_policy, "probe_processor_source", lambda dist="": None)
    assert version_policy.shape_for_version("0.18.0rc1").shape is Shape.TOP_LEVEL
    assert version_policy.shape_for_version("0.20.0rc1").shape is Shape.MM_KWARGS
    assert version_policy.shape_for_version("not-a-version").shape is Shape.BOTH


def test_probe_reads_processor_source(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeDistribution:  # FAKE: an installed vllm-omni with only its processor file
        def __init__(self, text: str) -> None:
            (tmp_path / "glm_image.py").write_text(text)

        def locate_file(self, name: str):
            return tmp_path / "glm_image.py"

    old = "def ar2diffusion(stage_list):\n    h = original_prompt.get('height', 1024)\n"
    new = old + "    kw = original_prompt.get('mm_processor_kwargs')\n"
    monkeypatch.setattr(version_policy.metadata, "distribution", lambda d: FakeDistribution(old))
    assert version_policy.probe_processor_source() is Shape.TOP_LEVEL
    monkeypatch.setattr(version_policy.metadata, "distribution", lambda d: FakeDistribution(new))
    assert version_policy.probe_processor_source() is Shape.MM_KWARGS


@pytest.mark.parametrize("value", ["top-level", "mm-kwargs", "both"])
def test_shape_override(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SHAPE", value)
    decision = version_policy.decide_shape()
    assert decision.shape is Shape(value) and "OMNI_SIZEFIX_SHAPE" in decision.reason


def test_shape_override_rejects_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SHAPE", "sideways")
    with pytest.raises(ValueError, match="sideways"):
        version_policy.decide_shape()


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
    assert version_policy.is_supported(dist, version) is ok
