"""A third-party hook plugin, installed as a distribution, sizes a model the package does not
know, through this release's real patched ``parse_omni_request``.

The worker learns its model the production way: the real ``OmniStageWorker`` of this release
is built from a stage config naming a model no table of the package knows. The plugin is the
example distribution (``tests/support/example_hook_plugin``: for ``example/square-only`` it
renders a square of the shorter side), loaded through its ``omni_sizefix`` entry point.
Expected values come from that plugin's rule, computed here.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from conftest import DynamoHost
from plugin_install import example_plugin_dir  # noqa: F401 (a fixture)

import omni_sizefix
from omni_sizefix.runtime import hooks, pipelines

REQUEST = {"model": "example/square-only", "prompt": "apple", "size": "1024x512"}
SQUARE = min(512, 1024)  # the example plugin's rule: a square of the shorter side

#: Stage 0 of a model no table of the package knows (stage config as the YAML would give it).
UNKNOWN_STAGE0 = {
    "stage_id": 0,
    "engine_args": {"model_arch": "SquareOnlyForConditionalGeneration"},
    "default_sampling_params": {"max_tokens": 64},
}


@pytest.fixture
def installed(example_plugin_dir: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    monkeypatch.syspath_prepend(str(example_plugin_dir))
    importlib.invalidate_caches()
    hooks.reset_plugin_manager()
    yield
    omni_sizefix.unpatch()
    hooks.reset_plugin_manager()
    pipelines.forget()
    sys.modules.pop("omni_sizefix_example_plugin", None)


def _unknown_model_worker(host: DynamoHost) -> None:
    """The real stage-0 worker of this release, built from the unknown model's config."""
    from omegaconf import OmegaConf

    host.worker(OmegaConf.create(UNKNOWN_STAGE0), 0)


def _size(parsed: dict) -> tuple[int, int]:
    sampling = parsed["sampling_params_list"]
    return sampling["height"], sampling["width"]


def test_a_model_the_package_does_not_know_is_sized_by_the_hook(
    installed: None, dynamo_host: DynamoHost
) -> None:
    assert omni_sizefix.patch()
    assert hooks.third_party_plugins() == ["square_only"]
    _unknown_model_worker(dynamo_host)
    assert pipelines.plan().pipeline == "unknown", pipelines.plan()
    parsed = dynamo_host.parse(dict(REQUEST), ["image"])
    assert _size(parsed) == (SQUARE, SQUARE)


def test_without_the_plugin_the_host_size_stays(
    installed: None, dynamo_host: DynamoHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "1")
    omni_sizefix.unpatch()
    assert omni_sizefix.patch() is False
    _unknown_model_worker(dynamo_host)
    parsed = dynamo_host.parse(dict(REQUEST), ["image"])
    assert _size(parsed) == (512, 1024)  # the host's parse of "1024x512"


def test_an_unknown_model_without_a_hook_passes_through(
    installed: None, dynamo_host: DynamoHost
) -> None:
    """Other requests on the same worker: no hook claims them, the defaults write nothing."""
    request = {**REQUEST, "model": "someone/else"}
    omni_sizefix.unpatch()
    host = dynamo_host.parse(dict(request), ["image"])
    assert omni_sizefix.patch()
    _unknown_model_worker(dynamo_host)
    assert pipelines.plan().pipeline == "unknown", pipelines.plan()
    assert dynamo_host.parse(dict(request), ["image"]) == host
