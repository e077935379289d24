"""A third-party distribution with an ``omni_sizefix`` entry point takes effect."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from host_shapes import dynamo_1_2_image

from omni_sizefix.runtime import plugins, repair
from omni_sizefix.runtime.settings import Shape

PLUGIN_SOURCE = Path(__file__).resolve().parents[1] / "support" / "example_hook_plugin"


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


def _install(target: Path) -> None:
    """Install the example distribution into ``target`` with uv or pip, as a user would."""
    command = installer()
    if command is None:
        pytest.skip("no installer here: neither uv (on PATH or in .venv-tools/) nor pip")
    cmd = [*command, "--no-deps", "--target", str(target), str(PLUGIN_SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"installing the example plugin failed:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="module")
def example_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    _install(target)
    assert list(target.glob("omni_sizefix_example_plugin-*.dist-info"))
    return target


@pytest.fixture
def installed(example_plugin_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(example_plugin_dir))
    importlib.invalidate_caches()
    plugins.reset_plugin_manager()
    yield
    sys.modules.pop("omni_sizefix_example_plugin", None)


REQUEST = {"model": "example/square-only", "prompt": "apple", "size": "1024x512"}


def test_without_the_plugin_the_default_decides() -> None:
    fixed = repair.repair_parsed(REQUEST, ["image"], dynamo_1_2_image(512, 1024), Shape.BOTH)
    assert fixed["sampling_params_list"] == {"height": 512, "width": 1024}


def test_installed_plugin_is_loaded_and_asked_first(installed) -> None:
    assert plugins.third_party_plugins() == ["square_only"]
    fixed = repair.repair_parsed(REQUEST, ["image"], dynamo_1_2_image(512, 1024), Shape.BOTH)
    assert fixed["sampling_params_list"] == {"height": 512, "width": 512}
    assert fixed["original_prompt"]["height"] == 512
    # Other models still get the default behaviour.
    other = {**REQUEST, "model": "zai-org/GLM-Image"}
    fixed = repair.repair_parsed(other, ["image"], dynamo_1_2_image(512, 1024), Shape.BOTH)
    assert fixed["sampling_params_list"] == {"height": 512, "width": 1024}


def test_plugins_variable_can_exclude_it(installed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_PLUGINS", "")
    plugins.reset_plugin_manager()
    assert plugins.third_party_plugins() == []
