"""Every AR->DiT model vLLM-Omni ships: the size goes only where its stage-1 processor reads it.

Per model, the stage configs are vLLM-Omni's own (its legacy YAML where it ships one, else its
pipeline definition plus its deploy YAML): stage 0's ``model_arch``, stage 1's
``custom_process_input_func`` and both stages' sampling defaults. Each request goes through
the real ``OmniStageWorker`` of this Dynamo release (its real parse, patched or not), the
router's JSON round trip, the real stage-1 dispatch, and vLLM-Omni's real stage-1 processor
of that model. Only the engines are fakes (``FakeLatentAREngine`` below stands for the GPU AR
engine; ``dryrun.FakeDiffusionEngine`` records what the DiT would get).

Expected outcomes come from ``PAIRS``, written from reading each release's code (not from
``omni_sizefix.runtime.pipelines``):

* HunyuanImage-3 ``hunyuan_image3.ar2diffusion`` (vLLM-Omni 0.20+) reads only top-level
  ``height``/``width`` (default 1024). ai-dynamo 1.1 writes no size into ``original_prompt``,
  1.2+ only ``mm_processor_kwargs``: its DiT input says 1024x1024 without the plugin.
  (Its DiT takes a text-to-image size from the stage-1 sampling parameters, which every
  Dynamo release sets from the request; the prompt's size is what the processor hands on.)
  ai-dynamo 1.1 calls every processor in the stage-list form and 1.2/1.3 refuse a second
  parameter not named ``original_prompt``: there stage 1 fails before the size matters,
  unless the plugin's adapter runs the processor.
* MammothModa2 ``mammoth_moda2.ar2dit`` reads only ``additional_information`` in vLLM-Omni
  <= 0.22 (which no Dynamo release sends: ``KeyError``), ``mm_processor_kwargs`` first from
  0.24 (``ar2diffusion`` from 0.30), which ai-dynamo >= 1.2 writes. Its second parameter is
  ``prompts`` up to 0.28, which ai-dynamo 1.2-1.5 refuse (``TypeError``); 0.30's
  ``ar2diffusion`` names it ``prompt``: already right on ai-dynamo >= 1.4.
* BAGEL's stage 1 takes the AR KV cache and reads no size: every prompt must be byte for
  byte what the host builds (no GLM-Image ``target_h``/``target_w`` added).
"""

from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import glm_upstream
import pytest
import yaml
from cell import no_expectation
from conftest import DynamoHost, image_request

import omni_sizefix
from omni_sizefix.runtime import pipelines, settings
from omni_sizefix.tools.simulation import dryrun

HUNYUAN = "HunyuanImage-3"
MAMMOTH = "MammothModa2"
BAGEL = "BAGEL"

FIXED = "fixed"
ALREADY_RIGHT = "already right"
PASS_THROUGH = "passes through untouched"

#: model -> (stage-0 model_arch prefix, module under vllm_omni.model_executor.models)
MODELS = {
    HUNYUAN: ("HunyuanImage3", "hunyuan_image3"),
    MAMMOTH: ("MammothModa2", "mammoth_moda2"),
    BAGEL: ("OmniBagel", "bagel"),
}


@dataclass(frozen=True)
class Expect:
    """One model on one release pair."""

    #: Judged where the model's DiT reads the size (``test_dit_read_path``): HunyuanImage-3's
    #: text-to-image DiT takes it from the sampling params Dynamo sets, not from what its
    #: processor hands on, so its size is already right wherever stage 1 runs; the plugin
    #: fixes its stage 1 where the host cannot run it (ai-dynamo 1.1-1.3).
    verdict: str
    #: What vLLM-Omni's processor hands the DiT without the plugin: ``default`` (1024x1024),
    #: ``requested``, ``error`` (it cannot build a DiT input from what Dynamo sends).
    host_output: str = ""
    #: This Dynamo's stage-1 dispatch runs the processor (without the plugin).
    dispatched: bool = True
    #: The host itself writes ``mm_processor_kwargs`` ``target_h``/``target_w`` at stage 0.
    host_stage0_kwargs: bool = True
    #: What the plugin adds to the host's ``original_prompt`` for a 1024x768 request.
    adds: tuple[str, ...] = ()
    #: The plugin runs the processor through its adapter (dispatch or token field).
    adapter: bool = False
    #: What stage 1 raises without the plugin once the AR output crosses vLLM-Omni's real
    #: shared-memory connector ("" when it runs).
    connector_error: str = ""


