"""What ran in a cell: tests run and skipped (skips by reason) from pytest's junit XML, and
whether the cell's core tests ran. Standard library only (``noxfile.py`` writes the summary
into ``reports/<cell>.json``; ``scripts/matrix_report.py`` shows it).

A cell whose suites pass but whose core tests did not all run is "partial", never "passed":
a skip cannot turn a cell green.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

#: Test modules that must run (at least one test each, not all skipped), per kind of cell.
CORE: dict[str, tuple[str, ...]] = {
    "dynamo": (
        "host/test_host_imports",
        "host/test_startable",
        "host/test_stage1_runtime",
        "host/test_dit_outcome",
        "host/test_contract",
        "host/test_pipelines",
        "host/test_cli_check",
    ),
    "omni": ("host/test_host_imports", "host/test_stage1_runtime", "host/test_stage1_processor"),
    "none": ("unit/test_size_policy", "unit/test_patcher", "unit/test_cli"),
}


def kind(versions: dict | None) -> str:
    """``dynamo``, ``omni`` (vLLM-Omni alone) or ``none`` from the versions found."""
    versions = versions or {}
    return (
        "dynamo" if versions.get("ai-dynamo") else "omni" if versions.get("vllm-omni") else "none"
    )


def _outcome(case: ET.Element) -> tuple[str, str]:
    for child in case:
        if child.tag in ("failure", "error"):
            return "failed", child.get("message") or child.tag
        if child.tag == "skipped":
            reason = child.get("message") or ""
            if reason == "collection skipped":
                reason = re.sub(r"""["']\)$""", "", (child.text or "").split("Skipped: ", 1)[-1])
            if child.get("type") == "pytest.xfail":
                return "xfailed", reason
            return "skipped", reason
    return "passed", ""


def summarize(xml_files: Iterable[Path], cell_kind: str, suites: list[str]) -> dict:
    """{ran, passed, failed, skipped, skips_by_reason, core_not_run} for one cell."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    reasons: dict[str, int] = {}
    ran_modules: set[str] = set()
    for xml in xml_files:
        for case in ET.parse(xml).iter("testcase"):
            module = case.get("classname", "").removeprefix("tests.").replace(".", "/")
            result, reason = _outcome(case)
            counts[result] += 1
            if result in ("passed", "failed"):
                ran_modules.add(module)
            elif result == "skipped":
                reasons[reason or "no reason"] = reasons.get(reason or "no reason", 0) + 1
    core = [m for m in CORE[cell_kind] if m.split("/", 1)[0] in suites]
    return {
        "ran": counts["passed"] + counts["failed"],
        **counts,
        "skips_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "core_not_run": [m for m in core if m not in ran_modules],
    }


def status(harness_status: str, summary: dict | None) -> str:
    """``passed`` only when the harness passed and every core test module ran."""
    if harness_status != "passed" or not summary:
        return harness_status
    if summary.get("core_not_run"):
        return "partial"
    return "passed"


def partial_note(summary: dict) -> str:
    """``3 ran, 223 skipped; core not run: host/test_x, ...``."""
    missing = ", ".join(m.split("/", 1)[-1] for m in summary.get("core_not_run", []))
    return f"{summary['ran']} ran, {summary['skipped']} skipped; core not run: {missing}"
