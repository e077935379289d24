"""Unit-test fixtures: no host needed."""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

import omni_sizefix
from omni_sizefix.runtime import hooks, patches
from omni_sizefix.tools import host_profile

FAKE_UTILS = '''
"""FAKE dynamo.vllm.omni.utils with ai-dynamo 1.1.x's signatures and image behaviour."""
def build_original_prompt(request, nvext, height, width):
    return {"prompt": request.get("prompt", ""), "negative_prompt": None}

def parse_omni_request(request, output_modalities, default_video_fps=16):
    if output_modalities[0] != "image":
        return {"engine_inputs": "hi", "original_prompt": {"prompt": "hi"},
                "sampling_params_list": None}
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


def _is_dynamo(module_name: str) -> bool:
    return module_name == "dynamo" or module_name.startswith("dynamo.")


@pytest.fixture
def fake_dynamo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A FAKE ``dynamo.vllm.omni`` package on sys.path (a real one set aside meanwhile:
    in a host cell the real ai-dynamo may be imported already)."""
    omni = tmp_path / "dynamo" / "vllm" / "omni"
    omni.mkdir(parents=True)
    for folder in (tmp_path / "dynamo", tmp_path / "dynamo" / "vllm", omni):
        (folder / "__init__.py").write_text("")
    (omni / "utils.py").write_text(textwrap.dedent(FAKE_UTILS))
    (omni / "stage_worker.py").write_text(textwrap.dedent(FAKE_STAGE_WORKER))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OMNI_SIZEFIX_SHAPE", "mm-kwargs")
    monkeypatch.setattr(patches, "_warned", set())  # warn once per test
    real = {m: sys.modules.pop(m) for m in list(sys.modules) if _is_dynamo(m)}
    yield
    omni_sizefix.unpatch()
    for name in [m for m in sys.modules if _is_dynamo(m)]:
        del sys.modules[name]
    sys.modules.update(real)


@pytest.fixture(autouse=True)
def fresh_plugin_manager(monkeypatch: pytest.MonkeyPatch):
    """Each test sees a freshly built plugin manager and a clean environment."""
    for var in (
        "OMNI_SIZEFIX_DISABLE",
        "OMNI_SIZEFIX_SHAPE",
        "OMNI_SIZEFIX_SIZE_POLICY",
        "OMNI_SIZEFIX_PLUGINS",
    ):
        monkeypatch.delenv(var, raising=False)
    hooks.reset_plugin_manager()
    host_profile.clear()  # tests change versions and the environment
    yield
    hooks.reset_plugin_manager()
    host_profile.clear()


@pytest.fixture(autouse=True)
def plain_logging(monkeypatch: pytest.MonkeyPatch):
    """Records reach pytest's caplog: vLLM's handlers are not adopted in unit tests
    (they would be in a host cell, where vLLM is importable; see patches.adopt_vllm_format)."""
    logger = logging.getLogger("omni_sizefix")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    monkeypatch.setattr(patches, "adopt_vllm_format", lambda: False)
    logger.handlers.clear()
    logger.propagate = True
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])