#: (ai-dynamo, vllm-omni) -> model -> expectation.
PAIRS: dict[tuple[str, str], dict[str, Expect]] = {
    # 0.20.0rc1's processors are stage-list form (1.1 calls them) and read
    # cumulative_token_ids, which 1.1 does not restore after the connector
    ("1.1.1", "0.20.0rc1"): {
        HUNYUAN: Expect(
            FIXED,
            "default",
            host_stage0_kwargs=False,
            adds=("height", "width"),
            adapter=True,
            connector_error="AttributeError",
        ),
        MAMMOTH: Expect(PASS_THROUGH, "error", host_stage0_kwargs=False, adapter=True),
        BAGEL: Expect(PASS_THROUGH, host_stage0_kwargs=False),
    },
    ("1.2.1", "0.20.0"): {
        HUNYUAN: Expect(
            FIXED,
            "default",
            dispatched=False,
            adds=("height", "width"),
            adapter=True,
            connector_error="TypeError",
        ),
        MAMMOTH: Expect(PASS_THROUGH, "error", dispatched=False, adapter=True),
        BAGEL: Expect(PASS_THROUGH),
    },
    # 1.3.1 = 1.2.1's dispatch (stage_worker.py:652, TypeError :332) and utils.py (only
    # mm_processor_kwargs in original_prompt, :170); vLLM-Omni 0.22.0's
    # hunyuan_image3.ar2diffusion(source_outputs, prompt, ...) reads top-level height/width
    # (default 1024), mammoth_moda2.ar2dit(source_outputs, prompts, ...) only
    # prompt["additional_information"] (:21, KeyError on what Dynamo sends)
    ("1.3.1", "0.22.0"): {
        HUNYUAN: Expect(
            FIXED,
            "default",
            dispatched=False,
            adds=("height", "width"),
            adapter=True,
            connector_error="TypeError",
        ),
        MAMMOTH: Expect(PASS_THROUGH, "error", dispatched=False, adapter=True),
        BAGEL: Expect(PASS_THROUGH),
    },
    # 0.24.0: hunyuan_image3.ar2diffusion (:94) returns a dict, same top-level read
    # (:139-140); mammoth_moda2.ar2dit (:34) still names "prompts" (1.3 refuses it) but reads
    # mm_processor_kwargs target_h/target_w first (:51-57)
    ("1.3.1", "0.24.0"): {
        HUNYUAN: Expect(
            FIXED,
            "default",
            dispatched=False,
            adds=("height", "width"),
            adapter=True,
            connector_error="TypeError",
        ),
        MAMMOTH: Expect(FIXED, "requested", dispatched=False, adapter=True),
        BAGEL: Expect(PASS_THROUGH),
    },
    # 1.4 accepts a second parameter named "prompt", not MammothModa2 0.26's "prompts"
    ("1.4.2", "0.26.0"): {
        HUNYUAN: Expect(ALREADY_RIGHT, "default", adds=("height", "width")),
        MAMMOTH: Expect(FIXED, "requested", dispatched=False, adapter=True),
        BAGEL: Expect(PASS_THROUGH),
    },
    # 1.5 likewise (same _accepts_source_outputs_processor); vLLM-Omni 0.28's
    # hunyuan_image3.ar2diffusion(source_outputs, prompt) reads top-level height/width
    # (default 1024), mammoth_moda2.ar2dit(source_outputs, prompts) mm_processor_kwargs first
    ("1.5.1", "0.28.0"): {
        HUNYUAN: Expect(ALREADY_RIGHT, "default", adds=("height", "width")),
        MAMMOTH: Expect(FIXED, "requested", dispatched=False, adapter=True),
        BAGEL: Expect(PASS_THROUGH),
    },
    # 1.6.1 (= 1.7.0.dev20261026, stage_worker.py byte-identical) accepts "prompt"
    # (:844-850); vLLM-Omni 0.30.0 and 0.32.0rc1 ship 0.24.0's hunyuan_image3.py byte for byte
    # (top-level height/width, default 1024) and mammoth_moda2.ar2diffusion(source_outputs,
    # prompt, requires_multimodal_data) (:27, named by mammoth_moda2/pipeline.py:53), which
    # reads mm_processor_kwargs first (:43-50)
    ("1.6.1", "0.30.0"): {
        HUNYUAN: Expect(ALREADY_RIGHT, "default", adds=("height", "width")),
        MAMMOTH: Expect(ALREADY_RIGHT, "requested"),
        BAGEL: Expect(PASS_THROUGH),
    },
    ("1.6.1", "0.31.0rc1"): {
        HUNYUAN: Expect(ALREADY_RIGHT, "default", adds=("height", "width")),
        MAMMOTH: Expect(ALREADY_RIGHT, "requested"),
        BAGEL: Expect(PASS_THROUGH),
    },
    ("1.7.0.dev20261026", "0.32.0rc1"): {
        HUNYUAN: Expect(ALREADY_RIGHT, "default", adds=("height", "width")),
        MAMMOTH: Expect(ALREADY_RIGHT, "requested"),
        BAGEL: Expect(PASS_THROUGH),
    },
}

