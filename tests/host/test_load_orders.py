"""Load orders: however and however often the plugin is loaded, one wrapper layer or none.

Every order runs in a fresh process: one subprocess imports vLLM and vLLM-Omni (the slow
part) without Dynamo's omni modules and without this plugin, then forks one child per
order. Each child imports ``dynamo.vllm.omni`` itself, loads the plugin the way the order
says (vLLM's and vLLM-Omni's own general-plugin loaders, ``register()``, ``patch()``,
``unpatch()``), and takes a snapshot after every step. Running this file as a script runs
that harness and prints one JSON line.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest
from forked import in_fork, script_code

UTILS = "dynamo.vllm.omni.utils"
STAGE_WORKER = "dynamo.vllm.omni.stage_worker"
PARSE = "parse_omni_request"
BUILD = "build_original_prompt"
SENTINEL = "__omni_sizefix_original__"
IMAGE_REQUEST = {"model": "GLM-Image", "prompt": "a red apple", "size": "768x512"}


# --- the forked children ----------------------------------------------------------------


class _Collected(logging.Handler):
    """Keeps the INFO-and-above records of the ``omni_sizefix`` logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.getMessage()))


def _layers(function: Any) -> tuple[int, Any]:
    """How many plugin wrappers sit on ``function``, and the innermost object."""
    count = 0
    while hasattr(function, SENTINEL):
        function = getattr(function, SENTINEL)
        count += 1
    return count, function


def snapshot(label: str, **extra: Any) -> dict:
    """The plugin's and the host's state right now."""
    state: dict[str, Any] = {"label": label, **extra}
    state["plugin_loaded"] = "omni_sizefix" in sys.modules
    state["patched"] = state["plugin_loaded"] and sys.modules["omni_sizefix"].is_patched()
    state["finders"] = sum(type(f).__name__ == "PostImportFinder" for f in sys.meta_path)
    utils = sys.modules.get(UTILS)
    state["host_imported"] = utils is not None
    if utils is None:
        return state
    for name in (PARSE, BUILD):
        layers, inner = _layers(getattr(utils, name))
        state[f"{name}_layers"] = layers
        state[f"{name}_inner_is_host"] = (
            getattr(getattr(inner, "__code__", None), "co_filename", None) == utils.__file__
        )
        state[f"{name}_inner_id"] = id(inner)
        state[f"{name}_id"] = id(getattr(utils, name))
    stage_worker = sys.modules.get(STAGE_WORKER)
    if stage_worker is not None:
        state["stage_worker_alias_is_utils"] = (
            stage_worker.parse_omni_request is utils.__dict__[PARSE]
        )
    return state


def _sized_via_stage_worker() -> bool:
    """Parse the image request as the stage worker does; True when stage 0 carries the size."""
    import asyncio
    import inspect

    stage_worker = sys.modules[STAGE_WORKER]
    result = stage_worker.parse_omni_request(dict(IMAGE_REQUEST), ["image"], 16)
    parsed = asyncio.run(result) if inspect.isawaitable(result) else result
    stage0 = parsed["engine_inputs"]
    return isinstance(stage0, dict) and stage0.get("mm_processor_kwargs") == {
        "target_h": 512,
        "target_w": 768,
    }


def _omni_loader() -> None:
    """What ``dynamo.vllm.omni`` does at worker start: ``OmniEngineArgs.from_cli_args``."""
    import tempfile

    from vllm_omni.engine.arg_utils import OmniEngineArgs

    with tempfile.TemporaryDirectory() as model:  # a local model folder: no hub lookup
        OmniEngineArgs(model=model, worker_cls="unused")


def _vllm_loader() -> None:
    from vllm.plugins import load_general_plugins

    load_general_plugins()


def order_plugin_first() -> list[dict]:
    """vLLM's loader before Dynamo is imported, then everything else, repeatedly."""
    steps = []
    _vllm_loader()
    steps.append(snapshot("vllm-loader"))
    import omni_sizefix

    omni_sizefix.register()
    steps.append(snapshot("register-again"))
    importlib.import_module(STAGE_WORKER)
    steps.append(snapshot("host-imported", sized=_sized_via_stage_worker()))
    _omni_loader()
    steps.append(snapshot("omni-loader"))
    steps.append(snapshot("patch-again", returned=omni_sizefix.patch()))
    steps.append(snapshot("unpatched", returned=omni_sizefix.unpatch()))
    steps.append(snapshot("repatched", returned=omni_sizefix.patch()))
    omni_sizefix.unpatch()
    omni_sizefix.register()
    steps.append(snapshot("register-after-unpatch", sized=_sized_via_stage_worker()))
    omni_sizefix.unpatch()
    steps.append(snapshot("double-unpatch", returned=omni_sizefix.unpatch()))
    return steps


