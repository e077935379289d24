"""What does this release's frontend make of an error raised in a stage worker? (measurement)

    python -m omni_sizefix.tools.live.error_probe [--json]

Starts the live topology (FAKE engines) with a probe in the stage-0 worker: a request whose
prompt is ``omni-sizefix-probe:<KIND>`` makes ``OmniStageWorker.generate`` fail the way KIND
says, before anything else runs, at the point where a size rejected by the plugin is raised
(stage 0 parses the request). Every other request is served unchanged. Prints, per KIND,
the HTTP status and body the client got, and whether the message text reached it.

KINDS: ``ValueError`` (what the plugin raises today), ``TypeError``, ``RuntimeError``,
``InvalidArgument`` / ``HttpError400`` (``dynamo.llm.exceptions``, when the release has
them), ``ValueError+InvalidArgument`` (a class deriving from both, as the plugin's
``SizeRejected`` could), and ``error-chunk`` (the worker yields ``{"error": ...}``).
The probe is installed only when ``OMNI_SIZEFIX_LIVE_ERROR_PROBE=1`` (set by this module).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

PROBE_VAR = "OMNI_SIZEFIX_LIVE_ERROR_PROBE"
PREFIX = "omni-sizefix-probe:"
MESSAGE = "probe: 1000x700 is not a valid size. Nearest valid sizes: 992x704, 1024x704."
KINDS = (
    "ValueError",
    "TypeError",
    "RuntimeError",
    "InvalidArgument",
    "HttpError400",
    "error-chunk",
)


def _exception(kind: str) -> BaseException | None:
    if kind in ("ValueError", "TypeError", "RuntimeError"):
        return {"ValueError": ValueError, "TypeError": TypeError, "RuntimeError": RuntimeError}[
            kind
        ](MESSAGE)
    try:
        from dynamo.llm import exceptions
    except ImportError:
        return None
    if kind == "InvalidArgument" and hasattr(exceptions, "InvalidArgument"):
        return exceptions.InvalidArgument(MESSAGE)
    if kind == "HttpError400" and hasattr(exceptions, "HttpError"):
        return exceptions.HttpError(400, MESSAGE)
    if kind == "ValueError+InvalidArgument" and hasattr(exceptions, "InvalidArgument"):
        both = type("ProbeSizeRejected", (ValueError, exceptions.InvalidArgument), {})
        return both(MESSAGE)
    return None


def install() -> None:
    """Wrap stage 0's ``OmniStageWorker.generate`` (called by ``fake_worker`` when enabled)."""
    from dynamo.vllm.omni import stage_worker

    original = stage_worker.OmniStageWorker.generate

    async def generate(self: Any, request: dict, context: Any):
        prompt = request.get("prompt") if isinstance(request, dict) else None
        if self.stage_id == 0 and isinstance(prompt, str) and prompt.startswith(PREFIX):
            kind = prompt[len(PREFIX) :]
            if kind == "error-chunk":
                yield {"error": MESSAGE, "finished": True}
                return
            exc = _exception(kind)
            if exc is not None:
                raise exc
        async for chunk in original(self, request, context):
            yield chunk

    stage_worker.OmniStageWorker.generate = generate


def main(argv: list[str] | None = None) -> int:
    from omni_sizefix.tools.live import client, topology

    parser = argparse.ArgumentParser(prog="python -m omni_sizefix.tools.live.error_probe")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--timeout", type=float, default=topology.DEFAULT_TIMEOUT_S)
    args = parser.parse_args(argv)
    live = topology.Topology(
        extra_env={PROBE_VAR: "1"},
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    results = []
    try:
        live.start(timeout=args.timeout)
        for kind in KINDS:
            reply = client.generate(live.url, "1024x1024", prompt=PREFIX + kind, timeout=120)
            results.append(
                {
                    "kind": kind,
                    "status": reply.status,
                    "message_reached_client": "Nearest valid sizes" in json.dumps(reply.body),
                    "body": reply.body if not isinstance(reply.body, str) else reply.body[:300],
                }
            )
        after = client.generate(live.url, "1024x1024", model=live.served_model)
        results.append({"kind": "next request", "status": after.status, "size": after.size})
        results.append({"kind": "processes alive", "names": live.alive()})
    finally:
        live.stop()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for row in results:
            print(json.dumps(row)[:400])
    return 0


if __name__ == "__main__":
    sys.exit(main())
