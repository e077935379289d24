"""The ``omni-sizefix`` command: ``doctor``, ``check`` and ``stage-config``.

Exit codes: 0 all good, 1 something needs attention (or a size fails), 2 unsupported host.
"""

from __future__ import annotations

import argparse
import json
import sys

from omni_sizefix import __version__


def _doctor(args: argparse.Namespace) -> int:
    from omni_sizefix import doctor

    report = doctor.diagnose()
    print(json.dumps(report.to_dict(), indent=2) if args.json else doctor.render(report))
    return report.exit_code


def _check_live(args: argparse.Namespace) -> int:
    from omni_sizefix.live import live_check

    try:
        report = live_check.run(args.size, timeout=args.timeout)
    except ImportError as exc:
        print(f"cannot run the live topology here: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else live_check.render(report))
    return 0 if report.ok else 1


def _check(args: argparse.Namespace) -> int:
    from omni_sizefix import check

    if args.size:
        try:
            [check.parse_size(size) for size in args.size]
        except ValueError:
            print(f"sizes must look like WIDTHxHEIGHT, got {args.size}", file=sys.stderr)
            return 2
    if args.live:
        return _check_live(args)
    sizes = args.size or list(check.DEFAULT_SIZES)
    try:
        [check.parse_size(size) for size in sizes]
    except ValueError:
        print(f"sizes must look like WIDTHxHEIGHT, got {sizes}", file=sys.stderr)
        return 2
    if not args.verbose:
        check.quiet_host_logs()
    try:
        report = check.run(sizes)
    except ImportError as exc:
        print(f"cannot import the Dynamo omni worker here: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else check.render(report))
    return 0 if report.ok else 1


def _stage_config(args: argparse.Namespace) -> int:
    from omni_sizefix import stage_configs

    try:
        if args.schema:
            path = stage_configs.config_path(args.model, args.schema)
        else:
            path = stage_configs.path_for_installed_host(args.model)
    except (LookupError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="omni-sizefix",
        description="Check and inspect the omni-sizefix plugin for Dynamo + vLLM-Omni.",
    )
    parser.add_argument("--version", action="version", version=f"omni-sizefix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    doctor = sub.add_parser(
        "doctor",
        help="will the plugin act here? (versions, entry points, settings)",
        description="Report host versions, the chosen size shape, entry points, settings and "
        "problems with fixes. Exit 0: will act correctly; 1: needs attention; 2: unsupported.",
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=_doctor)

    check = sub.add_parser(
        "check",
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
    check.add_argument("--verbose", action="store_true", help="keep the host's own log lines")
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
    check.set_defaults(func=_check)

    stage_config = sub.add_parser(
        "stage-config",
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
    stage_config.set_defaults(func=_stage_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
