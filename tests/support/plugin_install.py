"""Install the example third-party hook plugin (``example_hook_plugin``) as a user would."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent / "example_hook_plugin"
REPO = Path(__file__).resolve().parents[2]


def installer() -> list[str] | None:
    """An installer command, as a user of this environment has one: uv on PATH, the uv that
    ``scripts/test.sh`` keeps in ``.venv-tools/``, or this interpreter's pip (a cell built by
    uv has no pip; ``scripts/cell.sh`` puts only the cell's own ``bin`` on PATH)."""
    for uv in (shutil.which("uv"), REPO / ".venv-tools" / "bin" / "uv"):
        if uv and Path(uv).is_file():
            return [str(uv), "pip", "install", "--python", sys.executable]
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "install"]
    return None


def install(target: Path) -> None:
    """Install the example distribution into ``target`` (skip when no installer is here)."""
    command = installer()
    if command is None:
        message = "no installer here: neither uv (on PATH or in .venv-tools/) nor pip"
        if os.environ.get("CI"):  # CI installs its tools: a missing one is a failure there
            pytest.fail(message)
        pytest.skip(message)
    cmd = [*command, "--no-deps", "--target", str(target), str(SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"installing the example plugin failed:\n{proc.stdout}\n{proc.stderr}")
    assert list(target.glob("omni_sizefix_example_plugin-*.dist-info"))


@pytest.fixture(scope="module")
def example_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed example distribution (put it on ``sys.path``)."""
    target = tmp_path_factory.mktemp("site")
    install(target)
    return target