#: (height, width): non-square both ways, square, a 16:9 Hunyuan bucket whose 720 is not a
#: multiple of 32 (GLM-Image's size policy must not apply to other models), the default.
SIZES = [(768, 1024), (1024, 768), (512, 512), (720, 1280), (1024, 1024)]


def expectation(model: str) -> Expect:
    pair = (
        settings.installed_version("ai-dynamo"),
        settings.installed_version("vllm-omni"),
    )
    if pair not in PAIRS:
        no_expectation(pair, "test_pipelines.PAIRS")
    return PAIRS[pair][model]


#: Requests name no GLM-Image model: the pipeline is what the stage config says.
image_request = functools.partial(image_request, model="some/model")


# --- vLLM-Omni's own stage configs of a model ------------------------------------------------


def _omni_root() -> Path:
    import vllm_omni

    return Path(vllm_omni.__file__).parent


def _legacy_stages(prefix: str) -> list[dict] | None:
    """The stages of a legacy ``stage_args`` YAML of the model with a stage-1 DiT, if any."""
    folder = _omni_root() / "model_executor" / "stage_configs"
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        stages = data.get("stage_args") or []
        if len(stages) < 2:
            continue
        arch = str((stages[0].get("engine_args") or {}).get("model_arch") or "")
        if arch.startswith(prefix) and (
            stages[1].get("custom_process_input_func") or stages[1].get("stage_type") == "diffusion"
        ):
            return stages
    return None


