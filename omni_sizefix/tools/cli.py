"""The ``omni-sizefix`` command: ``doctor``, ``check``, ``smoke`` and ``stage-config``.

Exit codes: 0 all good, 1 something needs attention (or a size fails), 2 unsupported host
(for ``smoke``: the deployment could not be checked).

Output rule for every command: a command hands its result to ``out.emit`` and its own
messages to ``out.error``; it runs inside ``console.diverted``, so anything else printed
meanwhile (host imports, host and plugin log lines) never reaches stdout. With ``--json``
stdout is exactly one JSON document (``{"error": ..., "exit_code": ...}`` when the command
could not produce its result).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omni_sizefix import __version__
from omni_sizefix.tools import console
from omni_sizefix.tools.console import Output


def _doctor(args: argparse.Namespace, out: Output) -> int:
    from omni_sizefix.tools import doctor

    report = doctor.diagnose(args.stage_configs_path, model=args.model)
    out.emit(json.dumps(report.to_dict(), indent=2) if args.json else doctor.render(report))
    return report.exit_code


def _check_live(args: argparse.Namespace, out: Output) -> int:
    from omni_sizefix.tools.live import live_check

    try:
        report = live_check.run(args.size, timeout=args.timeout, keep_logs=args.keep_logs)
    except ImportError as exc:
        out.error(f"cannot run the live topology here: {exc}")
        return 2
    out.emit(json.dumps(report.to_dict(), indent=2) if args.json else live_check.render(report))
    return 0 if report.ok else 1


def _check(args: argparse.Namespace, out: Output) -> int:
    from omni_sizefix.tools import check

    if args.size:
        try:
            [check.parse_size(size) for size in args.size]
        except ValueError:
            out.error(f"sizes must look like WIDTHxHEIGHT, got {args.size}")
            return 2
    if args.live:
        return _check_live(args, out)
    sizes = args.size or list(check.DEFAULT_SIZES)
    try:
        [check.parse_size(size) for size in sizes]
    except ValueError:
        out.error(f"sizes must look like WIDTHxHEIGHT, got {sizes}")
        return 2
    try:
        report = check.run(sizes)
    except (ImportError, RuntimeError) as exc:
        prefix = (
            "cannot import the Dynamo omni worker here: " if isinstance(exc, ImportError) else ""
        )
        out.error(prefix + str(exc))
        if out.log_path is not None:
            out.error(f"host and plugin log lines: {out.log_path}")
        return 2
    report.log_file = str(out.log_path) if out.log_path else None
    out.emit(json.dumps(report.to_dict(), indent=2) if args.json else check.render(report))
    return 0 if report.ok else 1


def _check_log_path(args: argparse.Namespace) -> Path | None:
    """Where ``check`` writes host and plugin log lines (None: ``-v``, they go to stderr).

    ``--live`` keeps stderr on the terminal (the topology's start-up progress; the Dynamo
    processes write their own log files) and leaves no log file, unless ``--log-file``."""
    if args.verbose or (getattr(args, "live", False) and not args.log_file):
        return None
    if args.log_file:
        return Path(args.log_file)
    handle, name = tempfile.mkstemp(prefix="omni-sizefix-check-", suffix=".log")
    os.close(handle)
    return Path(name)


def _smoke(args: argparse.Namespace, out: Output) -> int:
    from omni_sizefix.tools import smoke

    sizes = args.size or list(smoke.DEFAULT_SIZES)
    url = smoke.base_url(args.url)

    def fail(message: str) -> int:
        out.error(f"omni-sizefix smoke: {message}")
        if args.json:
            doc = {"url": url, "model": args.model, "ok": False, "exit_code": smoke.EXIT_ERROR}
            out.emit(json.dumps({**doc, "error": message, "results": []}, indent=2))
        return smoke.EXIT_ERROR

    def progress(result: smoke.SizeResult) -> None:
        latency = "-" if result.latency_s is None else f"{result.latency_s:.2f} s"
        print(
            f"omni-sizefix smoke: {result.requested} {result.response_format}: "
            f"{result.verdict} ({result.returned or '-'}, {latency})",
            file=sys.stderr,
        )

    try:
        report = smoke.run(
            url,
            sizes,
            model=args.model,
            response_formats=args.response_format,
            timeout=args.timeout,
            concurrency=args.concurrency,
            prompt=args.prompt or smoke.DEFAULT_PROMPT,
            progress=None if args.quiet else progress,
        )
    except (smoke.SmokeError, ValueError) as exc:
        return fail(str(exc))
    for line in smoke.error_lines(report):
        out.error(f"omni-sizefix smoke: {line}")
    out.emit(json.dumps(report.to_dict(), indent=2) if args.json else smoke.render(report))
    return report.exit_code


def _stage_config(args: argparse.Namespace, out: Output) -> int:
    from omni_sizefix.tools import stage_configs

    try:
        schema = args.schema or stage_configs.fitting_schema()
        path = stage_configs.config_path(args.model, schema)
    except (LookupError, ValueError) as exc:
        out.error(str(exc))
        return 2
    if args.json:
        out.emit(json.dumps({"model": args.model, "schema": schema, "path": str(path)}, indent=2))
    else:
        out.emit(str(path))
    return 0


def _subcommand(
    sub: Any, name: str, func: Callable[[argparse.Namespace, Output], int], **about: str
) -> argparse.ArgumentParser:
    """A subcommand ``name`` run by ``func``; ``about``: its ``help`` and ``description``."""
    command = sub.add_parser(name, **about)
    command.set_defaults(func=func)
    return command


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="omni-sizefix",
        description="Check and inspect the omni-sizefix plugin for Dynamo + vLLM-Omni.",
    )
    parser.add_argument("--version", action="version", version=f"omni-sizefix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    doctor = _subcommand(
        sub,
        "doctor",
        _doctor,
        help="will the plugin act here? (versions, entry points, settings)",
        description="Report host versions, the chosen size shape, entry points, settings and "
        "problems with fixes. Exit 0: will act correctly; 1: needs attention; 2: unsupported.",
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument(
        "--stage-configs-path",
        metavar="FILE",
        help="also load this stage config as a worker would: loadable by this release? "
        "stage 1 dispatchable and right (or fixed at run time)? stage-0 budget? "
        "(imports the host)",
    )
    doctor.add_argument(
        "--model",
        help="the model the workers serve (deploy configs resolve their pipeline from it; "
        "default zai-org/GLM-Image)",
    )

    check = _subcommand(
        sub,
        "check",
        _check,
        help="run the real request path per size, with and without the plugin",
        description="Import the real host, send requests through the real parse, router "
        "models and stage-1 processor (engines faked; no GPU needed) and print a table. "
        "Exit 0: every size renders as requested; 1: some do not; 2: no host here.",
    )
    check.add_argument(
        "--size",
        action="append",
        metavar="WxH",
        help="size to check, repeatable (default: a standard set)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the host's and the plugin's log lines (on stderr) instead of a log file",
    )
    check.add_argument(
        "--log-file",
        metavar="PATH",
        help="where the log lines go without -v (default: a new file in the temp folder)",
    )
    check.add_argument(
        "--live",
        action="store_true",
        help="start the real Dynamo processes here (frontend, router, two stage workers; "
        "engines FAKE) and request images over HTTP, with and without the plugin",
    )
    check.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="--live: give up when a topology is not up after S seconds (default 600)",
    )
    check.add_argument(
        "--keep-logs",
        action="store_true",
        help="--live: keep each topology's run folder and logs (default: kept only when "
        "that run failed; its path is printed)",
    )

    smoke = _subcommand(
        sub,
        "smoke",
        _smoke,
        help="request images from a running deployment and check their size",
        description="POST /v1/images/generations to a running OpenAI-compatible frontend "
        "(Dynamo's, on GPUs or with faked engines) for each size, decode each image and "
        "compare its size with the requested one. Exit 0: every image came back at the "
        "requested size; 1: some came back at another size; 2: the deployment could not be "
        "checked (unreachable, unknown model, an HTTP error, a response that is no image).",
    )
    smoke.add_argument("--url", required=True, help="frontend base URL, e.g. http://HOST:8000")
    smoke.add_argument("--model", help="model name (default: the one GET /v1/models lists)")
    smoke.add_argument(
        "--size",
        action="append",
        metavar="WxH",
        help="size to request, repeatable (default: 1024x1024 1536x1024 1024x1536 512x512)",
    )
    smoke.add_argument(
        "--response-format",
        choices=["b64_json", "url", "both"],
        default="b64_json",
        help="how the image comes back (url: fetched from http(s):// or file:// URLs)",
    )
    smoke.add_argument(
        "--timeout", type=float, default=300.0, metavar="S", help="per request, seconds"
    )
    smoke.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="requests in flight at once"
    )
    smoke.add_argument("--prompt", default=None, help="prompt to send (default: a fixed one)")
    smoke.add_argument("--json", action="store_true", help="one JSON document on stdout")
    smoke.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    stage_config = _subcommand(
        sub,
        "stage-config",
        _stage_config,
        help="print the path of the shipped stage config that fits",
        description="Print the path of a GLM-Image stage config shipped with omni-sizefix, "
        "for --stage-configs-path.",
    )
    stage_config.add_argument("model", nargs="?", default="glm_image", choices=["glm_image"])
    stage_config.add_argument(
        "--schema",
        choices=["legacy", "deploy"],
        help="force a schema (default: the one the installed vLLM-Omni loads)",
    )
    stage_config.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Its result alone goes to stdout; what the host prints meanwhile goes
    to stderr (``check``: to a log file, unless ``-v``)."""
    args = build_parser().parse_args(argv)
    log_path = _check_log_path(args) if args.command == "check" else None
    with console.diverted(log_path) as out:
        code = args.func(args, out)
        if getattr(args, "json", False) and not out.results:
            # A program still gets one document: what went wrong, and the exit code.
            out.emit(json.dumps({"error": "\n".join(out.errors), "exit_code": code}, indent=2))
    if code == 2 and log_path and not args.log_file and log_path.stat().st_size == 0:
        log_path.unlink()  # nothing ran: no empty log file left behind
    return code


def run() -> None:
    """Console-script entry point: :func:`main`, then stdout is sealed until exit."""
    code = main()
    console.seal_stdout()
    sys.exit(code)


if __name__ == "__main__":
    run()
