"""The version-matrix report file of one cell: ``reports/<cell>.json``.

Standard library only: used by the pytest plugin inside a cell (``matrix_plugin``), by
``noxfile.py`` in the tools environment, and read by ``scripts/matrix_report.py``.

One file per cell::

    {"schema": 1, "cell": "dynamo-1.1", "status": "passed" | "failed" | "running",
     "updated": "<UTC ISO time>", "python": "3.11.7",
     "versions": {"ai-dynamo": "1.1.1", ..., "omni-sizefix": "0.1.0"},   # None = absent
     "durations_s": {"build": 61.2, "unit": 3.1, "host": 140.0, "total": 210.5},
     "suites": {"host": {"exitstatus": 0, "collected": 42}},
     "rows": [{"suite": "host", "id": "tests/host/test_x.py::test_y[a]",
               "group": "host/test_x.py", "name": "test_y[a]",
               "outcome": "passed", "reason": "", "duration_s": 0.12}, ...]}

``outcome`` is one of passed, failed, error, skipped, xfailed, xpassed. Rows of the
harness itself (environment build, install check, ...) use suite and group "harness".
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA = 1

#: Distributions whose versions the matrix shows for every cell.
REPORTED_DISTRIBUTIONS = (
    "ai-dynamo",
    "vllm",
    "vllm-omni",
    "torch",
    "transformers",
    "pluggy",
    "omni-sizefix",
)

HARNESS = "harness"
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
FAILING = ("failed", "error")

_MAX_REASON = 200


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def short_reason(text: str | None) -> str:
    """First non-empty line of ``text``, trimmed for a table cell (environment paths cut)."""
    for line in (text or "").splitlines():
        line = re.sub(r"[^\s()'\"]*/site-packages/", "site-packages/", line.strip())
        if line:
            return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 1] + "…"
    return ""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def installed_versions() -> dict[str, str | None]:
    """Versions of :data:`REPORTED_DISTRIBUTIONS` in the running interpreter's environment."""
    found: dict[str, str | None] = {}
    for dist in REPORTED_DISTRIBUTIONS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def new_report(cell: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "cell": cell,
        "status": "running",
        "updated": now(),
        "python": None,
        "versions": {},
        "durations_s": {},
        "suites": {},
        "rows": [],
    }


def load(path: str | os.PathLike[str], cell: str) -> dict[str, Any]:
    """The report at ``path``, or a fresh one when it is missing, unreadable or foreign."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return new_report(cell)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or data.get("cell") != cell:
        return new_report(cell)
    return data


def save(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write atomically, so a killed run never leaves half a file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data["updated"] = now()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def replace_suite_rows(data: dict[str, Any], suite: str, rows: list[dict[str, Any]]) -> None:
    """Drop the rows of ``suite`` and append ``rows`` (a rerun replaces, never duplicates)."""
    data["rows"] = [r for r in data.get("rows", []) if r.get("suite") != suite] + rows


def harness_row(name: str, outcome: str, reason: str = "", duration_s: float | None = None):
    """A row for a check the harness makes itself (not a pytest test)."""
    assert outcome in OUTCOMES, outcome
    return {
        "suite": HARNESS,
        "id": f"{HARNESS}::{name}",
        "group": HARNESS,
        "name": name,
        "outcome": outcome,
        "reason": short_reason(reason),
        "duration_s": None if duration_s is None else round(duration_s, 2),
    }


def set_harness_row(data: dict[str, Any], row: dict[str, Any]) -> None:
    """Add or replace one harness row (keyed by its id), keeping its first position."""
    rows = data.setdefault("rows", [])
    for i, old in enumerate(rows):
        if old.get("id") == row["id"]:
            rows[i] = row
            return
    rows.append(row)


def python_version() -> str:
    return ".".join(str(p) for p in sys.version_info[:3])