def order_host_first() -> list[dict]:
    """As in a Dynamo stage worker: stage_worker first, then both loaders and more."""
    steps = []
    importlib.import_module(STAGE_WORKER)
    steps.append(snapshot("host-imported"))
    _omni_loader()
    steps.append(snapshot("omni-loader", sized=_sized_via_stage_worker()))
    _vllm_loader()
    steps.append(snapshot("vllm-loader"))
    import omni_sizefix

    omni_sizefix.register()
    omni_sizefix.register()
    steps.append(snapshot("register-twice"))
    steps.append(snapshot("unpatched", returned=omni_sizefix.unpatch()))
    omni_sizefix.patch()
    steps.append(snapshot("patch-twice", returned=omni_sizefix.patch()))
    return steps


def order_unpatch_before_host() -> list[dict]:
    """``unpatch()`` before Dynamo is imported stops the pending post-import patch."""
    import omni_sizefix

    omni_sizefix.register()
    omni_sizefix.unpatch()
    importlib.import_module(STAGE_WORKER)
    return [snapshot("host-imported")]


def order_vllm_plugins_excludes_it() -> list[dict]:
    """``VLLM_PLUGINS`` without ``omni_sizefix``: neither loader loads it."""
    os.environ["VLLM_PLUGINS"] = "something_else"
    import vllm.envs

    importlib.import_module(STAGE_WORKER)
    _omni_loader()
    _vllm_loader()
    import vllm_omni.plugins

    return [
        snapshot(
            "loaders-ran",
            env_seen=vllm.envs.VLLM_PLUGINS,
            omni_loader_ran=vllm_omni.plugins.omni_plugins_loaded,
        )
    ]


def order_vllm_plugins_names_it() -> list[dict]:
    """Control for the above: ``VLLM_PLUGINS=omni_sizefix`` loads it."""
    os.environ["VLLM_PLUGINS"] = "omni_sizefix"
    importlib.import_module(STAGE_WORKER)
    _omni_loader()
    return [snapshot("loaders-ran", sized=_sized_via_stage_worker())]


def order_kill_switch() -> list[dict]:
    """``OMNI_SIZEFIX_DISABLE=1`` in every order; lifting it lets ``patch()`` work again."""
    os.environ["OMNI_SIZEFIX_DISABLE"] = "1"
    steps = []
    _vllm_loader()
    steps.append(snapshot("vllm-loader"))
    importlib.import_module(STAGE_WORKER)
    steps.append(snapshot("host-imported"))
    _omni_loader()
    import omni_sizefix

    omni_sizefix.register()
    steps.append(snapshot("patch", returned=omni_sizefix.patch()))
    del os.environ["OMNI_SIZEFIX_DISABLE"]
    steps.append(snapshot("switch-lifted", returned=omni_sizefix.patch()))
    return steps


ORDERS: dict[str, Callable[[], list[dict]]] = {
    "plugin-first": order_plugin_first,
    "host-first": order_host_first,
    "unpatch-before-host": order_unpatch_before_host,
    "vllm-plugins-excludes-it": order_vllm_plugins_excludes_it,
    "vllm-plugins-names-it": order_vllm_plugins_names_it,
    "kill-switch": order_kill_switch,
}


def run_child(name: str) -> dict:
    logger = logging.getLogger("omni_sizefix")
    logger.setLevel(logging.INFO)
    collected = _Collected()
    logger.addHandler(collected)
    steps = ORDERS[name]()
    return {"steps": {step["label"]: step for step in steps}, "records": collected.records}


def main() -> None:
    """Import vLLM/vLLM-Omni once (no Dynamo omni, no plugin), then fork one child per order."""
    importlib.import_module("vllm_omni.engine.arg_utils")
    importlib.import_module("vllm.plugins")
    for name in ("omni_sizefix", "dynamo.vllm.omni", UTILS, STAGE_WORKER):
        assert name not in sys.modules, f"{name} must not be imported before the fork"
    for variable in ("VLLM_PLUGINS", "OMNI_SIZEFIX_DISABLE"):  # each order sets its own
        os.environ.pop(variable, None)
    print(json.dumps({name: in_fork(lambda n=name: run_child(n)) for name in ORDERS}, default=repr))


if __name__ == "__main__":
    main()


# --- the tests ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orders(dynamo_host: Any) -> dict:
    """Steps of every load order (one subprocess, one fork each)."""
    if not hasattr(os, "fork"):
        pytest.skip("the load-order harness forks")
    from conftest import run_python

    return run_python(script_code(__file__), timeout=900)


def _steps(orders: dict, name: str) -> dict:
    result = orders[name]
    assert "harness_error" not in result, result.get("harness_error")
    return result["steps"]


def _no_warnings(orders: dict, name: str) -> None:
    warnings = [m for level, m in orders[name]["records"] if level in ("WARNING", "ERROR")]
    assert warnings == []


