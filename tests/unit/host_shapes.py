"""What the real hosts' parse_omni_request returns, written down for host-free unit tests.

Copied from real runs (version-matrix.md §A2, cpu-findings.md §4); the host tests check
the same properties against the real functions.
"""

from __future__ import annotations


def dynamo_1_1_image(height: int, width: int, prompt: str = "a red apple") -> dict:
    """ai-dynamo 1.1.x, image request: no mm_processor_kwargs, no size for stage 1."""
    return {
        "engine_inputs": {"prompt": prompt},
        "original_prompt": {"prompt": prompt, "negative_prompt": None},
        "sampling_params_list": {"height": height, "width": width},
    }


def dynamo_1_2_image(height: int, width: int, prompt: str = "a red apple") -> dict:
    """ai-dynamo 1.2+, image request: mm_processor_kwargs on both prompts, no top level."""
    engine_inputs = {
        "prompt": prompt,
        "modalities": ["image"],
        "mm_processor_kwargs": {"target_h": height, "target_w": width},
    }
    return {
        "engine_inputs": engine_inputs,
        "original_prompt": dict(engine_inputs),
        "sampling_params_list": {"height": height, "width": width},
    }


def chat_text(text: str = "hello") -> dict:
    """Every release, chat without image output."""
    return {
        "engine_inputs": text,
        "original_prompt": {"prompt": text},
        "sampling_params_list": None,
    }
