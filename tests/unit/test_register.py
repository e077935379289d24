"""register(): idempotent, lazy, kill switch, and patching on import (FAKE host modules).

The real hosts are exercised in tests/host; here a fake ``dynamo`` package written to a
temporary folder stands in for ai-dynamo 1.1.x so that the import hook can be tested
without any host installed.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

import omni_sizefix
from omni_sizefix.runtime import activation, import_hooks

FAKE_UTILS = '''
"""FAKE dynamo.vllm.omni.utils with ai-dynamo 1.1.x's signatures."""
def build_original_prompt(request, nvext, height, width):
    return {"prompt": request.get("prompt", ""), "negative_prompt": None}

def parse_omni_request(request, output_modalities, default_video_fps=16):
    w, h = (int(v) for v in request.get("size", "1024x1024").split("x"))
    return {
        "engine_inputs": {"prompt": request.get("prompt", "")},
        "original_prompt": build_original_prompt(request, {}, h, w),
        "sampling_params_list": {"height": h, "width": w},
    }
'''
FAKE_STAGE_WORKER = '''
"""FAKE dynamo.vllm.omni.stage_worker: imports parse_omni_request by name, as the real one."""
from dynamo.vllm.omni.utils import parse_omni_request
'''


@pytest.fixture
def fake_dynamo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    omni = tmp_path / "dynamo" / "vllm" / "omni"
    omni.mkdir(parents=True)
    for folder in (tmp_path / "dynamo", tmp_path / "dynamo" / "vllm", omni):
        (folder / "__init__.py").write_text("")
    (omni / "utils.py").write_text(textwrap.dedent(FAKE_UTILS))
    (omni / "stage_worker.py").write_text(textwrap.dedent(FAKE_STAGE_WORKER))
    monkeypatch.syspath_prepend(str(tmp_path))
    # In a host cell the real ai-dynamo may be imported already: set it aside meanwhile.
    real = {m: sys.modules.pop(m) for m in list(sys.modules) if _is_dynamo(m)}
    yield
    omni_sizefix.unpatch()
    for name in [m for m in sys.modules if _is_dynamo(m)]:
        del sys.modules[name]
    sys.modules.update(real)


def _is_dynamo(module_name: str) -> bool:
    return module_name == "dynamo" or module_name.startswith("dynamo.")


def test_register_with_kill_switch_does_nothing(monkeypatch, caplog) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "true")
    monkeypatch.setattr(activation, "_announced_disabled", False)
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        omni_sizefix.register()
        omni_sizefix.register()
    assert caplog.text.count("disabled by OMNI_SIZEFIX_DISABLE") == 1
    assert not any(isinstance(f, import_hooks.PostImportFinder) for f in sys.meta_path)


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
