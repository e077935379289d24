"""The one classifier of requests by a worker's output modalities.

Mirrors the host: ``dynamo.common.utils.output_modalities.parse_request_type`` classifies a
request by the worker's first output modality (image, video, audio, else text/chat), and
ai-dynamo >= 1.2 sizes a chat request as an image request when any output modality is
``image``. Only image and video requests carry a size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omni_sizefix.runtime.geometry import Kind

_SIZED: frozenset[str] = frozenset({"image", "video"})


def _name(modality: Any) -> str:
    if isinstance(modality, str):
        return modality.lower()
    raise TypeError(f"an output modality must be a name, got {modality!r}")


def request_kind(output_modalities: Iterable[str]) -> Kind | None:
    """``image``, ``video``, or None (text, chat, audio) for a worker's output modalities.

    Raises TypeError when ``output_modalities`` is not a collection of names.
    """
    names = [_name(modality) for modality in output_modalities]
    if not names:
        return None
    if names[0] in _SIZED:
        return names[0]  # type: ignore[return-value]
    return "image" if "image" in names else None  # a chat on an image worker (>= 1.2)
