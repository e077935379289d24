"""``register()`` (the entry point), ``patch()``, ``unpatch()`` and ``is_patched()``.

``register()`` is called by vLLM-Omni's and vLLM's general-plugin loaders, possibly many
times and in many processes. It is cheap, idempotent, imports no host module, and never
raises: Dynamo is patched now if it is already imported, otherwise right after import.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from types import ModuleType

from omni_sizefix.runtime import host_import, import_hooks, log, settings, version_policy
from omni_sizefix.runtime.host_modules import STAGE_WORKER_MODULE, UTILS_MODULE
from omni_sizefix.runtime.package import __version__

logger = logging.getLogger("omni_sizefix")


_lock = threading.RLock()
_registered = False
_announced_disabled = False


def register() -> None:
    """Plugin entry point: arrange for Dynamo's omni utils to be patched."""
    global _registered, _announced_disabled
    try:
        log.adopt_vllm_format()
        with _lock:
            if settings.disabled():
                if not _announced_disabled:
                    _announced_disabled = True
                    logger.info(
                        "omni-sizefix: disabled by %s; the host is left untouched",
                        settings.DISABLE_VAR,
                    )
                return
            if not _registered:
                _registered = True
                import_hooks.when_imported((UTILS_MODULE, STAGE_WORKER_MODULE), _on_import)
            if UTILS_MODULE in sys.modules:
                patch()
    except Exception as exc:  # the host's plugin loader must never see our errors
        logger.warning("omni-sizefix: not activated: %s: %s", type(exc).__name__, exc)


def _on_import(module: ModuleType) -> None:
    try:
        if module.__name__ == UTILS_MODULE or not is_patched():
            patch()
        else:
            from omni_sizefix.runtime.patches import dynamo_omni_utils

            rebound = dynamo_omni_utils.rebind_new_aliases()
            if rebound:
                logger.info("omni-sizefix: rebound %s", ", ".join(rebound))
            if module.__name__ == STAGE_WORKER_MODULE:
                done = _patch_stage_processor(module)
                if done:
                    logger.info("omni-sizefix: patched %s", ", ".join(done))
    except Exception as exc:
        logger.warning("omni-sizefix: not activated: %s: %s", type(exc).__name__, exc)


def _patch_stage_processor(stage_worker: ModuleType | None) -> list[str]:
    """Wrap the stage worker's processor loader (see ``patches.dynamo_stage_processor``).

    Applied once the parse patch is in place; a failure here logs one WARNING, changes
    nothing and leaves the parse patch in place.
    Called again when the stage worker is imported after ``utils`` (a partially imported
    module is skipped until then). Returns what was newly patched.
    """
    from omni_sizefix.runtime.patches import (
        dynamo_omni_utils,
        dynamo_stage_budget,
        dynamo_stage_processor,
    )

    if stage_worker is None or not hasattr(stage_worker, "OmniStageWorker"):
        return []
    done = []
    for target, what in (
        (dynamo_stage_processor, "stage-1 processor left as the host loads it"),
        (dynamo_stage_budget, "stage-0 budget not read (sizes checked up to the policy's max)"),
    ):
        try:
            if target.apply(stage_worker):
                done.append(f"{STAGE_WORKER_MODULE}.{target.TARGET}")
        except LookupError as exc:
            dynamo_omni_utils.warn_once(
                target.__name__, "omni-sizefix: %s, the host changed: %s", what, exc
            )
    return done


def is_patched() -> bool:
    """True while Dynamo's functions are wrapped."""
    if "omni_sizefix.runtime.patches.dynamo_omni_utils" not in sys.modules:
        return False
    from omni_sizefix.runtime.patches import dynamo_omni_utils

    return dynamo_omni_utils.is_patched()


def patch() -> bool:
    """Patch Dynamo now (importing it if needed); True when the wrappers are in place.

    Steps aside with one WARNING, returning False, when the kill switch is set, the host
    is outside the supported range, or a target's signature is not the expected one.
    """
    from omni_sizefix.runtime.patches import dynamo_omni_utils as target

    with _lock:
        if settings.disabled():
            return False
        was_patched = target.is_patched()
        if not was_patched:
            problems = version_policy.unsupported_hosts()
            if problems:
                target.warn_once(
                    "unsupported",
                    "omni-sizefix: stepping aside, host not supported: %s. The host runs "
                    "unpatched; see `omni-sizefix doctor`.",
                    "; ".join(problems),
                )
                return False
        for problem in settings.problems():
            target.warn_once(problem, "omni-sizefix: %s", problem)
        try:
            utils = sys.modules.get(UTILS_MODULE) or importlib.import_module(UTILS_MODULE)
        except Exception as exc:  # also the host's own import-time check (see host_import)
            host_import.step_aside(target.warn_once, UTILS_MODULE, exc)
            return False
        try:
            done = target.apply(utils)
        except LookupError as exc:
            target.warn_once(
                "signature",
                "omni-sizefix: stepping aside, the host changed: %s. The host runs unpatched.",
                exc,
            )
            return False
        stage_done = _patch_stage_processor(sys.modules.get(STAGE_WORKER_MODULE))
        _build_plugin_manager(target)
        if not was_patched:
            done += stage_done
            logger.info(
                "omni-sizefix: patched %s; ai-dynamo %s, vllm-omni %s; omni-sizefix %s, size "
                "policy %s; where the size goes is decided per model when the worker loads "
                "its stage config",
                ", ".join(done),
                version_policy.installed_version("ai-dynamo"),
                version_policy.installed_version("vllm-omni"),
                __version__,
                settings.size_policy().value,
            )
        else:
            if done:
                logger.info("omni-sizefix: rebound %s", ", ".join(done))
            if stage_done:
                logger.info("omni-sizefix: patched %s", ", ".join(stage_done))
        return True


def _build_plugin_manager(target: ModuleType) -> None:
    """Build the hook plugin manager now (entry-point scan), not in the first request."""
    try:
        from omni_sizefix.runtime import plugins

        plugins.get_plugin_manager()
    except Exception as exc:  # the first request then tries again
        target.warn_once("plugins", "omni-sizefix: hook plugins not loaded yet: %s", exc)


def unpatch() -> bool:
    """Restore the original host functions and stop watching imports; True if restored."""
    global _registered
    with _lock:
        import_hooks.remove_hooks()
        _registered = False
        if "omni_sizefix.runtime.patches.dynamo_omni_utils" not in sys.modules:
            return False
        from omni_sizefix.runtime.patches import dynamo_omni_utils

        restored = dynamo_omni_utils.remove()
        if "omni_sizefix.runtime.pipelines" in sys.modules:
            from omni_sizefix.runtime import pipelines

            pipelines.forget()
        if "omni_sizefix.runtime.patches.dynamo_stage_processor" in sys.modules:
            from omni_sizefix.runtime.patches import dynamo_stage_budget, dynamo_stage_processor

            restored = dynamo_stage_processor.remove() or restored
            restored = dynamo_stage_budget.remove() or restored
        if restored:
            logger.info("omni-sizefix: unpatched; Dynamo's original functions are back")
        return restored
