"""Stage 1 right with vLLM-Omni's OWN GLM-Image stage config: the run-time processor fix.

The config is the file the installed vLLM-Omni ships, loaded by the host's own loader. Each
request goes through the real patched parse, the real router models (JSON round trip), the
real ``OmniStageWorker`` of this release (its processor obtained through the real, patched
``_load_processor``; its own stage-1 dispatch) and, where a release drops fields, vLLM-Omni's
real ``SharedMemoryConnector`` with a real vLLM ``RequestOutput``. Engines are fakes.

Expectations come from ``PAIRS`` below, written from reading each release's code (not from
the package's decision functions): what the release pair gets wrong with vLLM-Omni's own
processor, what the kill switch shows, and which processor the plugin must leave in place.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import glm_rules
import glm_upstream
import pytest
import yaml
from cell import no_expectation
from conftest import UPSTREAM_PROCESSOR, DynamoHost, config_with_budget, image_request

import omni_sizefix
from omni_sizefix.runtime import patches, settings, sizing
from omni_sizefix.runtime.patches import stage1, stage_worker
from omni_sizefix.tools import stage_configs
from omni_sizefix.tools.simulation import dryrun

PACKAGE = "package"  # the plugin must put omni_sizefix's processor in place
UPSTREAM = "upstream"  # the plugin must leave vLLM-Omni's own processor in place


@dataclass(frozen=True)
class Expect:
    """One release pair with vLLM-Omni's own GLM-Image processor."""

    #: What is broken (Stage1Profile defect keys), empty when the pair is right.
    defects: tuple[str, ...]
    #: The exception stage 1 raises without the plugin ("" when it renders, or with no Dynamo).
    kill_switch_error: str
    #: Which processor stage 1 must run with the plugin.
    plugin: str
    #: Only across processes (the real connector) does the defect show.
    needs_real_connector: bool = False


#: (ai-dynamo, vllm-omni) -> expectation. Read from the release wheels:
#: 1.1.1 calls every processor in the stage-list form and never restores
#: cumulative_token_ids, which vLLM-Omni's connector drops (dataclasses.asdict) and
#: 0.20.0rc1's ar2diffusion reads; 1.2.1's _accepts_source_outputs_processor wants the 2nd
#: parameter named original_prompt, 0.20.0 names it prompt; 1.4.2/1.6.1 accept "prompt" and
#: restore cumulative_token_ids, and so does 1.5.1 (its _accepts_source_outputs_processor takes
#: original_prompt or prompt; _ensure_cumulative_token_ids after the connector), whose only
#: vLLM-Omni 0.28.0 names it prompt and reads mm_processor_kwargs; vLLM-Omni 0.18.0 reads
#: top-level height/width only and slices the prior at a h//2 x w//2 preview grid.
#: ai-dynamo 1.3.1's stage_worker.py has 1.2.1's check (_accepts_source_outputs_processor, :652:
#: params[:2] == ["source_outputs", "original_prompt"], else TypeError :332) and restores
#: cumulative_token_ids (_prepare_connector_payload :578, _ensure_cumulative_token_ids :383);
#: vLLM-Omni 0.22.0's ar2diffusion(source_outputs, prompt, ...) (glm_image.py:214) returns a
#: list, 0.24.0's (:215) a dict, both read mm_processor_kwargs first (:251 / :254): the
#: dispatch TypeError is the only defect. ai-dynamo 1.6.1 and 1.7.0.dev20261026 (stage_worker.py
#: byte-identical) accept "prompt" (:844-850) and restore the field (:459); vLLM-Omni 0.30.0 and
#: 0.32.0rc1 ship 0.24.0's glm_image.py byte for byte: right without the plugin. vLLM-Omni
#: 0.16.0's glm_image.py is 0.18.0's byte for byte (stage list, top-level height/width default
#: 1024 :182-183, preview token_h // 2 :59-60; legacy glm_image.yaml max_tokens 1281).
PAIRS: dict[tuple[str | None, str], Expect] = {
    ("1.1.1", "0.20.0rc1"): Expect(
        ("token-field",), "AttributeError", PACKAGE, needs_real_connector=True
    ),
    ("1.2.1", "0.20.0"): Expect(("dispatch",), "TypeError", PACKAGE),
    ("1.3.1", "0.22.0"): Expect(("dispatch",), "TypeError", PACKAGE),
    ("1.3.1", "0.24.0"): Expect(("dispatch",), "TypeError", PACKAGE),
    ("1.4.2", "0.26.0"): Expect((), "", UPSTREAM),
    ("1.5.1", "0.28.0"): Expect((), "", UPSTREAM),
    ("1.6.1", "0.30.0"): Expect((), "", UPSTREAM),
    ("1.6.1", "0.31.0rc1"): Expect((), "", UPSTREAM),
    ("1.7.0.dev20261026", "0.32.0rc1"): Expect((), "", UPSTREAM),
    (None, "0.16.0"): Expect(("size", "prior"), "", PACKAGE),
    (None, "0.18.0"): Expect(("size", "prior"), "", PACKAGE),
}
SIZES = [(768, 1024), (1024, 768), (512, 512), (1024, 1024)]  # (height, width)


