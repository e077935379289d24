"""The live topology's cost: start-up, resident memory per process, request latency.

Run it with the Python of an environment that has the host installed::

    python benchmarks/live.py [--requests 40] [--size 1024x1024] [--json]

Starts the four real Dynamo processes (stage engines FAKE, ``omni_sizefix.live``) twice,
one after the other, with the shipped stage config: with the plugin and with
``OMNI_SIZEFIX_DISABLE=1``. For each it prints the start-up time (and when each process
came up), the resident memory of each process (with its children) after start-up and
after the requests, and p50/p95 latency of ``--requests`` sequential image requests.
Latencies of requests that failed (the released defect, without the plugin) are counted
apart. It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from omni_sizefix.live import client, topology


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
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending.extend(int(c) for c in children)
    return total / 1024


def memory(live: topology.Topology) -> dict[str, float]:
    return {p.name: round(rss_mb(p.popen.pid), 1) for p in live.processes if p.popen}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def measure(plugin: bool, requests: int, size: str, timeout: float) -> dict:
    live = topology.Topology(
        stage_config="shipped",
        plugin=plugin,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    try:
        live.start(timeout=timeout)
        result: dict = {
            "plugin": plugin,
            "startup_s": round(live.started_s or 0.0, 1),
            "up_after_s": {p.name: round(p.up_after_s or 0.0, 1) for p in live.processes},
            "rss_mb_started": memory(live),
        }
        client.generate(live.url, size, model=live.served_model)  # warm-up, not counted
        ok, failed = [], []
        for _ in range(requests):
            reply = client.generate(live.url, size, model=live.served_model)
            (ok if client.verdict(reply, size) == "ok" else failed).append(reply.latency_s)
        result.update(
            {
                "requests_ok": len(ok),
                "requests_not_ok": len(failed),
                "p50_ms": round(1000 * statistics.median(ok), 1) if ok else None,
                "p95_ms": round(1000 * percentile(ok, 0.95), 1) if ok else None,
                "not_ok_p50_ms": round(1000 * statistics.median(failed), 1) if failed else None,
                "rss_mb_after": memory(live),
            }
        )
        return result
    finally:
        live.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--timeout", type=float, default=topology.DEFAULT_TIMEOUT_S)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = [measure(p, args.requests, args.size, args.timeout) for p in (True, False)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        mode = "with omni-sizefix" if r["plugin"] else "OMNI_SIZEFIX_DISABLE=1"
        print(f"{mode}: up in {r['startup_s']} s ({r['up_after_s']})")
        print(f"  RSS MB at start: {r['rss_mb_started']}")
        print(f"  RSS MB after {args.requests} requests: {r['rss_mb_after']}")
        print(
            f"  {args.size}: {r['requests_ok']} ok, {r['requests_not_ok']} not ok; "
            f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms (ok requests); "
            f"not-ok p50 {r['not_ok_p50_ms']} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
