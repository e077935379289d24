"""``omni-sizefix smoke`` against a FAKE OpenAI-style images server.

``FakeImagesServer`` is a fake: a standard-library HTTP server on 127.0.0.1 (a free port,
stopped by the fixture) that answers ``/v1/models`` and ``/v1/images/generations`` the way
Dynamo's frontend does (response shape, error bodies, ``file://`` media URLs), and renders
a PNG of whatever size it is told per test. It stands in for a deployment, which cannot run
here; the client under test is the real ``omni_sizefix.tools.smoke`` and the real CLI.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from omni_sizefix.tools import cli, smoke

# The subprocess imports the same omni_sizefix as this test (the installed wheel in a cell).
PACKAGE_PARENT = Path(smoke.__file__).resolve().parents[1]

# --- images built with the standard library ------------------------------------------


def png(width: int, height: int) -> bytes:
    """A real, complete RGB PNG (every decoder can open it)."""
    row = b"\x00" + bytes([200, 40, 40]) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg_header(width: int, height: int) -> bytes:
    """SOI, a JFIF APP0 segment, then a baseline SOF0 frame header (enough for the reader)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00" * 3
    return b"\xff\xd8" + app0 + sof0


def webp_header(kind: str, width: int, height: int) -> bytes:
    if kind == "VP8 ":
        data = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    elif kind == "VP8L":
        bits = (width - 1) | ((height - 1) << 14)
        data = b"\x2f" + struct.pack("<I", bits)
    else:
        data = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little")
        data += (height - 1).to_bytes(3, "little")
    body = b"WEBP" + kind.encode() + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


# --- the fake server -----------------------------------------------------------------


