"""The README's install commands work as written: its fenced block marked
``<!-- readme-test: install -->`` runs in a scratch virtual environment, from a copy of the
project, and leaves an installed ``omni-sizefix`` built from the wheel it made."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import omni_sizefix

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- readme-test: install -->"
NOT_PROJECT = shutil.ignore_patterns(
    ".git", ".nox", ".cells", ".venv*", "dist", "build", "reports", "__pycache__",
    "*.egg-info", ".pytest_cache", ".ruff_cache", ".hypothesis",
)  # fmt: skip


def readme_block(marker: str = MARKER) -> str:
    """The fenced ``bash`` block right after ``marker`` in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(marker) == 1, f"the README must mark one block with {marker}"
    found = re.match(r"\s*```bash\n(.*?)```", text.split(marker, 1)[1], re.S)
    assert found, f"no ```bash block right after {marker}"
    return found.group(1)


def test_the_marked_block_builds_a_wheel_and_installs_it() -> None:
    block = readme_block()
    assert re.search(r"pip wheel .*-w dist", block) and "pip install dist/" in block
    assert "pip install omni-sizefix" not in block  # not on the public index yet


def _scratch_venv(path: Path) -> Path:
    """A virtual environment with pip, as the README assumes of the worker environment."""
    proc = subprocess.run([sys.executable, "-m", "venv", str(path)], capture_output=True)
    if proc.returncode != 0 and shutil.which("uv"):
        shutil.rmtree(path, ignore_errors=True)
        proc = subprocess.run(
            ["uv", "venv", "--seed", "-q", "-p", sys.executable, str(path)], capture_output=True
        )
    if proc.returncode != 0:
        pytest.skip(f"cannot make a virtual environment with pip here: {proc.stderr[-500:]!r}")
    return path / "bin"


def test_readme_install_commands_work_as_written(tmp_path: Path) -> None:
    if importlib.util.find_spec("vllm_omni") or importlib.util.find_spec("dynamo"):
        pytest.skip("a host is installed here; the cell without host runs the README install")
    clone = tmp_path / "clone"
    shutil.copytree(ROOT, clone, ignore=NOT_PROJECT)
    bin_dir = _scratch_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(VIRTUAL_ENV=str(bin_dir.parent), PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block()],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    wheels = sorted((clone / "dist").glob("omni_sizefix-*.whl"))
    assert [w.name for w in wheels] == [f"omni_sizefix-{omni_sizefix.__version__}-py3-none-any.whl"]
    version = subprocess.run(
        [str(bin_dir / "omni-sizefix"), "--version"], capture_output=True, text=True, env=env
    )
    assert version.stdout.strip() == f"omni-sizefix {omni_sizefix.__version__}"
    doctor = subprocess.run(
        [str(bin_dir / "omni-sizefix"), "doctor", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    report = json.loads(doctor.stdout)
    assert report["entry_points"] == {
        "vllm_omni.general_plugins": True,
        "vllm.general_plugins": True,
    }
    assert report["omni_sizefix"] == omni_sizefix.__version__
    config = subprocess.run(
        [str(bin_dir / "omni-sizefix"), "stage-config", "--schema", "legacy"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    shipped = Path(config.stdout.strip())
    assert shipped.is_file() and shipped.is_relative_to(bin_dir.parent)  # from the wheel
