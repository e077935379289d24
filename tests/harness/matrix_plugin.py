"""pytest plugin: record every test's outcome in the cell's version-matrix report.

Enabled by ``noxfile.py`` with ``-p matrix_plugin`` (``tests/harness`` on ``PYTHONPATH``)::

    pytest -p matrix_plugin --matrix-report reports/dynamo-1.2.json \\
        --matrix-cell dynamo-1.2 --matrix-suite host tests/host

It merges the suite's rows into the report (rows of other suites and of the harness stay),
records the host versions found in this environment, and adds one harness row saying
whether the ``omni_sizefix`` under test is the installed distribution (not the source
tree, which a stray ``sys.path`` entry could shadow it with).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import matrix_records as records


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("matrix", "omni-sizefix version matrix")
    group.addoption("--matrix-report", default=None, help="write results into this JSON file")
    group.addoption("--matrix-cell", default=None, help="cell name stored in the report")
    group.addoption("--matrix-suite", default=None, help="suite name (default: test path)")


def pytest_configure(config: Any) -> None:
    path = config.getoption("matrix_report")
    if path and not hasattr(config, "workerinput"):  # xdist workers: the controller writes
        cell = config.getoption("matrix_cell") or Path(path).stem
        suite = config.getoption("matrix_suite") or "tests"
        config.pluginmanager.register(Recorder(path, cell, suite), "omni-sizefix-matrix")


class Recorder:
    def __init__(self, path: str, cell: str, suite: str) -> None:
        self.path, self.cell, self.suite = path, cell, suite
        self.rows: dict[str, dict[str, Any]] = {}
        self.collected = 0
        self.started = time.monotonic()

    # --- collection ------------------------------------------------------------------

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            row = self._row(report.nodeid or "<collection>")
            row["outcome"] = "error"
            row["reason"] = "collection error: " + _failure_reason(report)

    def pytest_collection_finish(self, session: Any) -> None:
        self.collected = len(session.items)

    # --- tests -----------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: Any) -> None:
        row = self._row(report.nodeid)
        row["duration_s"] = round((row["duration_s"] or 0.0) + report.duration, 3)
        xfail = getattr(report, "wasxfail", None)
        if report.failed:
            if row["outcome"] in records.FAILING:
                return  # keep the first failure (a teardown error after a failed call)
            row["outcome"] = "failed" if report.when == "call" else "error"
            reason = _failure_reason(report)
            row["reason"] = reason if report.when == "call" else f"{report.when}: {reason}"
        elif report.skipped:
            if row["outcome"] in records.FAILING:
                return
            if xfail is not None:
                row["outcome"], row["reason"] = "xfailed", records.short_reason(xfail)
            else:
                row["outcome"], row["reason"] = "skipped", _skip_reason(report)
        elif report.when == "call":
            if row["outcome"] in records.FAILING:
                return
            if xfail is not None:
                row["outcome"], row["reason"] = "xpassed", records.short_reason(xfail)
            else:
                row["outcome"] = "passed"

    # --- end -------------------------------------------------------------------------

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        data = records.load(self.path, self.cell)
        rows = [r for r in self.rows.values() if r["outcome"] is not None]
        for r in rows:
            r["suite"] = self.suite
        records.replace_suite_rows(data, self.suite, rows)
        records.set_harness_row(data, _installed_package_row(self.suite))
        data["python"] = records.python_version()
        data["versions"] = records.installed_versions()
        data.setdefault("suites", {})[self.suite] = {
            "exitstatus": int(exitstatus),
            "collected": self.collected,
        }
        data.setdefault("durations_s", {})[self.suite] = round(time.monotonic() - self.started, 1)
        records.save(self.path, data)

    def _row(self, nodeid: str) -> dict[str, Any]:
        if nodeid not in self.rows:
            module, _, name = nodeid.partition("::")
            group = module[len("tests/") :] if module.startswith("tests/") else module
            self.rows[nodeid] = {
                "suite": self.suite,
                "id": nodeid,
                "group": group,
                "name": name or module,
                "outcome": None,
                "reason": "",
                "duration_s": None,
            }
        return self.rows[nodeid]


def _failure_reason(report: Any) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return records.short_reason(crash.message)
    text = getattr(report, "longreprtext", "") or str(getattr(report, "longrepr", ""))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lstrip().startswith("E ")]
    return records.short_reason((errors or lines or [""])[-1].lstrip("E").strip())


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr or "")
    reason = reason.removeprefix("Skipped: ")
    return records.short_reason(reason)


def _installed_package_row(suite: str) -> dict[str, Any]:
    """Whether the imported (or importable) ``omni_sizefix`` is the installed distribution."""
    name = f"{suite}: tests ran against the installed omni-sizefix"
    module = sys.modules.get("omni_sizefix")
    origin = getattr(module, "__file__", None) if module else None
    if origin is None:
        spec = importlib.util.find_spec("omni_sizefix")
        origin = spec.origin if spec else None
    try:
        dist = metadata.distribution("omni-sizefix")
    except metadata.PackageNotFoundError:
        return records.harness_row(name, "failed", "omni-sizefix is not installed")
    expected = Path(str(dist.locate_file("omni_sizefix/__init__.py"))).resolve()
    if origin is None:
        return records.harness_row(name, "failed", "omni_sizefix is not importable")
    if Path(origin).resolve() != expected:
        print(f"\nmatrix: omni_sizefix came from {origin}, not from {expected}", file=sys.stderr)
        return records.harness_row(
            name, "failed", "another omni_sizefix (e.g. the source tree) shadows the installed one"
        )
    return records.harness_row(name, "passed", f"omni-sizefix {dist.version}")
