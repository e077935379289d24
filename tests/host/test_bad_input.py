"""Bad input: thousands of generated requests through the real patched parse of this cell.

For every request the unpatched host's answer is the reference. If the host raises,
anything may happen. If the host accepts, the patched parse must either return a result
whose size is the same plain int in every place the stages read it (and that survives the
router's JSON round trip through the real ``StageOutput``/``StageRequest``), or raise
``SizeRejected`` with a message that names the size or field. It never raises anything
else, never mutates the request, never changes a request that is not an image/video
request, and never falls back to the host's result because of an internal error.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import glm_upstream
import pytest
from conftest import DynamoHost
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omni_sizefix.runtime import patches
from omni_sizefix.runtime.sizing import SizeRejected

BATCH = 10
EXAMPLES = 500  # x BATCH = 5,000 requests per cell
DEFAULT_SIZE = (1024, 1024)  # (height, width)

# --- strategies ---------------------------------------------------------------------

VALID_SIDES = st.sampled_from([256, 512, 768, 1024, 1152, 2048])
SIDE_TEXT = st.one_of(
    VALID_SIDES.map(str),
    st.integers(-(10**6), 10**25).map(str),
    st.sampled_from(["", " 512", "512 ", "+512", "512.0", "٥١٢", "²", "0x200", "1_024", "-0"]),
)
SIDE = st.one_of(  # a width/height field
    VALID_SIDES,
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.sampled_from([512.0, 767.5, -0.0]),
    st.booleans(),
    SIDE_TEXT,
    st.none(),
    st.lists(st.integers(0, 2048), max_size=2),
)
SIZE = st.one_of(  # a size field
    st.builds(lambda w, h: f"{w}x{h}", VALID_SIDES, VALID_SIDES),
    st.builds(lambda w, h: f"{w}x{h}", st.integers(1, 4096), st.integers(1, 4096)),
    st.builds(
        lambda w, sep, h: f"{w}{sep}{h}",
        SIDE_TEXT,
        st.sampled_from(["x", "X", "*", " x "]),
        SIDE_TEXT,
    ),
    st.sampled_from(["", "x", "512x", "axb", "512x512x512", "500x500", "1024"]),
    SIDE,
)
JUNK = st.one_of(st.none(), st.text(max_size=5), st.integers(), st.lists(st.integers(), max_size=2))
TEXT = st.one_of(
    st.text(max_size=30),
    st.text(max_size=30),
    st.sampled_from([1_000, 50_000]).map(lambda n: "a red apple " * n),  # long prompts
)
EXTRAS = {  # optional keys of extra_body / nvext
    "size": SIZE,
    "width": SIDE,
    "height": SIDE,
    "negative_prompt": st.one_of(st.none(), st.text(max_size=10)),
    "seed": st.integers(-5, 2**40),
    "guidance_scale": st.floats(),
    "num_inference_steps": st.integers(-1, 100),
    "num_frames": st.one_of(st.integers(-2, 200), SIDE_TEXT),
    "fps": st.one_of(st.integers(-2, 60), st.none()),
}
EXTRA = st.one_of(st.fixed_dictionaries({}, optional=EXTRAS), JUNK)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant"])},
        optional={"content": st.one_of(TEXT, JUNK)},
    ),
    max_size=3,
)
MODALITIES = st.sampled_from(
    [
        ["image"],
        ["image"],
        ["text"],
        ["video"],
        ["video"],
        ["text", "image"],
        ["image", "text"],
        ["audio"],
    ]
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict, list[str]]:
    """One raw frontend request and the worker's output modalities."""
    request: dict[str, Any] = {}
    if draw(st.booleans()):
        request["messages"] = draw(MESSAGES)
    if "messages" not in request or draw(st.booleans()):
        request["prompt"] = draw(st.one_of(TEXT, TEXT, JUNK))
    if draw(st.integers(0, 2)):  # video requests need a model
        request["model"] = draw(st.sampled_from(["zai-org/GLM-Image", "wan"]))
    optional = {
        "size": SIZE,
        "width": SIDE,
        "height": SIDE,
        "extra_body": EXTRA,
        "nvext": EXTRA,
        "negative_prompt": st.one_of(st.text(max_size=10), JUNK),
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 2)) == 0:  # each field present a third of the time
            request[key] = draw(strategy)
    return request, draw(MODALITIES)


# --- oracle -------------------------------------------------------------------------


