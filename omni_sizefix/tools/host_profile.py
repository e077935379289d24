"""The installed host, described once per process: versions and behavioural probes.

``profile()`` reads only distribution metadata and the installed ai-dynamo's source (cheap,
imports no host module): versions and whether they are supported, the signatures of the parse
targets, whether the stage worker loads its processor through ``_load_processor(func_path)``
(the run-time stage-1 fix) and receives ``stage_config``/``stage_id`` (the stage-0 budget).
``doctor``, ``check`` and ``stage_configs`` read it (the worker-side runtime reads versions
and the supported range from ``omni_sizefix.runtime.settings`` only).

``probed()`` adds what only running the host's code can tell (it imports the host, as a
stage worker does; ``doctor``, ``doctor --stage-configs-path`` and ``stage_configs`` read it,
through ``omni_sizefix.tools.host``, which first makes vLLM-Omni importable on a machine
without an accelerator; nothing here depends on the tools):

* **loader**: the installed Dynamo's own ``init_omni_stage`` is run up to its stage-config
  loader call, with vLLM-Omni's loader functions replaced by recorders that carry their real
  signatures. Whether the call binds, and whether Dynamo unpacks as many values as vLLM-Omni's
  function returns, says whether this release pair can start at all (ai-dynamo 1.6 calls
  ``load_and_resolve_stage_configs(..., stage_configs_path=None, ...)``, which vLLM-Omni 0.28
  does not take; 1.4 passes ``trust_remote_code``, which 0.22 does not take). The call is
  recorded (function, positional count, keyword names, calling Dynamo function):
  ``stage_configs`` loads configs the same way. No version table.
* **stage 1**: the dispatch convention and the ``cumulative_token_ids`` bridge, from
  ``omni_sizefix.runtime.patches.stage_worker.profile`` (computed there, once per process).

The stage-1 prompt *shape* is not decided here: per model, by ``omni_sizefix.runtime.pipelines``
(``SHAPE_DECISION``).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import os
import sys
import textwrap
import threading
from dataclasses import dataclass, field, replace
from importlib import metadata
from types import ModuleType, SimpleNamespace
from typing import Any

from omni_sizefix.runtime import settings
from omni_sizefix.runtime.patches import describe, signature_text
from omni_sizefix.runtime.patches.parse import SUPPORTED_SIGNATURES, expected_signatures
from omni_sizefix.runtime.settings import SUPPORTED_HOSTS
from omni_sizefix.tools import hosts
from omni_sizefix.tools.hosts import (
    STAGE_WORKER_FILE,
    STAGE_WORKER_MODULE,
    UTILS_FILE,
    UTILS_MODULE,
)

#: vLLM-Omni's stage-config loaders that some ai-dynamo release calls (1.1: the first;
#: 1.2-1.5: the second; 1.6+: the third, else the second).
LOADER_NAMES = (
    "load_stage_configs_from_yaml",
    "load_and_resolve_stage_configs",
    "resolve_omni_config",
)
#: Where the stage-1 prompt shape comes from (not part of this profile).
SHAPE_DECISION = "omni_sizefix.runtime.pipelines.plan"


@dataclass(frozen=True)
class LoaderProbe:
    """How the installed Dynamo calls vLLM-Omni's stage-config loader, and whether it fits."""

    #: True: the call binds and the result unpacks; False: the workers cannot start;
    #: None: the probe could not tell (``detail`` says why).
    startable: bool | None
    #: The call as Dynamo makes it, e.g. ``load_and_resolve_stage_configs(2 positional,
    #: kwargs=, trust_remote_code=)``.
    call: str = ""
    #: The installed vLLM-Omni function's signature.
    target: str = ""
    #: One sentence: what does not match (or why the probe could not tell).
    detail: str = ""
    #: The vLLM-Omni function called, e.g. ``load_and_resolve_stage_configs``.
    function: str = ""
    #: How many positional arguments the call passes, and its keyword names in order.
    positional: int = 0
    keywords: tuple[str, ...] = ()
    #: The Dynamo function making the call, e.g. ``dynamo.vllm.omni.stage_worker.init_omni_stage``.
    caller: str = ""


