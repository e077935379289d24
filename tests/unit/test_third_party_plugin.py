"""A third-party distribution with an ``omni_sizefix`` entry point takes effect."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from host_shapes import dynamo_1_2_image
from plugin_install import example_plugin_dir  # noqa: F401 (a fixture)

from omni_sizefix.runtime import plugins, repair
from omni_sizefix.runtime.settings import Shape


@pytest.fixture
def installed(example_plugin_dir: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
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
