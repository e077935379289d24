"""Host drift: the plugin against altered copies of this cell's real Dynamo modules.

A future Dynamo may rename, move or re-sign the functions the plugin wraps, and a
third-party hook plugin may be broken. In every such case the host must keep importing,
requests must be served exactly as the unpatched host serves them, and exactly one
WARNING from the ``omni_sizefix`` logger must say why. Only the size policy's
``SizeRejected`` (a ``ValueError``) may reach the caller.

How it runs: one subprocess imports the heavy host stack (vLLM, vLLM-Omni and the real,
unaltered ``dynamo.vllm.omni.utils``/``stage_worker``) without the plugin, then forks one
child per scenario and load order. Each child removes the two Dynamo modules from
``sys.modules``, writes altered copies of their real source text to a temporary folder
placed first on ``dynamo.vllm.omni.__path__`` (so they import under the real names,
through the ordinary import system and the plugin's post-import hook), and loads the
plugin fresh: before the host import (``before``) or after it (``after``). The real
unaltered ``parse_omni_request``, captured before the fork, is the reference result.
Running this file as a script runs that harness and prints one JSON line.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import importlib
import inspect
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import glm_upstream
import pytest
from forked import in_fork, script_code

UTILS = "dynamo.vllm.omni.utils"
STAGE_WORKER = "dynamo.vllm.omni.stage_worker"
PACKAGE = "dynamo.vllm.omni"
PARSE = "parse_omni_request"
BUILD = "build_original_prompt"
SENTINEL = "__omni_sizefix_original__"  # checked against the package's constant below

#: (name, request, output modalities); the image request is 768 wide, 512 high.
REQUESTS: list[tuple[str, dict, list[str]]] = [
    ("image", {"model": "GLM-Image", "prompt": "a red apple", "size": "768x512"}, ["image"]),
    ("image-default", {"prompt": "a red apple"}, ["image"]),
    ("chat-image", {"messages": [{"role": "user", "content": "hi"}], "size": "512x768"}, ["image"]),
    ("chat", {"messages": [{"role": "user", "content": "hello"}]}, ["text"]),
    ("video", {"model": "wan", "prompt": "an apple rolling", "size": "832x480"}, ["video"]),
]
IMAGE_SIZE = (512, 768)  # (height, width) of the "image" request

Sources = dict[str, str]


# --- source edits (applied to the real source text of this cell) ---------------------


def _function_span(source: str, name: str) -> tuple[int, int]:
    """0-based [start, end) line span of the top-level function ``name``."""
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node.lineno - 1, node.end_lineno or node.lineno
    raise LookupError(f"no top-level function {name} in the host source")


def edit_function(source: str, name: str, edit: Callable[[str], str]) -> str:
    """Replace the text of top-level function ``name`` by ``edit(text)`` (must change it)."""
    lines = source.splitlines(keepends=True)
    start, end = _function_span(source, name)
    old = "".join(lines[start:end])
    new = edit(old)
    if new == old:
        raise LookupError(f"the edit of {name} changed nothing; the harness is out of date")
    return "".join([*lines[:start], new, *lines[end:]])


def remove_function(source: str, name: str) -> str:
    """Delete top-level function ``name``."""
    lines = source.splitlines(keepends=True)
    start, end = _function_span(source, name)
    return "".join([*lines[:start], *lines[end:]])


def sub_once(pattern: str, replacement: str, text: str) -> str:
    """``re.sub`` that must match."""
    new, count = re.subn(pattern, replacement, text, count=1)
    if not count:
        raise LookupError(f"pattern {pattern!r} not found; the harness is out of date")
    return new


def rename_word(source: str, old: str, new: str) -> str:
    """Rename an identifier everywhere in ``source`` (must occur)."""
    new_source, count = re.subn(rf"\b{old}\b", new, source)
    if not count:
        raise LookupError(f"{old} not found; the harness is out of date")
    return new_source


def flip_kind(function_text: str) -> str:
    """sync -> async, or async -> sync (awaits removed)."""
    if function_text.lstrip().startswith("async def"):
        return re.sub(r"\bawait\s+", "", function_text.replace("async def", "def", 1))
    return function_text.replace("def", "async def", 1)


def move_parse_import(stage_worker: str, new_module: str) -> str:
    """Make ``stage_worker`` import parse_omni_request from ``new_module`` instead of utils."""
    tree = ast.parse(stage_worker)
    lines = stage_worker.splitlines(keepends=True)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == UTILS:
            names = [alias.name for alias in node.names]
            if PARSE not in names:
                continue
            node.names = [alias for alias in node.names if alias.name != PARSE]
            text = (ast.unparse(node) + "\n") if node.names else ""
            text += f"from {new_module} import {PARSE}\n"
            start, end = node.lineno - 1, node.end_lineno or node.lineno
            return "".join([*lines[:start], text, *lines[end:]])
    raise LookupError("stage_worker does not import parse_omni_request from utils")


@dataclass
class Scenario:
    """One drift of the host (or of a hook plugin) and how the stage worker reaches parse."""

    edit: Callable[[Sources], Sources] = lambda sources: dict(sources)
    entry_module: str = STAGE_WORKER
    parse_name: str = PARSE
    blocked: tuple[str, ...] = ()
    failing_hook: str | None = None
    hook_error: str = "RuntimeError"
    #: vLLM-Omni's GLM-Image ``ar2diffusion`` migrated to ``(source_outputs, ctx)``.
    ctx_processor: bool = False
    #: GLM-Image split AR -> DiT -> VAE (vllm-project/vllm-omni#3549): follow the size to stage 2.
    three_stage: bool = False


def _parse_renamed(s: Sources) -> Sources:
    return {name: rename_word(text, PARSE, "parse_omni_request_v2") for name, text in s.items()}


def _parse_moved(s: Sources) -> Sources:
    return {
        "utils.py": remove_function(s["utils.py"], PARSE),
        "request_parsing.py": s["utils.py"],
        "stage_worker.py": move_parse_import(s["stage_worker.py"], f"{PACKAGE}.request_parsing"),
    }


def _parse_param_added(s: Sources) -> Sources:
    add = lambda f: sub_once(  # noqa: E731
        r"(default_video_fps: int = 16)", r"\1, trace_id: str | None = None", f
    )
    return {**s, "utils.py": edit_function(s["utils.py"], PARSE, add)}


def _parse_param_renamed(s: Sources) -> Sources:
    rename = lambda f: rename_word(f, "output_modalities", "modalities")  # noqa: E731
    return {**s, "utils.py": edit_function(s["utils.py"], PARSE, rename)}


def _parse_kind_flipped(s: Sources) -> Sources:
    return {**s, "utils.py": edit_function(s["utils.py"], PARSE, flip_kind)}


def _build_param_renamed(s: Sources) -> Sources:
    rename = lambda f: rename_word(f, "nvext", "extensions")  # noqa: E731
    return {**s, "utils.py": edit_function(s["utils.py"], BUILD, rename)}


def _build_renamed(s: Sources) -> Sources:
    return {**s, "utils.py": rename_word(s["utils.py"], BUILD, "build_stage_prompt")}


def _utils_import_error(s: Sources) -> Sources:
    fail = '\nraise ImportError("simulated: a dependency of dynamo.vllm.omni.utils is missing")\n'
    return {**s, "utils.py": s["utils.py"] + fail}


#: Stand-in for ai-dynamo's ``dynamo/vllm/omni/version_check.py`` (main branch, in no
#: release yet): the same exception type (a RuntimeError) and rule (vLLM and vLLM-Omni must
#: share major.minor). The mismatched vLLM-Omni version is derived from the installed vLLM.
VERSION_CHECK = """
import importlib.metadata


