"""The stage-worker patches against FAKE stage-worker modules (no host needed): signature
checks, idempotence and unpatch. The real releases are covered by tests/host."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from omni_sizefix.runtime import size_policy
from omni_sizefix.runtime.patches import dynamo_stage_budget, dynamo_stage_processor

SENTINEL = dynamo_stage_processor.SENTINEL


def fake_stage_worker(load_processor: Any = None) -> types.ModuleType:
    """FAKE ``dynamo.vllm.omni.stage_worker``: the two names the patches target."""
    module = types.ModuleType(dynamo_stage_processor.STAGE_WORKER_MODULE)

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
def stage_worker(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = fake_stage_worker()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    yield module
    dynamo_stage_processor.remove()
    dynamo_stage_budget.remove()


def test_processor_patch_is_idempotent_and_unpatch_restores(stage_worker) -> None:
    original = stage_worker._load_processor
    assert dynamo_stage_processor.apply(stage_worker) is True
    wrapper = stage_worker._load_processor
    assert getattr(wrapper, SENTINEL) is original
    assert dynamo_stage_processor.apply(stage_worker) is False
    assert stage_worker._load_processor is wrapper
    assert wrapper("a.b") == ("loaded", "a.b")  # not vLLM-Omni's GLM-Image: untouched
    assert dynamo_stage_processor.remove() is True
    assert stage_worker._load_processor is original
    assert dynamo_stage_processor.remove() is False


@pytest.mark.parametrize(
    "changed",
    [
        lambda path, extra: None,  # a new parameter
        lambda name: None,  # renamed
    ],
)
def test_processor_patch_refuses_a_changed_signature(monkeypatch, changed) -> None:
    module = fake_stage_worker(changed)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(LookupError, match="expected sync \\(func_path\\)"):
        dynamo_stage_processor.apply(module)
    assert module._load_processor is changed


def test_processor_patch_refuses_when_init_no_longer_calls_it(monkeypatch) -> None:
    module = fake_stage_worker()
    module.OmniStageWorker.__init__ = lambda self, stage_config, stage_id: None
    with pytest.raises(LookupError, match="no longer calls _load_processor"):
        dynamo_stage_processor.apply(module)


def test_budget_patch_reads_a_glm_image_stage0_config(stage_worker) -> None:
    assert dynamo_stage_processor.apply(stage_worker)  # both patches together, any order
    assert dynamo_stage_budget.apply(stage_worker) is True
    assert dynamo_stage_budget.apply(stage_worker) is False
    sampling = types.SimpleNamespace(max_tokens=1281, stop_token_ids=[16385])
    config = types.SimpleNamespace(
        default_sampling_params=sampling,
        engine_args=types.SimpleNamespace(model_arch="GlmImageForConditionalGeneration"),
    )
    stage_worker.OmniStageWorker(None, config, {}, 1)  # stage 1: no budget
    assert size_policy.budget() is None
    stage_worker.OmniStageWorker(None, config, {}, 0)
    assert size_policy.budget() == 1281
    assert dynamo_stage_budget.remove() is True
    assert size_policy.budget() is None
    assert not hasattr(stage_worker.OmniStageWorker.__init__, SENTINEL)


def test_budget_patch_ignores_other_models(stage_worker) -> None:
    assert dynamo_stage_budget.apply(stage_worker)
    sampling = types.SimpleNamespace(max_tokens=64, stop_token_ids=[2])
    config = types.SimpleNamespace(
        default_sampling_params=sampling, engine_args=types.SimpleNamespace(model_arch="Qwen")
    )
    stage_worker.OmniStageWorker(None, config, {}, 0)
    assert size_policy.budget() is None


def test_budget_patch_never_breaks_the_worker(stage_worker, caplog) -> None:
    assert dynamo_stage_budget.apply(stage_worker)

    class Exploding:
        """A config the host accepts, whose sampling defaults raise when read."""

        custom_process_input_func = None

        @property
        def default_sampling_params(self):
            raise RuntimeError("odd config")

    with caplog.at_level("WARNING", logger="omni_sizefix"):
        worker = stage_worker.OmniStageWorker(None, Exploding(), {}, 0)
    assert worker.stage_id == 0 and size_policy.budget() is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "odd config" in warnings[0]
