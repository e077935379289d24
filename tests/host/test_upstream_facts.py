"""The tests' own oracles, checked against the installed releases.

* ``glm_upstream.reads()`` (where vLLM-Omni's GLM-Image processor takes the size, found by
  calling it) against ``glm_upstream.READS_BY_RELEASE`` (read from each release) and the
  cited lines of the installed source;
* ``glm_upstream.dispatch_calls`` (this Dynamo's stage-1 dispatch rules) against
  ``DISPATCH_BY_RELEASE`` below;
* ``tests/unit/host_shapes.py`` (what the unit tests take as the hosts' parse output) against
  the real ``parse_omni_request`` of this cell, so that the unit tests cannot drift.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import glm_upstream
import pytest
from conftest import DynamoHost, image_request
from packaging.version import Version

from omni_sizefix.runtime import settings

HOST_SHAPES_FILE = Path(__file__).resolve().parents[1] / "unit" / "host_shapes.py"


def installed(dist: str) -> str:
    version = settings.installed_version(dist)
    if version is None:
        pytest.skip(f"{dist} is not installed in this cell")
    return version


# --- where vLLM-Omni's GLM-Image processor reads the size ----------------------------------


def test_probe_finds_what_the_release_declares() -> None:
    version = installed("vllm-omni")
    declared = glm_upstream.declared_reads(version)
    if declared is None:
        pytest.skip(f"vLLM-Omni {version} has no GLM-Image stage-1 processor")
    places, _ = declared
    assert glm_upstream.reads() == places


def test_cited_lines_read_the_size() -> None:
    """The lines ``READS_BY_RELEASE`` cites are where the installed processor reads the size
    (the table is written from the wheels; a release that moves them fails here)."""
    version = installed("vllm-omni")
    declared = glm_upstream.declared_reads(version)
    if declared is None:
        pytest.skip(f"vLLM-Omni {version} has no GLM-Image stage-1 processor")
    places, (first, last) = declared
    lines = Path(inspect.getfile(glm_upstream.function())).read_text().splitlines()
    cited = "\n".join(lines[first - 1 : last])
    assert ('"height"' in cited and '"width"' in cited) == (glm_upstream.TOP_LEVEL in places)
    assert ('"target_h"' in cited) == (glm_upstream.MM_KWARGS in places), cited


def test_the_processor_reads_no_size_from_elsewhere() -> None:
    """Control for ``reads``: a prompt without a size gets the processor's 1024 default."""
    installed("vllm-omni")
    assert glm_upstream.size_for({"prompt": "a red apple"}, 1024, 1024) == (1024, 1024)
    assert glm_upstream.size_for({"prompt": "a red apple"}, 768, 1024) != (768, 1024)


# --- whether this Dynamo's stage-1 dispatch calls it ----------------------------------------

#: ai-dynamo release -> the second parameter names its stage-1 dispatch calls in the
#: source-output form (None: it calls every processor in the stage-list form).
#: 1.1.x has no name matcher; 1.2.x/1.3.x ``_accepts_source_outputs_processor`` wants
#: ``original_prompt`` (ai-dynamo==1.2.1:dynamo/vllm/omni/stage_worker.py:652-657);
#: 1.4.0 on also take vLLM-Omni's own ``prompt``.
DISPATCH_BY_RELEASE: list[tuple[str, frozenset[str] | None]] = [
    ("1.1.0", None),
    ("1.2.0", frozenset({"original_prompt"})),
    ("1.4.0", frozenset({"original_prompt", "prompt"})),
]


def declared_dispatch(version: str) -> frozenset[str] | None:
    found: frozenset[str] | None = None
    for first, names in DISPATCH_BY_RELEASE:
        if Version(version) >= Version(first):
            found = names
    return found


def test_dispatch_probe_matches_the_release(dynamo_host: DynamoHost) -> None:
    upstream = glm_upstream.function()
    names = glm_upstream.positional_names(upstream)
    second = declared_dispatch(installed("ai-dynamo"))
    if glm_upstream.declared_convention(upstream) == glm_upstream.STAGE_LIST:
        expected = True  # every release calls the stage-list form
    else:
        expected = second is not None and names[1] in second
    assert glm_upstream.dispatch_calls(dynamo_host.stage_worker) == expected, names


# --- tests/unit/host_shapes.py against the real parse ---------------------------------------


def host_shapes():
    spec = importlib.util.spec_from_file_location("host_shapes", HOST_SHAPES_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_shape_of_this_release():
    """ai-dynamo 1.1.x: a bare prompt, no size for stage 1 (ai-dynamo==1.1.1:
    dynamo/vllm/omni/utils.py:52-69); 1.2.0 on: ``mm_processor_kwargs`` and ``modalities`` on
    both prompts (ai-dynamo==1.2.1:…/utils.py:140-175; ==1.6.1:…/utils.py:405-456)."""
    shapes = host_shapes()
    if Version(installed("ai-dynamo")) < Version("1.2.0"):
        return shapes.dynamo_1_1_image
    return shapes.dynamo_1_2_image


@pytest.mark.parametrize(("height", "width"), [(768, 1024), (1024, 768), (512, 512)])
def test_host_shapes_are_what_the_real_parse_returns(
    unpatched: DynamoHost, height: int, width: int
) -> None:
    expected = image_shape_of_this_release()(height, width)
    assert unpatched.parse(image_request(height, width), ["image"]) == expected


def test_host_chat_shape_is_what_the_real_parse_returns(unpatched: DynamoHost) -> None:
    request = {"messages": [{"role": "user", "content": "hello"}]}
    assert unpatched.parse(request, ["text"]) == host_shapes().chat_text("hello")
