"""A real client gets the right image back through the four real Dynamo processes.

The workers load vLLM-Omni's OWN GLM-Image stage config (``topology.own_stage_config``),
what a deployment already runs before it installs the plugin. Only the GPU engines are
fake (``omni_sizefix.tools.live.fake_engines``): the DiT's picture shows, block by block, the
prior tokens it received, so every check below compares the returned PNG's size *and*
pixels with what GLM-Image would need for the requested size (``live_expect``: the prior
from the tests' own rules, ``glm_rules``; messages judged by ``size_messages``).

Two limits decide which sizes can come back (``omni_sizefix.tools.live.served``): the frontends
of ai-dynamo up to 1.3 accept only the OpenAI ``size`` enum (any other size is refused with
HTTP 400 before a worker sees it, ``test_frontend_refuses_sizes_outside_the_enum``), and the
config's stage-0 ``max_tokens`` (vLLM-Omni's legacy layout: 1281, up to 1024x1024); with the
plugin a size over it is rejected up front. The shipped config (up to 2048x2048) is an
opt-in third topology (``OMNI_SIZEFIX_LIVE_SHIPPED=1``) for frontends that take any size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import glm_rules
import pytest
from live_expect import fits, image_outcome
from size_messages import malformed_logged, malformed_problems, rejection_logged, rejection_problems

from omni_sizefix.tools.live import client, served
from omni_sizefix.tools.live.topology import stage0_max_tokens

pytestmark = pytest.mark.live

#: Candidate sizes with the plugin: square, non-square both ways, the smallest, non-enum ones.
CANDIDATE_SIZES = (
    "256x256",
    "512x512",
    "1024x1024",
    "1536x1024",
    "1024x1536",
    "768x1024",
    "1024x768",
)
#: 16 different sizes for the concurrency check where the frontend takes any size (small).
CONCURRENT_SIZES = tuple(
    f"{w}x{h}" for w, h in [(256 + 32 * i, 512 - 32 * (i % 5)) for i in range(16)]
)
#: Sizes the released hosts are checked with under the kill switch.
DEFECT_SIZES = ("512x512", "1024x1024", "1536x1024", "768x1024")
#: Over the legacy own config's budget, in the enum (so every frontend forwards it).
OVER_LEGACY_BUDGET = ("1536x1024", "1024x1536", "1792x1024")
#: With the shipped config: the largest size, non-square both ways (in the enum and not).
SHIPPED_SIZES = (
    "2048x2048",
    "1536x1024",
    "1024x1536",
    "1792x1024",
    "1024x1792",
    "768x1024",
    "1024x768",
    "256x256",
)
OPENAI_ENUM_SIZES = tuple(sorted(served.OPENAI_ENUM))


#: The real ``openai`` client is test support, not a dependency of the package.
OPENAI_MISSING = (
    "no openai client in this cell: nox installs tests/requirements/live-tools.txt with the "
    "live suite; in a kept cell run `uv pip install -r tests/requirements/live-tools.txt`"
)
#: Malformed size strings: every release's host would render them as 1024x1024.
MALFORMED_SIZES = ("abcxdef", "512")


def budget(topology) -> int | None:
    """Stage-0 ``max_tokens`` of the stage config the topology's workers load."""
    return stage0_max_tokens(topology.stage_config_path)


def servable_sizes(sizes, max_tokens: int | None) -> list[str]:
    """The sizes this release's frontend takes and whose scaffold fits ``max_tokens``."""
    return [s for s in sizes if served.frontend_takes(s) and fits(s, max_tokens)]


def servable(topology, sizes=CANDIDATE_SIZES) -> list[str]:
    found = servable_sizes(sizes, budget(topology))
    print(f"{topology.stage_config_note}: stage-0 max_tokens {budget(topology)}; serves {found}")
    assert found, "no candidate size fits this frontend and budget"
    return found


def post(topology, size: str, **kwargs) -> client.ImageReply:
    return client.generate(topology.url, size, model=topology.served_model, **kwargs)


def assert_image(reply: client.ImageReply, size: str) -> None:
    assert image_outcome(reply, size) == "ok", (size, reply.status, reply.size, reply.message[:300])


def stage_log(topology, name: str) -> str:
    return next(p for p in topology.processes if p.name == name).log_text()


# --- with the plugin, vLLM-Omni's own config --------------------------------------------------


def test_openai_client_gets_the_requested_image(plugin_on):
    openai = pytest.importorskip("openai", reason=OPENAI_MISSING)
    size = servable(plugin_on)[-1]  # the largest the frontend and the budget allow
    api = openai.OpenAI(base_url=plugin_on.url + "/v1", api_key="unused", max_retries=0)
    result = api.images.generate(
        model=plugin_on.served_model,
        prompt="a red apple on a white table",
        size=size,
        response_format="b64_json",
        timeout=300,
    )
    (got_width, got_height), prior = client.decode_image(result.data[0].b64_json)
    width, height = (int(side) for side in size.split("x"))
    assert (got_width, got_height) == (width, height), size
    assert prior == glm_rules.expected_prior(height, width), "the picture shows another prior"


