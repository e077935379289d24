"""The CPU stage config for vLLM-Omni's real engines (no host needed).

Expected budgets are computed here from GLM-Image's scaffold rule (vLLM-Omni's
``compute_max_tokens``: target grid H/32 x W/32, preview grid int(sqrt(r/c)*16) x
int(sqrt(c/r)*16), plus EOS), not from the package.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from omni_sizefix.tools import stage_configs
from omni_sizefix.tools.live import cpu_engines


def upstream_tokens(size: str) -> int:
    width, height = (int(v) for v in size.split("x"))
    rows, cols = height // 32, width // 32
    ratio = rows / cols
    preview = max(1, int(math.sqrt(ratio) * 16)) * max(1, int(math.sqrt(1 / ratio) * 16))
    return rows * cols + preview + 1


def stages(config: dict, schema: str) -> list[dict]:
    return config["stages"] if schema == stage_configs.DEPLOY else config["stage_args"]


def shipped(schema: str) -> dict:
    return yaml.safe_load(stage_configs.config_path("glm_image", schema).read_text())


@pytest.mark.parametrize("schema", [stage_configs.DEPLOY, stage_configs.LEGACY])
def test_stage0_generates_the_whole_budget_and_it_holds_the_sizes(schema: str) -> None:
    config = cpu_engines.cpu_stage_config(schema)
    params = stages(config, schema)[0]["default_sampling_params"]
    needed = max(upstream_tokens(s) for s in ("1536x1024", "1024x1536", "768x1344", "1344x768"))
    assert params["max_tokens"] == params["min_tokens"] == needed
    assert params["ignore_eos"] is True
    # the rest of stage 0's sampling is the deployment's own
    base = stages(shipped(schema), schema)[0]["default_sampling_params"]
    assert params["stop_token_ids"] == base["stop_token_ids"]
    assert params["top_k"] == base["top_k"]


@pytest.mark.parametrize("schema", [stage_configs.DEPLOY, stage_configs.LEGACY])
def test_no_accelerator_settings_and_eager(schema: str) -> None:
    config = cpu_engines.cpu_stage_config(schema, steps=3)
    text = yaml.safe_dump(config)
    assert "devices" not in text and "gpu_memory_utilization" not in text
    assert "worker_cls" not in text
    for stage in stages(config, schema):
        engine = stage if schema == stage_configs.DEPLOY else stage["engine_args"]
        assert engine["enforce_eager"] is True
    assert stages(config, schema)[1]["default_sampling_params"]["num_inference_steps"] == 3


def test_legacy_keeps_the_processor_the_deployment_names() -> None:
    config = cpu_engines.cpu_stage_config(stage_configs.LEGACY)
    base = shipped(stage_configs.LEGACY)
    assert (
        config["stage_args"][1]["custom_process_input_func"]
        == base["stage_args"][1]["custom_process_input_func"]
    )


def test_budget_follows_the_sizes_asked_for() -> None:
    config = cpu_engines.cpu_stage_config(sizes=["512x512"])
    assert config["stages"][0]["default_sampling_params"]["min_tokens"] == upstream_tokens(
        "512x512"
    )


def test_bad_steps_are_refused() -> None:
    with pytest.raises(ValueError, match="steps"):
        cpu_engines.cpu_stage_config(steps=0)


def test_written_file_reads_back(tmp_path: Path) -> None:
    path = cpu_engines.write_cpu_stage_config(tmp_path / "c.yaml")
    assert yaml.safe_load(path.read_text()) == cpu_engines.cpu_stage_config()
    assert "VLLM_CPU_KVCACHE_SPACE=1" in path.read_text()


def test_topology_refuses_unknown_engines(tmp_path: Path) -> None:
    from omni_sizefix.tools.live.topology import Topology

    with pytest.raises(ValueError, match="engines"):
        Topology(engines="gpu", run_dir=tmp_path, http_port=1)._prepare()
    assert not (tmp_path / "model").exists()


#: vLLM-Omni's own GLM-Image stage-1 processor (its legacy GLM-Image configs name it).
UPSTREAM_PROCESSOR = "vllm_omni.model_executor.stage_input_processors.glm_image.ar2diffusion"


def test_legacy_can_name_vllm_omnis_own_processor() -> None:
    config = cpu_engines.cpu_stage_config(stage_configs.LEGACY, processor="own")
    assert config["stage_args"][1]["custom_process_input_func"] == UPSTREAM_PROCESSOR
    assert "custom_process_input_func" not in config["stage_args"][0]
    # everything else as with the shipped processor
    shipped_cpu = cpu_engines.cpu_stage_config(stage_configs.LEGACY)
    shipped_cpu["stage_args"][1]["custom_process_input_func"] = UPSTREAM_PROCESSOR
    assert config == shipped_cpu


def test_unknown_processor_is_refused() -> None:
    with pytest.raises(ValueError, match="processor"):
        cpu_engines.cpu_stage_config(stage_configs.LEGACY, processor="mine")


@pytest.mark.parametrize(
    ("versions", "text_only"),
    [
        # ai-dynamo 1.1's pair: vLLM-Omni 0.20.0rc1 (written for vLLM 0.20) on vllm-cpu 0.19.0
        ({"vllm-cpu": "0.19.0", "vllm-omni": "0.20.0rc1"}, True),
        ({"vllm-cpu": "0.31.0", "vllm-omni": "0.31.0rc1"}, False),
        # vLLM-Omni before 0.29 renders vLLM's dummy image request through the chat template
        ({"vllm-cpu": "0.26.0", "vllm-omni": "0.26.0"}, True),
        ({"vllm-cpu": "0.28.0", "vllm-omni": "0.28.0"}, True),
        ({"vllm-cpu": "0.32.0", "vllm-omni": "0.32.0rc1"}, False),
        ({"vllm": "0.31.0", "vllm-omni": "0.31.0rc1"}, False),
        ({"vllm-omni": "0.20.0rc1"}, False),
    ],
)
def test_release_stage0_engine_follows_the_installed_pair(
    monkeypatch: pytest.MonkeyPatch, versions: dict, text_only: bool
) -> None:
    from importlib import metadata

    def version(name: str) -> str:
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(metadata, "version", version)
    expected = {"limit_mm_per_prompt": {"image": 0}} if text_only else {}
    assert cpu_engines.release_stage0_engine() == expected


def test_written_own_config_says_so(tmp_path: Path) -> None:
    path = cpu_engines.write_cpu_stage_config(
        tmp_path / "c.yaml", stage_configs.LEGACY, processor="own"
    )
    assert yaml.safe_load(path.read_text())["stage_args"][1]["custom_process_input_func"] == (
        UPSTREAM_PROCESSOR
    )
    assert "vLLM-Omni's ar2diffusion" in path.read_text().splitlines()[1]


def test_legacy_ar_stage_asks_the_platform_for_its_worker() -> None:
    # the shipped legacy config names vLLM-Omni's GPU AR worker class; on CPU the platform's
    # AR worker is asked for by type, as vLLM-Omni's own deploy topology does (worker_type "ar")
    ar, dit = cpu_engines.cpu_stage_config(stage_configs.LEGACY)["stage_args"]
    assert shipped(stage_configs.LEGACY)["stage_args"][0]["engine_args"]["worker_cls"]
    assert ar["engine_args"]["worker_type"] == "ar"
    assert "worker_type" not in dit["engine_args"]


@pytest.mark.parametrize("schema", [stage_configs.DEPLOY, stage_configs.LEGACY])
def test_release_specific_stage0_settings_are_merged(schema: str) -> None:
    extra = {"limit_mm_per_prompt": {"image": 0}}
    config = cpu_engines.cpu_stage_config(schema, stage0_engine=extra)
    first, second = stages(config, schema)
    engine = first if schema == stage_configs.DEPLOY else first["engine_args"]
    assert engine["limit_mm_per_prompt"] == {"image": 0}
    assert "limit_mm_per_prompt" not in yaml.safe_dump(second)


def test_stage0_prompts_reads_requests_without_an_id() -> None:
    # ai-dynamo 1.1.1 passes the request id positionally into vLLM-Omni's sampling_params slot,
    # so the engine sees "" (the worker logs "request : ...")
    line = (
        "(Worker pid=1) INFO [worker.py:33] omni-sizefix-cpu: stage-0 request : "
        "num_prompt_tokens=26 last_ids=[16771, 16384]"
    )
    assert cpu_engines.stage0_prompts(line) == [
        {"request": "", "num_prompt_tokens": 26, "last_ids": [16771, 16384]}
    ]


@pytest.mark.parametrize(
    ("size_in", "mm_kwargs", "top_level", "dit"),
    [
        ("all", {"target_h": 512, "target_w": 768}, None, (512, 768)),
        ("dit", None, None, (512, 768)),
        ("prompt", None, (512, 768), (None, None)),
    ],
)
def test_offline_request_puts_the_size_where_asked(size_in, mm_kwargs, top_level, dit) -> None:
    from types import SimpleNamespace

    defaults = [SimpleNamespace(max_tokens=1), SimpleNamespace(height=None, width=None)]
    request, params = cpu_engines.offline_request("a", 768, 512, size_in, defaults)
    assert request.get("mm_processor_kwargs") == mm_kwargs
    assert (request.get("height"), request.get("width")) == (top_level or (None, None))
    assert (params[-1].height, params[-1].width) == dit
    assert defaults[-1].height is None  # the stage defaults are copied, not changed
    with pytest.raises(ValueError, match="size_in"):
        cpu_engines.offline_request("a", 768, 512, "nowhere", defaults)
