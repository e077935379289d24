"""Start-up line (version, size policy, fixes) and one INFO line per rejection."""

from __future__ import annotations

import logging

import pytest

import omni_sizefix
from omni_sizefix.runtime.sizing import SizeRejected


def test_startup_line_names_version_policy_and_fixes(
    fake_dynamo, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "snap")
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        omni_sizefix.register()
        import dynamo.vllm.omni.utils  # noqa: F401
    lines = [r.getMessage() for r in caplog.records if "patched" in r.getMessage()]
    assert len(lines) == 1
    assert omni_sizefix.__version__ in lines[0] and "size policy snap" in lines[0]
    assert "parse_omni_request" in lines[0] and "build_original_prompt" in lines[0]


def test_rejection_logged_once_with_request_id(
    fake_dynamo, caplog: pytest.LogCaptureFixture
) -> None:
    omni_sizefix.register()
    import dynamo.vllm.omni.utils as utils

    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        with pytest.raises(SizeRejected) as raised:
            utils.parse_omni_request(
                {"prompt": "a", "size": "1000x1000", "request_id": "req-42"}, ["image"]
            )
    found = [r for r in caplog.records if "req-42" in r.getMessage()]
    assert len(found) == 1 and found[0].levelno == logging.INFO
    assert str(raised.value) in found[0].getMessage()


def test_each_sized_request_says_at_debug_what_was_done(
    fake_dynamo, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One DEBUG line per sized request: kind, size, the client's size when snapped, shape."""
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "snap")
    omni_sizefix.register()
    import dynamo.vllm.omni.utils as utils

    with caplog.at_level(logging.DEBUG, logger="omni_sizefix"):
        utils.parse_omni_request({"prompt": "a", "size": "768x512"}, ["image"])
        utils.parse_omni_request({"prompt": "a", "size": "1000x1000"}, ["image"])
        utils.parse_omni_request({"messages": [{"role": "user", "content": "hi"}]}, ["text"])
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.DEBUG and "request sized" in r.getMessage()
    ]
    assert len(lines) == 2, lines  # none for the text request
    assert "image request sized 768x512" in lines[0] and "snapped" not in lines[0]
    side = round(1000 / 32) * 32  # GLM-Image's grid: the nearest multiple of 32
    assert f"sized {side}x{side}" in lines[1] and "snapped from 1000x1000" in lines[1]
    assert all("stage-1 shape" in line for line in lines)
