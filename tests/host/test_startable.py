"""Release pairs the host itself cannot start: ``omni-sizefix doctor`` must say so (exit 1).

``STARTABLE`` is written from reading each release's stage worker and vLLM-Omni's loader (not
from the package's probe): ai-dynamo 1.1 calls ``load_stage_configs_from_yaml(path)``; 1.2/1.3
``load_and_resolve_stage_configs(model, path, kwargs={})`` and unpack 2; 1.4
``(model, path, kwargs={}, trust_remote_code=...)`` and unpack 3; 1.5
``(model, kwargs={}, trust_remote_code=..., deploy_config_path=path)``; 1.6/1.7
``resolve_stage_configs``, which calls ``resolve_omni_config`` where vLLM-Omni has it (0.29+),
else ``load_and_resolve_stage_configs(model, stage_configs_path=None, kwargs={}, ...)``, a
keyword vLLM-Omni 0.28.0's loader ``(model, kwargs, *, trust_remote_code, ...)`` does not take.
In a cell whose pair cannot start, only this module runs (``conftest``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
from types import SimpleNamespace

import pytest
from cell import expected_hosts, no_expectation
from conftest import run_doctor

from omni_sizefix.runtime import settings
from omni_sizefix.tools import stage_configs

#: (ai-dynamo, vllm-omni) -> None when a stage worker starts, else what the host raises.
STARTABLE: dict[tuple[str, str], str | None] = {
    ("1.1.1", "0.20.0rc1"): None,
    ("1.2.1", "0.20.0"): None,
    ("1.3.1", "0.22.0"): None,
    ("1.3.1", "0.24.0"): None,
    ("1.4.2", "0.26.0"): None,
    ("1.5.1", "0.28.0"): None,
    ("1.6.1", "0.30.0"): None,
    ("1.6.1", "0.31.0rc1"): None,
    ("1.7.0.dev20261026", "0.32.0rc1"): None,
    ("1.6.1", "0.28.0"): "unexpected keyword argument 'stage_configs_path'",
}


def installed_pair() -> tuple[str | None, str | None]:
    return (
        settings.installed_version("ai-dynamo"),
        settings.installed_version("vllm-omni"),
    )


def cannot_start() -> bool:
    """True in a cell whose release pair the table marks as unable to start."""
    pair = installed_pair()
    return pair in STARTABLE and STARTABLE[pair] is not None  # type: ignore[index]


@pytest.fixture(scope="module")
def expectation() -> str | None:
    pair = installed_pair()
    if pair[0] is None:
        if "dynamo" in expected_hosts():
            pytest.fail(expected_hosts()["dynamo"], pytrace=False)
        pytest.skip("no ai-dynamo in this cell")
    if pair not in STARTABLE:
        no_expectation(pair, "test_startable.STARTABLE")
    return STARTABLE[pair]  # type: ignore[index]


@pytest.fixture(scope="module")
def doctor_text() -> subprocess.CompletedProcess:
    """Plain ``omni-sizefix doctor`` in a fresh process (its own host import: the one test
    here that costs a process; CI runs the others on the shared ``doctor --json`` run)."""
    return run_doctor()


def test_doctor_says_whether_this_pair_can_start(
    expectation: str | None, doctor_json: subprocess.CompletedProcess
) -> None:
    dynamo, omni = installed_pair()
    proc = doctor_json
    report = json.loads(proc.stdout)
    assert report["exit_code"] == proc.returncode
    unstartable = [f["problem"] for f in report["findings"] if "cannot start" in f["problem"]]
    if expectation is None:
        assert report["startable"] is True, report["stage_config_loader"]
        assert not unstartable
        return
    assert report["startable"] is False
    assert proc.returncode == 1  # a problem found
    assert len(unstartable) == 1
    sentence = unstartable[0]
    assert f"ai-dynamo {dynamo}" in sentence and f"vLLM-Omni {omni}" in sentence
    assert expectation in sentence, sentence


def test_plain_doctor_prints_the_sentence_not_ok(
    expectation: str | None, doctor_text: subprocess.CompletedProcess
) -> None:
    proc = doctor_text
    if expectation is None:
        assert "CANNOT START" not in proc.stdout
        assert "This release pair: starts" in proc.stdout, proc.stdout[-3000:]
        return
    assert proc.returncode == 1, proc.stdout[-3000:]  # a problem found
    assert "OK:" not in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("UNSUPPORTED:")]
    assert any("cannot start" in line and expectation in line for line in lines), proc.stdout


def test_the_host_itself_fails_where_the_table_says(expectation: str | None) -> None:
    """The real ``init_omni_stage`` with the shipped config that fits: an unstartable pair
    raises at its stage-config loader call, before any engine is built."""
    if expectation is None:
        pytest.skip("this pair starts (tests/host/test_stage_configs.py loads its configs)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from omni_sizefix.tools.simulation import check_platform

    check_platform.activate_if_needed()
    stage_worker = importlib.import_module("dynamo.vllm.omni.stage_worker")
    config = SimpleNamespace(
        stage_id=0,
        model="zai-org/GLM-Image",
        stage_configs_path=str(stage_configs.config_path(schema="deploy")),
        engine_args=SimpleNamespace(trust_remote_code=False),
    )
    with pytest.raises((TypeError, ValueError)) as caught:
        asyncio.run(stage_worker.init_omni_stage(None, config, []))
    assert expectation in str(caught.value)
