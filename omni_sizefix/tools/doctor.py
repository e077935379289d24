"""``omni-sizefix doctor``: will the plugin act, and act correctly, in this environment?

Reads the host profile (``omni_sizefix.tools.host_profile``): distribution metadata, the host's
source files, and the behavioural probes, which import the host as a stage worker does
(can the installed release pair start at all?). With ``--stage-configs-path`` it also loads
that config as a worker would (``omni_sizefix.tools.config_check``), and says whether the
file outlives the package (a config naming ``omni_sizefix.*`` stops the workers from starting
once the package is removed).

Exit codes, as every ``omni-sizefix`` command: 0 nothing to fix; 1 a problem found (including
an unsupported host, or a release pair or config the workers cannot start with); 2 it could
not check (e.g. a stage config given where no vLLM-Omni or Dynamo is installed).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from omni_sizefix import __version__
from omni_sizefix.runtime import hooks, pipelines, settings
from omni_sizefix.runtime.settings import SUPPORTED_HOSTS
from omni_sizefix.tools import host, host_profile, hosts, stage_configs

#: Exit codes. A problem (``PROBLEM``) is labelled ATTENTION or UNSUPPORTED in the report.
OK, PROBLEM, CANNOT_CHECK = 0, 1, 2
ATTENTION = UNSUPPORTED = PROBLEM
GROUPS = ("vllm_omni.general_plugins", "vllm.general_plugins")
#: A stage config naming a module of this package cannot outlive it.
OWN_MODULE_PREFIX = "omni_sizefix."


@dataclass
class Finding:
    """One problem and what to do about it; ``level`` is the exit code it implies."""

    level: int
    problem: str
    fix: str
    #: ATTENTION, UNSUPPORTED or CANNOT CHECK (how the report labels it).
    label: str = "ATTENTION"


@dataclass
class Report:
    """Everything ``doctor`` found."""

    omni_sizefix: str = __version__
    versions: dict[str, str | None] = field(default_factory=dict)
    supported: dict[str, bool | None] = field(default_factory=dict)
    shape: str = ""
    shape_reason: str = ""
    host_signatures: dict[str, str] = field(default_factory=dict)
    #: False: this release pair cannot start a stage worker (None: not probed, no Dynamo).
    startable: bool | None = None
    stage_config_loader: str = ""
    stage1_dispatch: str | None = None
    cumulative_token_ids_bridge: bool | None = None
    stage0_budget_source: str | None = None
    entry_points: dict[str, bool] = field(default_factory=dict)
    vllm_plugins: str | None = None
    kill_switch: bool = False
    size_policy: str = ""
    stage_config: str | None = None
    stage1_runtime_fix: str = ""
    config_check: dict | None = None
    third_party_plugins: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return max((f.level for f in self.findings), default=OK)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data


def diagnose(
    stage_configs_path: str | None = None,
    model: str | None = None,
    profile: host_profile.HostProfile | None = None,
) -> Report:
    """Collect the report; every problem gets a finding with a fix.

    ``profile``: the host profile to judge (default: this process's, probed). With
    ``stage_configs_path``, also load that config as a worker would and say what will
    happen with it.
    """
    found = profile if profile is not None else host.probed()
    report = Report(versions=dict(found.versions), supported=dict(found.supported))
    add = report.findings.append
    for dist, spec in SUPPORTED_HOSTS.items():
        version = report.versions.get(dist)
        if version is None:
            add(
                Finding(
                    CANNOT_CHECK,
                    f"{dist} is not installed here",
                    "run doctor inside the Dynamo worker's environment",
                    "CANNOT CHECK",
                )
            )
        elif not report.supported[dist]:
            add(
                Finding(
                    PROBLEM,
                    f"{dist} {version} is outside {dist}{spec}",
                    "the plugin will step aside; use a supported release or upgrade omni-sizefix",
                    "UNSUPPORTED",
                )
            )
    if found.loader is not None:
        report.startable = found.loader.startable
        report.stage_config_loader = found.loader.detail
        if found.loader.startable is False:
            add(
                Finding(
                    PROBLEM,
                    found.loader.detail,
                    "install a vLLM-Omni release whose stage-config loader this ai-dynamo calls "
                    "correctly (docs/releases.md); the plugin cannot change that",
                    "UNSUPPORTED",
                )
            )
    if found.stage1 is not None:
        report.stage1_dispatch = found.stage1.host_call or "rejects vLLM-Omni's ar2diffusion"
        report.cumulative_token_ids_bridge = found.stage1.host_bridges_cumulative
    try:
        settings.shape_override()
    except ValueError as exc:
        add(Finding(ATTENTION, str(exc), f"unset {settings.SHAPE_VAR} or use auto"))
    plan = pipelines.plan()
    report.shape = plan.shape.value if plan.shape is not None else "none"
    report.shape_reason = plan.reason
    report.host_signatures = dict(found.signatures)
    for problem in found.signature_problems:
        add(
            Finding(
                PROBLEM,
                problem,
                "the plugin will step aside; this Dynamo is not supported",
                "UNSUPPORTED",
            )
        )
    for group in GROUPS:
        names = {ep.name: ep.value for ep in metadata.entry_points(group=group)}
        report.entry_points[group] = names.get("omni_sizefix") == "omni_sizefix:register"
        if not report.entry_points[group]:
            add(
                Finding(
                    ATTENTION,
                    f"entry point omni_sizefix not visible in {group}",
                    "reinstall omni-sizefix into the worker's environment",
                )
            )
    report.vllm_plugins = os.environ.get("VLLM_PLUGINS")
    if report.vllm_plugins is not None:
        allowed = {p.strip() for p in report.vllm_plugins.split(",") if p.strip()}
        if "omni_sizefix" not in allowed:
            add(
                Finding(
                    ATTENTION,
                    f"VLLM_PLUGINS={report.vllm_plugins!r} filters omni_sizefix out",
                    "add omni_sizefix to VLLM_PLUGINS",
                )
            )
    report.kill_switch = settings.disabled()
    if report.kill_switch:
        add(
            Finding(
                ATTENTION,
                f"{settings.DISABLE_VAR} is set: the plugin will do nothing",
                f"unset {settings.DISABLE_VAR} to enable it",
            )
        )
    try:
        report.size_policy = settings.checked_size_policy().value
    except ValueError as exc:
        add(Finding(ATTENTION, str(exc), f"set {settings.SIZE_POLICY_VAR} to reject, snap or off"))
    try:
        report.stage_config = str(
            stage_configs.config_path(schema=stage_configs.decide_schema(found).schema)
        )
    except (AttributeError, LookupError, ValueError) as exc:
        report.stage_config = None
        add(
            Finding(
                ATTENTION,
                f"no shipped stage config fits: {exc}",
                "pass vLLM-Omni's own GLM-Image config to --stage-configs-path",
            )
        )
    fixable = found.stage1_runtime_fix
    report.stage0_budget_source = found.stage0_budget_source
    if fixable:
        report.stage1_runtime_fix = (
            "a stage-1 worker that loads vLLM-Omni's GLM-Image processor gets one that works on "
            "this release pair (checked when the worker starts)"
        )
    elif fixable is False:
        report.stage1_runtime_fix = "not available on this Dynamo"
        add(
            Finding(
                ATTENTION,
                "stage 1 cannot be fixed at run time here (dynamo.vllm.omni.stage_worker has no "
                "_load_processor(func_path) called by OmniStageWorker.__init__): with "
                "vLLM-Omni's own GLM-Image config stage 1 may fail on this release pair",
                "name omni_sizefix.processors.glm_image.ar2diffusion as stage 1's "
                "custom_process_input_func (a rollback must then put vLLM-Omni's back), or run "
                "ai-dynamo >= 1.4 with vLLM-Omni >= 0.26; check with doctor --stage-configs-path",
            )
        )
    if stage_configs_path is not None:
        _check_config(report, stage_configs_path, model)
    try:
        report.third_party_plugins = hooks.third_party_plugins()
    except Exception as exc:
        add(
            Finding(
                ATTENTION,
                f"hook plugins could not be loaded: {exc}",
                f"fix or exclude them with {settings.PLUGINS_VAR}",
            )
        )
    return report


def config_processors(path: str | Path) -> list[str]:
    """Every ``custom_process_input_func`` a stage-config file names (read as YAML only)."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    stages = (data.get("stage_args") or data.get("stages") or []) if isinstance(data, dict) else []
    return [
        str(stage["custom_process_input_func"])
        for stage in stages
        if isinstance(stage, dict) and stage.get("custom_process_input_func")
    ]


def rollback_findings(path: str | Path) -> list[Finding]:
    """What a rollback (``pip uninstall omni-sizefix``) must also change in this config."""
    try:
        named = config_processors(path)
    except (OSError, yaml.YAMLError):
        return []  # the loader check below says what is wrong with the file
    own = [name for name in named if name.startswith(OWN_MODULE_PREFIX)]
    return [
        Finding(
            PROBLEM,
            f"{path} names {name}: workers started with it cannot start once omni-sizefix "
            "is uninstalled (OMNI_SIZEFIX_DISABLE=1 does not unload it either)",
            "before a rollback, or now: set custom_process_input_func to "
            f"{hosts.GLM_IMAGE_PROCESSOR} (the plugin fixes it at run time where "
            "needed), or write a fresh config with `omni-sizefix stage-config --output FILE`",
        )
        for name in own
    ]


def _check_config(report: Report, path: str, model: str | None) -> None:
    """Judge the stage config the workers load (``--stage-configs-path``)."""
    report.findings.extend(rollback_findings(path))
    missing = [d for d in SUPPORTED_HOSTS if report.versions.get(d) is None]
    if missing:
        report.findings.append(
            Finding(
                CANNOT_CHECK,
                f"cannot load {path} as a worker would: {', '.join(missing)} not installed here",
                "run doctor --stage-configs-path in the Dynamo worker's environment",
                "CANNOT CHECK",
            )
        )
        return
    from omni_sizefix.tools import config_check

    try:
        verdict = config_check.check(path, model=model)
    except Exception as exc:
        report.findings.append(
            Finding(
                CANNOT_CHECK,
                f"cannot load {path} as a worker would: {type(exc).__name__}: {exc}",
                "run doctor --stage-configs-path in the Dynamo worker's environment",
                "CANNOT CHECK",
            )
        )
        return
    report.config_check = asdict(verdict)
    for level, problem, fix in verdict.problems:
        label = "UNSUPPORTED" if level >= config_check.UNSUPPORTED else "ATTENTION"
        report.findings.append(Finding(PROBLEM, problem, fix, label))


def render(report: Report) -> str:
    """Human-readable report."""
    mark = {True: "supported", False: "NOT supported", None: "-"}
    lines = [f"omni-sizefix {report.omni_sizefix}", "", "Installed:"]
    for dist, version in report.versions.items():
        note = (
            f"  ({mark[report.supported[dist]]}: {dist}{SUPPORTED_HOSTS[dist]})"
            if dist in SUPPORTED_HOSTS
            else ""
        )
        lines.append(f"  {dist:<13} {version or 'not installed'}{note}")
    if report.stage_config_loader:
        verdict = {True: "starts", False: "CANNOT START", None: "not determined"}
        lines += [
            "",
            f"This release pair: {verdict[report.startable]}"
            + (" (below)" if report.startable is False else f" ({report.stage_config_loader})"),
        ]
    lines += ["", f"Stage-1 size shape: {report.shape} ({report.shape_reason})"]
    for name, found in report.host_signatures.items():
        lines.append(f"Host {name}: {found}")
    if report.stage1_dispatch is not None:
        bridge = "restored" if report.cumulative_token_ids_bridge else "not restored"
        lines.append(
            f"Stage-1 dispatch: {report.stage1_dispatch}; cumulative_token_ids after the "
            f"connector: {bridge}"
        )
    if report.stage0_budget_source:
        lines.append(f"Stage-0 budget: {report.stage0_budget_source}")
    for group, ok in report.entry_points.items():
        lines.append(f"Entry point in {group}: {'visible' if ok else 'MISSING'}")
    plugins_env = report.vllm_plugins
    lines.append(f"VLLM_PLUGINS: {plugins_env if plugins_env is not None else 'unset (all load)'}")
    lines.append(
        f"Kill switch {settings.DISABLE_VAR}: {'SET' if report.kill_switch else 'not set'}"
    )
    lines.append(f"Size policy: {report.size_policy or '?'}")
    lines.append(f"Stage config that fits: {report.stage_config or 'none'}")
    if report.stage1_runtime_fix:
        lines.append(f"Stage-1 run-time fix: {report.stage1_runtime_fix}")
    check = report.config_check
    if check is not None:
        lines += ["", f"Stage config {check['path']}:"]
        lines.append(f"  loads with this release's loader: {check['loads']}")
        if check["processor"]:
            lines.append(f"  stage-1 processor: {check['processor']}")
        if check["stage1"]:
            lines.append(f"  stage 1 runs: {check['stage1']}")
        if check["max_tokens"] is not None:
            lines.append(
                f"  stage-0 max_tokens: {check['max_tokens']} "
                f"(holds up to {check['largest_size'] or 'no size'})"
            )
        lines.append(f"  => {check['summary']}")
    lines.append(f"Third-party hook plugins: {', '.join(report.third_party_plugins) or 'none'}")
    lines.append("")
    if not report.findings:
        lines.append(
            "OK: the plugin will patch this host when a worker starts"
            + (
                "; stage 1's GLM-Image processor is fixed at run time where this release "
                "pair needs it."
                if report.stage1_runtime_fix and report.config_check is None
                else "."
            )
        )
    for finding in report.findings:
        lines.append(f"{finding.label}: {finding.problem}\n  -> {finding.fix}")
    return "\n".join(lines)