class OmniVersionMismatchError(RuntimeError):
    \"\"\"vLLM and vLLM-Omni major.minor differ.\"\"\"


def check_vllm_omni_compatibility():
    vllm_version = importlib.metadata.version("vllm")
    vllm_mm = tuple(int(part) for part in vllm_version.split(".")[:2])
    omni_version = f"{vllm_mm[0]}.{vllm_mm[1] + 1}.0"  # the simulated mismatched environment
    omni_mm = tuple(int(part) for part in omni_version.split(".")[:2])
    if vllm_mm != omni_mm:
        raise OmniVersionMismatchError(
            f"vLLM {vllm_version} and vLLM-Omni {omni_version} have mismatched versions; "
            f"vLLM-Omni must be {vllm_mm[0]}.{vllm_mm[1]}.x"
        )
"""
CHECK_CALL = (
    f"from {PACKAGE}.version_check import check_vllm_omni_compatibility as _check_versions\n"
    "_check_versions()\n"
)


def _after_future_imports(source: str, text: str) -> str:
    """Insert ``text`` before the first statement that is not a docstring or __future__."""
    lines = source.splitlines(keepends=True)
    for node in ast.parse(source).body:
        is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (is_doc or is_future):
            return "".join([*lines[: node.lineno - 1], text, *lines[node.lineno - 1 :]])
    return source + text


def _version_check(s: Sources) -> Sources:
    """The package-level check runs at the import of every ``dynamo.vllm.omni`` submodule;
    here the two altered submodules run it at their import (the package stays imported)."""
    return {
        "version_check.py": VERSION_CHECK,
        "utils.py": _after_future_imports(s["utils.py"], CHECK_CALL),
        "stage_worker.py": _after_future_imports(s["stage_worker.py"], CHECK_CALL),
    }


#: Optional parameters of ai-dynamo's upstream ``parse_omni_request`` variants (main branch).
UPSTREAM_PARAMS = ("renderer", "model_config", "default_sampling_params", "chat_preprocessor")
UPSTREAM_PARSE = """

