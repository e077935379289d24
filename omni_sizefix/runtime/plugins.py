"""The pluggy plugin manager: default plugins first, then third-party entry points.

Built once per process, on first use (not in ``register()``), so that worker start-up
does not pay for scanning entry points.

A pluggy hook call costs about 1 µs, a quarter of the host's own parse. ``hook_calls()``
therefore hands out, per hook, the default implementation itself when it is that hook's
only implementation, and pluggy's caller otherwise; the table is rebuilt whenever a
plugin is registered or unregistered, so third-party plugins always take effect.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from omni_sizefix import hookspecs
from omni_sizefix.runtime import settings

PROJECT_NAME = "omni_sizefix"
ENTRY_POINT_GROUP = "omni_sizefix"
DEFAULT_PLUGINS: tuple[str, ...] = ("omni_sizefix.runtime.default_plugin",)

logger = logging.getLogger("omni_sizefix")

_pm: pluggy.PluginManager | None = None
_lock = threading.Lock()


@dataclass(frozen=True)
class HookCalls:
    """One callable per hook, each called with the hook's keyword arguments."""

    target_geometry: Callable[..., Any]
    stage0_prompt: Callable[..., Any]
    original_prompt: Callable[..., Any]
    sampling_params: Callable[..., Any]
    #: True when every hook is answered by the default implementation alone.
    defaults_only: bool


_calls: HookCalls | None = None
_calls_lock = threading.RLock()


class _PluginManager(pluggy.PluginManager):
    """Forgets the ``hook_calls()`` table whenever the set of plugins changes."""

    def register(self, plugin: object, name: str | None = None) -> str | None:
        with _calls_lock:
            try:
                return super().register(plugin, name)
            finally:
                _forget_calls()

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        with _calls_lock:
            try:
                return super().unregister(plugin, name)
            finally:
                _forget_calls()


def _forget_calls() -> None:
    global _calls
    with _calls_lock:
        _calls = None


def hook_calls() -> HookCalls:
    """Per hook: the default implementation when it is the only one, else pluggy's caller."""
    calls = _calls
    return calls if calls is not None else _build_calls()


def _build_calls() -> HookCalls:
    global _calls
    pm = get_plugin_manager()
    with _calls_lock:
        chosen: dict[str, Callable[..., Any]] = {}
        defaults_only = True
        for short in ("target_geometry", "stage0_prompt", "original_prompt", "sampling_params"):
            caller = getattr(pm.hook, f"omni_sizefix_{short}")
            impls = caller.get_hookimpls()
            alone = len(impls) == 1 and impls[0].plugin_name in DEFAULT_PLUGINS
            if alone and not (impls[0].hookwrapper or impls[0].wrapper):
                chosen[short] = impls[0].function
            else:
                chosen[short] = caller
                defaults_only = False
        _calls = HookCalls(**chosen, defaults_only=defaults_only)
        return _calls


def _load_third_party(pm: pluggy.PluginManager) -> None:
    allowed = settings.allowed_plugins()
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            logger.info(
                "omni-sizefix: hook plugin %r skipped (%s)", entry_point.name, settings.PLUGINS_VAR
            )
            continue
        if pm.get_plugin(entry_point.name) is not None:
            continue
        try:
            pm.register(entry_point.load(), name=entry_point.name)
        except Exception as exc:  # a broken third-party plugin must not stop the worker
            logger.warning(
                "omni-sizefix: hook plugin %r (%s) not loaded: %s: %s",
                entry_point.name,
                entry_point.value,
                type(exc).__name__,
                exc,
            )
            continue
        logger.info(
            "omni-sizefix: hook plugin %r loaded from %s", entry_point.name, entry_point.value
        )


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first call."""
    global _pm
    if _pm is None:
        with _lock:
            if _pm is None:
                pm = _PluginManager(PROJECT_NAME)
                pm.add_hookspecs(hookspecs)
                for module_name in DEFAULT_PLUGINS:
                    pm.register(importlib.import_module(module_name), name=module_name)
                _load_third_party(pm)
                _pm = pm
    return _pm


def third_party_plugins() -> list[str]:
    """Names of the registered plugins that are not shipped with this package."""
    pm = get_plugin_manager()
    return sorted(name for name, _ in pm.list_name_plugin() if name not in DEFAULT_PLUGINS)


def reset_plugin_manager() -> None:
    """Forget the plugin manager so the next use rebuilds it (tests, ``unpatch``)."""
    global _pm
    with _lock:
        _pm = None
    _forget_calls()
