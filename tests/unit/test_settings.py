"""Settings: an unknown value is reported once at start-up and never turns a fix off."""

from __future__ import annotations

import logging

import pytest

import omni_sizefix
from omni_sizefix.runtime.sizing import SizeRejected

#: GLM-Image renders sides that are multiples of 32 (vLLM-Omni's GLM-Image processor).
GLM_FACTOR = 32


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_unknown_size_policy_warns_once_and_keeps_rejecting(
    fake_dynamo, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "rejct")
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        omni_sizefix.register()
        import dynamo.vllm.omni.utils as utils

        omni_sizefix.patch()  # a second activation does not repeat the warning
        assert 1000 % GLM_FACTOR != 0
        with pytest.raises(SizeRejected):
            utils.parse_omni_request({"prompt": "a", "size": "1000x1000"}, ["image"])
        parsed = utils.parse_omni_request({"prompt": "a", "size": "768x512"}, ["image"])
    assert parsed["engine_inputs"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}
    found = [m for m in _warnings(caplog) if "OMNI_SIZEFIX_SIZE_POLICY" in m]
    assert len(found) == 1, found
    assert "'rejct'" in found[0]
    assert all(v in found[0] for v in ("reject", "snap", "off"))
    assert "default reject applies" in found[0]


@pytest.mark.parametrize(
    ("var", "value", "applies"),
    [
        ("OMNI_SIZEFIX_SHAPE", "sideways", "auto-detection applies"),
        ("OMNI_SIZEFIX_DISABLE", "maybe", "stays enabled"),
    ],
)
def test_other_unknown_values_warn_once_and_patch(
    fake_dynamo,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    var: str,
    value: str,
    applies: str,
) -> None:
    monkeypatch.setenv(var, value)
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        omni_sizefix.register()
        import dynamo.vllm.omni.utils as utils

        omni_sizefix.patch()
    assert omni_sizefix.is_patched()
    parsed = utils.parse_omni_request({"prompt": "a", "size": "768x512"}, ["image"])
    assert parsed["sampling_params_list"] == {"height": 512, "width": 768}
    assert "mm_processor_kwargs" in parsed["engine_inputs"]
    found = [m for m in _warnings(caplog) if var in m]
    assert len(found) == 1 and repr(value) in found[0] and applies in found[0], found