def expected_kind(request: dict, modalities: list[str]) -> str | None:
    """The host's classification (plus ai-dynamo >= 1.2's chat-with-image rule)."""
    if modalities[0] == "video":
        return "video"
    if modalities[0] == "image" and "messages" not in request:
        return "image"
    return "image" if "image" in modalities else None


def plain_int(value: Any) -> int | None:
    """``value`` as a positive int when it unambiguously is one, else None."""
    if type(value) is int:
        number = value
    elif type(value) is float and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdecimal():
        number = int(value.strip())
    else:
        return None
    return number if number > 0 else None


def host_rule_size(request: dict) -> tuple[Any, Any]:
    """(height, width) as ai-dynamo >= 1.2 resolves a chat image request (uncoerced)."""
    extra = request.get("extra_body") if isinstance(request.get("extra_body"), dict) else {}
    size = request.get("size") or extra.get("size") or "1024x1024"
    try:
        width, height = (int(part) for part in size.split("x"))
    except (ValueError, AttributeError):
        height, width = DEFAULT_SIZE
    for source in (extra, request):
        if source.get("width") is not None:
            width = source["width"]
        if source.get("height") is not None:
            height = source["height"]
    return height, width


def malformed_size(request: dict) -> bool:
    """A ``size`` the host reads but cannot parse as WIDTHxHEIGHT (it would use 1024x1024),
    not replaced by explicit width and height; empty and "auto" mean the default size."""
    extra = request.get("extra_body") if isinstance(request.get("extra_body"), dict) else {}
    size = request.get("size") or extra.get("size")
    if not size or (isinstance(size, str) and size.strip().lower() == "auto"):
        return False
    try:
        width, height = size.split("x")
        if int(width) > 0 and int(height) > 0:  # a non-positive side is malformed too
            return False
    except (ValueError, AttributeError):
        pass
    return not any(
        isinstance(source, dict)
        and source.get("width") is not None
        and source.get("height") is not None
        for source in (request, extra, request.get("nvext"))
    )


def renders_exactly(height: int, width: int) -> bool:
    """The documented GLM-Image size rule of the default ``reject`` policy."""
    return all(256 <= side <= 2048 and side % 32 == 0 for side in (height, width))


def _same(a: Any, b: Any) -> bool:
    return a == b or repr(a) == repr(b)  # repr: NaN in pass-through fields


# --- the check ----------------------------------------------------------------------


