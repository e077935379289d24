"""The seams of the ``omni-sizefix`` command line: one size check, one exit-code rule, one
JSON document on stdout whatever goes wrong, ``-q``/``-v`` everywhere, no colour, and
``check``'s log file kept. Each case runs the command in a fresh process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import omni_sizefix
from omni_sizefix.tools import cli

SOURCE = str(Path(omni_sizefix.__file__).parent.parent)
SUBCOMMANDS = ("doctor", "check", "smoke", "stage-config")
#: Not ``WIDTHxHEIGHT`` with two positive integers and a lower-case ``x``.
MALFORMED = ("0x0", "1024X768", "-1x5", "512", "abcxdef", "512x0")
#: What each subcommand needs besides ``--size`` to get that far (smoke: a URL nobody serves).
REQUIRED = {"check": [], "smoke": ["--url", "http://127.0.0.1:9"], "stage-config": []}
ANSI = re.compile(r"\x1b\[")


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": SOURCE, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from omni_sizefix.tools import cli; cli.run()", *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def document(proc: subprocess.CompletedProcess) -> dict:
    """stdout parsed whole: it must be exactly one JSON document."""
    return json.loads(proc.stdout)


@pytest.mark.parametrize("size", MALFORMED)
@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_a_malformed_size_is_a_usage_error_in_every_subcommand(command: str, size: str) -> None:
    proc = run(command, *REQUIRED[command], "--json", f"--size={size}")
    doc = document(proc)
    assert proc.returncode == doc["exit_code"] == cli.EXIT_USAGE
    assert size in doc["error"] and size in proc.stderr


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_usage_errors_are_one_json_document(command: str) -> None:
    proc = run(command, *REQUIRED.get(command, []), "--json", "--no-such-option")
    doc = document(proc)
    assert proc.returncode == doc["exit_code"] == cli.EXIT_USAGE
    assert "--no-such-option" in doc["error"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_quiet_and_verbose_on_every_subcommand(command: str) -> None:
    parser = cli.build_parser()
    extra = ["--url", "http://127.0.0.1:9"] if command == "smoke" else []
    assert parser.parse_args([command, *extra, "-q"]).quiet
    assert parser.parse_args([command, *extra, "-v"]).verbose
    with pytest.raises(cli.UsageError, match="not allowed with"):
        parser.parse_args([command, *extra, "-q", "-v"])


def test_check_with_a_log_file_it_cannot_write(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "dir" / "x.log"
    proc = run("check", "--json", "--log-file", str(missing))
    doc = document(proc)
    assert proc.returncode == doc["exit_code"] == cli.EXIT_USAGE
    assert str(missing) in doc["error"] and not missing.parent.exists()


def test_check_keeps_the_log_file_whose_path_it_prints(tmp_path: Path) -> None:
    if _host_installed():
        pytest.skip("a host is installed here; tests/host runs check against it")
    proc = run("check", "--size", "512x512", env={"TMPDIR": str(tmp_path)})
    assert proc.returncode == cli.EXIT_USAGE  # no host here: could not check
    printed = re.search(r"host and plugin log lines: (\S+)", proc.stderr)
    assert printed, proc.stderr
    assert Path(printed.group(1)).is_file()  # kept after the command ended


def test_doctor_on_a_config_without_a_host_is_one_document(tmp_path: Path) -> None:
    if _host_installed():
        pytest.skip("a host is installed here; tests/host runs doctor against it")
    legacy = yaml.safe_load(cli_stage_config_text("legacy"))
    legacy["stage_args"][1]["custom_process_input_func"] = (
        "omni_sizefix.processors.glm_image.ar2diffusion"  # what 0.1.0's shipped config named
    )
    path = tmp_path / "glm_image.yaml"
    path.write_text(yaml.safe_dump(legacy))
    proc = run("doctor", "--json", "--stage-configs-path", str(path))
    doc = document(proc)
    assert proc.returncode == doc["exit_code"] == cli.EXIT_USAGE  # could not check it here
    problems = {f["label"]: f["problem"] for f in doc["findings"]}
    assert "not installed here" in problems["CANNOT CHECK"]
    assert "cannot start once omni-sizefix is uninstalled" in problems["ATTENTION"]


def test_an_unexpected_error_is_still_one_document(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text(
        "from omni_sizefix.tools import cli, doctor\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('FAKE failure inside doctor')\n"
        "doctor.diagnose = broken\n"
        "cli.run()\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script), "doctor", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SOURCE},
        timeout=300,
    )
    doc = document(proc)
    assert proc.returncode == doc["exit_code"] == cli.EXIT_USAGE
    assert "unexpected error: RuntimeError: FAKE failure inside doctor" in doc["error"]
    assert "Traceback" in proc.stderr  # the detail, for the person at the terminal


def test_stage_config_names_the_nearest_sizes_for_an_unrenderable_one() -> None:
    proc = run("stage-config", "--schema", "deploy", "--size", "1000x700")
    assert proc.returncode == cli.EXIT_PROBLEM and proc.stdout == ""
    # GLM-Image renders sides that are multiples of 32: 1000 -> 992/1024, 700 -> 672/704.
    for width in (992, 1024):
        for height in (672, 704):
            assert f"{width}x{height}" in proc.stderr
    assert "invalid choice" not in proc.stderr


def test_stage_config_output_writes_the_shipped_file(tmp_path: Path) -> None:
    out = tmp_path / "glm_image.yaml"
    proc = run("stage-config", "--schema", "deploy", "--size", "1024x768", "--output", str(out))
    assert proc.returncode == 0 and proc.stdout.strip() == str(out)
    assert out.read_text() == cli_stage_config_text("deploy")
    assert run("stage-config", "--schema", "deploy", "--pod-per-stage").returncode == 2


@pytest.mark.parametrize("no_color", [None, "1"])
def test_no_colour_is_ever_written(no_color: str | None) -> None:
    env = {"NO_COLOR": no_color} if no_color else {}
    for argv in (["doctor"], ["stage-config", "--schema", "legacy", "--size", "1000x700"]):
        proc = run(*argv, env=env)
        # The CLI's own lines; a host imported by doctor may colour its own log lines.
        own = [ln for ln in proc.stderr.splitlines() if ln.startswith("omni-sizefix")]
        assert not ANSI.search(proc.stdout) and not ANSI.search("\n".join(own)), argv


def cli_stage_config_text(schema: str) -> str:
    from omni_sizefix.tools import stage_configs

    return stage_configs.config_path("glm_image", schema).read_text()


def _host_installed() -> bool:
    try:
        import dynamo.vllm.omni.stage_worker  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("flag", ["-v", "-q", None])
def test_verbose_shows_the_plugins_debug_lines_and_quiet_hides_the_host(
    tmp_path: Path, flag: str | None
) -> None:
    script = tmp_path / "noisy.py"
    script.write_text(
        "import logging\n"
        "from omni_sizefix.tools import cli, doctor\n"
        "real = doctor.diagnose\n"
        "def noisy(*args, **kwargs):\n"
        "    print('FAKE host line')  # as an imported host prints while the command runs\n"
        "    logging.getLogger('omni_sizefix').debug('FAKE plugin decision')\n"
        "    return real(*args, **kwargs)\n"
        "doctor.diagnose = noisy\n"
        "cli.run()\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script), "doctor", "--json", *([flag] if flag else [])],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SOURCE},
        timeout=300,
    )
    assert document(proc)["exit_code"] == proc.returncode  # stdout stays the document
    assert ("FAKE plugin decision" in proc.stderr) == (flag == "-v")
    assert ("FAKE host line" in proc.stderr) == (flag != "-q")
