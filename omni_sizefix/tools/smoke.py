"""``omni-sizefix smoke``: ask a running deployment for images and check their size.

The post-rollout check for any OpenAI-compatible frontend (Dynamo's ``python -m
dynamo.frontend`` in front of real GPUs, or a topology with faked engines): per size and
response format it POSTs ``/v1/images/generations``, decodes the image it gets back (inline
``b64_json``, or fetched from the returned ``url``: ``http(s)://``, ``file://`` or ``data:``)
and compares the returned size with the requested one.

HTTP goes through the standard library (``urllib``); the image size is read with Pillow
when it is importable, else from the PNG (IHDR), JPEG (SOF), WebP (VP8/VP8L/VP8X) or GIF
header with the standard library. Nothing here imports Dynamo or vLLM.

Sizes outside the OpenAI enum (measured per release: ``python -m dynamo.frontend`` in front
of a worker that records the request it receives):

* ai-dynamo 1.1.1, 1.2.1 and 1.3.1 frontends parse ``size`` into the OpenAI enum (``auto``,
  ``256x256``, ``512x512``, ``1024x1024``, ``1792x1024``, ``1024x1792``, ``1536x1024``,
  ``1024x1536``) and answer any other value with HTTP 400 ``Failed to deserialize the JSON
  body into the target type: unknown variant `1024x768`, expected one of ...``; 1.4.2, 1.5.1
  and 1.6.1 forward any string.
* ``nvext.height``/``nvext.width`` never reach the worker: the frontend's image ``NvExt`` has
  five typed fields (``annotations``, ``negative_prompt``, ``num_inference_steps``,
  ``guidance_scale``, ``seed``) and drops other keys (the worker gets ``"nvext": {}`` on every
  release above), although the 1.1.x worker would let ``nvext`` override the size
  (``{"height", "width", **nvext}`` in ``dynamo/vllm/omni/utils.py``).
* Top-level ``height``/``width`` are dropped up to 1.4.2; 1.5.1 and 1.6.1 forward them as
  ``extra_args.media_passthrough``.

So a frontend that rejects the size as an unknown variant (ai-dynamo 1.1-1.3) has no request
field that carries another size to the worker. :func:`check_size` then retries once with
``nvext: {"height": H, "width": W}`` and no ``size`` (``size_field="nvext"``), which a frontend
that forwarded ``nvext`` sizes would serve right; on those releases the image comes back
1024x1024 and the result is ``wrong-size`` with a note naming the enum sizes they serve.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from omni_sizefix.runtime import sizing

try:  # Pillow is optional: the standard-library header reader below is the fallback.
    from PIL import Image as PILLOW
except ImportError:  # pragma: no cover - depends on the environment
    PILLOW = None

IMAGES_PATH = "/v1/images/generations"
MODELS_PATH = "/v1/models"
DEFAULT_PROMPT = "a lighthouse on a rocky coast at dawn, photograph"
#: Non-square both ways and square, all in the OpenAI enum: every ai-dynamo frontend lets
#: them through (see above), and GLM-Image renders each exactly.
DEFAULT_SIZES = ("1024x1024", "1536x1024", "1024x1536", "512x512")
RESPONSE_FORMATS = ("b64_json", "url")
#: The sizes the OpenAI enum (and so ai-dynamo 1.1.x's frontend) accepts.
OPENAI_ENUM_SIZES = (
    "256x256",
    "512x512",
    "1024x1024",
    "1792x1024",
    "1024x1792",
    "1536x1024",
    "1024x1536",
)

VERDICTS = ("ok", "wrong-size", "http-error", "not-an-image", "error")
#: Exit status of the command: every size as asked / some came back at another size /
#: the check could not be done (unreachable, unknown model, HTTP error, not an image).
EXIT_OK, EXIT_WRONG_SIZE, EXIT_ERROR = 0, 1, 2


class SmokeError(Exception):
    """The check as a whole cannot run; the message is one line meant for the operator."""


class Unreachable(SmokeError):
    """Nothing answers at the URL."""


class UnknownModel(SmokeError):
    """The model is not served there, or none (or several) could be picked."""


class NotAnImage(ValueError):
    """Bytes that are not a PNG, JPEG, WebP or GIF image."""


@dataclass
class HttpResult:
    """One HTTP exchange: status, body (parsed JSON when it is JSON, else text), latency."""

    status: int
    body: Any
    latency_s: float

    @property
    def json(self) -> dict | None:
        """The body when it is a JSON object, else None."""
        return self.body if isinstance(self.body, dict) else None

    @property
    def message(self) -> str:
        """The server's own error message, on one line (empty when there is none)."""
        return _one_line(_error_message(self.body))