#: What the upstream-shaped parse received (the drift harness reads it).
RECEIVED = []


async def parse_omni_request(
    request: dict,
    output_modalities: list,
    default_video_fps: int = 16,
    tokenizer_getter=None,
    renderer=None,
    model_config=None,
    default_sampling_params=None,
    chat_preprocessor=None,
    engine=None,
) -> dict:
    RECEIVED.append(
        dict(
            renderer=renderer,
            model_config=model_config,
            default_sampling_params=default_sampling_params,
            chat_preprocessor=chat_preprocessor,
            engine=engine,
        )
    )
    return await _parse_omni_request_host(
        request, output_modalities, default_video_fps, tokenizer_getter
    )
"""


def _parse_upstream_params(s: Sources) -> Sources:
    """The upstream signature (the new optional parameters) over this cell's parse body."""
    rename = lambda f: sub_once(  # noqa: E731
        r"(async )?def parse_omni_request\(", r"\1def _parse_omni_request_host(", f
    )
    upstream = UPSTREAM_PARSE
    if "async def parse_omni_request(" not in s["utils.py"]:  # ai-dynamo 1.1: a sync parse
        upstream = upstream.replace("async def ", "def ").replace("return await ", "return ")
    if "tokenizer_getter" not in s["utils.py"]:  # ai-dynamo 1.1: no tokenizer_getter yet
        upstream = upstream.replace(", tokenizer_getter\n", "\n")
    return {**s, "utils.py": edit_function(s["utils.py"], PARSE, rename) + upstream}


def _stage_worker_moved(s: Sources) -> Sources:
    return {"utils.py": s["utils.py"], "stage_worker_v2.py": s["stage_worker.py"]}


SCENARIOS: dict[str, Scenario] = {
    "baseline": Scenario(),
    "parse-renamed": Scenario(_parse_renamed, parse_name="parse_omni_request_v2"),
    "parse-moved": Scenario(_parse_moved),
    "parse-param-added": Scenario(_parse_param_added),
    "parse-param-renamed": Scenario(_parse_param_renamed),
    "parse-sync-async-flipped": Scenario(_parse_kind_flipped),
    "build-param-renamed": Scenario(_build_param_renamed),
    "build-renamed": Scenario(_build_renamed),
    "utils-import-error": Scenario(_utils_import_error),
    "version-check-raises": Scenario(_version_check),
    "parse-upstream-params": Scenario(_parse_upstream_params),
    "stage1-ctx-processor": Scenario(ctx_processor=True),
    "three-stage-glm-image": Scenario(three_stage=True),
    "stage-worker-missing": Scenario(entry_module=UTILS, blocked=(STAGE_WORKER,)),
    "stage-worker-moved": Scenario(_stage_worker_moved, entry_module=f"{PACKAGE}.stage_worker_v2"),
    "hook-geometry-raises": Scenario(failing_hook="omni_sizefix_target_geometry"),
    "hook-stage0-raises": Scenario(failing_hook="omni_sizefix_stage0_prompt"),
    "hook-original-prompt-raises": Scenario(failing_hook="omni_sizefix_original_prompt"),
    "hook-sampling-raises": Scenario(failing_hook="omni_sizefix_sampling_params"),
    "hook-raises-plain-valueerror": Scenario(
        failing_hook="omni_sizefix_target_geometry", hook_error="ValueError"
    ),
    "hook-raises-size-rejected": Scenario(
        failing_hook="omni_sizefix_target_geometry", hook_error="SizeRejected"
    ),
}
ORDERS = ("before", "after")


# --- the forked child -------------------------------------------------------------------


