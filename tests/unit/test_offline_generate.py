"""vLLM-Omni's offline ``Omni.generate``: GLM-Image text prompts get ``mm_processor_kwargs``.

Stand-in: a FAKE ``vllm_omni.entrypoints.omni`` (written to a temporary folder) whose
``Omni.generate`` has the signature of vLLM-Omni 0.16-0.32.0rc1 (``self, prompts,
sampling_params_list=None, *, py_generator=False, use_tqdm=True``) and only records what it
was called with. It shows what the wrapper hands the host; it cannot show what the real AR
engine makes of it (the scaffold) or the size of the image: ``tests/real/test_offline.py``
runs vLLM-Omni's real engines for that.
"""

from __future__ import annotations

import copy
import logging
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import omni_sizefix
from omni_sizefix.runtime import activation, patches, settings
from omni_sizefix.runtime.patches import offline

MODULE = "vllm_omni.entrypoints.omni"
#: The offline patch's INFO line (in a host cell Dynamo's patch logs its own "patched" line).
OFFLINE_LINE = f"omni-sizefix: patched {MODULE}.Omni.generate"
GLM_PROCESSOR = "vllm_omni.model_executor.stage_input_processors.glm_image.ar2diffusion"

FAKE_OMNI = '''
"""FAKE vllm_omni.entrypoints.omni: records each generate call (no engines)."""

class Omni:
    def __init__(self, stage_configs, default_sampling_params_list=None):
        self._stage_configs = stage_configs
        self.default_sampling_params_list = default_sampling_params_list
        self.calls = []

    @property
    def stage_configs(self):
        return self._stage_configs

    def generate(self, prompts, sampling_params_list=None, *, py_generator=False, use_tqdm=True):
        self.calls.append({"prompts": prompts, "sampling_params_list": sampling_params_list,
                           "use_tqdm": use_tqdm})
        outputs = ["out"]
        return iter(outputs) if py_generator else outputs
'''

CHANGED_OMNI = '''
"""FAKE vllm_omni.entrypoints.omni of a future release: generate's parameters renamed."""

class Omni:
    def generate(self, requests, params=None):
        return [requests]
'''


def _is_vllm_omni(name: str) -> bool:
    return name == "vllm_omni" or name.startswith("vllm_omni.")


@pytest.fixture
def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Writes a FAKE ``vllm_omni`` package (a real one set aside meanwhile); the installed
    vLLM-Omni version reads as 0.31.0rc1; the probed ``ar2diffusion`` reads mm_processor_kwargs.
    Yields a function writing ``entrypoints/omni.py`` with the given source."""
    package = tmp_path / "vllm_omni"
    (package / "entrypoints").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "entrypoints" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    real_version = settings.installed_version
    monkeypatch.setattr(
        settings,
        "installed_version",
        lambda dist: "0.31.0rc1" if dist == "vllm-omni" else real_version(dist),
    )
    monkeypatch.setattr(offline, "writes_top_level", lambda: False)
    monkeypatch.setattr(patches, "_warned", set())
    monkeypatch.setattr(offline, "_pending", [])
    real = {m: sys.modules.pop(m) for m in list(sys.modules) if _is_vllm_omni(m)}

    def write(source: str = FAKE_OMNI):
        (package / "entrypoints" / "omni.py").write_text(textwrap.dedent(source))

    yield write
    omni_sizefix.unpatch()
    for name in [m for m in sys.modules if _is_vllm_omni(m)]:
        del sys.modules[name]
    sys.modules.update(real)


def glm_stages():
    """GLM-Image's two stages as vLLM-Omni 0.31 holds them (model_arch in model_config and
    stage_pipeline_config; stage 1 names GLM-Image's ar2diffusion)."""
    arch = "GlmImageForConditionalGeneration"
    stage0 = SimpleNamespace(
        model_config=SimpleNamespace(model_arch=arch),
        stage_pipeline_config=SimpleNamespace(model_arch=arch),
        custom_process_input_func=None,
    )
    stage1 = SimpleNamespace(custom_process_input_func=GLM_PROCESSOR)
    return [stage0, stage1]


def dit_params(width: int | None = None, height: int | None = None):
    return [SimpleNamespace(max_tokens=1281), SimpleNamespace(height=height, width=width)]


def patched_omni(fake_host, stages=None, defaults=None):
    """The fake host imported after ``register()``: the post-import hook patches it."""
    fake_host()
    omni_sizefix.register()
    import vllm_omni.entrypoints.omni as module

    return module, module.Omni(glm_stages() if stages is None else stages, defaults)