@dataclass(frozen=True)
class HostProfile:
    """What this process found about the installed host."""

    versions: dict[str, str | None]
    #: Distribution -> in the supported range (None: not installed).
    supported: dict[str, bool | None]
    #: One sentence per installed host distribution outside the supported range.
    unsupported: tuple[str, ...]
    #: ``parse_omni_request`` / ``build_original_prompt`` -> ``async (request, ...)``
    #: (empty: no ai-dynamo source to read).
    signatures: dict[str, str] = field(default_factory=dict)
    #: One sentence per target whose signature the patch does not take.
    signature_problems: tuple[str, ...] = ()
    #: ``_load_processor(func_path)`` is called by ``OmniStageWorker.__init__`` (None: no Dynamo).
    stage1_runtime_fix: bool | None = None
    #: Where the stage-0 budget is read (None: nowhere on this host).
    stage0_budget_source: str | None = None
    #: The behavioural probes below were run (``probed()``).
    probed: bool = False
    loader: LoaderProbe | None = None
    #: ``stage_worker.Stage1Profile`` of this host (None: not probed or not available).
    stage1: Any = None
    stage1_error: str | None = None

    @property
    def startable(self) -> bool | None:
        """False when the installed release pair cannot start a stage worker."""
        return None if self.loader is None else self.loader.startable


# --- static: metadata and source ----------------------------------------------------------


def _dynamo_source(relative: str) -> ast.Module | None:
    try:
        path = metadata.distribution("ai-dynamo").locate_file(relative)
        return ast.parse(path.read_text(encoding="utf-8"))
    except (metadata.PackageNotFoundError, OSError, SyntaxError, ValueError):
        return None


def signatures_from_source() -> dict[str, str] | None:
    """Signatures of the parse targets as written in the installed ai-dynamo (no import)."""
    tree = _dynamo_source(UTILS_FILE)
    if tree is None:
        return None
    found: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name in SUPPORTED_SIGNATURES
        ):
            names = tuple(a.arg for a in node.args.args)
            found[node.name] = signature_text(names, isinstance(node, ast.AsyncFunctionDef))
    return found


def signature_problems(signatures: dict[str, str]) -> tuple[str, ...]:
    """One sentence per parse target whose signature the patch does not take."""
    problems = []
    for name in SUPPORTED_SIGNATURES:
        found = signatures.get(name, describe(None))
        expected = expected_signatures(name)
        if found not in expected:
            problems.append(f"{UTILS_MODULE}.{name} is {found}; expected {' or '.join(expected)}")
    return tuple(problems)


def stage_worker_targets() -> tuple[bool | None, str | None]:
    """(run-time stage-1 fix possible, stage-0 budget source) from the stage worker's source."""
    tree = _dynamo_source(STAGE_WORKER_FILE)
    if tree is None:
        return None, None
    loader = any(
        isinstance(node, ast.FunctionDef)
        and node.name == "_load_processor"
        and [a.arg for a in node.args.args] == ["func_path"]
        for node in tree.body
    )
    init = next(
        (
            item
            for node in tree.body
            if isinstance(node, ast.ClassDef) and node.name == "OmniStageWorker"
            for item in node.body
            if isinstance(item, ast.FunctionDef) and item.name == "__init__"
        ),
        None,
    )
    called = init is not None and any(
        isinstance(sub, ast.Name) and sub.id == "_load_processor" for sub in ast.walk(init)
    )
    params = [a.arg for a in init.args.args + init.args.kwonlyargs] if init else []
    budget = (
        "stage-0 max_tokens of the config the stage-0 worker loads "
        "(OmniStageWorker.__init__(stage_config, stage_id))"
        if {"stage_config", "stage_id"} <= set(params)
        else None
    )
    return loader and called, budget


def build() -> HostProfile:
    """Compute the static profile now (``profile()`` caches it)."""
    versions = hosts.host_versions()
    supported: dict[str, bool | None] = {}
    unsupported = []
    for dist, spec in SUPPORTED_HOSTS.items():
        version = versions.get(dist)
        supported[dist] = None if version is None else settings.is_supported(dist, version)
        if version is not None and not supported[dist]:
            unsupported.append(f"{dist} {version} is outside the supported range {spec}")
    signatures = signatures_from_source()
    fixable, budget = stage_worker_targets()
    return HostProfile(
        versions=versions,
        supported=supported,
        unsupported=tuple(unsupported),
        signatures=signatures or {},
        signature_problems=signature_problems(signatures) if signatures is not None else (),
        stage1_runtime_fix=fixable,
        stage0_budget_source=budget,
    )


