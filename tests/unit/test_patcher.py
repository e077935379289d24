"""The wrappers and unpatch, against a FAKE ``dynamo`` package (host-free).

The real hosts are exercised in tests/host (test_host_drift.py, test_load_orders.py);
these pin down the same behaviours without a host: unpatch finds every copy of the
wrapper, a failed repair serves exactly the host's result with one warning, and a text
worker's requests skip the plugin's work.
"""

from __future__ import annotations

import logging

import pytest

import omni_sizefix
from omni_sizefix.hookspecs import hookimpl
from omni_sizefix.runtime import hooks, pipelines
from omni_sizefix.runtime.patches.parse import SENTINEL
from omni_sizefix.runtime.settings import Shape

REQUEST = {"prompt": "a red apple", "size": "768x512"}


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
    hooks.get_plugin_manager().register(FakeFailingPlugin(), name="fake_failing")
    with caplog.at_level(logging.WARNING, logger="omni_sizefix"):
        served = [utils.parse_omni_request(dict(REQUEST), ["image"]) for _ in range(3)]
    # Exactly the host's result, but for the size the build_original_prompt wrapper wrote
    # into original_prompt (the host's own size; that wrapper did not fail).
    size = host["sampling_params_list"]
    height, width = size["height"], size["width"]
    for result in served:
        assert {k: v for k, v in result.items() if k != "original_prompt"} == {
            k: v for k, v in host.items() if k != "original_prompt"
        }
        prompt = dict(result["original_prompt"])
        kwargs = prompt.pop("mm_processor_kwargs", None)
        top = (prompt.pop("height", None), prompt.pop("width", None))
        assert prompt == host["original_prompt"]  # nothing else added
        assert kwargs in (None, {"target_h": height, "target_w": width})
        assert top in ((None, None), (height, width))
        assert kwargs is not None or top != (None, None)  # the host's own size, somewhere
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "omni_sizefix"
    ]
    assert len(warnings) == 1 and "boom in a fake hook" in warnings[0].getMessage()


def test_build_original_prompt_called_alone_still_gets_the_size(fake_dynamo) -> None:
    import dynamo.vllm.omni.utils as utils

    assert omni_sizefix.patch()
    prompt = utils.build_original_prompt(dict(REQUEST), {}, 512, 768)
    assert prompt["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}
    parsed = utils.parse_omni_request(dict(REQUEST), ["image"])
    assert parsed["original_prompt"]["mm_processor_kwargs"] == {"target_h": 512, "target_w": 768}


def must_not_run(*_: object) -> None:
    raise AssertionError("the plugin worked on a request that carries no size")


def test_text_worker_requests_skip_the_plugin(fake_dynamo, monkeypatch) -> None:
    import dynamo.vllm.omni.utils as utils

    assert omni_sizefix.patch()
    monkeypatch.setattr(hooks, "repair_request", must_not_run)
    monkeypatch.setattr(pipelines, "plan", must_not_run)  # a text worker never probes stage 1
    parsed = utils.parse_omni_request({"messages": [{"role": "user", "content": "hi"}]}, ["text"])
    assert parsed["sampling_params_list"] is None


def test_video_requests_skip_the_plugin_where_the_pipeline_takes_no_video_size(
    fake_dynamo, monkeypatch
) -> None:
    import dynamo.vllm.omni.utils as utils

    assert omni_sizefix.patch()
    hunyuan = pipelines.Plan("HunyuanImage-3", False, Shape.TOP_LEVEL, False, "test")
    monkeypatch.setattr(pipelines, "plan", lambda: hunyuan)
    monkeypatch.setattr(hooks, "repair_request", must_not_run)
    parsed = utils.parse_omni_request({"prompt": "x", "size": "832x480"}, ["video"])
    assert parsed["sampling_params_list"] is None  # the FAKE host's non-image result
    assert hunyuan.writes("image") and not hunyuan.writes("video")


@pytest.mark.parametrize("modalities", [[["image"]], [None]])
def test_unclassifiable_modalities_get_the_host_result_and_one_warning(
    fake_dynamo, caplog, modalities: list
) -> None:
    import dynamo.vllm.omni.utils as utils

    host = utils.parse_omni_request(dict(REQUEST), modalities)
    assert omni_sizefix.patch()
    with caplog.at_level(logging.WARNING, logger="omni_sizefix"):
        served = [utils.parse_omni_request(dict(REQUEST), modalities) for _ in range(3)]
    assert served == [host] * 3
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "omni_sizefix"
    ]
    assert len(warnings) == 1 and "could not classify a request" in warnings[0].getMessage()
