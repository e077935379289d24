"""Upstream change: ``parse_omni_request`` grows optional keyword parameters.

Target
    The signature check of ``dynamo.vllm.omni.utils.parse_omni_request``
    (``patches.dynamo_omni_utils.signature_problem``).
Why
    ai-dynamo's main branch has variants of the async ``parse_omni_request`` that add
    ``renderer``, ``model_config``, ``default_sampling_params``, ``chat_preprocessor``,
    ``engine`` or ``input_preprocessor_getter`` after ``default_video_fps`` (some keep
    ``tokenizer_getter``, some drop it), and a post-step in the stage worker
    (``_attach_chat_prompt_token_ids``) that adds token ids to the parsed prompts in place.
    The exact-signature check would step aside on every one of them and the fix would
    silently stop working on the next release.
How
    Also accept the async signature ``(request, output_modalities, default_video_fps, ...)``
    when every further parameter is one of the names above and has a default. The parse
    wrapper forwards ``*args, **kwargs`` untouched, and the post-step keeps the keys the
    repair writes. Any other parameter (an unknown name, a required one) still makes the
    patch step aside with one WARNING.
Upstream
    ai-dynamo/dynamo ``components/src/dynamo/vllm/omni/utils.py`` (main branch variants).
Remove when
    The oldest supported ai-dynamo release has the new signature: then it joins
    ``SUPPORTED_SIGNATURES`` and this module goes.
"""

from __future__ import annotations

import inspect
from typing import Any

#: The leading parameters every accepted variant keeps, in this order.
LEADING = ("request", "output_modalities", "default_video_fps")

#: Optional parameters seen in ai-dynamo's upstream variants; all are passed through.
KNOWN_OPTIONAL = frozenset(
    {
        "tokenizer_getter",
        "input_preprocessor_getter",
        "renderer",
        "model_config",
        "default_sampling_params",
        "chat_preprocessor",
        "engine",
    }
)


def accepts(function: Any) -> bool:
    """True when ``function`` is an upstream variant with only known optional additions."""
    if not inspect.iscoroutinefunction(function):
        return False
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    if tuple(p.name for p in parameters[: len(LEADING)]) != LEADING:
        return False
    extra = parameters[len(LEADING) :]
    if not extra:
        return False  # the plain form is in SUPPORTED_SIGNATURES already
    return all(
        p.name in KNOWN_OPTIONAL
        and p.default is not inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        for p in extra
    )