@functools.lru_cache(maxsize=1)
def profile() -> HostProfile:
    """The static profile of this process's host (no host import; computed once)."""
    return build()


# --- behavioural: the stage-config loader call --------------------------------------------


class _Stop(BaseException):
    """Ends the probe run of ``init_omni_stage`` (a BaseException: no `except Exception` in
    the host swallows it)."""


class _Poison:
    """Stands for the loader's results: the first use after unpacking ends the probe."""

    def _stop(self, *args: Any, **kwargs: Any) -> Any:
        raise _Stop

    __getattr__ = __iter__ = __len__ = __bool__ = __fspath__ = __getitem__ = _stop
    __str__ = __repr__ = __eq__ = __hash__ = __contains__ = _stop


def return_arity(function: Any) -> int | None:
    """n when every ``return`` of ``function`` returns an n-tuple literal, else None."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(function))))
    except (OSError, TypeError, SyntaxError):
        return None
    func = tree.body[0] if tree.body else None
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    lengths = set()
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return):
            lengths.add(len(node.value.elts) if isinstance(node.value, ast.Tuple) else None)
        stack.extend(ast.iter_child_nodes(node))
    return lengths.pop() if len(lengths) == 1 else None


class _Recorder:
    """Takes the place of one vLLM-Omni loader; binds each call to the real signature."""

    def __init__(self, name: str, real: Any) -> None:
        self.name = name
        self.signature = inspect.signature(real)
        self.arity = return_arity(real)
        self.call = ""
        self.positional = 0
        self.keywords: tuple[str, ...] = ()
        self.caller = ""
        self.error: str | None = None
        self.returned = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        frame = sys._getframe(1)
        self.caller = f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"
        self.positional, self.keywords = len(args), tuple(kwargs)
        parts = [f"<{len(args)} positional>"] if args else []
        self.call = f"{self.name}({', '.join(parts + [f'{k}=...' for k in kwargs])})"
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            self.error = str(exc)
            raise _Stop from None
        self.returned = True
        return tuple(_Poison() for _ in range(self.arity)) if self.arity else _Poison()


_probe_lock = threading.Lock()


def _install_recorders(modules: list[ModuleType]) -> tuple[list[_Recorder], list[tuple]]:
    """Replace every loader Dynamo can reach from ``modules``; (recorders, undo list)."""
    owners: list[ModuleType] = []
    for module in modules:
        owners.append(module)
        owners.extend(
            value
            for value in vars(module).values()
            if isinstance(value, ModuleType) and value.__name__.startswith("vllm_omni")
        )
    recorders: list[_Recorder] = []
    undo: list[tuple] = []
    made: dict[int, _Recorder] = {}
    for owner in owners:
        for name in LOADER_NAMES:
            try:  # getattr: vLLM-Omni's packages may resolve names lazily (module __getattr__)
                real = getattr(owner, name, None)
            except Exception:
                real = None
            if not callable(real) or isinstance(real, _Recorder):
                continue
            recorder = made.get(id(real))
            if recorder is None:
                recorder = made[id(real)] = _Recorder(name, real)
                recorders.append(recorder)
            undo.append((owner, name, real))
            setattr(owner, name, recorder)
    return recorders, undo


def _versions_phrase(versions: dict[str, str | None]) -> tuple[str, str]:
    return (
        f"ai-dynamo {versions.get('ai-dynamo')}",
        f"vLLM-Omni {versions.get('vllm-omni')}",
    )


def probe_loader(stage_worker: ModuleType, utils: ModuleType | None, versions: dict) -> LoaderProbe:
    """Run the host's ``init_omni_stage`` up to its stage-config loader call (see module doc)."""
    dynamo, omni = _versions_phrase(versions)
    init = getattr(stage_worker, "init_omni_stage", None)
    if not inspect.iscoroutinefunction(init):
        return LoaderProbe(None, detail=f"{dynamo} has no coroutine init_omni_stage to probe")
    config = SimpleNamespace(
        stage_id=0,
        model="zai-org/GLM-Image",
        stage_configs_path=os.devnull,
        engine_args=SimpleNamespace(trust_remote_code=False),
    )
    with _probe_lock:
        recorders, undo = _install_recorders([m for m in (stage_worker, utils) if m is not None])
        outcome: BaseException | None = None
        try:
            coroutine = init(None, config, [])
            try:
                coroutine.send(None)
            except BaseException as exc:  # the probe's end, or what the host raised
                outcome = exc
            finally:
                coroutine.close()
        finally:
            for owner, name, real in reversed(undo):
                setattr(owner, name, real)
    if not recorders:
        return LoaderProbe(None, detail=f"{dynamo}: no vLLM-Omni stage-config loader found")
    called = next((r for r in recorders if r.call), None)
    if called is None:
        what = f"{type(outcome).__name__}: {outcome}" if outcome is not None else "nothing"
        return LoaderProbe(
            None, detail=f"{dynamo}'s init_omni_stage did not reach a loader ({what})"
        )
    target = f"{called.name}{called.signature}"
    recorded = {
        "function": called.name,
        "positional": called.positional,
        "keywords": called.keywords,
        "caller": called.caller,
    }
    if called.error is not None:
        return LoaderProbe(
            False,
            called.call,
            target,
            f"{dynamo} cannot start with {omni}: its stage worker calls {called.call}, which "
            f"{omni}'s {called.name} does not accept ({called.error})",
            **recorded,
        )
    if isinstance(outcome, ValueError) and "values to unpack" in str(outcome):
        return LoaderProbe(
            False,
            called.call,
            target,
            f"{dynamo} cannot start with {omni}: its stage worker unpacks the result of "
            f"{called.name} differently from what {omni} returns ({outcome})",
            **recorded,
        )
    return LoaderProbe(
        True, called.call, target, f"{dynamo} loads stage configs with {called.call}", **recorded
    )