def test_every_servable_size_comes_back_as_requested(plugin_on):
    results = {size: image_outcome(post(plugin_on, size), size) for size in servable(plugin_on)}
    print(f"own config, plugin on: {results}")
    assert results == dict.fromkeys(results, "ok")


def test_size_over_the_budget_is_rejected_and_the_next_request_is_served(plugin_on):
    limit = budget(plugin_on)
    over = [s for s in OVER_LEGACY_BUDGET if served.frontend_takes(s) and not fits(s, limit)]
    if not over:
        pytest.skip(f"every enum size fits stage-0 max_tokens {limit}")
    size = over[0]
    width, height = (int(side) for side in size.split("x"))
    reply = post(plugin_on, size)
    print(f"{size} over max_tokens {limit}, plugin on: HTTP {reply.status} {reply.message!r}")
    assert reply.status >= 400, (size, reply.status, reply.size)
    needs = f"size {width}x{height} needs {glm_rules.token_count(height, width)} AR tokens"
    logs = reply.message + "".join(p.log_text() for p in plugin_on.processes)
    assert needs in logs and f"max_tokens is {limit}" in logs, "no budget rejection was logged"
    assert plugin_on.alive() == [p.name for p in plugin_on.processes]
    next_size = servable(plugin_on)[-1]
    assert_image(post(plugin_on, next_size), next_size)


def test_frontend_refuses_sizes_outside_the_enum(plugin_on):
    if not served.enum_only():
        pytest.skip("this release's frontend takes any size string")
    for size in ("768x1024", "2048x2048", "1000x700", *MALFORMED_SIZES):
        reply = post(plugin_on, size)
        print(
            f"{size} on ai-dynamo {served.dynamo_version()}: HTTP {reply.status} {reply.message!r}"
        )
        assert reply.status == 400 and "unknown variant" in reply.message, (size, reply.message)
    assert plugin_on.alive() == [p.name for p in plugin_on.processes]
    size = servable(plugin_on)[-1]
    assert_image(post(plugin_on, size), size)


def test_sixteen_sizes_in_flight_each_get_their_own(plugin_on):
    pool_sizes = servable(plugin_on, CONCURRENT_SIZES + CANDIDATE_SIZES)
    sizes = tuple((pool_sizes * 16)[:16])
    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda size: post(plugin_on, size), sizes))
    outcomes = {s: image_outcome(r, s) for s, r in zip(sizes, replies, strict=True)}
    assert not {s: outcome for s, outcome in outcomes.items() if outcome != "ok"}


#: Releases whose frontend answers every worker-side error on the image route with HTTP 500
#: "Failed to fold images stream", whatever its type (measured with
#: ``python -m omni_sizefix.tools.live.error_probe``: ValueError, TypeError, RuntimeError,
#: dynamo's InvalidArgument and HttpError(400), and an error chunk): no 4xx is possible there.
#: 1.5: measured for the plugin's own refusals (a size off the policy, malformed sizes).
FOLDS_ERRORS_TO_500 = {(1, 4), (1, 5)}
#: From this release on the frontend answers Dynamo's ``InvalidArgument`` with HTTP 400 and
#: its message; ``SizeRejected`` is one inside the worker (measured on 1.6.1: the nearest
#: valid sizes reach the client; a plain ValueError gave 400 "Invalid request").
INVALID_ARGUMENT_MESSAGE_SINCE = (1, 6)


def test_rejected_size_is_refused_and_the_next_request_is_served(plugin_on):
    if not served.frontend_takes("1000x700"):
        pytest.skip(f"ai-dynamo {served.dynamo_version()}'s frontend refuses 1000x700 itself")
    reply = post(plugin_on, "1000x700")
    print(f"1000x700 with the plugin: HTTP {reply.status} {reply.message[:300]!r}")
    if served.dynamo_version() in FOLDS_ERRORS_TO_500:
        assert (reply.status, reply.message) == (500, "Failed to fold images stream")
    else:
        assert 400 <= reply.status < 500, (reply.status, reply.message)
    if served.dynamo_version() >= INVALID_ARGUMENT_MESSAGE_SINCE:
        # the client reads it all: 1000x700, the rule, the nearest valid sizes (glm_rules)
        assert not rejection_problems(reply.message, 700, 1000), reply.message
    elif rejection_problems(reply.message, 700, 1000):
        # The release's frontend hides the worker's message (e.g. "Failed to fold images
        # stream"); it must still have reached the Dynamo processes' logs, all of it.
        logs = "".join(p.log_text() for p in plugin_on.processes)
        assert rejection_logged(logs, 700, 1000), "no rejection of 1000x700 telling it all"
    assert plugin_on.alive() == [p.name for p in plugin_on.processes]
    size = servable(plugin_on)[-1]
    assert_image(post(plugin_on, size), size)


