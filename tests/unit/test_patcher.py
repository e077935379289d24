"""The wrappers and unpatch, against a FAKE ``dynamo`` package (host-free).

The real hosts are exercised in tests/host (test_host_drift.py, test_load_orders.py);
these pin down the same behaviours without a host: unpatch finds every copy of the
wrapper, a failed repair serves exactly the host's result with one warning, and a text
worker's requests skip the plugin's work.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

import omni_sizefix
from omni_sizefix.hookspecs import hookimpl
from omni_sizefix.runtime import plugins, repair
from omni_sizefix.runtime.patches import dynamo_omni_utils
from omni_sizefix.runtime.patches.dynamo_omni_utils import SENTINEL

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
REQUEST = {"prompt": "a red apple", "size": "768x512"}


def _is_dynamo(module_name: str) -> bool:
    return module_name == "dynamo" or module_name.startswith("dynamo.")


@pytest.fixture
def fake_dynamo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A FAKE ``dynamo.vllm.omni`` package on sys.path (the real one set aside)."""
    omni = tmp_path / "dynamo" / "vllm" / "omni"
    omni.mkdir(parents=True)
    for folder in (tmp_path / "dynamo", tmp_path / "dynamo" / "vllm", omni):
        (folder / "__init__.py").write_text("")
    (omni / "utils.py").write_text(textwrap.dedent(FAKE_UTILS))
    (omni / "stage_worker.py").write_text(textwrap.dedent(FAKE_STAGE_WORKER))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OMNI_SIZEFIX_SHAPE", "mm-kwargs")
    monkeypatch.setattr(dynamo_omni_utils._state, "warned", set())  # warn once per test
    real = {m: sys.modules.pop(m) for m in list(sys.modules) if _is_dynamo(m)}
    yield
    omni_sizefix.unpatch()
    for name in [m for m in sys.modules if _is_dynamo(m)]:
        del sys.modules[name]
    sys.modules.update(real)


def test_unpatch_restores_a_module_that_imported_the_wrapper(fake_dynamo) -> None:
    """Plugin first: stage_worker imports the wrapper itself; unpatch must find it there."""
    omni_sizefix.register()
    import dynamo.vllm.omni.stage_worker as stage_worker
    import dynamo.vllm.omni.utils as utils

    wrapper = stage_worker.parse_omni_request
    original = getattr(wrapper, SENTINEL)
    assert utils.parse_omni_request is wrapper
    assert omni_sizefix.unpatch()
    assert utils.parse_omni_request is original
    assert stage_worker.parse_omni_request is original


class FakeFailingPlugin:
    """A FAKE third-party hook plugin whose stage-0 hook raises."""

    @hookimpl(tryfirst=True)
    def omni_sizefix_stage0_prompt(self, engine_inputs: object) -> None:
        raise RuntimeError("boom in a fake hook")


def test_failed_repair_serves_exactly_the_host_result(fake_dynamo, caplog) -> None:
    import dynamo.vllm.omni.utils as utils

    host = utils.parse_omni_request(dict(REQUEST), ["image"])
    assert omni_sizefix.patch()
    plugins.get_plugin_manager().register(FakeFailingPlugin(), name="fake_failing")
    with caplog.at_level(logging.WARNING, logger="omni_sizefix"):
        served = [utils.parse_omni_request(dict(REQUEST), ["image"]) for _ in range(3)]
    assert served == [host] * 3  # original_prompt too: no half-sized result
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "boom in a fake hook" in warnings[0].getMessage()


def test_build_original_prompt_called_alone_still_gets_the_size(fake_dynamo) -> None:
    import dynamo.vllm.omni.utils as utils

    assert omni_sizefix.patch()
    prompt = utils.build_original_prompt(dict(REQUEST), {}, 512, 768)
    assert prompt["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}
    parsed = utils.parse_omni_request(dict(REQUEST), ["image"])
    assert parsed["original_prompt"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}


def test_text_worker_requests_skip_the_plugin(fake_dynamo, monkeypatch) -> None:
    import dynamo.vllm.omni.utils as utils

    assert omni_sizefix.patch()

    def must_not_run(*_: object) -> None:
        raise AssertionError("repair ran for a text worker")

    monkeypatch.setattr(repair, "repair_parsed", must_not_run)
    parsed = utils.parse_omni_request({"messages": [{"role": "user", "content": "hi"}]}, ["text"])
    assert parsed["sampling_params_list"] is None


@pytest.mark.parametrize(
    ("modalities", "expected"),
    [
        (["text"], False),
        (["audio"], False),
        (["image"], True),
        (["video"], True),
        (["text", "image"], True),
        (["IMAGE"], True),
        ([], False),
        (None, True),  # not iterable: the guarded path decides
        ([["image"]], True),  # unhashable: the guarded path decides
    ],
)
def test_may_need_size(modalities: object, expected: bool) -> None:
    assert repair.may_need_size(modalities) is expected
