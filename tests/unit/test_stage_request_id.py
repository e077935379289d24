"""The stage engine gets each request's own id where ai-dynamo 1.1.1 passes it positionally.

Stand-ins: ``Engine.generate`` has the signature of vLLM-Omni's ``AsyncOmni.generate``
(0.20.0rc1: ``(prompt, sampling_params=None, request_id="", *, sampling_params_list=None, ...)``);
the two worker classes call it as ai-dynamo 1.1.1 and 1.2.1 do (``stage_worker.py``). The
real-engine proof (concurrent requests through the real topology) is in ``tests/real``.
"""

from __future__ import annotations

import asyncio

from omni_sizefix.runtime.patches import stage_worker


class Engine:
    def __init__(self) -> None:
        self.seen: list[tuple[object, str]] = []

    async def generate(
        self, prompt, sampling_params=None, request_id="", *, sampling_params_list=None
    ):
        self.seen.append((sampling_params, request_id))
        yield prompt


class Worker11:
    def __init__(self) -> None:
        self.engine = Engine()

    async def generate(self, prompt, request_id):
        async for chunk in self.engine.generate(prompt, request_id, sampling_params_list=[]):
            return chunk


class Worker12(Worker11):
    async def generate(self, prompt, request_id):
        async for chunk in self.engine.generate(
            prompt, request_id=request_id, sampling_params_list=[]
        ):
            return chunk


def run(worker, ids):
    async def go():
        for request_id in ids:
            await worker.generate("p", request_id)

    asyncio.run(go())
    return worker.engine.seen


def test_host_defect_every_request_reaches_the_engine_without_its_id():
    assert run(Worker11(), ["a", "b"]) == [("a", ""), ("b", "")]


def test_fixed_engine_call_carries_each_id():
    worker = Worker11()
    assert stage_worker.bind_request_id(worker) is True
    assert stage_worker.bind_request_id(worker) is False  # idempotent
    assert run(worker, ["a", "b"]) == [(None, "a"), (None, "b")]


def test_a_host_that_passes_the_id_by_name_is_left_alone():
    worker = Worker12()
    assert stage_worker.host_passes_id_positionally(Worker12) is False
    assert stage_worker.bind_request_id(worker) is False
    assert "generate" not in vars(worker.engine)
    assert run(worker, ["a"]) == [(None, "a")]


def test_an_engine_with_another_signature_is_left_alone():
    class Other(Engine):
        async def generate(self, prompt, request_id="", *, sampling_params_list=None):
            yield prompt

    worker = Worker11()
    worker.engine = Other()
    assert stage_worker.bind_request_id(worker) is False
    assert "generate" not in vars(worker.engine)