class _Collected(logging.Handler):
    """Keeps the WARNING-and-above records of the ``omni_sizefix`` logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _fake_failing_plugin(hook: str, error: BaseException) -> object:
    """A fake third-party hook plugin whose implementation of ``hook`` raises ``error``."""
    from omni_sizefix.hookspecs import hookimpl

    def fail(*_: Any) -> Any:
        raise error

    signatures: dict[str, Callable[..., Any]] = {
        "omni_sizefix_target_geometry": lambda request, parsed, output_modalities: fail(),
        "omni_sizefix_stage0_prompt": lambda engine_inputs, geometry, request: fail(),
        "omni_sizefix_original_prompt": lambda original_prompt, geometry, shape: fail(),
        "omni_sizefix_sampling_params": lambda sampling_params, geometry, request: fail(),
    }
    plugin = type("FakeFailingHookPlugin", (), {})()
    setattr(plugin, hook, hookimpl(tryfirst=True)(signatures[hook]))
    return plugin


def _call(loop: asyncio.AbstractEventLoop, fn: Callable, request: dict, modalities: list) -> Any:
    result = fn(copy.deepcopy(request), list(modalities), 16)
    return loop.run_until_complete(result) if inspect.isawaitable(result) else result


def _outcome(loop: asyncio.AbstractEventLoop, fn: Callable, request: dict, mods: list) -> dict:
    try:
        return {"value": _call(loop, fn, request, mods)}
    except Exception as exc:
        return {
            "error": type(exc).__name__,
            "message": str(exc),
            "is_value_error": isinstance(exc, ValueError),
        }


def _sized(parsed: Any, height: int, width: int) -> bool:
    """The size is in stage 0 and the sampling overrides (``original_prompt`` is checked by
    the test, against what the installed vLLM-Omni's processor reads)."""
    try:
        stage0 = parsed["engine_inputs"]["mm_processor_kwargs"]
        sampling = parsed["sampling_params_list"]
        ok = stage0 == {"target_h": height, "target_w": width}
        ok &= (sampling["height"], sampling["width"]) == (height, width)
        return bool(ok)
    except (KeyError, TypeError):
        return False


def _version_check_extras(plugin: Any) -> dict:
    """The host's own error (the check called directly) and the plugin's API afterwards."""
    check = importlib.import_module(f"{PACKAGE}.version_check")
    try:
        check.check_vllm_omni_compatibility()
        host_error = None
    except Exception as exc:
        host_error = f"{type(exc).__name__}: {exc}"
    api = {}
    for call in ("register", "patch"):
        try:
            api[call] = repr(getattr(plugin, call)())
        except Exception as exc:
            api[call] = f"raised {type(exc).__name__}: {exc}"
    return {"host_error": host_error, "api": api}


class _FakeEngine:
    """What the upstream post-step asks the stage engine for: the chat prompt's token ids."""

    token_ids: ClassVar[list[int]] = [151331, 151333, 1008, 2009]

    async def chat_prompt_token_ids(self, request: dict) -> list[int]:
        return list(self.token_ids)


async def _attach_chat_prompt_token_ids(parsed: dict, request: dict, engine: _FakeEngine) -> None:
    """Stand-in for the stage worker's upstream post-step of the same name (main branch):
    for a chat request it writes the rendered token ids into ``engine_inputs`` and
    ``original_prompt`` in place, wrapping a prompt that is not a dict."""
    if not isinstance(request.get("messages"), list):
        return
    token_ids = await engine.chat_prompt_token_ids(request)
    for key in ("engine_inputs", "original_prompt"):
        value = parsed.get(key)
        if not isinstance(value, dict):
            value = {"prompt": value} if isinstance(value, str) else {}
            parsed[key] = value
        value["prompt_token_ids"] = list(token_ids)


#: (request name, (height, width)) checked through the upstream parse and its post-step.
UPSTREAM_SIZED = {"image": IMAGE_SIZE, "chat-image": (768, 512)}


def _upstream_call(loop: asyncio.AbstractEventLoop, entry_fn: Callable) -> dict:
    """Call the upstream-shaped parse with every new argument, then the post-step."""
    utils = sys.modules[UTILS]
    out: dict[str, Any] = {}
    for request_name, request, modalities in REQUESTS:
        if request_name not in UPSTREAM_SIZED:
            continue
        sent: dict[str, Any] = {name: object() for name in UPSTREAM_PARAMS}
        sent["engine"] = _FakeEngine()
        utils.RECEIVED.clear()
        args = (copy.deepcopy(request), list(modalities), 16)
        parsed = entry_fn(*args, tokenizer_getter=None, **sent)
        if inspect.isawaitable(parsed):  # sync on ai-dynamo 1.1, async from 1.2
            parsed = loop.run_until_complete(parsed)
        received = utils.RECEIVED[-1] if utils.RECEIVED else {}
        loop.run_until_complete(_attach_chat_prompt_token_ids(parsed, request, sent["engine"]))
        height, width = UPSTREAM_SIZED[request_name]
        out[request_name] = {
            "passed_through": set(received) == set(sent)
            and all(received[key] is value for key, value in sent.items()),
            "sized": _sized(parsed, height, width),
            "original": parsed.get("original_prompt"),
            "token_ids": parsed["engine_inputs"].get("prompt_token_ids")
            if isinstance(parsed.get("engine_inputs"), dict)
            else None,
        }
    return out


def _without_built_size(ours: dict, host: dict) -> dict:
    """``ours`` without what the ``build_original_prompt`` wrapper adds: the host's own size
    (its sampling height/width) in ``original_prompt``, top level or ``mm_processor_kwargs``."""
    value, base = ours.get("value"), host.get("value")
    if not isinstance(value, dict) or not isinstance(base, dict):
        return ours
    sampling = base.get("sampling_params_list") or {}
    size = (sampling.get("height"), sampling.get("width"))
    prompt = dict(value.get("original_prompt") or {})
    theirs = base.get("original_prompt") or {}
    kwargs = prompt.get("mm_processor_kwargs")
    if kwargs == {"target_h": size[0], "target_w": size[1]} and "mm_processor_kwargs" not in theirs:
        del prompt["mm_processor_kwargs"]
    built = "height" in prompt and "height" not in theirs
    if built and (prompt["height"], prompt.get("width")) == size:
        del prompt["height"], prompt["width"]
    return {**ours, "value": {**value, "original_prompt": prompt}}


def _migrate_glm_processor() -> None:
    """Make the installed vLLM-Omni's GLM-Image ``ar2diffusion`` a ``(source_outputs, ctx)``
    processor the way vllm-project/vllm-omni#6801 migrates processors: the new entry reads
    ``ctx.prompt``/``ctx.requires_multimodal_data`` and delegates to the old body."""
    module_name, name = glm_upstream.UPSTREAM_PROCESSOR.rsplit(".", 1)
    module = importlib.import_module(module_name)
    old = getattr(module, name)

    def ar2diffusion(source_outputs: list, ctx: Any) -> Any:
        return glm_upstream.call(
            list(source_outputs), ctx.prompt, bool(ctx.requires_multimodal_data), old
        )

    ar2diffusion.__module__ = module_name
    setattr(module, name, ar2diffusion)


def _stage1_dispatch(original_prompt: Any) -> dict:
    """Load GLM-Image's stage-1 processor through this host's ``_load_processor`` and run the
    host's own dispatch on a synthetic AR output of the image request's size."""
    stage_worker = sys.modules.get(STAGE_WORKER)
    dispatch = getattr(getattr(stage_worker, "OmniStageWorker", None), "_process_stage_inputs", 0)
    if not dispatch:
        return {"skipped": "this Dynamo has no _process_stage_inputs"}
    processor = stage_worker._load_processor(glm_upstream.UPSTREAM_PROCESSOR)
    worker = type("Worker", (), {})()
    worker._processor, worker.stage_id = processor, 1
    worker._engine_input_source, worker._requires_mm = [0], False
    stage = glm_upstream.StageListItem([glm_upstream.ar_output(*IMAGE_SIZE)])
    try:
        result = dispatch(worker, [stage], copy.deepcopy(original_prompt))
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"dit_size": glm_upstream.dit_size(result)}


