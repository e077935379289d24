"""A real client gets the right image back through the four real Dynamo processes.

Only the GPU engines are fake (``omni_sizefix.live.fake_engines``): the DiT's picture
shows, block by block, the prior tokens it received, so every check below compares the
returned PNG's size *and* pixels with what GLM-Image would need for the requested size.

The frontends of ai-dynamo up to 1.3 accept only the OpenAI ``size`` enum (``auto``,
256x256, 512x512, 1024x1024, 1792x1024, 1024x1792, 1536x1024, 1024x1536) and their image
``nvext`` has no height/width: any other size is refused with HTTP 400 before a worker
sees it (measured; ``test_frontend_refuses_sizes_outside_the_enum``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from packaging.version import Version

from omni_sizefix import glm_layout, size_policy, version_policy
from omni_sizefix.live import client
from omni_sizefix.live.client import verdict

pytestmark = pytest.mark.live

OPENAI_ENUM = {
    "256x256",
    "512x512",
    "1024x1024",
    "1792x1024",
    "1024x1792",
    "1536x1024",
    "1024x1536",
}
#: Sizes sent with the real ``openai`` client (in the enum, so every release's frontend takes them).
OPENAI_SIZES = ("1536x1024",)
#: Sizes sent with the plain HTTP client: portrait, the smallest, the largest, a non-enum one.
HTTP_SIZES = ("1024x1536", "256x256", "2048x2048", "768x1024")
#: 16 different sizes for the concurrency check (small, to keep 2 CPU cores free).
CONCURRENT_SIZES = tuple(
    f"{w}x{h}" for w, h in [(256 + 32 * i, 512 - 32 * (i % 5)) for i in range(16)]
)
#: Sizes the released hosts are checked with under the kill switch.
DEFECT_SIZES = ("1536x1024", "1024x1536", "512x512", "768x1024")


def dynamo_version() -> tuple[int, int]:
    """(major, minor) of the installed ai-dynamo ((0, 0) when there is none)."""
    text = version_policy.installed_version("ai-dynamo")
    if text is None:
        return (0, 0)
    version = Version(text)
    return (version.major, version.minor)


def enum_only() -> bool:
    """True when this release's frontend takes only the OpenAI size enum (ai-dynamo < 1.4)."""
    return dynamo_version() < (1, 4)


def needs_enum(size: str) -> None:
    if enum_only() and size not in OPENAI_ENUM:
        pytest.skip(f"ai-dynamo {dynamo_version()}'s frontend refuses {size} (OpenAI enum only)")


def post(topology, size: str, **kwargs) -> client.ImageReply:
    return client.generate(topology.url, size, model=topology.served_model, **kwargs)


def assert_image(reply: client.ImageReply, size: str) -> None:
    assert verdict(reply, size) == "ok", (size, reply.status, reply.size, reply.message[:300])


# --- with the plugin -----------------------------------------------------------------------


@pytest.mark.parametrize("size", OPENAI_SIZES)
def test_openai_client_gets_the_requested_image(plugin_on, size):
    openai = pytest.importorskip("openai", reason="the openai client is test support")
    api = openai.OpenAI(base_url=plugin_on.url + "/v1", api_key="unused", max_retries=0)
    result = api.images.generate(
        model=plugin_on.served_model,
        prompt="a red apple on a white table",
        size=size,
        response_format="b64_json",
        timeout=300,
    )
    (got_width, got_height), prior = client.decode_image(result.data[0].b64_json)
    width, height = client.parse_size(size)
    assert (got_width, got_height) == (width, height)
    assert prior == glm_layout.expected_prior(height, width), "the picture shows another prior"


@pytest.mark.parametrize("size", HTTP_SIZES)
def test_http_client_gets_the_requested_image(plugin_on, size):
    needs_enum(size)
    assert_image(post(plugin_on, size), size)