def expectation() -> Expect:
    pair = (
        settings.installed_version("ai-dynamo"),
        settings.installed_version("vllm-omni"),
    )
    if pair not in PAIRS:
        no_expectation(pair, "test_stage1_runtime.PAIRS")
    return PAIRS[pair]


# --- vLLM-Omni's own config -------------------------------------------------------------


def own_config_file(folder: Path) -> Path:
    """vLLM-Omni's own GLM-Image stage config, in the schema this host's loader reads.

    vLLM-Omni <= 0.18 ship a legacy ``stage_args`` file, >= 0.20.0rc1 a deploy file. Where
    the installed vLLM-Omni ships only a file this Dynamo cannot read (ai-dynamo 1.1 with
    vLLM-Omni 0.20.0rc1 ships only a deploy file), Dynamo's own 1.1 launch used vLLM-Omni's
    legacy layout: stage 1 names vLLM-Omni's ``ar2diffusion``, stage-0 ``max_tokens`` 1281.
    That file is written here from the shipped legacy layout with those two values.
    """
    import vllm_omni

    root = Path(vllm_omni.__file__).parent
    legacy = root / "model_executor" / "stage_configs" / "glm_image.yaml"
    deploy = root / "deploy" / "glm_image.yaml"
    readable = stage_configs.host_loader().schemas
    if legacy.is_file() and stage_configs.LEGACY in readable:
        return legacy
    if deploy.is_file() and stage_configs.DEPLOY in readable:
        return deploy
    data = yaml.safe_load(stage_configs.config_path(schema="legacy").read_text())
    data["stage_args"][0]["default_sampling_params"]["max_tokens"] = 1281
    data["stage_args"][1]["custom_process_input_func"] = UPSTREAM_PROCESSOR
    path = folder / "glm_image.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def own_configs(load_configs: Any, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    configs = load_configs(own_config_file(tmp_path_factory.mktemp("own_config")))
    assert stage_configs.stage_processor(configs[1]) == UPSTREAM_PROCESSOR
    return configs


def run(request: dict, configs: list, *, real_connector: bool) -> dryrun.StageOneResult:
    if not real_connector:
        return dryrun.run_request(request, configs)
    return dryrun.run_request(
        request, configs, connector=dryrun.shared_memory_connector(), real_outputs=True
    )


def stage1_processor(dynamo_host: DynamoHost, configs: list) -> Any:
    """The processor a real stage-1 ``OmniStageWorker`` of this release ends up with."""
    return dynamo_host.worker(configs[1], 1)._processor


# --- with the plugin ----------------------------------------------------------------------


def test_plugin_leaves_or_replaces_the_processor_as_the_table_says(
    patched: DynamoHost, own_configs: list
) -> None:
    expect = expectation()
    processor = stage1_processor(patched, own_configs)
    wanted = stage1.ar2diffusion if expect.plugin == PACKAGE else glm_upstream.function()
    assert processor is wanted
    # the host's own loader, unwrapped, returns vLLM-Omni's function
    original = patched.stage_worker._load_processor.__omni_sizefix_original__
    assert original(UPSTREAM_PROCESSOR) is glm_upstream.function()