def _import_host() -> tuple[ModuleType | None, ModuleType | None, str | None]:
    """(stage_worker, utils, error); error None and modules None: no Dynamo installed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        stage_worker = importlib.import_module(STAGE_WORKER_MODULE)
        utils = importlib.import_module(UTILS_MODULE)
    except ImportError as exc:
        if (
            getattr(exc, "name", None) == "dynamo"
            and settings.installed_version("ai-dynamo") is None
        ):
            return None, None, None
        return None, None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # the host's own import-time failure
        return None, None, f"{type(exc).__name__}: {exc}"
    return stage_worker, utils, None


def probe(static: HostProfile) -> HostProfile:
    """``static`` plus the behavioural probes (imports the host)."""
    if static.versions.get("ai-dynamo") is None:
        return replace(static, probed=True)
    stage_worker, utils, error = _import_host()
    if stage_worker is None and error is None:
        return replace(static, probed=True)
    dynamo, omni = _versions_phrase(static.versions)
    if error is not None:
        loader = LoaderProbe(
            False,
            detail=f"{dynamo} cannot start with {omni}: {STAGE_WORKER_MODULE} does not import "
            f"({error})",
        )
        return replace(static, probed=True, loader=loader)
    loader = probe_loader(stage_worker, utils, static.versions)
    signatures = {name: describe(getattr(utils, name, None)) for name in SUPPORTED_SIGNATURES}
    stage1, stage1_error = None, None
    try:
        stage1 = stage_worker.profile()
    except Exception as exc:  # no GLM-Image processor in this vLLM-Omni, ...
        stage1_error = f"{type(exc).__name__}: {exc}"
    return replace(
        static,
        probed=True,
        loader=loader,
        signatures=signatures,
        signature_problems=signature_problems(signatures),
        stage1=stage1,
        stage1_error=stage1_error,
    )


@functools.lru_cache(maxsize=1)
def probed() -> HostProfile:
    """The full profile of this process's host (imports it; computed once)."""
    return probe(profile())


def clear() -> None:
    """Forget both profiles (tests that change the environment)."""
    profile.cache_clear()
    probed.cache_clear()