def targets(width: int, height: int) -> dict:
    return {"target_h": height, "target_w": width}


# --- injection --------------------------------------------------------------------------


def test_size_only_in_the_dit_params_reaches_stage_0(fake_host, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        _, omni = patched_omni(fake_host)
    assert caplog.text.count(OFFLINE_LINE) == 1
    params = dit_params(768, 512)
    assert omni.generate("a red apple", params) == ["out"]
    call = omni.calls[-1]
    assert call["prompts"] == {"prompt": "a red apple", "mm_processor_kwargs": targets(768, 512)}
    assert call["sampling_params_list"] is params


def test_prompt_top_level_size_wins_and_list_of_prompts(fake_host) -> None:
    _, omni = patched_omni(fake_host)
    prompts = [{"prompt": "a", "height": 1024, "width": 512}, "b"]
    omni.generate(prompts, dit_params(768, 512))
    sent = omni.calls[-1]["prompts"]
    assert sent[0]["mm_processor_kwargs"] == targets(512, 1024)
    assert (sent[0]["height"], sent[0]["width"]) == (1024, 512)
    assert sent[1] == {"prompt": "b", "mm_processor_kwargs": targets(768, 512)}


def test_default_sampling_params_used_when_none_passed(fake_host) -> None:
    _, omni = patched_omni(fake_host, defaults=dit_params(512, 1024))
    omni.generate({"prompt": "a"})
    assert omni.calls[-1]["prompts"]["mm_processor_kwargs"] == targets(512, 1024)


def test_top_level_size_added_where_the_release_reads_it(fake_host, monkeypatch) -> None:
    monkeypatch.setattr(offline, "writes_top_level", lambda: True)
    _, omni = patched_omni(fake_host)
    omni.generate("a", dit_params(768, 512))
    sent = omni.calls[-1]["prompts"]
    assert (sent["height"], sent["width"]) == (512, 768)
    assert sent["mm_processor_kwargs"] == targets(768, 512)


def test_generator_and_keyword_arguments_pass_through(fake_host) -> None:
    _, omni = patched_omni(fake_host)
    result = omni.generate(
        prompts="a", sampling_params_list=dit_params(768, 512), py_generator=True, use_tqdm=False
    )
    assert list(result) == ["out"]
    assert omni.calls[-1]["use_tqdm"] is False
    assert omni.calls[-1]["prompts"]["mm_processor_kwargs"] == targets(768, 512)


# --- never overwrite, never mutate -----------------------------------------------------------


def test_caller_targets_are_kept_and_nothing_is_mutated(fake_host) -> None:
    _, omni = patched_omni(fake_host)
    own = {"prompt": "a", "mm_processor_kwargs": {"target_h": 256, "target_w": 256}}
    other = {"prompt": "b", "mm_processor_kwargs": {"seed": 7}, "height": 512, "width": 512}
    before = copy.deepcopy([own, other])
    omni.generate([own, other], dit_params(768, 512))
    sent = omni.calls[-1]["prompts"]
    assert sent[0] is own
    assert sent[1]["mm_processor_kwargs"] == {"seed": 7, **targets(512, 512)}
    assert [own, other] == before


def test_prompts_without_a_size_or_text_pass_as_they_are(fake_host) -> None:
    _, omni = patched_omni(fake_host)
    prompts = ["a", {"prompt_token_ids": [1, 2]}]
    omni.generate(prompts, dit_params())  # no height/width anywhere
    assert omni.calls[-1]["prompts"] is prompts
    tokens = {"prompt_token_ids": [1, 2]}
    omni.generate(tokens, dit_params(768, 512))
    assert omni.calls[-1]["prompts"] is tokens


def test_size_glm_image_cannot_render_warns_once_and_passes(fake_host, caplog) -> None:
    _, omni = patched_omni(fake_host)
    with caplog.at_level(logging.WARNING, logger="omni_sizefix"):
        omni.generate("a", dit_params(1000, 700))
        omni.generate("b", dit_params(1000, 700))
    assert [c["prompts"] for c in omni.calls] == ["a", "b"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "1000x700" in warnings[0].getMessage()


# --- only GLM-Image -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stages",
    [
        [{"stage_id": 0, "engine_args": {"model_arch": "OmniBagelForConditionalGeneration"}}],
        [SimpleNamespace(model_config=SimpleNamespace(model_arch="Qwen3OmniMoeModel"))],
        [],
    ],
    ids=["bagel-legacy-dict", "other-model-0.31-object", "no-stage-configs"],
)
def test_other_models_are_untouched(fake_host, stages) -> None:
    _, omni = patched_omni(fake_host, stages=stages)
    omni.generate("a", dit_params(768, 512))
    assert omni.calls[-1]["prompts"] == "a"


def test_glm_image_named_by_a_legacy_stage_config(fake_host) -> None:
    legacy = [{"stage_id": 0, "engine_args": {"model_arch": "GlmImageForConditionalGeneration"}}]
    _, omni = patched_omni(fake_host, stages=legacy)
    omni.generate("a", dit_params(768, 512))
    assert omni.calls[-1]["prompts"]["mm_processor_kwargs"] == targets(768, 512)


# --- kill switch, range, idempotence, unpatch ---------------------------------------------------


def test_kill_switch_leaves_generate_untouched(fake_host, monkeypatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "1")
    fake_host()
    import vllm_omni.entrypoints.omni as module

    original = module.Omni.generate
    omni_sizefix.register()
    assert module.Omni.generate is original and not offline.is_patched()


def test_kill_switch_set_after_patching_passes_calls_through(fake_host, monkeypatch) -> None:
    _, omni = patched_omni(fake_host)
    monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "1")
    omni.generate("a", dit_params(768, 512))
    assert omni.calls[-1]["prompts"] == "a"


