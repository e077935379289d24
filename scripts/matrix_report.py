#!/usr/bin/env python3
"""Turn ``reports/<cell>.json`` (one per version-matrix cell) into one table.

    python scripts/matrix_report.py                  # print it, write reports/matrix.md
    python scripts/matrix_report.py --update-readme  # also refresh README.md between
                                                     # <!-- matrix:start --> / <!-- matrix:end -->

One row per check (the harness's own checks first, then the tests grouped by module),
one column per cell; a first table lists the host versions found in each cell. The README
gets the compact form: the parameter sets of a test folded into one row.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"
SCHEMA = 1
DASH = "\u2013"  # en dash: skipped
TIMES = "\u00d7"
HOST_DISTS = ("ai-dynamo", "vllm", "vllm-omni", "torch", "transformers", "pluggy")
MARK = {
    "passed": "✅",
    "failed": "❌",
    "error": "❌",
    "skipped": DASH,
    "xfailed": "xfail",
    "xpassed": "⚠️ xpass",
}
NOT_RUN = "·"
STATUS = {
    "passed": "✅ passed",
    "failed": "❌ failed",
    "running": "⚠️ incomplete",
    "interrupted": "⚠️ interrupted",
    "built": f"{DASH} built only",
}
LEGEND = (
    f"✅ passed · ❌ failed · {DASH} skipped (reason below) · xfail expected failure · "
    f"{NOT_RUN} not run in this cell"
)


def natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def load_reports(directory: Path) -> list[dict[str, Any]]:
    reports = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"skipping {path.name}: {exc}", file=sys.stderr)
            continue
        if isinstance(data, dict) and data.get("schema") == SCHEMA and data.get("cell"):
            reports.append(data)
    has_host = lambda r: any((r.get("versions") or {}).get(d) for d in HOST_DISTS[:3])  # noqa: E731
    return sorted(reports, key=lambda r: (has_host(r), natural_key(r["cell"])))


def scrub(text: str) -> str:
    """No machine paths in shared tables: repository paths become relative, others short."""
    text = text.replace(str(ROOT) + "/", "").replace(str(ROOT), ".")
    text = re.sub(r"[^\s()'\"]*/site-packages/", "site-packages/", text)

    def shorten(match: re.Match[str]) -> str:
        parts = match.group(0).split("/")
        return "…/" + "/".join(parts[-2:]) if len(parts) > 3 else match.group(0)

    return re.sub(r"(?<![\w.])/(?:[\w.+-]+/)+[\w.+-]*", shorten, text)


def cell_text(text: str) -> str:
    return scrub(str(text)).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell_text(c) for c in row) + " |" for row in rows]
    return lines


def group_order(group: str) -> tuple[int, str]:
    if group == "harness":
        return (0, "")
    if group.startswith("unit/"):
        return (1, group)
    if group.startswith("host/"):
        return (2, group)
    return (3, group)


def versions_table(reports: list[dict[str, Any]]) -> list[str]:
    header = ["cell", "result", *HOST_DISTS, "python", "run", "time"]
    rows = []
    for r in reports:
        versions = r.get("versions") or {}
        total = (r.get("durations_s") or {}).get("total")
        rows.append(
            [
                f"**{r['cell']}**",
                STATUS.get(r.get("status", ""), r.get("status", "?")),
                *[versions.get(d) or "—" for d in HOST_DISTS],
                r.get("python") or "—",
                (r.get("updated") or "")[:10],
                f"{int(total) // 60}m{int(total) % 60:02d}s" if total is not None else "—",
            ]
        )
    return table(header, rows)


def checks_table(reports: list[dict[str, Any]], compact: bool = False) -> list[str]:
    """One row per check; ``compact`` folds the parameter sets of a test into one row."""
    order: dict[str, list[str]] = {}  # group -> check names in first-seen order
    outcomes: dict[tuple[str, str, str], list[str]] = {}
    for r in reports:
        for row in r.get("rows", []):
            name = row["name"]
            if compact and row["group"] != "harness":
                name = name.split("[", 1)[0]
            names = order.setdefault(row["group"], [])
            if name not in names:
                names.append(name)
            outcomes.setdefault((r["cell"], row["group"], name), []).append(row["outcome"])
    header = ["check", *[r["cell"] for r in reports]]
    rows = []
    for group in sorted(order, key=group_order):
        rows.append([f"**{group}**", *[""] * len(reports)])
        for name in order[group]:
            marks = [mark(outcomes.get((r["cell"], group, name), [])) for r in reports]
            rows.append([name, *marks])
    return table(header, rows)


def mark(outcomes: list[str]) -> str:
    """The mark of one check, or of a folded test: "❌ 2/6" if any failed, else the mix."""
    if not outcomes:
        return NOT_RUN
    kinds = {MARK.get(o, o) for o in outcomes}
    if len(outcomes) == 1 or len(kinds) == 1:
        return MARK.get(outcomes[0], outcomes[0])
    bad = sum(o in ("failed", "error") for o in outcomes)
    if bad:
        return f"{MARK['failed']} {bad}/{len(outcomes)}"
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[MARK.get(o, o)] = counts.get(MARK.get(o, o), 0) + 1
    return " ".join(f"{m}{n}" for m, n in counts.items())


def notes(reports: list[dict[str, Any]]) -> list[str]:
    failures, skips, installs = [], {}, []
    for r in reports:
        for row in r.get("rows", []):
            where = f"{row['group']} · {row['name']}"
            if row["outcome"] in ("failed", "error", "xpassed"):
                mark = MARK["failed"] if row["outcome"] != "xpassed" else MARK["xpassed"]
                reason = row.get("reason") or "?"
                failures.append(f"- {mark} **{r['cell']}** {where}: {reason}")
            elif row["outcome"] in ("skipped", "xfailed"):
                key = (row["outcome"], row.get("reason") or "no reason given")
                skips.setdefault(key, {}).setdefault(r["cell"], 0)
                skips[key][r["cell"]] += 1
            if row["group"] == "harness" and row["name"].startswith("package install"):
                installs.append(f"- **{r['cell']}**: {row.get('reason') or row['outcome']}")
    lines = []
    if failures:
        lines += ["", "Failures (xpass: an expected failure passed):", "", *failures]
    if skips:
        lines += ["", "Skipped / expected failures (reason — cells):", ""]
        for (kind, reason), cells in skips.items():
            where = ", ".join(f"{c} {TIMES}{n}" if n > 1 else c for c, n in cells.items())
            lines.append(f"- {'xfail: ' if kind == 'xfailed' else ''}{reason} — {where}")
    if installs:
        lines += ["", "Installing the omni-sizefix wheel into each cell:", "", *installs]
    return [scrub(line) for line in lines]


def render(reports: list[dict[str, Any]], compact: bool = False) -> str:
    legend = LEGEND
    if compact:
        legend += "; a parametrized test is one row (❌ 2/6: 2 of its 6 cases failed)"
    lines = [
        "Host versions found in each cell (read from the installed distributions):",
        "",
        *versions_table(reports),
        "",
        legend,
        "",
        *checks_table(reports, compact),
        *notes(reports),
    ]
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, body: str) -> bool:
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        print(f"note: {readme.name} has no '{START}' ... '{END}' section; not updated")
        return False
    new = text[: start + len(START)] + "\n" + body + text[end:]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    print(f"{readme.name}: matrix section {'updated' if new != text else 'unchanged'}")
    return True


def totals(reports: list[dict[str, Any]]) -> str:
    """One closing line over every cell: ``matrix: N passed, N failed, N skipped``.

    Tests are counted per cell; a failed harness step (build, install check) counts as failed.
    """
    passed = failed = skipped = 0
    for report in reports:
        for row in report.get("rows", []):
            outcome = row["outcome"]
            if row.get("suite") == "harness":
                failed += outcome in ("failed", "error")
            elif outcome == "passed":
                passed += 1
            elif outcome in ("failed", "error", "xpassed"):
                failed += 1
            else:
                skipped += 1
    return f"matrix: {passed} passed, {failed} failed, {skipped} skipped"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    parser.add_argument("--output", type=Path, default=None, help="default: REPORTS/matrix.md")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--totals", action="store_true", help="print only the closing line")
    args = parser.parse_args(argv)

    reports = load_reports(args.reports)
    if args.totals:
        print(totals(reports))
        return 0
    if not reports:
        print(f"no cell reports in {args.reports}; nothing to tabulate")
        return 0
    body = render(reports)
    print(body)
    output = args.output or args.reports / "matrix.md"
    output.write_text("# omni-sizefix version matrix\n\n" + body, encoding="utf-8")
    print(f"wrote {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    if args.update_readme:
        update_readme(args.readme, render(reports, compact=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