def _pipeline_stages(prefix: str, module: str) -> list[dict] | None:
    """The stages of the model's pipeline definition, with its deploy YAML's sampling defaults."""
    try:
        definitions = importlib.import_module(f"vllm_omni.model_executor.models.{module}.pipeline")
    except ImportError:
        return None
    for value in vars(definitions).values():
        stages = getattr(value, "stages", None)
        if not stages or len(stages) < 2:
            continue
        # a stage without its own model_arch gets the pipeline's (vLLM-Omni's resolver does so)
        archs = [stage.model_arch or getattr(value, "model_arch", None) for stage in stages]
        if not str(archs[0] or "").startswith(prefix):
            continue
        deploy = _omni_root() / "deploy" / str(getattr(value, "default_deploy_config_name", ""))
        deployed = {}
        if deploy.is_file():
            for entry in (yaml.safe_load(deploy.read_text()) or {}).get("stages") or []:
                deployed[entry.get("stage_id")] = entry
        result = []
        for stage, arch in zip(stages, archs, strict=True):
            kind = str(getattr(stage.execution_type, "value", stage.execution_type)).lower()
            entry: dict[str, Any] = {
                "stage_id": stage.stage_id,
                "stage_type": "diffusion" if "diffusion" in kind else "llm",
                "engine_args": {"model_arch": arch, "model_stage": stage.model_stage},
                "engine_input_source": list(stage.input_sources),
                "requires_multimodal_data": bool(stage.requires_multimodal_data),
            }
            if stage.custom_process_input_func:
                entry["custom_process_input_func"] = stage.custom_process_input_func
            sampling = (deployed.get(stage.stage_id) or {}).get("default_sampling_params")
            if sampling:
                entry["default_sampling_params"] = sampling
            result.append(entry)
        return result
    return None


def own_stage_configs(model: str) -> list[Any]:
    """Stage 0 and 1 as vLLM-Omni declares them for ``model`` (skip when it ships none)."""
    from omegaconf import OmegaConf

    prefix, module = MODELS[model]
    stages = _legacy_stages(prefix) or _pipeline_stages(prefix, module)
    if not stages:
        pytest.skip(f"vLLM-Omni {settings.installed_version('vllm-omni')} ships no {model}")
    return [OmegaConf.create(stage) for stage in stages[:2]]


def diffusion_sampling(configs: list) -> bool:
    """Dynamo builds diffusion sampling parameters (which carry height/width) for stage 1:
    only for a ``diffusion`` stage with sampling defaults (MammothModa2 <= 0.28 runs its DiT
    as an ``llm`` stage; without defaults Dynamo builds none)."""
    stage = configs[1]
    return bool(stage.get("default_sampling_params")) and stage.get("stage_type") == "diffusion"


def stage1_processor(configs: list) -> Any:
    func_path = configs[1].get("custom_process_input_func")
    module_name, name = str(func_path).rsplit(".", 1)
    return getattr(importlib.import_module(module_name), name)


# --- fakes ---------------------------------------------------------------------------------


class FakeLatentAREngine:
    """FAKE (no GPU, no weights): an AR engine that emits a few tokens, their text and the
    hidden states MammothModa2's bridge consumes (one row per prompt + generated token)."""

    PROMPT_IDS = (11, 12, 13)
    TOKENS = (21, 22, 23, 24)

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    async def get_tokenizer(self) -> Any:
        raise RuntimeError("no tokenizer in a dry run")

    @classmethod
    def output(cls, request_id: str) -> Any:
        import torch

        rows = len(cls.PROMPT_IDS) + len(cls.TOKENS) - 1
        completion = dryrun.SyntheticCompletion(
            token_ids=list(cls.TOKENS),
            cumulative_token_ids=list(cls.TOKENS),
            text="<recaption>an apple</recaption>",
            multimodal_output={"latent": torch.zeros(rows, 8)},
        )
        output = dryrun.SyntheticAROutput(request_id=request_id, outputs=[completion])
        output.prompt_token_ids = list(cls.PROMPT_IDS)  # type: ignore[attr-defined]
        return output

    async def generate(self, prompt: Any, *args: Any, **kwargs: Any):
        self.calls.append((prompt, kwargs.get("sampling_params_list")))
        yield self.output(str(kwargs.get("request_id") or "dryrun"))


def processor_output_size(configs: list, original_prompt: Any) -> tuple[Any, Any] | str:
    """(height, width) vLLM-Omni's processor hands the DiT for this ``original_prompt``,
    called in its own convention as vLLM-Omni's orchestrator calls it; or the error."""
    output = FakeLatentAREngine.output("direct")
    try:
        result = glm_upstream.call([output], original_prompt, True, stage1_processor(configs))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    view = dryrun._dit_view(result, None)
    return view.height, view.width