def test_outside_the_supported_range_steps_aside(fake_host, monkeypatch, caplog) -> None:
    monkeypatch.setattr(settings, "installed_version", lambda dist: "0.99.0")
    fake_host()
    import vllm_omni.entrypoints.omni as module

    original = module.Omni.generate
    with caplog.at_level(logging.WARNING, logger="omni_sizefix"):
        activation._on_offline_import(module)
    assert module.Omni.generate is original
    assert "0.99.0 is outside the supported range" in caplog.text


def test_patching_is_idempotent_and_unpatch_restores(fake_host, caplog) -> None:
    fake_host()
    import vllm_omni.entrypoints.omni as module

    original = module.Omni.generate
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        omni_sizefix.register()  # the module is imported already: patched now
        omni_sizefix.register()
        assert offline.apply(module) is False
    wrapper = module.Omni.generate
    assert wrapper is not original and wrapper.__omni_sizefix_original__ is original
    assert caplog.text.count(OFFLINE_LINE) == 1
    assert omni_sizefix.unpatch() is True
    assert module.Omni.generate is original and not offline.is_patched()


def test_patched_line_waits_until_logging_shows_it(fake_host, caplog) -> None:
    """vLLM >= 0.31 sets up its logging only when the engine is built, after the patch."""
    with caplog.at_level(logging.WARNING, logger="omni_sizefix"):
        _, omni = patched_omni(fake_host)
    assert OFFLINE_LINE not in caplog.text
    with caplog.at_level(logging.INFO, logger="omni_sizefix"):
        omni.generate("a", dit_params(768, 512))
        omni.generate("b", dit_params(768, 512))
    assert caplog.text.count(OFFLINE_LINE) == 1


# --- the host changed, the wrapper failed -------------------------------------------------------


def test_changed_signature_warns_and_leaves_the_host(fake_host, caplog) -> None:
    fake_host(CHANGED_OMNI)
    import vllm_omni.entrypoints.omni as module

    original = module.Omni.generate
    with caplog.at_level(logging.WARNING, logger="omni_sizefix"):
        omni_sizefix.register()
    assert module.Omni.generate is original
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "(self, requests, params)" in warnings[0], warnings
    with pytest.raises(LookupError):
        offline.apply(module)


def test_a_failure_inside_the_wrapper_calls_the_host_unchanged(fake_host, caplog) -> None:
    module, _ = patched_omni(fake_host)

    class Broken(module.Omni):
        @property
        def stage_configs(self):
            raise RuntimeError("engine gone")

    omni = Broken([], None)
    prompts = ["a"]
    with caplog.at_level(logging.WARNING, logger="omni_sizefix"):
        assert omni.generate(prompts, dit_params(768, 512)) == ["out"]
        omni.generate(prompts, dit_params(768, 512))
    assert [c["prompts"] for c in omni.calls] == [prompts, prompts]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "engine gone" in warnings[0]