def _diffusion_defaults() -> dict:
    """The diffusion stage's ``default_sampling_params`` of the installed vLLM-Omni's GLM-Image
    deploy config (in the three-stage split of vllm-omni#3549 both DiT and VAE are diffusion
    stages; the VAE stage's size defaults to 1024x1024 as the DiT's does)."""
    import yaml

    module = importlib.import_module("vllm_omni")
    path = Path(module.__file__).parent / "deploy" / "glm_image.yaml"
    if not path.exists():
        return {"height": 1024, "width": 1024}
    stages = yaml.safe_load(path.read_text("utf-8"))["stages"]
    return dict(stages[-1].get("default_sampling_params") or {})


def _three_stage(parsed: Any) -> dict:
    """Follow the parsed request through this host's own inter-stage protocol
    (``StageOutput.to_next_stage_request``, ``StageRequest``) to stage 2 of a three-stage
    GLM-Image pipeline, and build stage 2's sampling params with the host's own
    ``_build_sampling_params``."""
    from types import SimpleNamespace

    types = importlib.import_module(f"{PACKAGE}.types")
    build = sys.modules[UTILS]._build_sampling_params
    override = parsed["sampling_params_list"]
    original = parsed["original_prompt"]
    for stage_id in (0, 1):  # what stages 0 and 1 yield, and the router turns into a request
        out = {
            "original_prompt": dict(original),
            "stage_connector_refs": {str(i): {"ref": i} for i in range(stage_id + 1)},
            "finished": True,
        }
        if override is not None:
            out["sampling_params_list"] = override
        nxt = types.StageOutput.model_validate(out).to_next_stage_request("rid")
        override = types.StageRequest.model_validate(nxt).sampling_params_list
    vae = SimpleNamespace(stage_type="diffusion", default_sampling_params=_diffusion_defaults())
    params = build(vae, override)[0]
    return {"stage2_size": [getattr(params, "height", None), getattr(params, "width", None)]}