def run(configs: list) -> Any:
    def go(request: dict) -> dryrun.StageOneResult:
        return dryrun.run_request(request, configs, ar_engine=FakeLatentAREngine())

    return go


# --- models whose processor carries a size ------------------------------------------------


@pytest.mark.parametrize("model", [HUNYUAN, MAMMOTH])
@pytest.mark.parametrize(("height", "width"), SIZES)
def test_with_the_plugin_the_size_reaches_the_dit_input(
    patched: DynamoHost, model: str, height: int, width: int
) -> None:
    expect = expectation(model)
    configs = own_stage_configs(model)
    result = run(configs)(image_request(height, width))
    assert result.original_prompt is not None, result.error  # stage 0 and the router ran
    assert pipelines.plan().pipeline == model  # the stage-0 worker learned it from its config
    direct = processor_output_size(configs, result.original_prompt)
    if expect.verdict == PASS_THROUGH:
        assert isinstance(direct, str), direct  # the processor cannot run on what Dynamo sends
        assert expect.dispatched or (result.error and "stage 1" in result.error)
        return
    assert direct == (height, width)
    # through this release's own stage-1 dispatch (where it cannot call the processor
    # itself, ai-dynamo 1.1-1.3, through the plugin's adapter)
    assert result.error is None, result.error
    assert (result.height, result.width) == (height, width)
    if diffusion_sampling(configs):
        assert (result.sampling_height, result.sampling_width) == (height, width)


@pytest.mark.parametrize("model", [HUNYUAN, MAMMOTH])
@pytest.mark.parametrize(("height", "width"), [(768, 1024), (720, 1280), (1024, 1024)])
def test_without_the_plugin_the_host_loses_the_size_where_the_table_says(
    kill_switch: DynamoHost, model: str, height: int, width: int
) -> None:
    expect = expectation(model)
    configs = own_stage_configs(model)
    result = run(configs)(image_request(height, width))
    assert result.original_prompt is not None, result.error
    direct = processor_output_size(configs, result.original_prompt)
    if expect.host_output == "error":
        assert isinstance(direct, str), direct
        return
    wanted = (1024, 1024) if expect.host_output == "default" else (height, width)
    assert direct == wanted
    if expect.dispatched:
        assert (result.height, result.width) == wanted
        if diffusion_sampling(configs):
            # the stage-1 sampling parameters carry the request's size on every release
            assert (result.sampling_height, result.sampling_width) == (height, width)
    else:
        assert result.error and "stage 1" in result.error


@pytest.mark.parametrize("model", [HUNYUAN, MAMMOTH, BAGEL])
def test_only_original_prompt_changes_and_only_where_the_processor_reads(
    dynamo_host: DynamoHost, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    """Stage 0's prompt and the sampling parameters are the host's byte for byte; for a
    model sized at all, ``original_prompt`` differs only by the keys its processor reads."""
    expect = expectation(model)
    configs = own_stage_configs(model)
    request = image_request(768, 1024)
    omni_sizefix.unpatch()
    monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "1")
    host = run(configs)(request)
    monkeypatch.delenv("OMNI_SIZEFIX_DISABLE")
    assert omni_sizefix.patch()
    try:
        ours = run(configs)(request)
    finally:
        omni_sizefix.unpatch()
    assert json.dumps(ours.stage0_prompt, sort_keys=True) == json.dumps(
        host.stage0_prompt, sort_keys=True
    )
    host_chunk, our_chunk = json.loads(host.router_payload), json.loads(ours.router_payload)
    assert our_chunk.get("sampling_params_list") == host_chunk.get("sampling_params_list")
    has_kwargs = "mm_processor_kwargs" in (host.stage0_prompt or {})
    assert has_kwargs == expect.host_stage0_kwargs
    if not expect.adds:
        ours_prompt = json.dumps(our_chunk.get("original_prompt"), sort_keys=True)
        assert ours_prompt == json.dumps(host_chunk.get("original_prompt"), sort_keys=True)
        return
    added = {k: v for k, v in ours.original_prompt.items() if host.original_prompt.get(k) != v}
    assert added == {"height": 768, "width": 1024}
    assert tuple(added) == expect.adds  # HunyuanImage-3 reads the top level only