@dataclass
class SizeResult:
    """The outcome for one requested size and response format."""

    requested: str
    returned: str | None
    response_format: str
    latency_s: float | None
    verdict: str
    message: str = ""
    #: Where the size went in the request that produced this result: "size" or "nvext".
    size_field: str = "size"

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass
class SmokeReport:
    """All results of one run against one deployment."""

    url: str
    model: str | None
    results: list[SizeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is at least one result and every size came back as asked."""
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        """0: all as asked; 1: some came back at another size; 2: some could not be checked."""
        if self.ok:
            return EXIT_OK
        if self.results and all(r.verdict in ("ok", "wrong-size") for r in self.results):
            return EXIT_WRONG_SIZE
        return EXIT_ERROR

    def to_dict(self) -> dict:
        return {
            "url": self.url,
            "model": self.model,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "results": [asdict(r) for r in self.results],
        }


# --- sizes ---------------------------------------------------------------------------


def format_size(width: int, height: int) -> str:
    return f"{width}x{height}"


# --- image size ----------------------------------------------------------------------


def image_size(data: bytes, decoder: str = "auto") -> tuple[int, int]:
    """``(width, height)`` of an encoded image; NotAnImage when it is none.

    ``decoder``: ``"pillow"``, ``"stdlib"`` (header reader), or ``"auto"`` (Pillow when
    importable).
    """
    if decoder not in ("auto", "pillow", "stdlib"):
        raise ValueError(f"unknown decoder {decoder!r}")
    if decoder == "pillow" or (decoder == "auto" and PILLOW is not None):
        if PILLOW is None:
            raise RuntimeError("Pillow is not installed")
        return _pillow_size(data)
    return header_size(data)


def _pillow_size(data: bytes) -> tuple[int, int]:
    try:
        with PILLOW.open(io.BytesIO(data)) as img:
            size = img.size
            img.verify()
    except Exception as exc:  # Pillow raises several types for undecodable data
        raise NotAnImage(f"{_describe(data)}: {exc}") from None
    return int(size[0]), int(size[1])


def header_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG, JPEG, WebP or GIF header (standard library only)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return width, height
    except (struct.error, IndexError):
        raise NotAnImage(f"{_describe(data)}: truncated image header") from None
    raise NotAnImage(_describe(data))


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xDA)}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise NotAnImage("JPEG without a frame header (SOF)")
        while data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker in _JPEG_NO_LENGTH:
            continue
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return width, height
        pos += length
    raise NotAnImage("JPEG without a frame header (SOF)")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise NotAnImage(f"WebP with an unknown first chunk {chunk!r}")


def _describe(data: bytes) -> str:
    if not data:
        return "empty body"
    head = data[:16]
    text = head.decode("ascii", "replace") if head.isascii() else head.hex(" ")
    return f"not a PNG, JPEG, WebP or GIF image ({len(data)} bytes, starting {text!r})"


# --- HTTP ----------------------------------------------------------------------------


def base_url(url: str) -> str:
    """The frontend's base URL: scheme added when missing, trailing ``/`` and ``/v1`` removed."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


def _request(method: str, url: str, payload: dict | None, timeout: float) -> HttpResult:
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read() or b""
    except urllib.error.URLError as exc:
        raise Unreachable(f"cannot reach {url}: {_reason(exc.reason)}") from None
    except (TimeoutError, ConnectionError) as exc:
        raise Unreachable(f"no answer from {url}: {_reason(exc)}") from None
    latency = time.perf_counter() - start
    return HttpResult(status=status, body=_parse_body(raw), latency_s=latency)


def _parse_body(raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    return str(getattr(reason, "strerror", None) or reason)


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
        if error:
            return str(error)
        return json.dumps(body)[:300]
    return str(body or "").strip()[:300]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def post_image(
    url: str,
    model: str | None,
    size: str | None,
    response_format: str = "b64_json",
    timeout: float = 300.0,
    *,
    prompt: str = DEFAULT_PROMPT,
    nvext: dict | None = None,
) -> HttpResult:
    """POST one image request and return the raw response (any status).

    ``size=None`` leaves ``size`` out of the request (e.g. with ``nvext`` carrying it).
    Raises Unreachable when nothing answers.
    """
    payload: dict[str, Any] = {"prompt": prompt, "response_format": response_format, "n": 1}
    if model is not None:
        payload["model"] = model
    if size is not None:
        payload["size"] = size
    if nvext:
        payload["nvext"] = nvext
    return _request("POST", base_url(url) + IMAGES_PATH, payload, timeout)


def list_models(url: str, timeout: float = 30.0) -> list[str]:
    """The model ids ``GET /v1/models`` lists; SmokeError when it does not answer with a list."""
    result = _request("GET", base_url(url) + MODELS_PATH, None, timeout)
    if result.status != 200:
        raise SmokeError(
            f"GET {MODELS_PATH} answered HTTP {result.status}: {result.message or 'no message'}"
        )
    data = result.json.get("data") if result.json else None
    if not isinstance(data, list):
        raise SmokeError(f"GET {MODELS_PATH} did not return a model list: {result.message}")
    return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]


def resolve_model(url: str, model: str | None, timeout: float = 30.0) -> str | None:
    """The model to ask for: ``model`` if the server serves it, else the one it serves."""
    try:
        served = list_models(url, timeout)
    except Unreachable:
        raise
    except SmokeError:
        if model is not None:  # a frontend without /v1/models: trust the operator
            return model
        raise UnknownModel(
            f"no --model given and {base_url(url)}{MODELS_PATH} lists none; pass --model"
        ) from None
    if model is not None:
        if model not in served:
            listed = ", ".join(served) if served else "none (are the workers up?)"
            raise UnknownModel(
                f"model {model!r} is not served at {base_url(url)}; served: {listed}"
            )
        return model
    if len(served) == 1:
        return served[0]
    if not served:
        raise UnknownModel(
            f"{base_url(url)} serves no model yet (GET {MODELS_PATH} is empty); are the workers up?"
        )
    raise UnknownModel(
        f"{base_url(url)} serves several models ({', '.join(served)}); pick one with --model"
    )


def fetch_url(image_url: str, timeout: float = 60.0) -> bytes:
    """The bytes behind an image URL: ``http(s)://``, ``file://`` or ``data:``.

    Dynamo's output formatter (ai-dynamo 1.1.1 and 1.6.1 alike) returns
    ``{protocol}://{root}/images/<request>/<uuid>.png`` for the worker's
    ``--media-output-fs-url`` (a local ``file://`` folder by default; fsspec makes a local
    root absolute), or ``{--media-output-http-url}/images/<request>/<uuid>.png`` when set.
    """
    parsed = urllib.parse.urlparse(image_url)
    if parsed.scheme == "data":
        _, _, payload = image_url.partition(",")
        return base64.b64decode(payload, validate=False)
    if parsed.scheme == "file":
        # fsspec makes the local root absolute, so Dynamo's file URLs are file:///abs/path
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"{image_url} names another host; fetch it there or use b64_json")
        path = urllib.request.url2pathname(parsed.path)
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path} does not exist here: the server wrote it to its own filesystem "
                "(--media-output-fs-url); run smoke there, or serve the media through "
                "--media-output-http-url"
            ) from None
    if parsed.scheme in ("http", "https"):
        with urllib.request.urlopen(image_url, timeout=timeout) as resp:
            return resp.read()
    raise ValueError(
        f"cannot fetch a {parsed.scheme or 'relative'}:// URL ({image_url}); "
        "serve the media through --media-output-http-url or use b64_json"
    )


