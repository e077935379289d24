"""The pluggy plugin manager: default plugins first, then third-party entry points.

Built once per process when Dynamo is patched (``activation.patch``; not in ``register()``,
which stays cheap), so that no request pays for scanning entry points; on first use
otherwise.

Every hook call goes through pluggy (about 1 µs a call, four a request:
``benchmarks/overhead.py``).
"""

from __future__ import annotations

import importlib
import logging
import threading
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
                pm = pluggy.PluginManager(PROJECT_NAME)
                pm.add_hookspecs(hookspecs)
                for module_name in DEFAULT_PLUGINS:
                    pm.register(importlib.import_module(module_name), name=module_name)
                _load_third_party(pm)
                _pm = pm
    return _pm


def hooks() -> Any:
    """What to call the hooks on: the plugin manager's ``hook``."""
    return get_plugin_manager().hook


def third_party_plugins() -> list[str]:
    """Names of the registered plugins that are not shipped with this package."""
    pm = get_plugin_manager()
    return sorted(name for name, _ in pm.list_name_plugin() if name not in DEFAULT_PLUGINS)


def reset_plugin_manager() -> None:
    """Forget the plugin manager so the next use rebuilds it (tests, ``unpatch``)."""
    global _pm
    with _lock:
        _pm = None
