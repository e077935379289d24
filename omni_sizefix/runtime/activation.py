"""``register()`` (the entry point), ``patch()``, ``unpatch()`` and ``is_patched()``.

``register()``, called by vLLM-Omni's and vLLM's plugin loaders (maybe often, in many processes),
is cheap, idempotent, imports no host module and never raises: Dynamo is patched now if imported,
else right after its import (a post-import hook). The host's own import errors (e.g.
``OmniVersionMismatchError``) stay unchanged: ``patch()`` steps aside with one WARNING.
"""

from __future__ import annotations

import importlib
import importlib.abc
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from omni_sizefix.runtime import patches, settings
from omni_sizefix.runtime.patches import warn_once

logger = logging.getLogger("omni_sizefix")

UTILS_MODULE = "dynamo.vllm.omni.utils"
STAGE_WORKER_MODULE = "dynamo.vllm.omni.stage_worker"
OMNI_MODULE = "vllm_omni.entrypoints.omni"  # vLLM-Omni's offline entrypoint (patches.offline)

_lock = threading.RLock()
_announced_disabled = False


# --- a post-import hook ---------------------------------------------------------------------


class _LoaderProxy(importlib.abc.Loader):
    """Delegates to the real loader and calls the callback after ``exec_module``."""

    def __init__(self, loader: Any, callback: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: Any) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            self._callback(module)
        except Exception:  # pragma: no cover - callbacks guard themselves too
            logger.exception("omni-sizefix: post-import hook for %s failed", module.__name__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class PostImportFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that wraps only the loaders of the watched module names."""

    def __init__(self, callbacks: dict[str, Callable[[ModuleType], None]]) -> None:
        self.callbacks = callbacks

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> Any:
        callback = self.callbacks.get(fullname)
        if callback is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _LoaderProxy(spec.loader, callback)
                return spec
        return None


#: The hook ``register()`` installs and ``unpatch()`` removes.
_finder: PostImportFinder | None = None


# --- the entry point ------------------------------------------------------------------------


def register() -> None:
    """Plugin entry point: arrange for Dynamo's omni modules to be patched."""
    global _finder, _announced_disabled
    try:
        patches.adopt_vllm_format()
        with _lock:
            if settings.disabled():
                if not _announced_disabled:
                    _announced_disabled = True
                    logger.info(
                        "omni-sizefix: disabled by %s; the host is left untouched",
                        settings.DISABLE_VAR,
                    )
                return
            if _finder is None:
                _finder = PostImportFinder(
                    {UTILS_MODULE: _on_import, STAGE_WORKER_MODULE: _on_import,
                     OMNI_MODULE: _on_offline_import}
                )  # fmt: skip
                sys.meta_path.insert(0, _finder)
            if OMNI_MODULE in sys.modules:
                _on_offline_import(sys.modules[OMNI_MODULE])
            if UTILS_MODULE in sys.modules:
                patch()
    except Exception as exc:  # the host's plugin loader must never see our errors
        logger.warning("omni-sizefix: not activated: %s: %s", type(exc).__name__, exc)


def _on_offline_import(module: ModuleType) -> None:
    """vLLM-Omni's offline ``Omni.generate`` (``patches.offline``; never raises)."""
    from omni_sizefix.runtime.patches import offline

    offline.activate(module)


def _on_import(module: ModuleType) -> None:
    """Patch on Dynamo's import; a stage worker imported after that is patched on its own."""
    try:
        if module.__name__ == UTILS_MODULE or not is_patched():
            patch()
            return
        from omni_sizefix.runtime.patches import parse

        done = parse.rebind_new_aliases() + _patch_stage_worker(module)
        if done:
            logger.info("omni-sizefix: patched %s", ", ".join(done))
    except Exception as exc:
        logger.warning("omni-sizefix: not activated: %s: %s", type(exc).__name__, exc)


def _patch_stage_worker(module: ModuleType | None) -> list[str]:
    """Wrap the stage worker's targets once it is fully imported (else its own hook does)."""
    from omni_sizefix.runtime.patches import stage_worker

    if module is None or not hasattr(module, "OmniStageWorker"):
        return []
    return stage_worker.apply(module)


def is_patched() -> bool:
    """True while Dynamo's functions are wrapped."""
    parse = sys.modules.get("omni_sizefix.runtime.patches.parse")
    return parse is not None and parse.is_patched()


def patch() -> bool:
    """Patch Dynamo now (importing it if needed); True when the wrappers are in place. False,
    with one WARNING: kill switch, unsupported host, Dynamo does not import, signature changed."""
    from omni_sizefix.runtime import hooks
    from omni_sizefix.runtime.patches import parse

    with _lock:
        if settings.disabled():
            return False
        was_patched = parse.is_patched()
        if not was_patched and (problems := settings.unsupported_hosts()):
            warn_once("unsupported",
                      "omni-sizefix: stepping aside, host not supported: %s. The host runs "
                      "unpatched; see `omni-sizefix doctor`.", "; ".join(problems))  # fmt: skip
            return False
        for problem in settings.problems():
            warn_once(problem, "omni-sizefix: %s", problem)
        try:
            utils = sys.modules.get(UTILS_MODULE) or importlib.import_module(UTILS_MODULE)
        except Exception as exc:  # also the host's own import-time version check
            warn_once("import",
                      "omni-sizefix: stepping aside, cannot import %s: %s: %s (the host's own "
                      "error, unchanged; the host runs unpatched)",
                      UTILS_MODULE, type(exc).__name__, exc)  # fmt: skip
            return False
        try:
            done = parse.apply(utils)
        except LookupError as exc:
            warn_once("signature",
                      "omni-sizefix: stepping aside, the host changed: %s. The host runs "
                      "unpatched.", exc)  # fmt: skip
            return False
        done += _patch_stage_worker(sys.modules.get(STAGE_WORKER_MODULE))
        try:
            hooks.get_plugin_manager()  # the entry-point scan now, not in the first request
        except Exception as exc:  # the first request then tries again
            warn_once("plugins", "omni-sizefix: hook plugins not loaded yet: %s", exc)
        if not was_patched:
            logger.info(
                "omni-sizefix: patched %s; ai-dynamo %s, vllm-omni %s; omni-sizefix %s, size "
                "policy %s; where the size goes is decided per model when the worker loads "
                "its stage config",
                ", ".join(done),
                settings.installed_version("ai-dynamo"),
                settings.installed_version("vllm-omni"),
                settings.__version__,
                settings.size_policy().value,
            )
        elif done:
            logger.info("omni-sizefix: patched %s", ", ".join(done))
        return True


def unpatch() -> bool:
    """Restore the original host functions and stop watching imports; True if restored."""
    global _finder
    with _lock:
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        _finder = None
        restored = False
        for name in ("parse", "stage_worker"):
            module = sys.modules.get(f"omni_sizefix.runtime.patches.{name}")
            restored = bool(module is not None and module.remove()) or restored
        offline = sys.modules.get("omni_sizefix.runtime.patches.offline")
        offline_restored = bool(offline is not None and offline.deactivate())
        pipelines = sys.modules.get("omni_sizefix.runtime.pipelines")
        if pipelines is not None:
            pipelines.forget()
        if restored:
            logger.info("omni-sizefix: unpatched; Dynamo's original functions are back")
        return restored or offline_restored