class FakeImagesServer:
    """FAKE OpenAI-style images frontend (see the module docstring)."""

    def __init__(self, media_dir: Path) -> None:
        self.models = ["glm-image"]
        #: per size: "ok", "wrong", "400", "500", "500-openai", "garbage", "text", "empty",
        #: "slow" (answers after 2 s)
        self.behaviour: dict[str, str] = {}
        self.url_style = "file"  # how "url" responses point at the image: "file" or "http"
        #: "any": every WxH accepted; "enum": like ai-dynamo 1.1's frontend, other sizes get
        #: 400 "unknown variant"; the nvext height/width then "forward" or are "drop"ped
        self.size_parsing = "any"
        self.nvext = "forward"
        self.barrier: threading.Barrier | None = None
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.media_dir = media_dir
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> FakeImagesServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    # what the fake answers

    def models_body(self) -> dict:
        return {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}

    def generate(self, req: dict) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(req)
        if req.get("model") not in self.models:
            return 404, {"message": f"Model not found: {req.get('model')}", "code": 404}
        size = req.get("size")
        if size is not None and self.size_parsing == "enum" and size not in smoke.OPENAI_ENUM_SIZES:
            # the body ai-dynamo 1.1.1's frontend answers (measured)
            expected = ", ".join(f"`{s}`" for s in ("auto", *smoke.OPENAI_ENUM_SIZES))
            return 400, {
                "message": "Failed to deserialize the JSON body into the target type: unknown "
                f"variant `{size}`, expected one of {expected} at line 1 column 87",
                "type": "Bad Request",
                "code": 400,
            }
        nvext = req.get("nvext") or {}
        if size is None and self.nvext == "forward" and "width" in nvext:
            size = f"{nvext['width']}x{nvext['height']}"
        size = size or "1024x1024"
        if self.behaviour.get(size) == "slow":
            time.sleep(2)
        if self.barrier is not None:
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                return 500, {"message": "the requests did not arrive together", "code": 500}
        behaviour = self.behaviour.get(size, "ok")
        if behaviour == "400":
            return 400, {
                "message": f"size {size} cannot be rendered exactly by GLM-Image. "
                "Nearest valid sizes: 992x704, 1024x704",
                "type": "Bad Request",
                "code": 400,
            }
        if behaviour == "500":  # Dynamo's error body
            body = {"message": "Failed to fold images stream", "type": "Internal Server Error"}
            return 500, {**body, "code": 500}
        if behaviour == "500-openai":  # OpenAI's error body
            return 500, {"error": {"message": "The server had an error", "type": "server_error"}}
        if behaviour == "text":
            return 200, "<html>gateway says hello</html>"
        if behaviour == "empty":
            return 200, {"created": 1, "data": []}
        if behaviour == "garbage":
            image = b"<html>not an image</html>"
        else:
            width, height = tuple(
                int(side) for side in (size if behaviour == "ok" else "64x64").split("x")
            )
            image = png(width, height)
        if req.get("response_format") == "url":
            name = f"{uuid.uuid4()}.png"
            (self.media_dir / name).write_bytes(image)
            if self.url_style == "file":
                item = {"url": (self.media_dir / name).as_uri()}
            else:
                item = {"url": f"{self.url}/media/{name}"}
        else:
            item = {"b64_json": base64.b64encode(image).decode()}
        body = {"created": 1, "data": [{**item, "revised_prompt": None}], "size": None}
        return 200, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def send(self, status: int, body: Any, content_type: str = "") -> None:
                if isinstance(body, bytes):
                    data = body
                elif isinstance(body, str):
                    data, content_type = body.encode(), "text/html"
                else:
                    data, content_type = json.dumps(body).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", content_type or "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self.send(200, fake.models_body())
                elif self.path.startswith("/media/"):
                    self.send(200, (fake.media_dir / self.path[len("/media/") :]).read_bytes())
                else:
                    self.send(404, {"message": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                req = json.loads(self.rfile.read(length))
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    status, body = fake.generate(req)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                self.send(status, body)

        return Handler


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeImagesServer]:
    fake = FakeImagesServer(tmp_path).start()
    yield fake
    fake.stop()


@pytest.fixture(params=["stdlib", "pillow"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the standard-library header reader and with Pillow."""
    if request.param == "stdlib":
        monkeypatch.setattr(smoke, "PILLOW", None)
    elif smoke.PILLOW is None:
        pytest.skip("Pillow is not installed here")
    return request.param


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the image size readers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(96, 64), (96, 64)),
        (jpeg_header(640, 480), (640, 480)),
        (webp_header("VP8 ", 768, 1024), (768, 1024)),
        (webp_header("VP8L", 1024, 768), (1024, 768)),
        (webp_header("VP8X", 2048, 256), (2048, 256)),
        (b"GIF89a" + struct.pack("<HH", 33, 17) + b"\x00" * 8, (33, 17)),
    ],
    ids=["png", "jpeg", "webp-vp8", "webp-vp8l", "webp-vp8x", "gif"],
)
def test_header_size_reads_each_format(data: bytes, expected: tuple[int, int]) -> None:
    assert smoke.header_size(data) == expected
    assert smoke.image_size(data, decoder="stdlib") == expected


@pytest.mark.parametrize(
    "data", [b"", b"<html>hi</html>", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xd9", b"RIFF"]
)
def test_header_size_rejects_what_is_no_image(data: bytes) -> None:
    with pytest.raises(smoke.NotAnImage):
        smoke.header_size(data)


def test_pillow_and_header_reader_agree() -> None:
    if smoke.PILLOW is None:
        pytest.skip("Pillow is not installed here")
    import io

    for fmt in ("PNG", "JPEG", "WEBP", "GIF"):
        buf = io.BytesIO()
        smoke.PILLOW.new("RGB", (320, 192)).save(buf, format=fmt)
        data = buf.getvalue()
        assert smoke.image_size(data, decoder="pillow") == (320, 192), fmt
        assert smoke.image_size(data, decoder="stdlib") == (320, 192), fmt
    with pytest.raises(smoke.NotAnImage):
        smoke.image_size(b"<html>", decoder="pillow")


def test_small_helpers() -> None:
    assert smoke.base_url("127.0.0.1:8000/v1/") == "http://127.0.0.1:8000"
    assert smoke.expand_formats("both") == ("b64_json", "url")
    with pytest.raises(ValueError):
        smoke.expand_formats("png")


# --- requests against the fake server ------------------------------------------------


def test_ok_b64_json(server: FakeImagesServer, decoder: str) -> None:
    report = smoke.run(server.url, ["96x64", "64x96"], model="glm-image")
    assert [(r.requested, r.returned, r.verdict) for r in report.results] == [
        ("96x64", "96x64", "ok"),
        ("64x96", "64x96", "ok"),
    ]
    assert report.ok and report.exit_code == 0
    assert all(r.latency_s is not None and r.latency_s > 0 for r in report.results)
    sent = server.requests[0]
    assert sent == {
        "prompt": smoke.DEFAULT_PROMPT,
        "response_format": "b64_json",
        "n": 1,
        "model": "glm-image",
        "size": "96x64",
    }


@pytest.mark.parametrize("url_style", ["file", "http"])
def test_ok_url(server: FakeImagesServer, decoder: str, url_style: str) -> None:
    server.url_style = url_style
    report = smoke.run(server.url, ["128x64"], response_formats="both")
    assert [(r.response_format, r.returned, r.verdict) for r in report.results] == [
        ("b64_json", "128x64", "ok"),
        ("url", "128x64", "ok"),
    ]
    assert [req["response_format"] for req in server.requests] == ["b64_json", "url"]


def test_url_that_cannot_be_fetched_is_an_error(server: FakeImagesServer, tmp_path: Path) -> None:
    server.url_style = "file"
    server.media_dir = tmp_path / "elsewhere"  # the fake writes where the client cannot read
    server.media_dir.mkdir()
    original = server.generate

    def generate_then_delete(req: dict) -> tuple[int, Any]:
        status, body = original(req)
        for path in server.media_dir.iterdir():
            path.unlink()
        return status, body

    server.generate = generate_then_delete  # type: ignore[method-assign]
    (result,) = smoke.run(server.url, ["64x64"], response_formats="url").results
    assert result.verdict == "error"
    assert result.message.startswith("FileNotFoundError: ")
    assert "does not exist here: the server wrote it to its own filesystem" in result.message


def test_wrong_size(server: FakeImagesServer, decoder: str) -> None:
    server.behaviour["96x32"] = "wrong"
    report = smoke.run(server.url, ["96x32", "32x32"])
    first, second = report.results
    assert (first.returned, first.verdict) == ("64x64", "wrong-size")
    assert "asked 96x32, got 64x64" in first.message
    assert second.verdict == "ok"
    assert not report.ok and report.exit_code == smoke.EXIT_WRONG_SIZE


def test_http_400_carries_the_servers_message(
    server: FakeImagesServer, capsys: pytest.CaptureFixture
) -> None:
    server.behaviour["1000x700"] = "400"
    report = smoke.run(server.url, ["1000x700"])
    (result,) = report.results
    assert result.verdict == "http-error"
    assert result.message.startswith("HTTP 400: size 1000x700 cannot be rendered exactly")
    assert "Nearest valid sizes: 992x704" in result.message
    assert report.exit_code == smoke.EXIT_ERROR

    code = cli.main(["smoke", "--url", server.url, "--size", "1000x700", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    (line,) = err.splitlines()
    assert "1000x700 b64_json: http-error: HTTP 400:" in line and "992x704" in line
    assert "http-error" in out


def test_http_500_carries_the_servers_message(server: FakeImagesServer) -> None:
    server.behaviour["512x512"] = "500"
    server.behaviour["256x256"] = "500-openai"
    dynamo_body, openai_body = smoke.run(server.url, ["512x512", "256x256"]).results
    assert dynamo_body.verdict == openai_body.verdict == "http-error"
    assert dynamo_body.message == "HTTP 500: Failed to fold images stream"
    assert openai_body.message == "HTTP 500: The server had an error"


@pytest.mark.parametrize(
    ("behaviour", "fragment"),
    [
        ("garbage", "not a PNG, JPEG, WebP or GIF image"),
        ("text", "the response is not JSON"),
        ("empty", "no image in 'data'"),
    ],
)
def test_not_an_image(
    server: FakeImagesServer, decoder: str, behaviour: str, fragment: str
) -> None:
    server.behaviour["256x256"] = behaviour
    report = smoke.run(server.url, ["256x256"])
    (result,) = report.results
    assert result.verdict == "not-an-image"
    assert fragment in result.message
    assert report.exit_code == smoke.EXIT_ERROR


def test_a_request_that_times_out_is_an_error(server: FakeImagesServer) -> None:
    server.behaviour["64x64"] = "slow"
    report = smoke.run(server.url, ["64x64", "32x32"], timeout=0.5)
    slow, fast = report.results
    assert (slow.verdict, slow.returned) == ("error", None)
    assert slow.message == f"no answer from {server.url}{smoke.IMAGES_PATH}: timed out"
    assert fast.verdict == "ok"
    assert report.exit_code == smoke.EXIT_ERROR


def test_default_sizes_pass_every_frontend() -> None:
    assert set(smoke.DEFAULT_SIZES) <= set(smoke.OPENAI_ENUM_SIZES)
    widths_heights = [
        tuple(int(side) for side in (size).split("x")) for size in smoke.DEFAULT_SIZES
    ]
    assert any(w > h for w, h in widths_heights) and any(w < h for w, h in widths_heights)


def test_unreachable_url(capsys: pytest.CaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(smoke.Unreachable, match="cannot reach"):
        smoke.run(url, ["256x256"], timeout=5)
    code = cli.main(["smoke", "--url", url, "--timeout", "5"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("omni-sizefix smoke: cannot reach")


def test_unknown_model(server: FakeImagesServer, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(smoke.UnknownModel, match=r"'sdxl' is not served .* served: glm-image"):
        smoke.run(server.url, ["256x256"], model="sdxl")
    assert server.requests == []  # nothing was generated
    code = cli.main(["smoke", "--url", server.url, "--model", "sdxl"])
    assert code == 2
    assert "is not served" in capsys.readouterr().err


def test_model_discovery(server: FakeImagesServer) -> None:
    report = smoke.run(server.url, ["64x64"])
    assert report.model == "glm-image"
    assert server.requests[0]["model"] == "glm-image"

    server.models = ["glm-image", "flux"]
    with pytest.raises(smoke.UnknownModel, match=r"several models \(glm-image, flux\)"):
        smoke.run(server.url, ["64x64"])
    server.models = []
    with pytest.raises(smoke.UnknownModel, match="serves no model yet"):
        smoke.run(server.url, ["64x64"])


@pytest.mark.parametrize("concurrency", [4, 1])
def test_concurrency_keeps_several_sizes_in_flight(
    server: FakeImagesServer, concurrency: int
) -> None:
    # The fake holds each request until 4 are in flight (it answers 500 after 3 s if not).
    server.barrier = threading.Barrier(4, timeout=3)
    sizes = ["64x32", "32x64", "96x64", "64x96"]
    report = smoke.run(server.url, sizes, concurrency=concurrency)
    if concurrency == 4:
        assert report.ok, smoke.render(report)
        assert [r.returned for r in report.results] == sizes
        assert server.max_in_flight == 4
    else:  # one at a time never gets 4 in flight: the same check fails
        assert not report.ok
        assert server.max_in_flight == 1


def test_enum_only_frontend_gets_the_size_through_nvext(server: FakeImagesServer) -> None:
    server.size_parsing = "enum"
    report = smoke.run(server.url, ["768x1024", "1024x1792"])
    odd, enum = report.results
    assert (odd.returned, odd.verdict, odd.size_field) == ("768x1024", "ok", "nvext")
    assert odd.message == "the frontend rejects size 768x1024 (unknown variant); sent as nvext"
    assert (enum.verdict, enum.size_field) == ("ok", "size")
    retried = [r for r in server.requests if "nvext" in r]
    assert retried == [
        {
            "prompt": smoke.DEFAULT_PROMPT,
            "response_format": "b64_json",
            "n": 1,
            "model": "glm-image",
            "nvext": {"height": 1024, "width": 768},
        }
    ]


def test_enum_only_frontend_that_drops_nvext_is_a_wrong_size(server: FakeImagesServer) -> None:
    server.size_parsing, server.nvext = "enum", "drop"
    (result,) = smoke.run(server.url, ["768x1024"]).results
    assert (result.returned, result.verdict, result.size_field) == (
        "1024x1024",
        "wrong-size",
        "nvext",
    )
    assert "only the OpenAI enum sizes" in result.message


def test_render_shows_every_row(server: FakeImagesServer) -> None:
    server.behaviour["96x32"] = "wrong"
    text = smoke.render(smoke.run(server.url, ["96x32", "32x32"], response_formats="both"))
    lines = text.splitlines()
    assert lines[0] == f"omni-sizefix smoke: {server.url}  model glm-image"
    assert sum(" wrong-size " in line for line in lines) == 2
    assert sum(" ok" in line for line in lines) == 2
    assert lines[-1] == "2/4 images came back at the requested size"


def _run_cli(*argv: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "omni_sizefix.tools.cli", "smoke", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_cli_json_is_one_document(server: FakeImagesServer) -> None:
    server.behaviour["96x32"] = "wrong"
    proc = _run_cli("--url", server.url, "--size", "64x64", "--size", "96x32", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == doc["exit_code"] == 1
    assert doc["model"] == "glm-image" and doc["ok"] is False
    assert [(r["requested"], r["verdict"]) for r in doc["results"]] == [
        ("64x64", "ok"),
        ("96x32", "wrong-size"),
    ]
    assert "64x64 b64_json: ok" in proc.stderr  # progress goes to stderr

    proc = _run_cli("--url", f"http://127.0.0.1:{free_port()}", "--json", "--timeout", "5")
    doc = json.loads(proc.stdout)
    assert proc.returncode == doc["exit_code"] == 2
    assert doc["error"].startswith("cannot reach") and doc["results"] == []
