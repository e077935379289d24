"""``omni-sizefix doctor --stage-configs-path FILE``: what will happen with this config here?

Imports the real host (with a CPU platform where no accelerator is found) and does what a
stage worker does at start: loads FILE with the installed Dynamo's own stage-config loader,
loads stage 1's processor through the (patched) ``_load_processor``, checks that this
Dynamo's dispatch can call it, and reads stage 0's ``max_tokens``. Each answer comes from
running the host's code, not from version numbers.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni_sizefix.tools.hosts import STAGE_WORKER_MODULE

OK, ATTENTION, UNSUPPORTED = 0, 1, 2


@dataclass
class ConfigVerdict:
    """What a stage worker will make of one stage config on this host."""

    path: str
    schema: str | None = None
    loads: str = ""
    processor: str | None = None
    stage1: str = ""
    max_tokens: int | None = None
    largest_size: str | None = None
    level: int = OK
    #: (level, problem, fix) for every problem found.
    problems: list[tuple[int, str, str]] = field(default_factory=list)
    summary: str = ""

    def problem(self, level: int, problem: str, fix: str) -> None:
        self.problems.append((level, problem, fix))
        self.level = max(self.level, level)


def _stage1_config(configs: list[Any]) -> Any | None:
    from omni_sizefix.tools import stage_configs

    for config in configs[1:]:
        if stage_configs.stage_processor(config):
            return config
    return None


def _stage1_verdict(verdict: ConfigVerdict, host_module: Any, func_path: str) -> None:
    import omni_sizefix
    from omni_sizefix.runtime import settings
    from omni_sizefix.runtime.patches import stage1
    from omni_sizefix.runtime.patches import stage_worker as patch

    was_patched = omni_sizefix.is_patched()
    patched = was_patched or omni_sizefix.patch()
    try:
        processor = host_module._load_processor(func_path)
    except Exception as exc:
        verdict.stage1 = f"cannot load {func_path}: {type(exc).__name__}: {exc}"
        verdict.problem(
            UNSUPPORTED,
            f"the stage-1 worker cannot start: its processor {func_path} does not load "
            f"({type(exc).__name__}: {exc})",
            "name a processor that exists, e.g. the one in `omni-sizefix stage-config glm_image`",
        )
        return
    finally:
        if patched and not was_patched:
            omni_sizefix.unpatch()
    upstream = patch.is_upstream_glm_image(processor)
    if processor is stage1.ar2diffusion and func_path != stage1.PROCESSOR:
        reasons = "; ".join(patch.profile().reasons)
        verdict.stage1 = (
            f"vLLM-Omni's GLM-Image ar2diffusion, replaced at run time by {stage1.PROCESSOR} "
            f"({reasons})"
        )
    elif processor is stage1.ar2diffusion:
        verdict.stage1 = f"{stage1.PROCESSOR} (named by the config)"
    elif upstream:
        found = patch.profile()
        if found.needs_fix:
            why = (
                f"{settings.DISABLE_VAR} is set"
                if settings.disabled()
                else "the plugin does not patch this host"
            )
            verdict.stage1 = f"vLLM-Omni's GLM-Image ar2diffusion, NOT fixed ({why})"
            verdict.problem(
                ATTENTION,
                f"stage 1 will not render the requested size: {'; '.join(found.reasons)}",
                f"unset {settings.DISABLE_VAR}, or use `omni-sizefix stage-config glm_image`",
            )
            return
        verdict.stage1 = "vLLM-Omni's GLM-Image ar2diffusion, which this release pair runs right"
    else:
        verdict.stage1 = f"{func_path} (not GLM-Image's; omni-sizefix leaves it as is)"
    if patch.host_call(host_module, processor) is None:
        verdict.problem(
            ATTENTION,
            f"this Dynamo's stage-1 dispatch rejects {func_path} (TypeError on every request)",
            "use `omni-sizefix stage-config glm_image`",
        )


def _budget_verdict(verdict: ConfigVerdict, stage0: Any) -> None:
    from omni_sizefix.runtime import sizing
    from omni_sizefix.runtime.patches import stage_worker

    verdict.max_tokens = stage_worker.stage0_budget(stage0)
    if verdict.max_tokens is None:
        return
    side = sizing.largest_square_side(verdict.max_tokens)
    verdict.largest_size = f"{side}x{side}" if side else None
    if side is None or side < 1024:
        verdict.problem(
            ATTENTION,
            f"stage-0 max_tokens {verdict.max_tokens} holds "
            + (f"only up to {side}x{side}" if side else "no GLM-Image size")
            + ": requests at the default 1024x1024 will be rejected",
            f"raise stage-0 max_tokens (4353 holds {sizing.MAX_SIDE}x{sizing.MAX_SIDE}),"
            f" or use `{sizing.RAISE_BUDGET_COMMAND}`",
        )


def check(path: str | Path, *, model: str | None = None) -> ConfigVerdict:
    """Load ``path`` as a stage worker of the installed host would, and judge it."""
    from omni_sizefix.tools import stage_configs
    from omni_sizefix.tools.simulation import check_platform

    verdict = ConfigVerdict(path=str(path))
    try:
        verdict.schema = stage_configs.file_schema(path)
    except (OSError, ValueError) as exc:
        verdict.loads = f"not a stage config: {exc}"
        verdict.problem(UNSUPPORTED, verdict.loads, "pass a stage_args: or stages: YAML file")
        return _summarise(verdict)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    check_platform.activate_if_needed()
    try:
        stage_worker = importlib.import_module(STAGE_WORKER_MODULE)
    except ImportError as exc:
        verdict.loads = f"no Dynamo stage worker here: {exc}"
        verdict.problem(UNSUPPORTED, verdict.loads, "run doctor in the worker's environment")
        return _summarise(verdict)
    try:
        configs = stage_configs.load_with_host_loader(
            path, hf_model=model or stage_configs.DEFAULT_HF_MODEL
        )
    except LookupError as exc:
        verdict.loads = f"no: {exc}"
        verdict.problem(
            UNSUPPORTED,
            f"the workers cannot start with this config: {exc}",
            "use `omni-sizefix stage-config glm_image` (the schema this release reads)",
        )
        return _summarise(verdict)
    except Exception as exc:
        verdict.loads = f"no: {type(exc).__name__}: {exc}"
        verdict.problem(
            UNSUPPORTED,
            "the workers cannot start: this release pair's stage-config loader fails "
            f"({type(exc).__name__}: {exc})",
            "install a release pair whose loader matches (see README, Supported hosts)",
        )
        return _summarise(verdict)
    verdict.loads = f"yes, {len(configs)} stages ({verdict.schema} schema)"
    stage1 = _stage1_config(configs)
    if stage1 is not None:
        verdict.processor = stage_configs.stage_processor(stage1)
        _stage1_verdict(verdict, stage_worker, verdict.processor)
    else:
        verdict.stage1 = "no stage names a processor (not an AR -> DiT config)"
    if configs:
        _budget_verdict(verdict, configs[0])
    return _summarise(verdict)


def _summarise(verdict: ConfigVerdict) -> ConfigVerdict:
    if verdict.level == UNSUPPORTED:
        verdict.summary = f"The workers will NOT start with {verdict.path}."
    elif verdict.level == ATTENTION:
        verdict.summary = f"With {verdict.path} the workers start, but requests will fail."
    else:
        sizes = f" up to {verdict.largest_size}" if verdict.largest_size else ""
        verdict.summary = (
            f"This will work: GLM-Image sizes{sizes} render as requested"
            + ("; larger ones are rejected with a clear error" if sizes else "")
            + "."
        )
    return verdict
