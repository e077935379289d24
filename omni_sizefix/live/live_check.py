"""``omni-sizefix check --live``: the four real Dynamo processes here (engines FAKE), image
requests over HTTP, with the plugin and with ``OMNI_SIZEFIX_DISABLE=1``, side by side.

The two topologies run one after the other (each takes minutes to start on a small
machine); the run without the plugin uses vLLM-Omni's own stage-1 processor, i.e. the host
as released. A size is ``ok`` when the PNG has the requested size and its pixels show the
prior tokens GLM-Image's DiT needs for that size (see ``fake_engines``).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

from packaging.version import Version

from omni_sizefix import version_policy
from omni_sizefix.live import client, topology

#: The frontends of ai-dynamo < 1.4 take only the OpenAI size enum; other sizes get HTTP 400.
ENUM_SIZES = ("1536x1024", "1024x1536", "256x256", "512x512", "1024x1024")
DEFAULT_SIZES = ("1536x1024", "768x1024", "256x256", "2048x2048", "1024x1024")


def default_sizes() -> tuple[str, ...]:
    """The sizes checked by default: the OpenAI enum only where the frontend takes no other."""
    text = version_policy.installed_version("ai-dynamo")
    if text is not None and Version(text) < Version("1.4"):
        return ENUM_SIZES
    return DEFAULT_SIZES


@dataclass
class Row:
    size: str
    returned: str
    verdict: str
    latency_s: float | None


@dataclass
class Run:
    label: str
    mode: str
    started_s: float | None = None
    error: str | None = None
    logs: str | None = None
    rows: list[Row] = field(default_factory=list)


@dataclass
class LiveReport:
    versions: dict[str, str | None]
    sizes: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        plugin = self.runs[0] if self.runs else None
        return bool(plugin and plugin.rows) and all(r.verdict == "ok" for r in plugin.rows)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _run_one(
    label: str, mode: str, plugin: bool, config: str, sizes: list[str], timeout: float
) -> Run:
    run = Run(label=label, mode=mode)
    live = topology.Topology(stage_config=config, plugin=plugin, progress=_progress)
    try:
        live.start(timeout=timeout)
        run.started_s = round(live.started_s or 0.0, 1)
        for size in sizes:
            reply = client.generate(live.url, size, model=live.served_model)
            returned = f"{reply.size[0]}x{reply.size[1]}" if reply.size else f"HTTP {reply.status}"
            run.rows.append(
                Row(size, returned, client.verdict(reply, size), round(reply.latency_s, 2))
            )
    except (topology.TopologyError, OSError, ValueError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        live.stop()
        run.logs = str(live.run_dir / "logs") if live.run_dir else None
    return run


def run(sizes: list[str] | None = None, timeout: float = topology.DEFAULT_TIMEOUT_S) -> LiveReport:
    """Both topologies, one after the other."""
    chosen = list(sizes or default_sizes())
    report = LiveReport(versions=version_policy.host_versions(), sizes=chosen)
    _progress(
        f"omni-sizefix check --live: 2 topologies, one after the other; each may take "
        f"{timeout:.0f} s at most to start"
    )
    report.runs.append(
        _run_one(
            "with", "with omni-sizefix (shipped stage config)", True, "shipped", chosen, timeout
        )
    )
    report.runs.append(
        _run_one(
            "without",
            "without (OMNI_SIZEFIX_DISABLE=1, vLLM-Omni's own stage-1 processor)",
            False,
            "own",
            chosen,
            timeout,
        )
    )
    return report


def render(report: LiveReport) -> str:
    lines = ["Host: " + ", ".join(f"{k} {v}" for k, v in report.versions.items() if v)]
    lines.append(
        "Live: frontend, router and two stage workers of the installed Dynamo on 127.0.0.1; "
        "stage engines FAKE (the picture shows the prior tokens the DiT received)"
    )
    for run in report.runs:
        started = (
            f"started in {run.started_s:.0f} s" if run.started_s is not None else "not started"
        )
        lines.append(f"  {run.mode}: {started}; logs {run.logs}")
        if run.error:
            lines.append(f"    failed: {run.error.splitlines()[0]}")
    header = ["size (WxH)"]
    for run in report.runs:
        header += [f"{run.label}: returned", "verdict"]
    table = []
    for i, size in enumerate(report.sizes):
        row = [size]
        for run in report.runs:
            if i < len(run.rows):
                row += [run.rows[i].returned, run.rows[i].verdict]
            else:
                row += ["-", run.error.splitlines()[0][:40] if run.error else "-"]
        table.append(row)
    widths = [max(len(r[j]) for r in [header, *table]) for j in range(len(header))]
    lines.append("")
    for k, row in enumerate([header, *table]):
        lines.append("  " + "  ".join(c.ljust(widths[j]) for j, c in enumerate(row)).rstrip())
        if k == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    lines += [
        "",
        "RESULT: every size comes back as requested with omni-sizefix"
        if report.ok
        else "RESULT: some sizes do NOT come back as requested with omni-sizefix",
    ]
    return "\n".join(lines)
