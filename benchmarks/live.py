"""The live topology's cost: start-up, resident memory per process, request latency.

Run it with the Python of an environment that has the host installed, e.g.::

    bash scripts/cell.sh dynamo-1.6 -- python benchmarks/live.py [--requests 30]
        [--size 1024x1024 --size ...] [--stage-config shipped|own|FILE] [--json]
    bash scripts/cell.sh dynamo-1.6-cpu -- python benchmarks/live.py --engines cpu --requests 5

Starts the four real Dynamo processes (stage engines FAKE by default; ``--engines cpu``: vLLM-
Omni's real engines on CPU, ``omni_sizefix.tools.live.topology``; two such topologies hold ~15
GB) twice, at the same time, with the same stage config (default: the shipped one): with the
plugin and with ``OMNI_SIZEFIX_DISABLE=1``. It prints each topology's start-up time (and when
each process came up; both are watched at once) and the resident memory of each process (with
its children) after start-up and after the requests. Then it sends ``--requests`` rounds of
sequential image requests: in each round every size once to each topology, the two interleaved
(which topology goes first alternates), so a change of machine load falls on both alike; per
size it prints p50/p95 latency of each and the p50 of the paired differences. One warm-up
request per size and topology is not counted. Requests whose image is not the requested one
(the released defect, without the plugin on ai-dynamo < 1.4) are counted apart: their latency
is not comparable. Default sizes: those the release's frontend takes and the config's stage-0
budget holds (``omni_sizefix.tools.live.served``). Run folders are deleted after a run that
worked, kept (and named in the error) after a topology that failed. It prints figures and
asserts nothing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

from omni_sizefix.tools import hosts
from omni_sizefix.tools.live import client, live_check, served, topology

#: Default size candidates: square (smallest, middle, largest), non-square both ways.
CANDIDATE_SIZES = ("256x256", "1024x1024", "1536x1024", "1024x1536", "768x1024", "2048x2048")


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB (Linux /proc)."""
    total = 0
    pending = [pid]
    seen = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            # Every thread's children: vLLM-Omni starts its engine processes from a thread.
            children = [
                int(c)
                for task in Path(f"/proc/{current}/task").iterdir()
                for c in (task / "children").read_text().split()
            ]
        except OSError:
            continue
        pending.extend(children)
    return total / 1024


def memory(live: topology.Topology) -> dict[str, float]:
    return {p.name: round(rss_mb(p.popen.pid), 1) for p in live.processes if p.popen}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies: list[float]) -> dict[str, float | int | None]:
    """Count, p50, p95 and inter-quartile range of latencies (s), in ms."""
    if not latencies:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "iqr_ms": None}
    return {
        "n": len(latencies),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
        "iqr_ms": round(1000 * (percentile(latencies, 0.75) - percentile(latencies, 0.25)), 1),
    }


def topology_for(plugin: bool, port: int, args: argparse.Namespace) -> topology.Topology:
    mode = "plugin" if plugin else "disabled"
    return topology.Topology(
        stage_config=args.stage_config,
        plugin=plugin,
        http_port=port,
        progress=lambda line: print(f"[{mode}] {line}", file=sys.stderr, flush=True),
        engines=args.engines,
    )


def measure(args: argparse.Namespace, sizes: list[str]) -> list[dict]:
    """Both topologies, started together, requests interleaved. Fills ``sizes`` if empty."""
    ports = [topology.free_port(), topology.free_port()]
    while ports[1] == ports[0]:
        ports[1] = topology.free_port()
    lives = [topology_for(True, ports[0], args), topology_for(False, ports[1], args)]
    try:
        for live in lives:
            live.launch()
        # Both watched at once, so each topology's up-times are its own. launch() stays on
        # this thread: the processes get SIGKILL when the thread that started them ends.
        with concurrent.futures.ThreadPoolExecutor(len(lives)) as pool:
            for ready in [pool.submit(live.wait_ready, args.timeout) for live in lives]:
                ready.result()
        results = [
            {
                "plugin": live.plugin,
                "stage_config": live.stage_config_note,
                "startup_s": round(live.started_s or 0.0, 1),
                "up_after_s": {p.name: round(p.up_after_s or 0.0, 1) for p in live.processes},
                "rss_mb_started": memory(live),
                "latency": {},
            }
            for live in lives
        ]
        if not sizes:
            budget = topology.stage0_max_tokens(lives[0].stage_config_path)  # type: ignore[arg-type]
            if args.engines == "cpu":
                sizes.extend(live_check.default_cpu_sizes(budget)[:-1])  # none over budget
            else:
                sizes.extend(served.servable(CANDIDATE_SIZES, budget))
        for live in lives:
            for size in sizes:
                # A warm-up request per size, not counted.
                client.generate(
                    live.url, size, model=live.served_model, timeout=args.request_timeout
                )
        for result in results:
            result["latency"] = {s: [] for s in sizes}
        started = time.monotonic()
        for round_no in range(args.requests):
            order = (0, 1) if round_no % 2 == 0 else (1, 0)
            for size in sizes:
                for i in order:
                    reply = client.generate(
                        lives[i].url,
                        size,
                        model=lives[i].served_model,
                        timeout=args.request_timeout,
                    )
                    # Real engines draw noise: only the size can be judged.
                    judge = client.size_verdict if args.engines == "cpu" else client.verdict
                    outcome = judge(reply, size)
                    results[i]["latency"][size].append((outcome, reply.latency_s))
        elapsed = round(time.monotonic() - started, 1)
        for live, result in zip(lives, results, strict=True):
            result["requests_s"] = elapsed
            result["rss_mb_after"] = memory(live)
    finally:
        for live in lives:
            live.stop()  # an error names the log, which stays
    for live in lives:
        live.remove_run_dir()
    for result in results:
        result["per_size"] = {
            size: {
                "ok": summary([t for o, t in pairs if o == "ok"]),
                "not_ok": summary([t for o, t in pairs if o != "ok"]),
                "outcomes": sorted({o[:120] for o, _ in pairs}),
            }
            for size, pairs in result["latency"].items()
        }
    return results


