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


@pytest.mark.parametrize("schema", [stage_configs.DEPLOY, stage_configs.LEGACY])
def test_release_specific_stage0_settings_are_merged(schema: str) -> None:
    extra = {"limit_mm_per_prompt": {"image": 0}}
    config = cpu_engines.cpu_stage_config(schema, stage0_engine=extra)
    first, second = stages(config, schema)
    engine = first if schema == stage_configs.DEPLOY else first["engine_args"]
    assert engine["limit_mm_per_prompt"] == {"image": 0}
    assert "limit_mm_per_prompt" not in yaml.safe_dump(second)