# --- one request ---------------------------------------------------------------------


def _is_unknown_size_variant(result: HttpResult) -> bool:
    return result.status in (400, 422) and "unknown variant" in _error_message(result.body)


def check_size(
    url: str,
    model: str | None,
    size: str,
    response_format: str = "b64_json",
    timeout: float = 300.0,
    prompt: str = DEFAULT_PROMPT,
) -> SizeResult:
    """Request one image and judge it; never raises for what the server does."""
    width, height = sizing.parse_size(size)
    size_field = "size"
    note = ""

    def result(verdict: str, message: str, returned: str | None = None) -> SizeResult:
        return SizeResult(
            requested=size,
            returned=returned,
            response_format=response_format,
            latency_s=latency,
            verdict=verdict,
            message=_one_line(message),
            size_field=size_field,
        )

    latency: float | None = None
    try:
        resp = post_image(url, model, size, response_format, timeout, prompt=prompt)
        if _is_unknown_size_variant(resp):
            # ai-dynamo 1.1.x's frontend: the size is not an OpenAI enum value (see above)
            size_field = "nvext"
            note = f"the frontend rejects size {size} (unknown variant); sent as nvext"
            resp = post_image(
                url,
                model,
                None,
                response_format,
                timeout,
                prompt=prompt,
                nvext={"height": height, "width": width},
            )
        latency = resp.latency_s
        if resp.status != 200:
            message = resp.message or "no message"
            return result("http-error", f"HTTP {resp.status}: {message}")
        data = image_bytes(resp.body, response_format, timeout)
        got_w, got_h = image_size(data)
    except Unreachable as exc:
        return result("error", str(exc))
    except NotAnImage as exc:
        return result("not-an-image", str(exc))
    except Exception as exc:  # a URL that cannot be fetched, a file that is missing, ...
        return result("error", f"{type(exc).__name__}: {exc}")
    returned = format_size(got_w, got_h)
    if (got_w, got_h) == (width, height):
        return result("ok", note, returned)
    if size_field == "nvext":
        note = (
            f"the frontend rejects size {size} (unknown variant) and drops nvext.height/width "
            "(ai-dynamo 1.1-1.3 do): over HTTP it serves only the OpenAI enum sizes "
            + ", ".join(OPENAI_ENUM_SIZES)
        )
    return result("wrong-size", f"asked {size}, got {returned}; {note}".strip("; "), returned)


