"""Every command's ``--json`` output is one JSON document on stdout, whatever is printed
meanwhile; ``check`` keeps host and plugin log lines in a log file unless ``-v``.

Each case runs the command in a fresh process in which the command's own work is wrapped
by a FAKE noisy host (it cannot be the real one here): it prints, logs through handlers
bound to stdout before and during the command, writes to file descriptor 1, prints from C,
and prints and logs again at interpreter exit — the ways vLLM and its extensions reach
stdout. The real host is covered by ``tests/host/test_cli_check.py``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import omni_sizefix

NOISES = (
    "NOISE: print",
    "NOISE: handler made before the command",
    "NOISE: handler made during the command",
    "NOISE: file descriptor 1",
    "NOISE: C printf",
)
AT_EXIT = ("NOISE: printed at exit", "NOISE: logged at exit")

NOISY_HOST = """
import atexit, ctypes, logging, os, sys
from omni_sizefix.tools import check, cli, console, doctor, stage_configs
# FAKE host: a logger set up before the command (as an imported vLLM's) bound to stdout.
early = logging.getLogger("fake_host.early")
early.addHandler(logging.StreamHandler(sys.stdout))
early.propagate = False


def noisy(real):
    def wrapper(*args, **kwargs):
        print("NOISE: print")
        late = logging.getLogger("fake_host.late")
        late.addHandler(logging.StreamHandler(sys.stdout))  # made while the command runs
        late.propagate = False
        late.warning("NOISE: handler made during the command")
        early.warning("NOISE: handler made before the command")
        os.write(1, b"NOISE: file descriptor 1\\n")
        ctypes.CDLL(None).printf(b"NOISE: C printf\\n")  # C stdio, buffered off a terminal
        atexit.register(print, "NOISE: printed at exit")
        atexit.register(early.warning, "NOISE: logged at exit")
        return real(*args, **kwargs)

    return wrapper


doctor.diagnose = noisy(doctor.diagnose)
stage_configs.fitting_schema = noisy(stage_configs.fitting_schema)
check.run = noisy(check.run)

if os.environ.get("UNDIVERTED"):  # the command without the diversion: what users had
    args = cli.build_parser().parse_args(sys.argv[1:])
    out = console.Output()
    code = args.func(args, out)
    print(*out.results, sep="\\n")
    sys.exit(code)
cli.run()
"""


@functools.cache
def _host_installed() -> bool:
    try:
        import dynamo.vllm.omni.stage_worker  # noqa: F401
    except ImportError:
        return False
    return True


def run_noisy(tmp_path: Path, *argv: str, undiverted: bool = False) -> subprocess.CompletedProcess:
    script = tmp_path / "noisy_host.py"
    script.write_text(NOISY_HOST)
    env = dict(os.environ, PYTHONPATH=str(Path(omni_sizefix.__file__).parent.parent))
    env.pop("UNDIVERTED", None)
    if undiverted:
        env["UNDIVERTED"] = "1"
    return subprocess.run(
        [sys.executable, str(script), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


COMMANDS = {
    "doctor": ["doctor", "--json"],
    "stage-config": ["stage-config", "--json"],
    "check": ["check", "--json", "--size", "512x512"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_json_output_is_one_document_whatever_the_host_prints(tmp_path, command) -> None:
    if command == "check" and _host_installed():
        pytest.skip("a host is installed here; tests/host runs check against it")
    argv = COMMANDS[command] + (
        ["--log-file", str(tmp_path / "check.log")] if command == "check" else []
    )
    proc = run_noisy(tmp_path, *argv)
    document = json.loads(proc.stdout)  # no line stripped: stdout is the document
    assert isinstance(document, dict)
    if command == "check":  # no host here: the document says so, with the exit code
        assert proc.returncode == document["exit_code"] == 2
        assert "cannot import the Dynamo omni worker" in document["error"]
        assert "cannot import the Dynamo omni worker" in proc.stderr
        return
    for noise in (*NOISES, *AT_EXIT):  # diverted to stderr, not dropped
        assert noise in proc.stderr
    if command == "doctor" or "error" in document:  # stage-config: no vLLM-Omni to fit
        assert document["exit_code"] == proc.returncode
    else:
        assert proc.returncode == 0 and Path(document["path"]).is_file()


def test_without_the_diversion_the_noise_breaks_the_document(tmp_path) -> None:
    proc = run_noisy(tmp_path, "doctor", "--json", undiverted=True)
    for noise in NOISES[:4]:
        assert noise in proc.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(proc.stdout)


def test_stage_config_prints_only_the_path(tmp_path) -> None:
    proc = run_noisy(tmp_path, "stage-config", "--schema", "legacy")
    assert proc.returncode == 0
    assert Path(proc.stdout.removesuffix("\n")).name == "glm_image.legacy.yaml"


@pytest.mark.parametrize("verbose", [False, True])
def test_check_log_lines_go_to_a_log_file_unless_verbose(tmp_path, verbose: bool) -> None:
    if _host_installed():
        pytest.skip("a host is installed here; tests/host runs check against it")
    log_file = tmp_path / "check.log"
    argv = ["check", "--size", "512x512", "--log-file", str(log_file)]
    proc = run_noisy(tmp_path, *argv, *(["-v"] if verbose else []))
    assert proc.returncode == 2 and proc.stdout == ""
    assert "cannot import the Dynamo omni worker" in proc.stderr
    if verbose:
        assert not log_file.exists()
        for noise in NOISES:
            assert noise in proc.stderr
    else:
        logged = log_file.read_text().splitlines()
        assert f"host and plugin log lines: {log_file}" in proc.stderr
        for noise in NOISES:
            assert noise in logged and noise not in proc.stderr.splitlines()


def test_check_json_with_malformed_size_is_a_document(tmp_path) -> None:
    proc = run_noisy(tmp_path, "check", "--json", "--size", "big")
    document = json.loads(proc.stdout)
    assert proc.returncode == document["exit_code"] == 2
    assert "WIDTHxHEIGHT" in document["error"]
