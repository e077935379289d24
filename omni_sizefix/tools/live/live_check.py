"""``omni-sizefix check --live``: the four real Dynamo processes here (engines FAKE), image
requests over HTTP, with the plugin and with ``OMNI_SIZEFIX_DISABLE=1``, side by side.

The two topologies run one after the other (each takes minutes to start on a small
machine); both load vLLM-Omni's own GLM-Image stage config (what a deployment already runs),
so the run without the plugin is the host as released. Requests go through
``omni_sizefix.tools.smoke`` (``client.generate``); a size is ``ok`` when the PNG has the requested
size and its pixels show the prior tokens GLM-Image's DiT needs for that size (see
``fake_engines``). By default the sizes are those the release's frontend takes and the
config's stage-0 budget holds (``served``), plus one over the budget where there is one.

Each topology's run folder (logs, discovery store, model folder) is deleted when it has
stopped, unless ``keep_logs`` is set or the run failed (did not start, or with the plugin a
size did not come back as requested); the report names the logs that were kept.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

from omni_sizefix.runtime import version_policy
from omni_sizefix.tools.live import client, served, topology

#: Candidates for the default sizes (kept where the frontend and the budget allow).
CANDIDATE_SIZES = ("1536x1024", "768x1024", "256x256", "512x512", "2048x2048", "1024x1024")
#: Enum sizes over vLLM-Omni's legacy budget: one is shown, rejected with the plugin.
OVER_BUDGET_CANDIDATES = ("1536x1024", "1024x1536")
#: Verdict prefix of a size over the stage-0 budget that the plugin refused (as it should).
REJECTED = "rejected (over the stage-0 budget)"


def default_sizes(max_tokens: int | None) -> list[str]:
    """What the frontend takes and the budget holds, plus one enum size over the budget."""
    sizes = served.servable(CANDIDATE_SIZES, max_tokens)
    over = [s for s in OVER_BUDGET_CANDIDATES if not served.fits(s, max_tokens)]
    return sizes + over[:1]


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
    """Where this run's logs are (None: deleted)."""
    rows: list[Row] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Did not start, or (with the plugin) some size did not come back as it should."""
        if self.error is not None:
            return True
        return self.label == "with" and not all(
            r.verdict == "ok" or r.verdict.startswith(REJECTED) for r in self.rows
        )


@dataclass
class LiveReport:
    versions: dict[str, str | None]
    sizes: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        plugin = self.runs[0] if self.runs else None
        return bool(plugin and plugin.rows) and all(
            r.verdict == "ok" or r.verdict.startswith(REJECTED) for r in plugin.rows
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _run_one(
    label: str,
    mode: str,
    plugin: bool,
    config: str,
    sizes: list[str],
    timeout: float,
    keep_logs: bool = False,
) -> Run:
    run = Run(label=label, mode=mode)
    live = topology.Topology(stage_config=config, plugin=plugin, progress=_progress)
    try:
        live.start(timeout=timeout)
        run.started_s = round(live.started_s or 0.0, 1)
        if not sizes:  # the first run picks the defaults for both
            assert live.stage_config_path is not None
            sizes += default_sizes(topology.stage0_max_tokens(live.stage_config_path))
        max_tokens = topology.stage0_max_tokens(live.stage_config_path)  # type: ignore[arg-type]
        for size in sizes:
            reply = client.generate(live.url, size, model=live.served_model)
            returned = f"{reply.size[0]}x{reply.size[1]}" if reply.size else f"HTTP {reply.status}"
            verdict = client.verdict(reply, size)
            if plugin and reply.status >= 400 and not served.fits(size, max_tokens):
                verdict = f"{REJECTED}: {verdict}"
            run.rows.append(Row(size, returned, verdict, round(reply.latency_s, 2)))
    except (topology.TopologyError, OSError, ValueError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        live.stop()
        run.logs = str(live.run_dir / "logs") if live.run_dir else None
        if not (keep_logs or run.failed) and live.remove_run_dir():
            run.logs = None
    return run


def run(
    sizes: list[str] | None = None,
    timeout: float = topology.DEFAULT_TIMEOUT_S,
    keep_logs: bool = False,
) -> LiveReport:
    """Both topologies, one after the other, with vLLM-Omni's own stage config.

    ``keep_logs``: keep every run folder (by default only those of failed runs are kept).
    """
    chosen = list(sizes or [])  # empty: filled from the config the first run loads
    report = LiveReport(versions=version_policy.host_versions(), sizes=chosen)
    _progress(
        f"omni-sizefix check --live: 2 topologies, one after the other; each may take "
        f"{timeout:.0f} s at most to start"
    )
    report.runs.append(
        _run_one(
            "with",
            "with omni-sizefix (vLLM-Omni's own stage config)",
            True,
            "own",
            chosen,
            timeout,
            keep_logs,
        )
    )
    report.runs.append(
        _run_one(
            "without",
            "without (OMNI_SIZEFIX_DISABLE=1, vLLM-Omni's own stage config)",
            False,
            "own",
            chosen,
            timeout,
            keep_logs,
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
        logs = f"logs kept in {run.logs}" if run.logs else "logs deleted (--keep-logs keeps them)"
        lines.append(f"  {run.mode}: {started}; {logs}")
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
    rejected = bool(report.runs) and any(
        r.verdict.startswith(REJECTED) for r in report.runs[0].rows
    )
    result = (
        "RESULT: every size comes back as requested with omni-sizefix"
        if report.ok
        else "RESULT: some sizes do NOT come back as requested with omni-sizefix"
    )
    if report.ok and rejected:
        result += " (sizes over the stage config's stage-0 budget are rejected up front)"
    lines += ["", result]
    return "\n".join(lines)