def image_bytes(body: Any, response_format: str = "b64_json", timeout: float = 60.0) -> bytes:
    """The encoded image of a 200 response; NotAnImage when it carries none."""
    if not isinstance(body, dict):
        raise NotAnImage(f"the response is not JSON: {_one_line(str(body))[:120]!r}")
    data = body.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise NotAnImage(f"the response has no image in 'data': {json.dumps(body)[:200]}")
    item = data[0]
    if item.get("b64_json"):
        encoded = str(item["b64_json"])
        if encoded.startswith("data:"):
            encoded = encoded.partition(",")[2]
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise NotAnImage("b64_json is not valid base64") from None
    if item.get("url"):
        return fetch_url(str(item["url"]), timeout)
    raise NotAnImage(
        f"the image has neither b64_json nor url (asked for {response_format}): "
        f"{json.dumps(item)[:200]}"
    )


# --- the run -------------------------------------------------------------------------


def expand_formats(response_formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"both"`` -> ``("b64_json", "url")``; validates every name."""
    if isinstance(response_formats, str):
        response_formats = (response_formats,)
    out: list[str] = []
    for fmt in response_formats:
        for name in RESPONSE_FORMATS if fmt == "both" else (fmt,):
            if name not in RESPONSE_FORMATS:
                raise ValueError(f"response format must be b64_json, url or both, got {fmt!r}")
            if name not in out:
                out.append(name)
    return tuple(out)


def run(
    url: str,
    sizes: Sequence[str],
    model: str | None = None,
    response_formats: str | Iterable[str] = ("b64_json",),
    timeout: float = 300.0,
    concurrency: int = 1,
    *,
    prompt: str = DEFAULT_PROMPT,
    progress: Callable[[SizeResult], None] | None = None,
) -> SmokeReport:
    """Request every size in every response format and judge each image.

    ``model=None`` takes the one model ``GET /v1/models`` lists. Up to ``concurrency``
    requests are in flight at once; results keep the order of ``sizes`` x formats.
    Raises Unreachable / UnknownModel (SmokeError) when the check cannot start, ValueError
    for a malformed size or format; per-request problems are results, not exceptions.
    """
    for size in sizes:
        sizing.parse_size(size)
    formats = expand_formats(response_formats)
    chosen = resolve_model(url, model, timeout=min(timeout, 30.0))
    jobs = [(size, fmt) for size in sizes for fmt in formats]

    def one(job: tuple[str, str]) -> SizeResult:
        res = check_size(url, chosen, job[0], job[1], timeout, prompt)
        if progress is not None:
            progress(res)
        return res

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        results = list(pool.map(one, jobs))
    return SmokeReport(url=base_url(url), model=chosen, results=results)


# --- output --------------------------------------------------------------------------


def render(report: SmokeReport) -> str:
    """A readable table of the report, one row per size and response format."""
    header = ("requested", "format", "returned", "latency", "verdict", "note")
    rows = [
        (
            r.requested + (" (nvext)" if r.size_field == "nvext" else ""),
            r.response_format,
            r.returned or "-",
            "-" if r.latency_s is None else f"{r.latency_s:.2f} s",
            r.verdict,
            r.message,
        )
        for r in report.results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = [f"omni-sizefix smoke: {report.url}  model {report.model or '-'}", ""]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    good = sum(r.ok for r in report.results)
    lines += ["", f"{good}/{len(report.results)} images came back at the requested size"]
    return "\n".join(lines)


def error_lines(report: SmokeReport) -> list[str]:
    """One line per result that could not be checked (HTTP error, not an image, error)."""
    return [
        f"{r.requested} {r.response_format}: {r.verdict}: {r.message}"
        for r in report.results
        if r.verdict not in ("ok", "wrong-size")
    ]