def run_child(name: str, order: str, sources: Sources, real_parse: Callable, scratch: str) -> dict:
    """One scenario in a freshly forked process; returns what the test asserts on."""
    scenario = SCENARIOS[name]
    collected = _Collected()
    logging.getLogger("omni_sizefix").addHandler(collected)
    folder = tempfile.mkdtemp(dir=scratch)  # removed with ``scratch`` by the parent
    for filename, text in scenario.edit(sources).items():
        Path(folder, filename).write_text(text, encoding="utf-8")
    package = sys.modules[PACKAGE]
    package.__path__.insert(0, folder)
    for module_name in (UTILS, STAGE_WORKER):
        sys.modules.pop(module_name, None)
        if hasattr(package, module_name.rsplit(".", 1)[1]):
            delattr(package, module_name.rsplit(".", 1)[1])
    for module_name in scenario.blocked:
        sys.modules[module_name] = None  # type: ignore[assignment]

    def load_plugin() -> Any:
        import omni_sizefix
        from omni_sizefix.runtime import hooks, sizing

        omni_sizefix.register()
        if scenario.failing_hook:
            error_type = {
                "RuntimeError": RuntimeError,
                "ValueError": ValueError,
                "SizeRejected": sizing.SizeRejected,
            }[scenario.hook_error]
            error = error_type(f"boom in {scenario.failing_hook}")
            fake = _fake_failing_plugin(scenario.failing_hook, error)
            hooks.get_plugin_manager().register(fake, name="fake_failing_hook_plugin")
        return omni_sizefix

    result: dict[str, Any] = {"import_error": None}
    if scenario.ctx_processor:
        _migrate_glm_processor()
    if order == "before":
        omni_sizefix = load_plugin()
    entry = None
    try:
        entry = importlib.import_module(scenario.entry_module)
    except Exception as exc:
        result["import_error"] = f"{type(exc).__name__}: {exc}"
    if order == "after":
        omni_sizefix = load_plugin()
    from omni_sizefix.runtime.patches import parse

    assert parse.SENTINEL == SENTINEL
    if scenario.blocked:
        try:
            importlib.import_module(STAGE_WORKER)
        except ImportError as exc:
            result["stage_worker_import_error"] = type(exc).__name__
    utils = sys.modules.get(UTILS)
    entry_fn = getattr(entry, scenario.parse_name, None) if entry is not None else None
    result.update(
        patched=omni_sizefix.is_patched(),
        utils_wrapped=utils is not None
        and any(hasattr(utils.__dict__.get(n), SENTINEL) for n in (PARSE, BUILD)),
        entry_wrapped=hasattr(entry_fn, SENTINEL),
        entry_is_async=inspect.iscoroutinefunction(entry_fn),
        requests={},
    )
    loop = asyncio.new_event_loop()
    if entry_fn is not None:
        for request_name, request, modalities in REQUESTS:
            host = _outcome(loop, real_parse, request, modalities)
            ours = _outcome(loop, entry_fn, request, modalities)
            record = {
                "equal": ours == host,
                "equal_but_built_size": _without_built_size(ours, host) == host,
                "host_error": host.get("error"),
                "error": ours.get("error"),
                "message": ours.get("message"),
                "is_value_error": ours.get("is_value_error"),
            }
            if request_name == "image":
                value = ours.get("value")
                record["sized"] = _sized(value, *IMAGE_SIZE)
                record["original"] = value.get("original_prompt") if value else None
            if not record["equal"]:
                record["diff"] = repr((host, ours))[:2000]
            result["requests"][request_name] = record
    if scenario.three_stage and entry_fn is not None:
        request = next(r for r in REQUESTS if r[0] == "image")
        try:
            result["three_stage"] = _three_stage(_call(loop, entry_fn, request[1], request[2]))
        except Exception as exc:
            result["three_stage"] = {"error": f"{type(exc).__name__}: {exc}"}
    if scenario.ctx_processor:
        image = (result["requests"].get("image") or {}).get("original")
        result["stage1"] = _stage1_dispatch(image)
    if name == "version-check-raises":
        result.update(_version_check_extras(omni_sizefix))
    if name == "parse-upstream-params" and entry_fn is not None:
        result["upstream"] = _upstream_call(loop, entry_fn)
    result["warnings"] = collected.messages
    return result


