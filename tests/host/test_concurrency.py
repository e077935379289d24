"""Concurrency: many parses in flight at once, each with its own size; none sees another's.

The stage worker awaits ``parse_omni_request`` inside one event loop for every request it
serves. Here more than a thousand such parses, each with a distinct size, are awaited
together through the real patched parse of this cell; chat requests suspend inside the
host's parse (its ``tokenizer_getter`` await), so parses really interleave.
"""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import glm_upstream
import pytest
from conftest import DynamoHost

COUNT = 1200
SIDES = range(256, 2048 + 1, 32)  # every side the default size policy accepts


def sized_requests(count: int) -> list[tuple[int, int, dict]]:
    """``count`` requests with distinct (height, width), image and chat alternating."""
    pairs = [(h, w) for h in SIDES for w in SIDES]
    random.Random(6).shuffle(pairs)
    assert len(pairs) >= count
    requests = []
    for index, (height, width) in enumerate(pairs[:count]):
        text = f"apple number {index}"
        if index % 2:
            request = {"messages": [{"role": "user", "content": text}], "size": f"{width}x{height}"}
        else:
            request = {"model": "GLM-Image", "prompt": text, "size": f"{width}x{height}"}
        requests.append((height, width, request))
    return requests


class FakeTokenizer:
    """A fake chat tokenizer (no model weights here): the template is just a prefix."""

    def apply_chat_template(self, messages: list, **_: Any) -> str:
        return "<|user|>" + messages[-1]["content"]


class YieldingTokenizerGetter:
    """Stands in for ``engine.get_tokenizer``: suspends, and counts parses in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self) -> FakeTokenizer:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        for _ in range(1 + self.in_flight % 3):  # uneven suspension reorders completion
            await asyncio.sleep(0)
        self.in_flight -= 1
        return FakeTokenizer()


def assert_own_size(parsed: dict, height: int, width: int, text: str) -> None:
    """Every place carries this request's size, and the prompt is this request's."""
    stage0 = parsed["engine_inputs"]
    assert stage0["mm_processor_kwargs"] == {"target_h": height, "target_w": width}
    assert stage0["prompt"].endswith(text)
    sampling = parsed["sampling_params_list"]
    assert (sampling["height"], sampling["width"]) == (height, width)
    original = parsed["original_prompt"]
    assert glm_upstream.readable_size(original, height, width)  # where vLLM-Omni's reads it
    assert original["prompt"].endswith(text)


def test_concurrent_awaited_parses_keep_their_own_size(
    patched: DynamoHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not patched.parse_is_async:
        pytest.skip("this Dynamo's parse is synchronous (ai-dynamo 1.1.x): see the threaded test")
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "reject")
    parse = patched.stage_worker.parse_omni_request
    requests = sized_requests(COUNT)
    getter = YieldingTokenizerGetter()

    async def serve_all() -> list[dict]:
        return await asyncio.gather(
            *(parse(request, ["image"], 16, tokenizer_getter=getter) for *_, request in requests)
        )

    results = asyncio.run(serve_all())
    assert getter.max_in_flight >= COUNT // 4, "the parses did not interleave"
    for (height, width, request), parsed in zip(requests, results, strict=True):
        text = request.get("prompt") or request["messages"][0]["content"]
        assert_own_size(parsed, height, width, text)


def test_parses_from_many_threads_keep_their_own_size(
    patched: DynamoHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_SIZE_POLICY", "reject")
    requests = sized_requests(COUNT)

    def serve(item: tuple[int, int, dict]) -> dict:
        return patched.parse(item[2], ["image"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(serve, requests))
    for (height, width, request), parsed in zip(requests, results, strict=True):
        text = request.get("prompt") or request["messages"][0]["content"]
        assert_own_size(parsed, height, width, text)