def _one_layer(step: dict) -> None:
    """Exactly one wrapper around each host function, the stage worker sees it too."""
    assert step["patched"], step["label"]
    for name in (PARSE, BUILD):
        assert step[f"{name}_layers"] == 1, step
        assert step[f"{name}_inner_is_host"], step
    if "stage_worker_alias_is_utils" in step:
        assert step["stage_worker_alias_is_utils"], step


def _host_as_released(step: dict) -> None:
    assert not step["patched"], step["label"]
    for name in (PARSE, BUILD):
        assert step[f"{name}_layers"] == 0 and step[f"{name}_inner_is_host"], step
    if "stage_worker_alias_is_utils" in step:
        assert step["stage_worker_alias_is_utils"], step


def test_plugin_loaded_before_the_host(orders: dict) -> None:
    steps = _steps(orders, "plugin-first")
    loaded = steps["vllm-loader"]
    assert loaded["plugin_loaded"] and not loaded["host_imported"] and not loaded["patched"]
    assert loaded["finders"] == 1
    assert steps["register-again"]["finders"] == 1
    _one_layer(steps["host-imported"])
    assert steps["host-imported"]["sized"]
    for label in ("omni-loader", "patch-again"):
        _one_layer(steps[label])
        assert steps[label][f"{PARSE}_id"] == steps["host-imported"][f"{PARSE}_id"], label
    assert steps["patch-again"]["returned"] is True
    _no_warnings(orders, "plugin-first")


def test_patch_unpatch_patch_restores_the_same_objects(orders: dict) -> None:
    steps = _steps(orders, "plugin-first")
    first = steps["host-imported"]
    unpatched = steps["unpatched"]
    assert unpatched["returned"] is True and unpatched["finders"] == 0
    _host_as_released(unpatched)
    for name in (PARSE, BUILD):
        assert unpatched[f"{name}_id"] == first[f"{name}_inner_id"]  # the very same object
    for label in ("repatched", "register-after-unpatch"):
        _one_layer(steps[label])
        for name in (PARSE, BUILD):
            assert steps[label][f"{name}_inner_id"] == first[f"{name}_inner_id"], label
    assert steps["repatched"]["returned"] is True
    assert steps["register-after-unpatch"]["sized"]
    assert steps["double-unpatch"]["returned"] is False
    _host_as_released(steps["double-unpatch"])


def test_plugin_loaded_after_the_host(orders: dict) -> None:
    steps = _steps(orders, "host-first")
    host = steps["host-imported"]
    assert not host["plugin_loaded"] and host["host_imported"]
    _host_as_released(host)
    _one_layer(steps["omni-loader"])
    assert steps["omni-loader"]["sized"]
    for label in ("omni-loader", "vllm-loader", "register-twice", "patch-twice"):
        _one_layer(steps[label])
        for name in (PARSE, BUILD):
            assert steps[label][f"{name}_inner_id"] == host[f"{name}_id"], label
    wrapper = steps["omni-loader"][f"{PARSE}_id"]
    assert steps["vllm-loader"][f"{PARSE}_id"] == steps["register-twice"][f"{PARSE}_id"] == wrapper
    unpatched = steps["unpatched"]
    assert unpatched["returned"] is True
    _host_as_released(unpatched)
    for name in (PARSE, BUILD):
        assert unpatched[f"{name}_id"] == host[f"{name}_id"]
    assert steps["patch-twice"]["returned"] is True
    _no_warnings(orders, "host-first")


def test_unpatch_before_host_import_cancels_the_pending_patch(orders: dict) -> None:
    step = _steps(orders, "unpatch-before-host")["host-imported"]
    assert step["finders"] == 0
    _host_as_released(step)


def test_vllm_plugins_without_it_leaves_host_unpatched(orders: dict) -> None:
    step = _steps(orders, "vllm-plugins-excludes-it")["loaders-ran"]
    assert step["env_seen"] == ["something_else"] and step["omni_loader_ran"]
    assert not step["plugin_loaded"]
    _host_as_released(step)


def test_vllm_plugins_naming_it_loads_it(orders: dict) -> None:
    step = _steps(orders, "vllm-plugins-names-it")["loaders-ran"]
    _one_layer(step)
    assert step["sized"]


def test_kill_switch_in_every_order(orders: dict) -> None:
    steps = _steps(orders, "kill-switch")
    assert steps["vllm-loader"]["plugin_loaded"] and steps["vllm-loader"]["finders"] == 0
    for label in ("host-imported", "patch"):
        _host_as_released(steps[label])
    assert steps["patch"]["returned"] is False
    disabled = [m for _, m in orders["kill-switch"]["records"] if "disabled by" in m]
    assert len(disabled) == 1, orders["kill-switch"]["records"]
    _no_warnings(orders, "kill-switch")
    assert steps["switch-lifted"]["returned"] is True  # control: this process can patch
    _one_layer(steps["switch-lifted"])
