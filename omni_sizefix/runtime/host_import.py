"""Upstream change: Dynamo's import-time vLLM/vLLM-Omni version check.

Target
    ``activation.patch()``, the one place the plugin imports ``dynamo.vllm.omni.utils``
    itself.
Why
    ai-dynamo's main branch calls a version check from the ``dynamo.vllm.omni`` package
    ``__init__`` that raises ``OmniVersionMismatchError`` (a ``RuntimeError``, not an
    ``ImportError``) unless vLLM and vLLM-Omni share major.minor. ``patch()`` caught only
    ``ImportError``, so in such an environment it would raise the host's error from the
    plugin's public API, in processes that never serve Dynamo's omni path as well.
How
    Any exception from importing the host makes ``patch()`` step aside with one WARNING
    that names the host's own error unchanged (type and message). The plugin never imports
    the host from ``register()``; a process that imports Dynamo itself sees the host's error
    exactly as without the plugin (the post-import hook runs only after a successful import).
Upstream
    ai-dynamo/dynamo ``components/src/dynamo/vllm/omni/version_check.py`` (main branch).
Remove when
    Never: the plugin must not change the host's import errors, whatever they are.
"""

from __future__ import annotations

from collections.abc import Callable


def step_aside(warn_once: Callable[..., None], module: str, exc: BaseException) -> None:
    """One WARNING: the plugin steps aside because the host itself does not import."""
    warn_once(
        "import",
        "omni-sizefix: stepping aside, cannot import %s: %s: %s (the host's own error, "
        "unchanged; the host runs unpatched)",
        module,
        type(exc).__name__,
        exc,
    )
