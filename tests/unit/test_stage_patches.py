"""The stage-worker patches against FAKE stage-worker modules (no host needed): signature
checks, idempotence and unpatch. The real releases are covered by tests/host."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from omni_sizefix.runtime import patches, sizing
from omni_sizefix.runtime.patches import stage_worker

SENTINEL = stage_worker.SENTINEL


def fake_stage_worker(load_processor: Any = None) -> types.ModuleType:
    """FAKE ``dynamo.vllm.omni.stage_worker``: the two names the patches target."""
    module = types.ModuleType(stage_worker.STAGE_WORKER_MODULE)

    def _load_processor(func_path):
        return None if not func_path else ("loaded", func_path)

    module._load_processor = load_processor or _load_processor
    source = (
        "class OmniStageWorker:\n"
        "    def __init__(self, engine, stage_config, connectors, stage_id, "
        "output_modalities=None, default_video_fps=16):\n"
        "        self.stage_config = stage_config\n"
        "        self.stage_id = stage_id\n"
        "        self._processor = _load_processor(getattr(stage_config, "
        "'custom_process_input_func', None))\n"
    )
    exec(source, module.__dict__)  # a module body, like the host's
    return module


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = fake_stage_worker()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    yield module
    stage_worker.remove()


LOAD = f"{stage_worker.STAGE_WORKER_MODULE}.{stage_worker.LOAD}"
INIT = f"{stage_worker.STAGE_WORKER_MODULE}.{stage_worker.INIT}"


def test_processor_patch_is_idempotent_and_unpatch_restores(host) -> None:
    original = host._load_processor
    assert LOAD in stage_worker.apply(host)
    wrapper = host._load_processor
    assert getattr(wrapper, SENTINEL) is original
    assert stage_worker.apply(host) == []
    assert host._load_processor is wrapper
    assert wrapper("a.b") == ("loaded", "a.b")  # not vLLM-Omni's GLM-Image: untouched
    assert stage_worker.remove() is True
    assert host._load_processor is original
    assert stage_worker.remove() is False


@pytest.mark.parametrize(
    "changed",
    [
        lambda path, extra: None,  # a new parameter
        lambda name: None,  # renamed
    ],
)
def test_processor_patch_refuses_a_changed_signature(monkeypatch, caplog, changed) -> None:
    module = fake_stage_worker(changed)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(patches, "_warned", set())
    with caplog.at_level("WARNING", logger="omni_sizefix"):
        done = stage_worker.apply(module)
    stage_worker.remove()
    assert LOAD not in done and INIT in done  # the other target is still wrapped
    assert module._load_processor is changed
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "expected sync (func_path)" in warnings[0]


def test_processor_patch_refuses_when_init_no_longer_calls_it(monkeypatch, caplog) -> None:
    module = fake_stage_worker()
    module.OmniStageWorker.__init__ = lambda self, stage_config, stage_id: None
    monkeypatch.setattr(patches, "_warned", set())
    with caplog.at_level("WARNING", logger="omni_sizefix"):
        done = stage_worker.apply(module)
    stage_worker.remove()
    assert LOAD not in done
    assert any("no longer calls _load_processor" in r.getMessage() for r in caplog.records)


def test_budget_patch_reads_a_glm_image_stage0_config(host) -> None:
    assert stage_worker.apply(host) == [LOAD, INIT]
    assert stage_worker.apply(host) == []
    sampling = types.SimpleNamespace(max_tokens=1281, stop_token_ids=[16385])
    config = types.SimpleNamespace(
        default_sampling_params=sampling,
        engine_args=types.SimpleNamespace(model_arch="GlmImageForConditionalGeneration"),
    )
    host.OmniStageWorker(None, config, {}, 1)  # stage 1: no budget
    assert sizing.budget() is None
    host.OmniStageWorker(None, config, {}, 0)
    assert sizing.budget() == 1281
    assert stage_worker.remove() is True
    assert sizing.budget() is None
    assert not hasattr(host.OmniStageWorker.__init__, SENTINEL)


def test_budget_patch_ignores_other_models(host) -> None:
    assert stage_worker.apply(host)
    sampling = types.SimpleNamespace(max_tokens=64, stop_token_ids=[2])
    config = types.SimpleNamespace(
        default_sampling_params=sampling, engine_args=types.SimpleNamespace(model_arch="Qwen")
    )
    host.OmniStageWorker(None, config, {}, 0)
    assert sizing.budget() is None


def test_budget_patch_never_breaks_the_worker(host, monkeypatch, caplog) -> None:
    assert stage_worker.apply(host)
    monkeypatch.setattr(patches, "_warned", set())

    class Exploding:
        """A config the host accepts, whose sampling defaults raise when read."""

        custom_process_input_func = None
        engine_args = types.SimpleNamespace(model_arch="GlmImageForConditionalGeneration")

        @property
        def default_sampling_params(self):
            raise RuntimeError("odd config")

    with caplog.at_level("WARNING", logger="omni_sizefix"):
        worker = host.OmniStageWorker(None, Exploding(), {}, 0)
    assert worker.stage_id == 0 and sizing.budget() is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "odd config" in warnings[0]