def main() -> None:
    """Import the real host stack once (no plugin), then fork one child per scenario/order."""
    sources: Sources = {}
    for module_name in (UTILS, STAGE_WORKER):
        module = importlib.import_module(module_name)
        sources[module_name.rsplit(".", 1)[1] + ".py"] = Path(module.__file__).read_text("utf-8")
    assert "omni_sizefix" not in sys.modules, "the plugin must not be loaded before the fork"
    real_parse = sys.modules[UTILS].parse_omni_request
    with tempfile.TemporaryDirectory(prefix="omni-sizefix-drift-") as scratch:
        results = {
            name: {
                order: in_fork(
                    lambda n=name, o=order: run_child(n, o, sources, real_parse, scratch)
                )
                for order in ORDERS
            }
            for name in SCENARIOS
        }
    print(json.dumps(results, default=repr))


if __name__ == "__main__":
    main()


# --- the tests ----------------------------------------------------------------------------

STEP_ASIDE = [
    ("parse-renamed", PARSE),
    ("parse-moved", PARSE),
    ("parse-param-added", PARSE),
    ("parse-param-renamed", PARSE),
    ("parse-sync-async-flipped", PARSE),
    ("build-param-renamed", BUILD),
    ("build-renamed", BUILD),
]
HOOK_FAILURES = [
    "hook-geometry-raises",
    "hook-stage0-raises",
    "hook-original-prompt-raises",
    "hook-sampling-raises",
    "hook-raises-plain-valueerror",
]


@pytest.fixture(scope="module")
def drift(dynamo_host: Any) -> dict:
    """Results of every scenario and load order (one subprocess, one fork each)."""
    if sys.platform == "win32" or not hasattr(os, "fork"):
        pytest.skip("the drift harness forks")
    from conftest import run_python

    return run_python(script_code(__file__), timeout=900)


def _result(drift: dict, name: str, order: str) -> dict:
    result = drift[name][order]
    assert "harness_error" not in result, result.get("harness_error")
    return result


def _sized_everywhere(result: dict) -> bool:
    """The image request's size reached stage 0, the sampling overrides and original_prompt
    (where the installed vLLM-Omni's own processor reads it)."""
    record = result["requests"]["image"]
    return record["sized"] and glm_upstream.carries_size(record["original"], *IMAGE_SIZE)


def _served_by_host(result: dict, built_size: bool = False) -> None:
    """Every request served exactly as the host parses it; with ``built_size``, but for the
    host's own size that the ``build_original_prompt`` wrapper wrote into ``original_prompt``."""
    assert result["requests"], "no request was served"
    key = "equal_but_built_size" if built_size else "equal"
    for request_name, record in result["requests"].items():
        assert record[key], f"{request_name}: {record.get('diff')}"


@pytest.mark.parametrize("order", ORDERS)
def test_baseline_is_patched_and_quiet(drift: dict, order: str) -> None:
    """Control: the unaltered host is patched, sized, and nothing is logged as a warning."""
    result = _result(drift, "baseline", order)
    assert result["import_error"] is None
    assert result["patched"] and result["utils_wrapped"] and result["entry_wrapped"]
    assert _sized_everywhere(result)
    assert result["warnings"] == []
    assert result["requests"]["chat"]["equal"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("name", "changed"), STEP_ASIDE)
def test_changed_host_runs_unpatched_with_one_warning(
    drift: dict, name: str, changed: str, order: str
) -> None:
    result = _result(drift, name, order)
    assert result["import_error"] is None, "the host no longer imports"
    assert not result["patched"] and not result["utils_wrapped"] and not result["entry_wrapped"]
    _served_by_host(result)
    assert len(result["warnings"]) == 1, result["warnings"]
    message = result["warnings"][0]
    assert "stepping aside" in message and changed in message and "expected" in message


@pytest.mark.parametrize("order", ORDERS)
def test_host_import_error_is_the_hosts_own(drift: dict, order: str) -> None:
    result = _result(drift, "utils-import-error", order)
    assert result["import_error"] == (
        "ImportError: simulated: a dependency of dynamo.vllm.omni.utils is missing"
    )
    assert not result["patched"]
    assert result["warnings"] == []


@pytest.mark.parametrize("order", ORDERS)
def test_missing_stage_worker_still_patches_utils(drift: dict, order: str) -> None:
    result = _result(drift, "stage-worker-missing", order)
    assert result["stage_worker_import_error"] == "ModuleNotFoundError"
    assert result["patched"] and result["entry_wrapped"]
    assert _sized_everywhere(result)
    assert result["warnings"] == []