@pytest.mark.parametrize("real_connector", [False, True], ids=["in-memory", "shm-connector"])
@pytest.mark.parametrize(("height", "width"), SIZES)
def test_requested_size_reaches_the_dit_with_vllm_omni_config(
    patched: DynamoHost, own_configs: list, real_connector: bool, height: int, width: int
) -> None:
    expectation()
    result = run(image_request(height, width), own_configs, real_connector=real_connector)
    assert result.verdict(height, width) == "ok"
    assert (result.height, result.width) == (height, width)
    assert len(result.prior) == (height // 16) * (width // 16)


def test_profile_finds_what_the_table_says(patched: DynamoHost) -> None:
    expect = expectation()
    found = stage_worker.profile()
    assert found.defects == expect.defects
    assert found.needs_fix == (expect.plugin == PACKAGE)
    assert found.package_dispatchable


def test_processor_choice_is_logged_once(
    patched: DynamoHost, own_configs: list, caplog: pytest.LogCaptureFixture
) -> None:
    expect = expectation()

    stage_worker.choose.cache_clear()
    with caplog.at_level("INFO", logger="omni_sizefix"):
        for _ in range(3):
            stage1_processor(patched, own_configs)
    lines = [r.getMessage() for r in caplog.records if "stage 1 " in r.getMessage()]
    assert len(lines) == 1, lines
    assert ("in place of" in lines[0]) == (expect.plugin == PACKAGE)


def test_other_processors_are_never_touched(patched: DynamoHost) -> None:
    load = patched.stage_worker._load_processor
    assert load(None) is None
    assert load(stage1.PROCESSOR) is stage1.ar2diffusion
    assert load("json.dumps") is importlib.import_module("json").dumps


def test_a_failing_probe_keeps_the_hosts_processor_with_one_warning(
    patched: DynamoHost, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:

    def broken() -> None:
        raise RuntimeError("probe exploded")

    stage_worker.choose.cache_clear()
    monkeypatch.setattr(stage_worker, "profile", broken)
    patches._warned.discard("probe-failed")
    with caplog.at_level("WARNING", logger="omni_sizefix"):
        first = patched.stage_worker._load_processor(UPSTREAM_PROCESSOR)
        second = patched.stage_worker._load_processor(UPSTREAM_PROCESSOR)
    stage_worker.choose.cache_clear()
    assert first is glm_upstream.function() and second is glm_upstream.function()
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "probe exploded" in warnings[0].getMessage()


def test_unpatch_restores_the_hosts_load_processor(dynamo_host: DynamoHost) -> None:
    module = dynamo_host.stage_worker
    omni_sizefix.unpatch()
    original = module._load_processor
    assert omni_sizefix.patch()
    assert module._load_processor is not original
    assert module._load_processor.__omni_sizefix_original__ is original
    assert omni_sizefix.patch()  # idempotent: never stacks
    assert module._load_processor.__omni_sizefix_original__ is original
    omni_sizefix.unpatch()
    assert module._load_processor is original


# --- with the kill switch: the host's own defect ------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(768, 1024), (1024, 1024)])
def test_host_defect_with_vllm_omni_config(
    kill_switch: DynamoHost, own_configs: list, height: int, width: int
) -> None:
    expect = expectation()
    if not expect.defects:
        pytest.skip("this release pair runs vLLM-Omni's processor right (next test)")
    assert stage1_processor(kill_switch, own_configs) is glm_upstream.function()
    result = run(
        image_request(height, width), own_configs, real_connector=expect.needs_real_connector
    )
    assert result.error and expect.kill_switch_error in result.error, result.error


def test_host_defect_shows_only_across_processes(patched: DynamoHost, own_configs: list) -> None:
    """ai-dynamo 1.1 with only the processor patch removed (the parse patch on): the same
    request renders while the AR output object is handed over as is, and fails once it
    goes through vLLM-Omni's real shared-memory connector."""
    expect = expectation()
    if not expect.needs_real_connector:
        pytest.skip("the defect of this pair does not depend on the connector")

    assert stage_worker.remove()
    assert stage1_processor(patched, own_configs) is glm_upstream.function()
    in_memory = run(image_request(768, 1024), own_configs, real_connector=False)
    assert in_memory.verdict(768, 1024) == "ok"
    across = run(image_request(768, 1024), own_configs, real_connector=True)
    assert across.error and expect.kill_switch_error in across.error, across.error
    assert "cumulative_token_ids" in across.error


@pytest.mark.parametrize(("height", "width"), [(768, 1024), (1024, 1024)])
def test_host_alone_right_where_the_table_says_so(
    kill_switch: DynamoHost, own_configs: list, height: int, width: int
) -> None:
    expect = expectation()
    if expect.defects:
        pytest.skip("this release pair is broken without the plugin (previous test)")
    result = run(image_request(height, width), own_configs, real_connector=True)
    assert result.verdict(height, width) == "ok"


def test_the_real_connector_drops_cumulative_token_ids(dynamo_host: DynamoHost) -> None:
    """vLLM-Omni's SharedMemoryConnector round trip loses the dynamic attribute; hosts
    with ``_prepare_connector_payload`` carry it across themselves."""
    expect = expectation()
    connector = dryrun.shared_memory_connector()
    output = dryrun.vllm_request_output("drop-probe", [1, 2, 3])
    ok, _, meta = connector.put("0", "1", "drop-probe", output)
    got = connector.get("0", "1", "drop-probe", metadata=meta)
    got = got[0] if isinstance(got, tuple) else got
    assert ok and list(got.outputs[0].token_ids) == [1, 2, 3]
    assert not hasattr(got.outputs[0], "cumulative_token_ids")
    prepare = getattr(dynamo_host.stage_worker, "_prepare_connector_payload", None)
    assert (prepare is None) == expect.needs_real_connector


# --- the stage-0 budget of the loaded config ----------------------------------------------


def largest_fitting_square(max_tokens: int) -> int:
    """Computed from the scaffold layout (glm_rules), independently of the size policy."""
    side = glm_rules.largest_square_side(max_tokens)
    assert side is not None, f"stage-0 max_tokens {max_tokens} holds no GLM-Image size"
    return side


def test_stage0_worker_learns_the_budget_and_the_policy_keeps_to_it(
    patched: DynamoHost, own_configs: list
) -> None:
    max_tokens = int(own_configs[0].default_sampling_params.max_tokens)
    side = largest_fitting_square(max_tokens)
    try:
        # the real stage-0 OmniStageWorker of this release, built from the loaded config
        patched.worker(own_configs[0], 0)
        assert sizing.budget() == max_tokens
        fits = run(image_request(side, side), own_configs, real_connector=False)
        assert fits.verdict(side, side) == "ok"
        if side < glm_rules.MAX_SIDE:
            too_big = (side, side + 512)
            with pytest.raises(ValueError) as caught:
                patched.parse(image_request(*too_big), ["image"])
            message = str(caught.value)
            assert f"up to {side}x{side}" in message
            assert "omni-sizefix stage-config glm_image" in message
    finally:
        sizing.set_budget(None)


def test_host_alone_accepts_sizes_its_stage0_budget_truncates(
    kill_switch: DynamoHost, own_configs: list
) -> None:
    """Plugin off: a size above the config's budget goes to stage 0, whose max_tokens
    cannot hold its scaffold (the prior would be cut short)."""
    max_tokens = int(own_configs[0].default_sampling_params.max_tokens)
    side = largest_fitting_square(max_tokens)
    if side >= 2048:
        pytest.skip(f"this config holds up to {side}x{side}: nothing the policy accepts is cut")
    height, width = side, side + 512
    parsed = kill_switch.parse(image_request(height, width), ["image"])
    assert (parsed["sampling_params_list"]["height"], parsed["sampling_params_list"]["width"]) == (
        height,
        width,
    )
    assert glm_upstream.grids(height, width).token_count > max_tokens


# --- doctor --stage-configs-path: four verdicts -------------------------------------------


@pytest.fixture
def doctor(
    dynamo_host: DynamoHost,
    fake_glm_image_model: str,
    cpu_platform_named: Any,
    capsys: pytest.CaptureFixture,
):
    """``omni-sizefix doctor --json --stage-configs-path PATH`` on the fake GLM-Image model:
    (exit code, report)."""
    from omni_sizefix.tools import cli

    def run(path: Path) -> tuple[int, dict]:
        capsys.readouterr()
        args = ["doctor", "--json", "--stage-configs-path", str(path)]
        code = cli.main([*args, "--model", fake_glm_image_model])
        out = capsys.readouterr().out
        return code, json.loads(out[out.index("{") :])

    return run


def test_doctor_on_vllm_omni_config(doctor: Any, load_configs: Any, tmp_path: Path) -> None:
    expect = expectation()
    path = own_config_file(tmp_path)
    code, report = doctor(path)
    check = report["config_check"]
    assert code == 0, report["findings"]
    assert check["processor"] == UPSTREAM_PROCESSOR
    if expect.plugin == PACKAGE:
        assert "replaced at run time" in check["stage1"]
    else:
        assert "runs right" in check["stage1"]
    configs = load_configs(path)
    side = largest_fitting_square(int(configs[0].default_sampling_params.max_tokens))
    assert check["largest_size"] == f"{side}x{side}"
    assert check["summary"].startswith("This will work")


def test_doctor_on_the_shipped_config(doctor: Any) -> None:
    code, report = doctor(stage_configs.path_for_installed_host())
    assert code == 0, report["findings"]
    assert report["config_check"]["largest_size"] == "2048x2048"


def test_doctor_on_a_config_over_budget(doctor: Any, tmp_path: Path) -> None:
    """Stage-0 max_tokens 1000: not even the default 1024x1024 (1281 tokens) fits."""
    code, report = doctor(config_with_budget(tmp_path, 1000))
    side = largest_fitting_square(1000)
    assert code == 1
    assert report["config_check"]["max_tokens"] == 1000
    assert report["config_check"]["largest_size"] == f"{side}x{side}"
    assert any("1024x1024 will be rejected" in f["problem"] for f in report["findings"])


def test_doctor_on_a_config_the_workers_cannot_start_with(doctor: Any, tmp_path: Path) -> None:
    """A schema this release's loader does not read, else a stage-1 processor that does not
    exist: either way the workers fail at start, and doctor says so with exit 1."""
    readable = stage_configs.host_loader().schemas
    unread = [s for s in stage_configs.SCHEMAS if s not in readable]
    if unread:
        path = stage_configs.config_path(schema=unread[0])
    else:
        data = yaml.safe_load(stage_configs.config_path(schema="legacy").read_text())
        data["stage_args"][1]["custom_process_input_func"] = "omni_sizefix_missing.ar2diffusion"
        path = tmp_path / "glm_image.yaml"
        path.write_text(yaml.safe_dump(data))
    code, report = doctor(path)
    assert code == 1, report["findings"]  # a problem found
    assert "NOT start" in report["config_check"]["summary"]


# --- vLLM-Omni without Dynamo -------------------------------------------------------------


def test_without_dynamo_the_probe_finds_what_the_table_says(tmp_path: Path) -> None:
    """vLLM-Omni alone (its own orchestrator calls the processor its config names): the
    probe of its own GLM-Image processor, and the package's processor on the same output."""
    if settings.installed_version("ai-dynamo") is not None:
        pytest.skip("Dynamo is installed: covered through its stage worker above")
    expect = expectation()
    pytest.importorskip("vllm_omni")
    path = own_config_file(tmp_path)
    configs = stage_configs.load_with_host_loader(path)
    func_path = stage_configs.stage_processor(configs[1])
    assert func_path == UPSTREAM_PROCESSOR
    module_name, name = func_path.rsplit(".", 1)
    upstream = getattr(importlib.import_module(module_name), name)
    found = stage_worker.build_profile(None, upstream, stage1.ar2diffusion)
    assert found.defects == expect.defects
    height, width = stage1.PROBE_SIZE
    prompt = {"prompt": "", "height": height, "width": width}
    output = glm_upstream.ar_output(height, width)
    upstream_verdict = glm_upstream.verdict(
        glm_upstream.call([output], dict(prompt), processor=upstream), height, width
    )
    assert (upstream_verdict == "ok") == (not expect.defects), upstream_verdict
    package = stage1.ar2diffusion([output], prompt)
    assert glm_upstream.verdict(package, height, width) == "ok"
    assert int(configs[0].default_sampling_params.max_tokens) == 1281  # vLLM-Omni's legacy budget
