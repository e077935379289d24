"""What the live checks add to ``omni_sizefix.tools.smoke``: the picture, not only the size.

HTTP, error messages, size strings and the image bytes of a response (inline ``b64_json``
or a ``url``) are ``smoke``'s. This module adds what ``smoke`` cannot know about a real
deployment: the fake DiT's PNG shows the prior tokens it received
(``fake_engines.decode_prior``), so ``verdict`` also checks that the picture carries the
prior GLM-Image needs for the requested size. Pillow decodes the picture (every host has it).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from omni_sizefix.runtime import sizing
from omni_sizefix.runtime.patches import stage1
from omni_sizefix.tools import smoke

SERVED_MODEL = "zai-org/GLM-Image"


@dataclass
class ImageReply:
    """What came back for one request."""

    status: int
    """HTTP status (0: nothing answered)."""
    latency_s: float
    body: Any = None
    """The decoded JSON body (or the raw text when it is not JSON)."""
    size: tuple[int, int] | None = None
    """(width, height) of the returned image."""
    prior: list[int] | None = None
    """The prior tokens the picture shows (None: no prior grid in it)."""
    error: str | None = None

    @property
    def message(self) -> str:
        """The server's error message on one line (``smoke``'s reading of the body)."""
        if self.error:
            return self.error
        return smoke.HttpResult(self.status, self.body, self.latency_s).message


def decode_png(data: bytes) -> tuple[tuple[int, int], list[int] | None]:
    """(width, height) and shown prior of an encoded image."""
    from PIL import Image

    from omni_sizefix.tools.live.fake_engines import decode_prior

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size, decode_prior(image)


def decode_image(b64: str) -> tuple[tuple[int, int], list[int] | None]:
    """(width, height) and shown prior of a base64 image (e.g. the ``openai`` client's)."""
    return decode_png(base64.b64decode(b64))


def generate(
    url: str,
    size: str | None,
    *,
    model: str = SERVED_MODEL,
    prompt: str = "a red apple on a white table",
    response_format: str = "b64_json",
    nvext: dict | None = None,
    timeout: float = 300.0,
) -> ImageReply:
    """POST one image request through ``smoke.post_image`` and decode the picture."""
    try:
        result = smoke.post_image(
            url, model, size, response_format, timeout, prompt=prompt, nvext=nvext
        )
    except smoke.Unreachable as exc:
        return ImageReply(status=0, latency_s=0.0, error=str(exc))
    reply = ImageReply(status=result.status, latency_s=result.latency_s, body=result.body)
    if result.status == 200:
        try:
            reply.size, reply.prior = decode_png(
                smoke.image_bytes(result.body, response_format, timeout)
            )
        except Exception as exc:
            reply.error = f"not an image: {type(exc).__name__}: {exc}"
    return reply


def size_verdict(reply: ImageReply, size: str) -> str:
    """``ok`` when an image of the requested size came back (all real engines can show)."""
    if reply.status != 200:
        return f"HTTP {reply.status}: {reply.message[:160]}"
    if reply.size is None:
        return reply.message[:160]
    width, height = sizing.parse_size(size)
    if reply.size != (width, height):
        return f"wrong size {reply.size[0]}x{reply.size[1]}"
    return "ok"


def verdict(reply: ImageReply, size: str) -> str:
    """``ok`` when the image has the requested size and shows the prior cut for it (fake
    engines draw the prior tokens the DiT received; see ``fake_engines``)."""
    checked = size_verdict(reply, size)
    if checked != "ok":
        return checked
    width, height = sizing.parse_size(size)
    if reply.prior is None:
        return "no prior grid in the picture"
    if reply.prior != stage1.expected_prior(height, width):
        return "wrong picture (prior cut for another size)"
    return "ok"
