"""register(): idempotent, lazy, kill switch, and patching on import (FAKE host modules).

The real hosts are exercised in tests/host; here a fake ``dynamo`` package written to a
temporary folder stands in for ai-dynamo 1.1.x so that the import hook can be tested
without any host installed.
"""

from __future__ import annotations

import logging
import sys

import omni_sizefix
from omni_sizefix.runtime import activation


def test_register_with_kill_switch_does_nothing(monkeypatch, caplog) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "true")
    monkeypatch.setattr(activation, "_announced_disabled", False)
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        omni_sizefix.register()
        omni_sizefix.register()
    assert caplog.text.count("disabled by OMNI_SIZEFIX_DISABLE") == 1
    assert not any(isinstance(f, activation.PostImportFinder) for f in sys.meta_path)


def test_register_imports_no_host_and_patches_on_import(fake_dynamo, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        omni_sizefix.register()
        omni_sizefix.register()
        assert "dynamo.vllm.omni.utils" not in sys.modules
        import dynamo.vllm.omni.stage_worker as stage_worker
        import dynamo.vllm.omni.utils as utils
    assert omni_sizefix.is_patched()
    assert stage_worker.parse_omni_request is utils.parse_omni_request
    assert caplog.text.count("omni-sizefix: patched") == 1
    parsed = stage_worker.parse_omni_request({"prompt": "a", "size": "768x512"}, ["image"])
    assert parsed["engine_inputs"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}


def test_patch_twice_never_stacks_wrappers(fake_dynamo) -> None:
    import dynamo.vllm.omni.utils as utils

    original = utils.parse_omni_request
    assert omni_sizefix.patch() and omni_sizefix.patch()
    assert utils.parse_omni_request.__omni_sizefix_original__ is original
    assert omni_sizefix.unpatch()
    assert utils.parse_omni_request is original
    assert not omni_sizefix.unpatch()