def test_frontend_refuses_sizes_outside_the_enum(plugin_on):
    if not enum_only():
        pytest.skip("this release's frontend takes any size string")
    for size in ("768x1024", "2048x2048", "1000x700", "abcxdef", "512"):
        reply = post(plugin_on, size)
        assert reply.status == 400 and "unknown variant" in reply.message, (size, reply.message)


def test_sixteen_sizes_in_flight_each_get_their_own(plugin_on):
    sizes = CONCURRENT_SIZES
    if enum_only():  # seven enum sizes, each twice, and 1024x1024 twice more
        sizes = tuple(sorted(OPENAI_ENUM)) * 2 + ("1024x1024",) * 2
    assert len(sizes) == 16
    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda size: post(plugin_on, size), sizes))
    wrong = {s: verdict(r, s) for s, r in zip(sizes, replies, strict=True) if verdict(r, s) != "ok"}
    assert not wrong


#: Releases whose frontend answers every worker-side error on the image route with HTTP 500
#: "Failed to fold images stream", whatever its type (measured with
#: ``python -m omni_sizefix.live.error_probe``: ValueError, TypeError, RuntimeError,
#: dynamo's InvalidArgument and HttpError(400), and an error chunk): no 4xx is possible there.
FOLDS_ERRORS_TO_500 = {(1, 4)}


def test_rejected_size_is_refused_and_the_next_request_is_served(plugin_on):
    needs_enum("1000x700")
    reply = post(plugin_on, "1000x700")
    print(f"1000x700 with the plugin: HTTP {reply.status} {reply.message[:300]!r}")
    nearest = size_policy.nearest_valid_sizes(700, 1000)
    named = [f"{w}x{h}" for h, w in nearest]
    if dynamo_version() in FOLDS_ERRORS_TO_500:
        assert (reply.status, reply.message) == (500, "Failed to fold images stream")
    else:
        assert 400 <= reply.status < 500, (reply.status, reply.message)
    if not any(text in reply.message for text in named):
        # The release's frontend hides the worker's message (e.g. 1.6: "Invalid request");
        # it must still have reached the Dynamo processes' logs, word for word.
        logs = "".join(p.log_text() for p in plugin_on.processes)
        assert size_policy.rejection_message(700, 1000) in logs
    assert plugin_on.alive() == [p.name for p in plugin_on.processes]
    assert_image(post(plugin_on, "1024x1536"), "1024x1536")


# --- the kill switch: the released defect, over HTTP ---------------------------------------


@pytest.mark.parametrize("size", DEFECT_SIZES)
def test_kill_switch_shows_the_released_defect(plugin_off, size):
    needs_enum(size)
    reply = post(plugin_off, size)
    outcome = verdict(reply, size)
    release = dynamo_version()
    print(f"kill switch, ai-dynamo {release}, {size}: {outcome}")
    if release < (1, 2):
        # 1.1: stage 0 gets no size, the AR prompt no scaffold: no usable image.
        assert outcome != "ok", outcome
    elif release < (1, 4):
        # 1.2/1.3: stage 1 cannot call vLLM-Omni's own processor: the request fails.
        assert reply.status >= 400, outcome
        stage1 = next(p for p in plugin_off.processes if p.name == "stage-1 worker")
        assert "TypeError" in stage1.log_text()
    else:
        # 1.4+: the host already carries the size everywhere.
        assert outcome == "ok", outcome


# --- vLLM-Omni's own config with the plugin (switched on once the stage-1 fix lands) ---------


@pytest.mark.xfail(
    dynamo_version() < (1, 4),
    reason="own stage-1 processor with the plugin on ai-dynamo < 1.4 needs the stage-1 "
    "runtime fix (not merged yet)",
    strict=False,
)
@pytest.mark.skipif(
    os.environ.get("OMNI_SIZEFIX_LIVE_OWN_CONFIG") != "1",
    reason="set OMNI_SIZEFIX_LIVE_OWN_CONFIG=1 (a third topology, 2-4 min)",
)
def test_own_config_with_plugin(own_config_plugin_on):
    for size in ("1536x1024", "1024x1536"):
        assert_image(post(own_config_plugin_on, size), size)
