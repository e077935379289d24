"""Patches applied to host code, and when each one can be deleted.

Each module documents its target, why, how and the upstream change it mirrors.
``REMOVALS`` is the one index of when they can go: a patch (or one numbered fix of
``glm_image_processor``) is needed while the declared supported range
(``omni_sizefix.runtime.package.SUPPORTED_HOSTS``) admits a release that needs it.
``tests/unit/test_removal_tripwires.py`` fails, naming what to delete, once it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Removal:
    """When one patch, or one numbered fix of a patch, can be deleted."""

    #: Module name in this package, with ``#N`` for fix N of its docstring.
    patch: str
    #: The releases that need it: each mapping is one set of releases (distribution ->
    #: PEP 440 specifier, all of them together); the patch is needed while the supported
    #: range admits any one of these sets.
    needed_by: tuple[Mapping[str, str], ...]
    #: What upstream did that makes it unnecessary there.
    upstream: str

    def describe(self) -> str:
        """``ai-dynamo<1.4, or ai-dynamo<1.6 with vllm-omni<0.29``."""
        return ", or ".join(
            " with ".join(f"{dist}{spec}" for dist, spec in releases.items())
            for releases in self.needed_by
        )


REMOVALS: tuple[Removal, ...] = (
    Removal(
        "dynamo_omni_utils",
        ({"ai-dynamo": "<1.2"}, {"vllm-omni": "<0.20.0rc1"}),
        "ai-dynamo 1.2 writes the stage-0 kwargs and the size as mm_processor_kwargs, which "
        "vLLM-Omni 0.20.0rc1 reads, for image and chat requests alike (ai-dynamo/dynamo#8679); "
        "tests/host/test_removals_match_host.py checks this against each cell's host",
    ),
    Removal(
        "dynamo_omni_utils#size-checks",
        ({"ai-dynamo": "<1.8"},),
        "none yet: every release up to 1.7 turns a malformed size into 1024x1024 and renders "
        "sizes that are not multiples of 32 inexactly (ai-dynamo/dynamo#8679 is a draft)",
    ),
    Removal(
        "dynamo_stage_budget",
        ({"ai-dynamo": "<1.8"},),
        "none yet: it is where a worker learns its model from its stage config "
        "(pipelines.record), which no Dynamo release tells the plugin otherwise, and where a "
        "config's stage-0 max_tokens becomes the size limit; any config below 4353 tokens "
        "needs it, not only vLLM-Omni <= 0.18's legacy one (1281; 0.20.0rc1's deploy config "
        "sets 4353). No release adjusts max_tokens per request (ai-dynamo/dynamo#8679)",
    ),
    Removal(
        "dynamo_stage_processor",
        (
            {"ai-dynamo": "<1.4"},
            {"vllm-omni": "<=0.20.0rc1"},
            {"ai-dynamo": "<1.6", "vllm-omni": "<0.29"},
        ),
        "ai-dynamo 1.4 dispatches a processor whose second parameter is `prompt`, 1.2 restores "
        "cumulative_token_ids; vLLM-Omni 0.20.0rc1 reads mm_processor_kwargs and the scaffold's "
        "preview grid; MammothModa2 <= 0.28 names it `prompts`, which ai-dynamo 1.4/1.5 do not "
        "dispatch",
    ),
    Removal(
        "dynamo_stage_request_id",
        ({"ai-dynamo": "<1.2"},),
        "ai-dynamo 1.2 calls engine.generate(prompt, request_id=request_id, ...)",
    ),
    Removal(
        "processor_adapter",
        ({"ai-dynamo": "<1.4"}, {"ai-dynamo": "<1.6", "vllm-omni": "<0.29"}),
        "ai-dynamo 1.4 dispatches `prompt` and restores cumulative_token_ids; MammothModa2 "
        "<= 0.28 names it `prompts`, which ai-dynamo 1.4/1.5 do not dispatch",
    ),
    Removal(
        "ctx_processor",
        ({"ai-dynamo": "<1.8"},),
        "none yet: no ai-dynamo release up to 1.7.0.dev dispatches (source_outputs, ctx) "
        "processors (vllm-project/vllm-omni#4872, #6801)",
    ),
    Removal(
        "upstream_parse_params",
        ({"ai-dynamo": "<1.8"},),
        "none yet: the new optional parse_omni_request parameters are on ai-dynamo's main "
        "branch only; once the oldest supported release has them they join "
        "SUPPORTED_SIGNATURES",
    ),
    Removal(
        "glm_image_processor#1",
        ({"ai-dynamo": "<1.4"},),
        "ai-dynamo 1.4.0 accepts `prompt` (_accepts_source_outputs_processor)",
    ),
    Removal(
        "glm_image_processor#2",
        ({"ai-dynamo": "<1.2"}, {"vllm-omni": "<=0.20.0rc1"}),
        "ai-dynamo 1.2 and vLLM-Omni 0.20.0 call (source_outputs, original_prompt, ...)",
    ),
    Removal(
        "glm_image_processor#3",
        ({"vllm-omni": "<0.20.0rc1"},),
        "vLLM-Omni 0.20.0rc1 reads mm_processor_kwargs (vllm-project/vllm-omni#3034)",
    ),
    Removal(
        "glm_image_processor#4",
        ({"vllm-omni": "<0.20.0rc1"},),
        "vLLM-Omni 0.20.0rc1 slices the prior at the scaffold's preview grid",
    ),
    Removal(
        "glm_image_processor#5",
        ({"ai-dynamo": "<1.2"},),
        "ai-dynamo 1.2 restores cumulative_token_ids (_ensure_cumulative_token_ids)",
    ),
    Removal(
        "glm_image_processor#6",
        ({"ai-dynamo": "<1.2", "vllm-omni": ">=0.24"},),
        "ai-dynamo 1.2 calls with source outputs and unwraps upstream's own return value",
    ),
)
