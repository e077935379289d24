"""``omni-sizefix doctor`` and ``omni-sizefix check`` (the main job) in this cell."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DynamoHost

import omni_sizefix


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "omni-sizefix"
    return [str(script)] if script.exists() else [shutil.which("omni-sizefix") or "omni-sizefix"]


def test_doctor_says_the_plugin_will_act(dynamo_host: DynamoHost) -> None:
    proc = subprocess.run([*_cli(), "doctor", "--json"], capture_output=True, text=True)
    report = json.loads(proc.stdout)
    assert proc.returncode == report["exit_code"] == 0, report["findings"]
    assert report["stage_config"] and Path(report["stage_config"]).is_file()


@pytest.fixture(scope="module")
def check_report(dynamo_host: DynamoHost) -> dict:
    proc = subprocess.run(
        [*_cli(), "check", "--json", "--size", "512x512", "--size", "1024x768"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    report["_exit"] = proc.returncode
    return report


def test_check_renders_every_size_with_the_plugin(check_report: dict) -> None:
    assert check_report["_exit"] == 0 and check_report["ok"]
    for row in check_report["rows"]:
        assert row["verdict"] == "ok"
        width, height = (int(v) for v in row["size"].split("x"))
        assert row["prior_tokens"] == (height // 16) * (width // 16)


def test_check_shows_what_the_bare_host_does(dynamo_host: DynamoHost, check_report: dict):
    omni_sizefix.unpatch()
    bare = dynamo_host.parse({"prompt": "a", "size": "1024x768"}, ["image"])
    if isinstance(bare["engine_inputs"], dict) and "mm_processor_kwargs" in bare["engine_inputs"]:
        pytest.skip("this host sizes stage 0 itself")
    for row in check_report["rows"]:
        assert "no mm_processor_kwargs" in row["stage0_unpatched"]
        assert row["unpatched"] != "ok"
