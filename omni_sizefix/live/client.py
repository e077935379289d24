"""A minimal standard-library client for ``/v1/images/generations`` (live checks and tests).

``generate`` posts one request and returns an ``ImageReply``: HTTP status, the server's
message on errors, and for a success the decoded PNG's size and the prior grid its pixels
show (``fake_engines.decode_prior``). Pillow decodes the image (every host has it).
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from omni_sizefix import glm_layout


@dataclass
class ImageReply:
    """What came back for one request."""

    status: int
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
        """The server's error message, as close to the text as the body allows."""
        if self.error:
            return self.error
        body = self.body
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict):
                return str(err.get("message") or err)
            return str(body.get("message") or err)
        return str(body)


def parse_size(size: str) -> tuple[int, int]:
    """(width, height) of ``WIDTHxHEIGHT``."""
    width, height = size.lower().split("x")
    return int(width), int(height)


def decode_image(b64: str) -> tuple[tuple[int, int], list[int] | None]:
    """(width, height) and shown prior of a base64 PNG."""
    from PIL import Image

    from omni_sizefix.live.fake_engines import decode_prior

    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        image.load()
        return image.size, decode_prior(image)


def generate(
    url: str,
    size: str | None,
    *,
    model: str = "zai-org/GLM-Image",
    prompt: str = "a red apple on a white table",
    response_format: str = "b64_json",
    nvext: dict | None = None,
    timeout: float = 300.0,
) -> ImageReply:
    """POST one image request to ``url`` (the frontend's base URL)."""
    payload: dict[str, Any] = {"model": model, "prompt": prompt, "response_format": response_format}
    if size is not None:
        payload["size"] = size
    if nvext is not None:
        payload["nvext"] = nvext
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/images/generations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return ImageReply(status=0, latency_s=time.monotonic() - started, error=str(exc))
    latency = time.monotonic() - started
    text = raw.decode("utf-8", "replace")
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    reply = ImageReply(status=status, latency_s=latency, body=body)
    if status == 200 and isinstance(body, dict):
        data = body.get("data") or []
        b64 = data[0].get("b64_json") if data and isinstance(data[0], dict) else None
        if b64:
            try:
                reply.size, reply.prior = decode_image(b64)
            except Exception as exc:
                reply.error = f"not an image: {type(exc).__name__}: {exc}"
        else:
            reply.error = "no b64_json image in the response"
    return reply


def verdict(reply: ImageReply, size: str) -> str:
    """``ok`` when the image has the requested size and shows the prior cut for it."""
    if reply.status != 200:
        return f"HTTP {reply.status}: {reply.message[:160]}"
    if reply.size is None:
        return reply.message[:160]
    width, height = parse_size(size)
    if reply.size != (width, height):
        return f"wrong size {reply.size[0]}x{reply.size[1]}"
    if reply.prior is None:
        return "no prior grid in the picture"
    if reply.prior != glm_layout.expected_prior(height, width):
        return "wrong picture (prior cut for another size)"
    return "ok"
