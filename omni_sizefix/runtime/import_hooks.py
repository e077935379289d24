"""Run a callback right after a named module is imported (a small post-import hook).

Used so that ``register()`` can run before Dynamo is imported. A callback's exception
is logged and swallowed: it must never break the host's import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

logger = logging.getLogger("omni_sizefix")

Callback = Callable[[ModuleType], None]


class _LoaderProxy(importlib.abc.Loader):
    """Delegates to the real loader and calls the callback after ``exec_module``."""

    def __init__(self, loader: Any, callback: Callback) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
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
    """A meta-path finder that only wraps the loaders of the watched module names."""

    def __init__(self) -> None:
        self.callbacks: dict[str, Callback] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
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


def _finder() -> PostImportFinder | None:
    for finder in sys.meta_path:
        if isinstance(finder, PostImportFinder):
            return finder
    return None


def when_imported(module_names: Sequence[str], callback: Callback) -> None:
    """Call ``callback(module)`` after each of ``module_names`` is imported from now on."""
    finder = _finder()
    if finder is None:
        finder = PostImportFinder()
        sys.meta_path.insert(0, finder)
    for name in module_names:
        finder.callbacks[name] = callback


def remove_hooks() -> None:
    """Stop watching imports (leaves no finder behind)."""
    finder = _finder()
    if finder is not None:
        sys.meta_path.remove(finder)
