"""``omni-sizefix check``: run the real host's request path for each size, with and without
the patch, and show what each stage would receive.

Imports the real host; engines are faked (see ``omni_sizefix.tools.simulation.dryrun``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import omni_sizefix
from omni_sizefix.runtime import sizing
from omni_sizefix.tools import host_profile, stage_configs
from omni_sizefix.tools.hosts import STAGE_WORKER_MODULE
from omni_sizefix.tools.simulation import dryrun

DEFAULT_SIZES = ("512x512", "768x1024", "1024x768", "1024x1024", "2048x2048")


@dataclass
class SizeRow:
    """One size: what the stages get with the plugin, and what the bare host would do."""

    size: str
    stage0: str
    stage1: str
    prior_tokens: int | None
    verdict: str
    unpatched: str
    unpatched_stage1: str
    stage0_unpatched: str = ""
    scaffold: str | None = None
    scaffold_unpatched: str | None = None


@dataclass
class CheckReport:
    """The whole run."""

    versions: dict[str, str | None]
    notes: list[str] = field(default_factory=list)
    stage_config: str | None = None
    log_file: str | None = None
    rows: list[SizeRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(row.verdict == "ok" for row in self.rows)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _describe_stage0(prompt: Any) -> str:
    if isinstance(prompt, dict) and "mm_processor_kwargs" in prompt:
        kwargs = prompt["mm_processor_kwargs"]
        return f"target {kwargs.get('target_w')}x{kwargs.get('target_h')}"
    return "no mm_processor_kwargs (no scaffold)"


def _load_configs(report: CheckReport) -> list:
    loader = getattr(stage_configs, "load_for_installed_host", None)
    if loader is not None:
        path, configs = loader()
    else:
        path = stage_configs.config_path(schema="legacy")
        configs = stage_configs.load_with_host_loader(path)
    report.stage_config = str(path)
    return list(configs)


def _scaffold_tools(report: CheckReport) -> tuple[Any, Any]:
    """(scaffold reader, describer) from the real vLLM-Omni preprocessor, when available."""
    try:
        stage0 = importlib.import_module("omni_sizefix.tools.simulation.stage0")
        reader = stage0.real_scaffold_reader()
        describer = stage0.describe_scaffold
    except Exception as exc:  # transformers without glm_image, preprocessor missing, ...
        report.notes.append(f"stage-0 scaffold not shown: {type(exc).__name__}: {exc}")
        return None, None
    report.notes.append(
        "stage 0 was run through the real vLLM-Omni preprocessor (weightless GLM-Image folder)"
    )
    return reader, describer


def run(sizes: list[str]) -> CheckReport:
    """Import the host, then run every size unpatched and patched."""
    report = CheckReport(versions=dict(host_profile.profile().versions))
    if "HF_HUB_OFFLINE" not in os.environ:
        os.environ["HF_HUB_OFFLINE"] = "1"  # a dry run never downloads (this process only)
    from omni_sizefix.tools.simulation import check_platform

    if check_platform.activate_if_needed():
        report.notes.append(
            "no accelerator platform found: registered a CPU platform for "
            "vLLM-Omni in this process only"
        )
    importlib.import_module(STAGE_WORKER_MODULE)
    configs = _load_configs(report)
    reader, describer = _scaffold_tools(report)
    kwargs = {"scaffold_reader": reader} if reader else {}
    for size in sizes:
        width, height = sizing.parse_size(size)
        request = {"model": "zai-org/GLM-Image", "prompt": "a red apple", "size": size}
        omni_sizefix.unpatch()
        bare = _run_one(request, configs, kwargs)
        # Stage 1 alone: the AR output laid out as if stage 0 had its scaffold.
        bare_stage1 = _run_one(
            request, configs, {"scaffold_reader": _requested_layout(height, width)}
        )
        if not omni_sizefix.patch():
            raise RuntimeError("the plugin refused to patch this host; see omni-sizefix doctor")
        fixed = _run_one(request, configs, kwargs)
        omni_sizefix.unpatch()
        row = SizeRow(
            size=size,
            stage0=_describe_stage0(fixed.stage0_prompt),
            stage1=f"{fixed.width}x{fixed.height}" if fixed.height else "-",
            prior_tokens=len(fixed.prior) if fixed.prior is not None else None,
            verdict=fixed.verdict(height, width),
            unpatched=bare.verdict(height, width),
            unpatched_stage1=bare_stage1.verdict(height, width),
            stage0_unpatched=_describe_stage0(bare.stage0_prompt),
        )
        if describer is not None:
            row.scaffold = describer(fixed.stage0_prompt)
            row.scaffold_unpatched = describer(bare.stage0_prompt)
        report.rows.append(row)
    return report


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for i, row in enumerate([header, *rows]):
        lines.append("  " + "  ".join(c.ljust(widths[j]) for j, c in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


def _requested_layout(height: int, width: int) -> Any:
    grids = sizing.grids_for(height, width)
    return lambda prompt: grids


def _run_one(request: dict, configs: list, kwargs: dict) -> dryrun.StageOneResult:
    try:
        return dryrun.run_request(dict(request), configs, **kwargs)
    except Exception as exc:
        return dryrun.StageOneResult(error=f"{type(exc).__name__}: {exc}")


def render(report: CheckReport) -> str:
    """The table people read."""
    lines = ["Host: " + ", ".join(f"{k} {v}" for k, v in report.versions.items() if v)]
    if report.stage_config:
        lines.append(f"Stage config: {report.stage_config}")
    if report.log_file:
        lines.append(f"Host and plugin log lines: {report.log_file} (-v prints them instead)")
    lines += [f"Note: {note}" for note in report.notes]
    lines += ["", "With omni-sizefix:"]
    lines += _table(
        ("size (WxH)", "stage 0 receives", "stage 1 computes", "prior tokens", "verdict"),
        [(r.size, r.stage0, r.stage1, str(r.prior_tokens or "-"), r.verdict) for r in report.rows],
    )
    lines += ["", "Without omni-sizefix (the host as released):"]
    lines += _table(
        ("size (WxH)", "stage 0 receives", "whole pipeline", "stage 1 alone"),
        [(r.size, r.stage0_unpatched, r.unpatched, r.unpatched_stage1) for r in report.rows],
    )
    lines += [
        "  ('stage 1 alone' feeds stage 1 an AR output laid out for the requested size,",
        "  as if stage 0 had been right, to show the stage-1 defect on its own.)",
    ]
    if any(r.scaffold for r in report.rows):
        lines += ["", "Stage-0 scaffold (real vLLM-Omni preprocessing):"]
        for r in report.rows:
            lines.append(f"  {r.size}: with: {r.scaffold} | without: {r.scaffold_unpatched}")
    lines += [
        "",
        "RESULT: every size renders as requested"
        if report.ok
        else "RESULT: some sizes do NOT render as requested",
    ]
    return "\n".join(lines)
