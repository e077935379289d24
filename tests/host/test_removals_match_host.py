"""The patch index's removal conditions against this cell's host.

``omni_sizefix.runtime.patches.REMOVALS`` says, per patch, which releases still need it. Here
that claim meets the installed release pair: where the index says this pair no longer needs the
parse patch's writing, the host alone (kill switch) must already give GLM-Image's stage 0 its
size and write the size into ``original_prompt`` where the installed vLLM-Omni processor reads
it; where the index says it is needed, the host alone must miss one of them. The facts are read
from the real host parse and the real processor (``glm_upstream``), not from the package.
"""

from __future__ import annotations

import glm_upstream
import pytest
from conftest import DynamoHost, image_request
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from omni_sizefix.runtime import settings
from omni_sizefix.runtime.patches import REMOVALS, Removal

HEIGHT, WIDTH = 768, 1024  # a size GLM-Image renders exactly, not the 1024x1024 default


def needed_here(removal: Removal) -> bool:
    """True when the installed releases are one of the sets that need ``removal``."""

    def installed_in(dist: str, spec: str) -> bool:
        version = settings.installed_version(dist)
        return version is not None and SpecifierSet(spec).contains(
            Version(version), prereleases=True
        )

    return any(
        all(installed_in(dist, spec) for dist, spec in releases.items())
        for releases in removal.needed_by
    )


def removal(patch: str) -> Removal:
    return next(r for r in REMOVALS if r.patch == patch)


def chat_request() -> dict:
    return {
        "model": "zai-org/GLM-Image",
        "messages": [{"role": "user", "content": "a red apple"}],
        "size": f"{WIDTH}x{HEIGHT}",
    }


def host_defects(parsed: dict) -> list[str]:
    """What the parse patch's writing would fix in a host result for a HEIGHTxWIDTH request."""
    found = []
    stage0 = parsed.get("engine_inputs")
    kwargs = stage0.get("mm_processor_kwargs") if isinstance(stage0, dict) else None
    if not isinstance(kwargs, dict) or (kwargs.get("target_h"), kwargs.get("target_w")) != (
        HEIGHT,
        WIDTH,
    ):
        found.append(f"stage 0 has no target_h/target_w {HEIGHT}/{WIDTH}: {stage0!r}")
    if not glm_upstream.carries_size(parsed.get("original_prompt"), HEIGHT, WIDTH):
        found.append(
            f"original_prompt has no size the processor reads: {parsed['original_prompt']!r}"
        )
    return found


@pytest.mark.parametrize("kind", ["image", "chat"])
def test_the_parse_patch_writing_is_needed_exactly_where_the_index_says(
    kill_switch: DynamoHost, kind: str
) -> None:
    request = image_request(HEIGHT, WIDTH) if kind == "image" else chat_request()
    parsed = kill_switch.parse(request, ["image"])
    defects = host_defects(parsed)
    entry = removal("parse#1")
    if needed_here(entry):
        assert defects, f"REMOVALS says {entry.describe()} needs it, but the host alone is right"
    else:
        assert not defects, f"REMOVALS says this pair does not need it: {defects}"
