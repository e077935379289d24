"""vLLM-Omni's offline ``Omni(...).generate`` for GLM-Image, judged by its REAL engines on CPU.

The call of vllm-project/vllm-omni#7952: the size only in the DiT's (last stage's) sampling
params, no ``mm_processor_kwargs`` on the prompt. Each run is its own process tree
(``python -m omni_sizefix.tools.live.cpu_engines offline --size-in dit``), so that the kill
switch reaches the main process and every engine process; the installed omni-sizefix wheel
is what runs. The image size is what vLLM-Omni's DiT + VAE produced; the stage-0 prompt is
what the real AR engine received (the test-support CPU model runner logs its token count and
last ids, ``cpu_engines.stage0_prompts``). Expected values come from GLM-Image's rules (the
scaffold names the target grid H/32 W/32), never from the package.

What it cannot show: whether the picture is right (random weights draw noise).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from omni_sizefix.tools.live import cpu_engines

pytestmark = pytest.mark.live

#: Non-square, one landscape and one portrait, neither side the 1024 default.
SIZES = ("768x512", "512x1024")
PROMPT = "a red apple"
#: Seconds one run may take on 2 busy cores: engines up in 80-250 s, each request 5-40 s.
RUN_TIMEOUT_S = 1800.0


class OfflineRun:
    """One ``cpu_engines offline`` process tree: its JSON results and all it logged."""

    def __init__(self, folder: Path, disable: bool) -> None:
        env = dict(os.environ)
        env.pop("OMNI_SIZEFIX_DISABLE", None)
        if disable:
            env["OMNI_SIZEFIX_DISABLE"] = "1"
        scratch = tempfile.mkdtemp(prefix="osf-")  # short: IPC socket paths are limited
        env["TMPDIR"] = scratch  # the engines' sockets and lock files, removed below
        command = [
            sys.executable, "-m", "omni_sizefix.tools.live.cpu_engines", "offline",
            "--model", str(folder), "--size", *SIZES, "--size-in", "dit", "--prompt", PROMPT,
        ]  # fmt: skip
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the engine processes too are stopped below
        )
        try:
            self.log, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            shutil.rmtree(scratch, ignore_errors=True)
        self.returncode = proc.returncode
        self.results = []
        for line in self.log.splitlines():
            with contextlib.suppress(ValueError):
                found = json.loads(line)
                if isinstance(found, dict) and "requested" in found:
                    self.results.append(found)
        self.prompts = cpu_engines.stage0_prompts(self.log)
        cpu_engines.decode_tails(self.prompts, folder / "processor")
        print(f"offline --size-in dit, kill switch {'on' if disable else 'off'}:")
        for result in self.results:
            print(f"  {result}")
        for prompt in self.prompts:
            print(f"  stage 0 received {prompt['num_prompt_tokens']} tokens, ending "
                  f"{prompt.get('tail_text')!r}")  # fmt: skip

    def returned(self) -> dict[str, str | None]:
        return {r["requested"]: r["returned"] for r in self.results}


@pytest.fixture(scope="module")
def folder(cpu_engines_here, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omni_sizefix.tools.simulation import model_folder

    return model_folder.build(tmp_path_factory.mktemp("offline") / "glm-image", "random")


@pytest.fixture(scope="module")
def with_plugin(folder: Path) -> OfflineRun:
    return OfflineRun(folder, disable=False)


@pytest.fixture(scope="module")
def kill_switch(folder: Path) -> OfflineRun:
    return OfflineRun(folder, disable=True)


def grid_text(size: str) -> str:
    """GLM-Image's target grid for ``size`` as its scaffold writes it: H/32 W/32."""
    width, height = (int(v) for v in size.split("x"))
    return f"{height // 32} {width // 32}"


def test_offline_size_from_dit_params_comes_back(with_plugin: OfflineRun) -> None:
    assert with_plugin.returned() == {size: size for size in SIZES}, with_plugin.log[-3000:]
    assert with_plugin.returncode == 0
    assert "omni-sizefix: patched vllm_omni.entrypoints.omni.Omni.generate" in with_plugin.log


def test_offline_ar_engine_received_the_scaffold(with_plugin: OfflineRun) -> None:
    assert len(with_plugin.prompts) == len(SIZES), with_plugin.prompts
    for size, prompt in zip(SIZES, with_plugin.prompts, strict=True):
        tail = prompt.get("tail_text") or ""
        assert "<sop>" in tail and f"{grid_text(size)}<eop>" in tail, (size, prompt)


def test_offline_kill_switch_shows_the_defect(
    kill_switch: OfflineRun, with_plugin: OfflineRun
) -> None:
    """vllm-project/vllm-omni#7952 as released: the AR engine gets the bare prompt (no
    scaffold, fewer tokens) and the image does not have the requested size."""
    assert "disabled by OMNI_SIZEFIX_DISABLE" in kill_switch.log
    assert "omni-sizefix: patched" not in kill_switch.log
    assert len(kill_switch.prompts) == len(SIZES), kill_switch.prompts
    for bare, scaffolded in zip(kill_switch.prompts, with_plugin.prompts, strict=True):
        assert "tail_text" in bare and "<sop>" not in bare["tail_text"], bare
        assert bare["num_prompt_tokens"] < scaffolded["num_prompt_tokens"], (bare, scaffolded)
    returned = kill_switch.returned()
    assert set(returned) == set(SIZES), kill_switch.log[-3000:]
    assert all(returned[size] != size for size in SIZES), returned