@pytest.mark.parametrize("order", ORDERS)
def test_moved_stage_worker_is_rebound(drift: dict, order: str) -> None:
    result = _result(drift, "stage-worker-moved", order)
    assert result["import_error"] is None
    assert result["patched"] and result["entry_wrapped"]
    assert _sized_everywhere(result)
    assert result["warnings"] == []


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", HOOK_FAILURES)
def test_failing_hook_serves_host_result_with_one_warning(
    drift: dict, name: str, order: str
) -> None:
    result = _result(drift, name, order)
    assert result["patched"] and result["entry_wrapped"]
    _served_by_host(result, built_size=True)
    assert len(result["warnings"]) == 1, result["warnings"]
    hook = SCENARIOS[name].failing_hook
    assert f"boom in {hook}" in result["warnings"][0]


@pytest.mark.parametrize("order", ORDERS)
def test_size_rejected_from_a_hook_reaches_the_caller(drift: dict, order: str) -> None:
    """The documented exception: SizeRejected (a ValueError) is the client's answer."""
    result = _result(drift, "hook-raises-size-rejected", order)
    requests = result["requests"]
    for name in ("image", "image-default", "chat-image", "video"):
        assert requests[name]["host_error"] is None
        assert requests[name]["error"] == "SizeRejected" and requests[name]["is_value_error"]
        assert requests[name]["message"] == "boom in omni_sizefix_target_geometry"
    assert requests["chat"]["equal"]  # not an image request: no hook is asked
    assert result["warnings"] == []


@pytest.mark.parametrize("order", ORDERS)
def test_version_check_error_is_the_hosts_own(drift: dict, order: str) -> None:
    """Dynamo's coming import-time version check: the process sees the host's own error,
    the plugin's API never raises, and ``patch()`` steps aside with one WARNING naming it."""
    result = _result(drift, "version-check-raises", order)
    host_error = result["host_error"]
    assert host_error and host_error.startswith("OmniVersionMismatchError: ")
    assert result["import_error"] == host_error
    assert not result["patched"] and not result["utils_wrapped"]
    assert result["api"] == {"register": "None", "patch": "False"}
    assert len(result["warnings"]) == 1, result["warnings"]
    assert host_error in result["warnings"][0] and "stepping aside" in result["warnings"][0]


@pytest.mark.parametrize("order", ORDERS)
def test_upstream_parse_params_pass_through_and_stay_sized(drift: dict, order: str) -> None:
    """Dynamo's coming parse signature (renderer, model_config, default_sampling_params,
    chat_preprocessor, engine) and its post-step: every argument reaches the host
    untouched, and the result still carries the size after the post-step."""
    result = _result(drift, "parse-upstream-params", order)
    assert result["import_error"] is None
    if not result["entry_is_async"]:
        pytest.skip("this cell's parse is sync; the upstream variants are async")
    assert result["patched"] and result["entry_wrapped"]
    assert result["warnings"] == []
    assert _sized_everywhere(result) and result["requests"]["chat"]["equal"]
    for request_name, (height, width) in UPSTREAM_SIZED.items():
        record = result["upstream"][request_name]
        assert record["passed_through"], request_name
        assert record["sized"], request_name
        assert glm_upstream.carries_size(record["original"], height, width), request_name
    assert result["upstream"]["chat-image"]["token_ids"] == _FakeEngine.token_ids


@pytest.mark.parametrize("order", ORDERS)
def test_ctx_processor_runs_under_this_dispatch(drift: dict, order: str) -> None:
    """vLLM-Omni's coming ``(source_outputs, ctx)`` GLM-Image processor: this Dynamo's own
    stage-1 dispatch runs it (through the package's adapter) and the DiT gets the size."""
    result = _result(drift, "stage1-ctx-processor", order)
    stage1 = result["stage1"]
    if "skipped" in stage1:
        pytest.skip(stage1["skipped"])
    assert result["patched"]
    assert stage1.get("dit_size") == list(IMAGE_SIZE), stage1
    assert result["warnings"] == []


@pytest.mark.parametrize("order", ORDERS)
def test_three_stage_size_reaches_stage_2(drift: dict, order: str) -> None:
    """GLM-Image's coming AR -> DiT -> VAE split: the sampling overrides the parse writes
    travel through this Dynamo's inter-stage requests, and stage 2 (defaulting to
    1024x1024) is built at the requested size."""
    result = _result(drift, "three-stage-glm-image", order)
    assert result["patched"]
    assert result["three_stage"].get("stage2_size") == list(IMAGE_SIZE), result["three_stage"]