def paired_delta_ms(on: list, off: list) -> float | None:
    """Median over rounds of (with - without) where both images were as requested, ms."""
    deltas = [a[1] - b[1] for a, b in zip(on, off, strict=True) if a[0] == "ok" and b[0] == "ok"]
    return round(1000 * statistics.median(deltas), 1) if deltas else None


def render(results: list[dict], sizes: list[str], args: argparse.Namespace) -> str:
    versions = hosts.host_versions()
    lines = [
        f"omni-sizefix live benchmark, {datetime.date.today().isoformat()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items() if v),
        f"stage config: {results[0]['stage_config']}; both topologies at once, {args.requests} "
        f"rounds of every size to each (interleaved): {', '.join(sizes)}",
    ]
    for r in results:
        mode = "with omni-sizefix" if r["plugin"] else "OMNI_SIZEFIX_DISABLE=1"
        lines.append(f"{mode}: model listed after {r['startup_s']} s")
        lines.append(f"  each process up after (s): {r['up_after_s']}")
        lines.append(f"  RSS MB after start-up: {r['rss_mb_started']}")
        lines.append(f"  RSS MB after the requests: {r['rss_mb_after']}")
    lines.append("")
    lines.append(
        "size       | with plugin: ok  p50 / p95 / IQR ms  | without: ok  p50 / p95 / IQR ms | "
        "median of paired differences"
    )
    on, off = results
    for size in sizes:
        a, b = on["per_size"][size], off["per_size"][size]

        def cell(part: dict) -> str:
            s = part["ok"]
            if not s["n"]:
                return f"  0 ok ({part['not_ok']['n']} not as requested)".ljust(31)
            return f"{s['n']:3d} ok  {s['p50_ms']} / {s['p95_ms']} / {s['iqr_ms']}".ljust(31)

        paired = paired_delta_ms(on["latency"][size], off["latency"][size])
        delta = f"{paired:+.1f} ms" if paired is not None else "not comparable"
        lines.append(f"{size:10s} | {cell(a)}     | {cell(b)} | {delta}")
    for r in results:
        mode = "with omni-sizefix" if r["plugin"] else "OMNI_SIZEFIX_DISABLE=1"
        bad = {s: v for s, v in r["per_size"].items() if v["not_ok"]["n"]}
        for size, v in bad.items():
            s = v["not_ok"]
            lines.append(
                f"{mode}, {size}: {s['n']} not as requested, p50 {s['p50_ms']} ms: "
                f"{'; '.join(v['outcomes'])}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="per size and topology")
    parser.add_argument("--size", action="append", default=None, help="WxH (repeatable)")
    parser.add_argument("--stage-config", default="shipped", help="shipped, own or a file")
    parser.add_argument("--timeout", type=float, default=None, help="start-up limit, s")
    parser.add_argument("--engines", choices=topology.ENGINES, default="fake")
    parser.add_argument("--request-timeout", type=float, default=900.0, help="per request, s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.timeout is None:
        cpu = args.engines == "cpu"
        args.timeout = topology.CPU_TIMEOUT_S if cpu else topology.DEFAULT_TIMEOUT_S
    sizes: list[str] = list(args.size or [])
    results = measure(args, sizes)
    if args.json:
        print(json.dumps({"sizes": sizes, "runs": results}, indent=2))
    else:
        print(render(results, sizes, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