@pytest.mark.parametrize("size", MALFORMED_SIZES)
def test_malformed_size_is_refused_and_the_next_request_is_served(plugin_on, size):
    if not served.frontend_takes(size):
        pytest.skip(f"ai-dynamo {served.dynamo_version()}'s frontend refuses {size!r} itself")
    reply = post(plugin_on, size)
    print(f"{size!r} with the plugin: HTTP {reply.status} {reply.message[:300]!r}")
    if served.dynamo_version() in FOLDS_ERRORS_TO_500:
        assert (reply.status, reply.message) == (500, "Failed to fold images stream")
    else:
        assert 400 <= reply.status < 500, (reply.status, reply.message)
    if served.dynamo_version() >= INVALID_ARGUMENT_MESSAGE_SINCE:
        assert not malformed_problems(reply.message, size), reply.message
    logs = "".join(p.log_text() for p in plugin_on.processes)
    assert malformed_logged(reply.message + "\n" + logs, size), "no refusal telling it all"
    assert plugin_on.alive() == [p.name for p in plugin_on.processes]
    next_size = servable(plugin_on)[-1]
    assert_image(post(plugin_on, next_size), next_size)


# --- the kill switch, vLLM-Omni's own config: the released defect, over HTTP ------------------


@pytest.mark.parametrize("size", DEFECT_SIZES)
def test_kill_switch_shows_the_released_defect(plugin_off, size):
    if not served.frontend_takes(size):
        pytest.skip(f"ai-dynamo {served.dynamo_version()}'s frontend refuses {size} itself")
    reply = post(plugin_off, size)
    outcome = image_outcome(reply, size)
    release = served.dynamo_version()
    print(f"kill switch, own config, ai-dynamo {release}, {size}: {outcome}")
    if release < (1, 2):
        # 1.1: the shared-memory connector drops cumulative_token_ids; stage 1 fails.
        assert (reply.status, reply.message) == (500, "Failed to fold images stream"), outcome
        log = stage_log(plugin_off, "stage-1 worker")
        assert "AttributeError" in log and "cumulative_token_ids" in log
    elif release < (1, 4):
        # 1.2/1.3: stage 1 cannot call vLLM-Omni's own processor: the request fails.
        assert reply.status >= 400, outcome
        assert "TypeError" in stage_log(plugin_off, "stage-1 worker")
    else:
        # 1.4+: the host already carries the size everywhere (within the config's budget).
        if not fits(size, budget(plugin_off)):
            pytest.skip(f"{size} is over this config's stage-0 max_tokens")
        assert outcome == "ok", outcome


def test_kill_switch_renders_a_malformed_size_as_1024(plugin_off):
    """The released hosts turn a malformed ``size`` into 1024x1024 without a word."""
    size = MALFORMED_SIZES[0]
    if not served.frontend_takes(size):
        pytest.skip(f"ai-dynamo {served.dynamo_version()}'s frontend refuses {size!r} itself")
    if served.dynamo_version() < (1, 4):
        pytest.skip("stage 1 fails at every size on this release without the plugin")
    reply = post(plugin_off, size)
    print(f"kill switch, {size!r}: HTTP {reply.status}, image {reply.size}")
    assert (reply.status, reply.size) == (200, (1024, 1024)), (reply.status, reply.message)


def test_stop_removes_what_the_processes_left_in_their_tmpdir(topologies, plugin_off):
    """Dynamo's processes leave files in their TMPDIR (logging configs; the real engines' IPC
    sockets too): stopping the topology removes them with it."""
    scratch = plugin_off.tmpdir
    assert scratch is not None and scratch.is_dir()
    assert any(scratch.iterdir()), "the processes wrote nothing to their TMPDIR"
    topologies.close()
    assert not scratch.exists()


# --- opt-in: the shipped config (stage-0 budget up to 2048x2048) --------------------------------


@pytest.mark.parametrize("size", SHIPPED_SIZES)
def test_shipped_config_serves_up_to_2048(shipped_plugin_on, size):
    if not served.frontend_takes(size):
        pytest.skip(
            f"ai-dynamo {served.dynamo_version()}'s frontend takes only the OpenAI size enum: "
            f"{size} cannot be requested over HTTP (no request field carries another size)"
        )
    assert_image(post(shipped_plugin_on, size), size)


def test_shipped_config_sixteen_sizes_in_flight(shipped_plugin_on):
    """As many distinct sizes as the frontend takes (16 on >= 1.4, the 7 enum sizes before)."""
    candidates = CONCURRENT_SIZES + SHIPPED_SIZES + OPENAI_ENUM_SIZES
    distinct = list(dict.fromkeys(servable_sizes(candidates, budget(shipped_plugin_on))))
    sizes = tuple((distinct * 16)[:16])
    print(f"16 in flight, {len(set(sizes))} distinct sizes: {sizes}")
    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda size: post(shipped_plugin_on, size), sizes))
    outcomes = {s: image_outcome(r, s) for s, r in zip(sizes, replies, strict=True)}
    assert not {s: outcome for s, outcome in outcomes.items() if outcome != "ok"}
