"""Which sizes a live topology can serve: the release's frontend and the stage-0 budget.

Two limits apply before the plugin's size policy does:

- the frontends of ai-dynamo up to 1.3 take only the OpenAI ``size`` enum (any other
  string gets HTTP 400 ``unknown variant``, measured; see ``omni_sizefix.tools.smoke``);
- stage 0's ``max_tokens`` in the stage config the workers load caps the size whose
  scaffold fits (vLLM-Omni's legacy GLM-Image config: 1281 tokens, up to 1024x1024); with
  the plugin a larger size is rejected up front (``patches/stage_worker.py``).
"""

from __future__ import annotations

from omni_sizefix.runtime import settings, sizing
from omni_sizefix.tools import smoke

OPENAI_ENUM = frozenset(smoke.OPENAI_ENUM_SIZES)


def dynamo_version() -> tuple[int, int]:
    """(major, minor) of the installed ai-dynamo ((0, 0) when there is none)."""
    from packaging.version import Version

    text = settings.installed_version("ai-dynamo")
    if text is None:
        return (0, 0)
    version = Version(text)
    return (version.major, version.minor)


def enum_only() -> bool:
    """True when this release's frontend takes only the OpenAI size enum (ai-dynamo < 1.4)."""
    return dynamo_version() < (1, 4)


def frontend_takes(size: str) -> bool:
    """True when this release's frontend forwards ``size`` to the workers."""
    return not enum_only() or size in OPENAI_ENUM


def fits(size: str, max_tokens: int | None) -> bool:
    """True when the size's GLM-Image scaffold fits stage-0 ``max_tokens`` (None: no limit)."""
    width, height = sizing.parse_size(size)
    return max_tokens is None or sizing.tokens_needed(height, width) <= max_tokens


def servable(sizes: tuple[str, ...] | list[str], max_tokens: int | None) -> list[str]:
    """The sizes the frontend takes and the budget holds, in the given order."""
    return [s for s in sizes if frontend_takes(s) and fits(s, max_tokens)]