@pytest.mark.parametrize("plugin", [True, False], ids=["plugin", "kill-switch"])
def test_hunyuan_across_the_real_connector(
    dynamo_host: DynamoHost, monkeypatch: pytest.MonkeyPatch, plugin: bool
) -> None:
    """The AR output as vLLM-Omni's engine yields it (vLLM ``RequestOutput``), through
    vLLM-Omni's real ``SharedMemoryConnector`` (which drops ``cumulative_token_ids``)."""
    expect = expectation(HUNYUAN)
    configs = own_stage_configs(HUNYUAN)
    omni_sizefix.unpatch()
    if plugin:
        assert omni_sizefix.patch()
    else:
        monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "1")
        assert omni_sizefix.patch() is False
    try:
        result = dryrun.run_request(
            image_request(768, 1024),
            configs,
            connector=dryrun.shared_memory_connector(),
            real_outputs=True,
        )
    finally:
        omni_sizefix.unpatch()
    if plugin:
        assert result.error is None, result.error
        assert (result.height, result.width) == (768, 1024)
    elif expect.connector_error:
        assert result.error and expect.connector_error in result.error, result.error
    else:
        assert (result.height, result.width) == (1024, 1024), result.error


def test_bagel_without_a_stage_config_would_get_glm_keys(patched: DynamoHost) -> None:
    """What the recorded pipeline prevents: a worker that has seen no stage config sizes an
    image request for GLM-Image (ai-dynamo 1.1 gets target_h/target_w from the plugin)."""
    expect = expectation(BAGEL)
    pipelines.forget()
    parsed = patched.parse(image_request(768, 1024), ["image"])
    stage0 = parsed["engine_inputs"]
    assert stage0["mm_processor_kwargs"] == {"target_h": 768, "target_w": 1024}
    if not expect.host_stage0_kwargs:
        configs = own_stage_configs(BAGEL)
        patched.worker(configs[0], 0)
        assert pipelines.plan().pipeline == BAGEL
        again = patched.parse(image_request(768, 1024), ["image"])
        assert "mm_processor_kwargs" not in again["engine_inputs"]


@pytest.mark.parametrize("model", [HUNYUAN, MAMMOTH])
def test_the_processor_stage_1_runs(patched: DynamoHost, model: str) -> None:
    """vLLM-Omni's own where this Dynamo dispatches it; the plugin's adapter elsewhere."""
    expect = expectation(model)
    configs = own_stage_configs(model)
    worker = patched.worker(configs[1], 1)
    upstream = stage1_processor(configs)
    if not expect.adapter:
        assert worker._processor is upstream
    else:
        assert worker._processor is not upstream
        assert worker._processor.__omni_sizefix_upstream__ is upstream
    omni_sizefix.unpatch()
    plain = patched.worker(configs[1], 1)
    assert plain._processor is upstream


def test_the_worker_logs_what_it_serves(
    patched: DynamoHost, caplog: pytest.LogCaptureFixture
) -> None:
    expectation(HUNYUAN)
    configs = own_stage_configs(HUNYUAN)
    with caplog.at_level("INFO", logger="omni_sizefix"):
        patched.worker(configs[0], 0)
    lines = [r.getMessage() for r in caplog.records if "serving" in r.getMessage()]
    assert len(lines) == 1 and HUNYUAN in lines[0] and "top-level" in lines[0], lines
