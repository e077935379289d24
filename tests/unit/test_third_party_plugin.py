"""A third-party distribution with an ``omni_sizefix`` entry point takes effect."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from host_shapes import dynamo_1_2_image
from plugin_install import example_plugin_dir  # noqa: F401 (a fixture)
from worker_plan import repair_with_shape

from omni_sizefix.runtime import hooks
from omni_sizefix.runtime.settings import Shape


@pytest.fixture
def installed(example_plugin_dir: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    monkeypatch.syspath_prepend(str(example_plugin_dir))
    importlib.invalidate_caches()
    hooks.reset_plugin_manager()
    yield
    sys.modules.pop("omni_sizefix_example_plugin", None)


REQUEST = {"model": "example/square-only", "prompt": "apple", "size": "1024x512"}


def test_without_the_plugin_the_default_decides() -> None:
    fixed = repair_with_shape(REQUEST, ["image"], dynamo_1_2_image(512, 1024), Shape.BOTH)
    assert fixed["sampling_params_list"] == {"height": 512, "width": 1024}


def test_installed_plugin_is_loaded_and_asked_first(installed) -> None:
    assert hooks.third_party_plugins() == ["square_only"]
    fixed = repair_with_shape(REQUEST, ["image"], dynamo_1_2_image(512, 1024), Shape.BOTH)
    assert fixed["sampling_params_list"] == {"height": 512, "width": 512}
    assert fixed["original_prompt"]["height"] == 512
    # Other models still get the default behaviour.
    other = {**REQUEST, "model": "zai-org/GLM-Image"}
    fixed = repair_with_shape(other, ["image"], dynamo_1_2_image(512, 1024), Shape.BOTH)
    assert fixed["sampling_params_list"] == {"height": 512, "width": 1024}


def test_plugins_variable_can_exclude_it(installed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_PLUGINS", "")
    hooks.reset_plugin_manager()
    assert hooks.third_party_plugins() == []