class Checker:
    """Runs one request through the unpatched and the patched parse and checks the result."""

    def __init__(self, host: DynamoHost) -> None:
        self.host = host
        self.patched = host.stage_worker.parse_omni_request
        self.original = getattr(self.patched, patches.SENTINEL)
        self.loop = asyncio.new_event_loop()
        self.outcomes: Counter[str] = Counter()

    def call(self, parse: Callable, request: dict, modalities: list[str]) -> Any:
        result = parse(request, list(modalities), 16)
        return self.loop.run_until_complete(result) if inspect.isawaitable(result) else result

    def check(self, request: dict, modalities: list[str]) -> str:
        pristine = repr(request)
        try:
            host = self.call(self.original, copy.deepcopy(request), modalities)
        except Exception:
            return "host-rejects"
        kind = expected_kind(request, modalities)
        try:
            ours = self.call(self.patched, request, modalities)
        except SizeRejected as exc:
            assert repr(request) == pristine, "the plugin mutated the request"
            assert kind is not None, f"a {modalities} request was rejected: {exc}"
            self.check_rejection(str(exc), request, host, kind)
            return f"{kind}-rejected"
        assert repr(request) == pristine, "the plugin mutated the request"
        if kind is None:
            assert _same(ours, host), "a request that is not image/video changed"
            return "unchanged"
        if not isinstance(host["engine_inputs"], (str, dict)):  # e.g. a chat without text
            assert _same(ours, host), "no stage-0 prompt to size, yet the result changed"
            return "unsizable"
        assert not (kind == "image" and malformed_size(request)), "a malformed size was sized"
        height, width = self.check_sized(ours, host, request, kind)
        self.check_round_trip(ours, height, width)
        return f"{kind}-sized"

    def expected_size(self, host: dict, request: dict) -> tuple[Any, Any]:
        sampling = host.get("sampling_params_list")
        if isinstance(sampling, dict) and "height" in sampling and "width" in sampling:
            return sampling["height"], sampling["width"]
        return host_rule_size(request)  # ai-dynamo 1.1 chat: the host sends no size

    def check_rejection(self, message: str, request: dict, host: dict, kind: str) -> None:
        if kind == "image" and malformed_size(request):
            assert "is not WIDTHxHEIGHT" in message, message
            return
        height, width = self.expected_size(host, request)
        assert re.search(r"\b(width|height|size)\b", message), message
        if plain_int(height) and plain_int(width):
            h, w = plain_int(height), plain_int(width)
            assert kind == "image" and not renders_exactly(h, w), f"{w}x{h} rejected: {message}"
            assert f"{w}x{h}" in message and "Nearest valid sizes" in message, message
        else:
            assert "got " in message, message

    def check_sized(self, ours: dict, host: dict, request: dict, kind: str) -> tuple[int, int]:
        stage0 = ours["engine_inputs"]
        kwargs = stage0["mm_processor_kwargs"]
        height, width = kwargs["target_h"], kwargs["target_w"]
        assert type(height) is int and type(width) is int and height > 0 and width > 0
        expected = tuple(plain_int(v) for v in self.expected_size(host, request))
        assert (height, width) == expected, f"sized {width}x{height}, expected {expected}"
        if kind == "image":
            assert "image" in stage0["modalities"]
        sampling = ours["sampling_params_list"]
        assert type(sampling["height"]) is int and type(sampling["width"]) is int
        assert (sampling["height"], sampling["width"]) == (height, width)
        self.check_original_prompt(ours["original_prompt"], height, width)
        # Everything that is not size metadata is the host's.
        host_stage0 = host["engine_inputs"]
        if isinstance(host_stage0, str):
            assert stage0["prompt"] == host_stage0
        else:
            for key, value in host_stage0.items():
                if key not in ("mm_processor_kwargs", "modalities"):
                    assert _same(stage0[key], value), key
        for key, value in (host.get("sampling_params_list") or {}).items():
            if key not in ("height", "width"):
                assert _same(sampling[key], value), key
        return height, width

    def check_original_prompt(self, original: Any, height: int, width: int) -> None:
        """The size is where the installed vLLM-Omni's own processor reads it."""
        assert glm_upstream.readable_size(original, height, width), original

    def check_round_trip(self, ours: dict, height: int, width: int) -> None:
        """Stage 0's chunk through the router into stage 1, as JSON, with the real types."""
        types = self.host.types
        chunk = {
            "original_prompt": ours["original_prompt"],
            "stage_connector_refs": {"0": {"inline_bytes": "AA==", "size": 1}},
            "sampling_params_list": ours["sampling_params_list"],
            "finished": True,
        }
        output = types.StageOutput.model_validate(json.loads(json.dumps(chunk)))
        forwarded = json.loads(json.dumps(output.to_next_stage_request("req-1")))
        stage1 = types.StageRequest.model_validate(forwarded)
        self.check_original_prompt(stage1.original_prompt, height, width)
        sampling = stage1.sampling_params_list
        assert (sampling["height"], sampling["width"]) == (height, width)
        assert type(sampling["height"]) is int


# --- the test -----------------------------------------------------------------------


def test_generated_requests_never_crash_and_carry_one_size(
    patched: DynamoHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "reject")
    monkeypatch.delenv("OMNI_SIZEFIX_SHAPE", raising=False)
    internal_failures: list[str] = []
    real_warn_once = patches.warn_once

    def spy(key: str, message: str, *args: Any) -> None:  # any call is a swallowed plugin error
        internal_failures.append(message % args)
        real_warn_once(key, message, *args)

    monkeypatch.setattr(patches, "warn_once", spy)
    checker = Checker(patched)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(requests(), min_size=BATCH, max_size=BATCH))
    def run(batch: list[tuple[dict, list[str]]]) -> None:
        for request, modalities in batch:
            internal_failures.clear()
            try:
                checker.outcomes[checker.check(request, modalities)] += 1
            except AssertionError as exc:  # name the request, not only the batch
                raise AssertionError(f"{modalities} {request!r}: {exc}") from exc
            assert internal_failures == [], (request, modalities, internal_failures)

    try:
        run()
    finally:
        checker.loop.close()
    outcomes = checker.outcomes
    print(f"bad-input outcomes: {dict(outcomes)}")
    assert sum(outcomes.values()) >= EXAMPLES * BATCH, outcomes
    # The generator reaches every branch that matters (else the test proves little).
    for outcome in ("image-sized", "image-rejected", "unchanged", "video-sized", "host-rejects"):
        assert outcomes[outcome] >= 50, outcomes
