"""``omni-sizefix doctor`` and ``omni-sizefix check`` (the main job) in this cell."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cell import expected_hosts
from conftest import DynamoHost

import omni_sizefix


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "omni-sizefix"
    return [str(script)] if script.exists() else [shutil.which("omni-sizefix") or "omni-sizefix"]


def _run(*argv: str) -> subprocess.CompletedProcess:
    """The installed command in a fresh process."""
    return subprocess.run([*_cli(), *argv], capture_output=True, text=True, timeout=900)


# Lines the host and the plugin log while check runs the simulated pipeline.
HOST_LOG_MARKERS = (
    "omni-sizefix: patched",
    "omni-sizefix: unpatched",
    "[ar2diffusion]",
    "Kwargs passed to",
    "Triton",
    "INFO",
    "WARNING",
)


IMPORT_THE_HOST = """
try:
    import dynamo.vllm.omni.stage_worker
except ModuleNotFoundError as exc:
    if exc.name != "dynamo":
        raise
    import vllm_omni  # a cell without Dynamo
"""


def test_host_prints_on_stdout_by_itself() -> None:
    """Why stdout needs guarding: importing the host alone writes to stdout here."""
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_THE_HOST], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        error = proc.stderr.strip().splitlines()[-1]
        if expected_hosts():
            pytest.fail(f"the host of this cell does not import: {error}", pytrace=False)
        pytest.skip(f"no host to import here: {error}")
    if not proc.stdout.strip():
        pytest.skip("importing the host prints nothing on stdout here")
    with pytest.raises(json.JSONDecodeError):
        json.loads(proc.stdout + json.dumps({"ok": True}))


def test_doctor_says_the_plugin_will_act(
    dynamo_host: DynamoHost, doctor_json: subprocess.CompletedProcess
) -> None:
    proc = doctor_json
    report = json.loads(proc.stdout)
    assert proc.returncode == report["exit_code"] == 0, report["findings"]
    assert report["stage_config"] and Path(report["stage_config"]).is_file()


@pytest.mark.parametrize(
    "argv", [["doctor"], ["stage-config"], ["stage-config", "--schema", "legacy"]]
)
def test_json_output_is_one_document(
    argv: list[str], doctor_json: subprocess.CompletedProcess
) -> None:
    proc = doctor_json if argv == ["doctor"] else _run(*argv, "--json")
    document = json.loads(proc.stdout)  # no leading line stripped
    assert proc.returncode == document.get("exit_code", 0), proc.stderr[-2000:]
    if argv[0] == "stage-config":
        assert Path(document["path"]).is_file()


def test_stage_config_prints_one_path() -> None:
    proc = _run("stage-config")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.endswith("\n") and proc.stdout.count("\n") == 1
    assert Path(proc.stdout.strip()).is_file()


@pytest.fixture(scope="module")
def check_run() -> subprocess.CompletedProcess:
    """``check --json -v`` in a fresh process: the host's log lines flow to stderr."""
    return _run("check", "--json", "-v", "--size", "512x512", "--size", "1024x768")


def test_check_json_is_one_document_in_every_cell(check_run: subprocess.CompletedProcess) -> None:
    document = json.loads(check_run.stdout)  # no leading line stripped
    if "error" in document:  # a cell without Dynamo: the failure is a document too
        assert "dynamo" not in expected_hosts(), document["error"]  # a host cell must import
        assert check_run.returncode == document["exit_code"] == 2
        assert "cannot import the Dynamo omni worker" in document["error"]
    else:
        assert check_run.returncode == (0 if document["ok"] else 1)
        assert document["log_file"] is None  # -v: the log lines went to stderr


@pytest.fixture(scope="module")
def check_report(dynamo_host: DynamoHost, check_run: subprocess.CompletedProcess) -> dict:
    report = json.loads(check_run.stdout)
    report["_exit"] = check_run.returncode
    return report


@pytest.fixture(scope="module")
def check_text(dynamo_host: DynamoHost) -> subprocess.CompletedProcess:
    """``check`` as a person runs it (default output)."""
    return _run("check", "--size", "1024x768")


def test_check_default_output_is_the_tables_and_the_verdict(
    check_text: subprocess.CompletedProcess, check_run: subprocess.CompletedProcess
) -> None:
    out = check_text.stdout
    assert check_text.returncode == 0, check_text.stderr[-2000:]
    for heading in ("With omni-sizefix:", "Without omni-sizefix", "size (WxH)", "RESULT: "):
        assert heading in out
    assert out.rstrip().splitlines()[-1].startswith("RESULT: ")
    log_file = Path(re.search(r"^Host and plugin log lines: (.+) \(-v", out, re.M).group(1))
    logged = log_file.read_text()
    found = [marker for marker in HOST_LOG_MARKERS if marker in logged]
    assert found, logged[-2000:]  # the pipeline did log: into the file
    for marker in HOST_LOG_MARKERS:
        assert marker not in out and marker not in check_text.stderr, marker
    for marker in found:  # -v brings them back (on stderr)
        assert marker in check_run.stderr, marker
    log_file.unlink()


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
