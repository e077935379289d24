"""The version matrix: one nox session per cell, one cell per ``tests/requirements/<cell>.txt``.

Run everything with ``scripts/test.sh``; one cell with ``scripts/test.sh dynamo-1.2`` (or
``nox -s dynamo-1.2`` when nox is at hand). ``nox -l`` lists the cells.

A cell is a pins file in ``tests/requirements/``. Companions, used when present:
``<cell>.overrides.txt`` (passed to ``uv pip install --override``) and ``<cell>.nodeps.txt``
(installed afterwards with ``--no-deps``). ``test-tools.txt`` goes into every cell. A pins
file without requirement lines (``no-host.txt``) makes a cell without host: the package,
the test tools and ``tests/unit`` only.

Every host session:

1. creates a fresh environment and installs the cell's pins (the host, as a user has it);
2. builds the omni-sizefix wheel and installs it the way users do, into the populated
   environment, and fails unless that install left every other distribution untouched
   (only omni-sizefix and its own declared dependencies may appear);
3. installs the test support (the CPU platform plugin, pytest, hypothesis);
4. runs ``tests/unit`` and then ``tests/host`` with the ``matrix_plugin`` recorder, which
   writes ``reports/<cell>.json`` (``scripts/matrix_report.py`` turns those into a table);
5. removes the environment (cells weigh 7-12 GB), unless ``OMNI_SIZEFIX_KEEP_CELLS=1``,
   which also makes the next run reuse the kept environment.

``OMNI_SIZEFIX_LIVE=<cell>[,<cell>...]`` (or ``all``: every cell with ai-dynamo) adds
``tests/live`` to those host cells:
the four real Dynamo processes with fake engines, served over HTTP (2-4 min per topology,
two topologies per cell), with ``tests/requirements/live-tools.txt`` (the ``openai``
client) installed as test support first.

The canary ``latest`` (``scripts/test.sh latest``; not in the default run) has no pins file:
it resolves the newest ai-dynamo and the newest vLLM-Omni for its vLLM from the package index
when it runs (``tests/harness/latest_pins.py``) and records them in ``reports/latest.json``.

``OMNI_SIZEFIX_SUITES=host`` (or ``unit``, ``live``, or ``none`` to only build) narrows step 4;
``OMNI_SIZEFIX_PYTHON`` picks the cells' Python (default 3.11).

Arguments after ``--`` go to both pytest runs, e.g. ``nox -s dynamo-1.2 -- -k size``.
"""

from __future__ import annotations

import contextlib
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nox
from nox.command import CommandFailed

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "tests" / "requirements"
HARNESS_DIR = ROOT / "tests" / "harness"
CPU_PLATFORM = ROOT / "tests" / "support" / "cpu_platform"
REPORTS = ROOT / "reports"
TEST_TOOLS = REQUIREMENTS / "test-tools.txt"
SUITES = {
    "unit": ROOT / "tests" / "unit",
    "host": ROOT / "tests" / "host",
    "live": ROOT / "tests" / "live",
}
LIVE_TOOLS = REQUIREMENTS / "live-tools.txt"
LIVE_VAR = "OMNI_SIZEFIX_LIVE"
PACKAGE = "omni-sizefix"
CPU_PLATFORM_DIST = "omni-sizefix-cpu-platform"

sys.path.insert(0, str(HARNESS_DIR))
import latest_pins  # noqa: E402
import matrix_records as records  # noqa: E402

NOT_CELLS = {"test-tools", "live-tools"}
#: The canary cell: pins resolved at run time, run only on demand (never by default).
CANARY = "latest"
#: Cells whose pins files are not in REQUIREMENTS (the canary's, once resolved).
PINS_DIRS: dict[str, Path] = {}
COMPANIONS = {"overrides": ".overrides.txt", "nodeps": ".nodeps.txt"}
PYTHON = os.environ.get("OMNI_SIZEFIX_PYTHON", "3.11")
KEEP_VAR = "OMNI_SIZEFIX_KEEP_CELLS"
KEEP = os.environ.get(KEEP_VAR, "").strip().lower() not in ("", "0", "false", "no")
SUITES_VAR = "OMNI_SIZEFIX_SUITES"
HEARTBEAT_S = 30
LOW_DISK_GB = 30  # below this, a finished cell is deleted before the next one starts

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.reuse_venv = "yes" if KEEP else "no"


# --- cells ------------------------------------------------------------------------------


def pins_dir(cell: str) -> Path:
    return PINS_DIRS.get(cell, REQUIREMENTS)


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def is_host_cell(cell: str) -> bool:
    return bool(requirement_lines(pins_dir(cell) / f"{cell}.txt"))


def natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def discover_cells() -> list[str]:
    """Cell names, cells without host first, then in natural order (1.2 before 1.10)."""
    cells = [
        path.name.removesuffix(".txt")
        for path in REQUIREMENTS.glob("*.txt")
        if path.name.removesuffix(".txt") not in NOT_CELLS
        and not path.name.endswith(tuple(COMPANIONS.values()))
    ]
    return sorted(cells, key=lambda cell: (is_host_cell(cell), natural_key(cell)))


def companion(cell: str, kind: str) -> Path | None:
    path = pins_dir(cell) / f"{cell}{COMPANIONS[kind]}"
    return path if path.exists() else None


def describe(cell: str) -> str:
    """The first sentence of the pins file's leading comment (shown by ``nox -l``)."""
    words = []
    pins = pins_dir(cell) / f"{cell}.txt"
    if not pins.exists():
        return f"cell {cell}"
    for line in pins.read_text().splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("# ").strip())
    text = " ".join(words)
    return text.split(". ", 1)[0].rstrip(".") + "." if text else f"cell {cell}"


# --- small helpers ----------------------------------------------------------------------


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def free_disk() -> str:
    return f"{shutil.disk_usage(ROOT).free / 1e9:.1f} GB free"


def seconds(value: float) -> str:
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{value:.1f}s"


@contextlib.contextmanager
def heartbeat(session: nox.Session, what: str) -> Iterator[None]:
    """Log a line every HEARTBEAT_S while a long, quiet step runs (uv is silent without TTY)."""
    started = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            elapsed = seconds(time.monotonic() - started)
            session.log(f"... still {what} ({elapsed}, {free_disk()})")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class CellFailure(Exception):
    """A harness check failed; the message is the reason shown in the matrix."""


class Report:
    """``reports/<cell>.json`` as the nox side sees it (the pytest plugin merges into it)."""

    def __init__(self, cell: str) -> None:
        self.cell = cell
        self.path = REPORTS / f"{cell}.json"
        records.save(self.path, records.new_report(cell))

    def update(self, **fields: Any) -> None:
        data = records.load(self.path, self.cell)
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        records.save(self.path, data)

    def row(self, name: str, outcome: str, reason: str = "", duration: float | None = None):
        data = records.load(self.path, self.cell)
        records.set_harness_row(data, records.harness_row(name, outcome, reason, duration))
        records.save(self.path, data)

    def suite(self, suite: str) -> dict[str, Any] | None:
        return records.load(self.path, self.cell).get("suites", {}).get(suite)

    @contextlib.contextmanager
    def check(self, session: nox.Session, name: str, key: str) -> Iterator[dict[str, str]]:
        """Record ``name`` as a harness row: passed, or failed with the exception's reason.

        Its duration is stored as ``durations_s[key]``.
        """
        started = time.monotonic()
        note = {"reason": ""}
        try:
            yield note
        except CommandFailed as exc:
            self.row(name, "failed", f"command failed: {exc.reason}", time.monotonic() - started)
            raise CellFailure(f"{name}: command failed ({exc.reason})") from exc
        except CellFailure as exc:
            self.row(name, "failed", str(exc), time.monotonic() - started)
            raise CellFailure(f"{name}: {exc}") from exc
        finally:
            self.update(durations_s={key: round(time.monotonic() - started, 1)})
        elapsed = time.monotonic() - started
        self.row(name, "passed", note["reason"], elapsed)
        session.log(
            f"{name}: ok in {seconds(elapsed)}{' - ' if note['reason'] else ''}{note['reason']}"
        )


# --- what is installed --------------------------------------------------------------------

# Runs inside the cell (python -I: no cwd, no PYTHONPATH on sys.path). Identifies every
# distribution by name, version, and its metadata directory's inode and times, so even a
# reinstall of the same version counts as a change.
SNAPSHOT = r"""
import json, os, re, sys
from importlib import metadata
found = {}
for dist in metadata.distributions():
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "?").lower()
    where = getattr(dist, "_path", None)
    try:
        st = os.stat(where)
        ident = [st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
    except (TypeError, OSError):
        ident = None
    found.setdefault(name, []).append([dist.version, str(where), ident])
with open(sys.argv[1], "w") as out:
    json.dump({name: sorted(entries) for name, entries in found.items()}, out)
"""


def snapshot(session: nox.Session, scratch: Path) -> dict[str, list[list[Any]]]:
    script, out = scratch / "snapshot.py", scratch / "snapshot.json"
    script.write_text(SNAPSHOT)
    session.run("python", "-I", str(script), str(out), silent=True)
    return json.loads(out.read_text())


def versions_of(snap: dict[str, list[list[Any]]]) -> dict[str, str | None]:
    return {
        dist: (snap[records.canonical(dist)][0][0] if records.canonical(dist) in snap else None)
        for dist in records.REPORTED_DISTRIBUTIONS
    }


def diff(before: dict, after: dict) -> tuple[list[str], list[str], list[str]]:
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(n for n in before.keys() & after.keys() if before[n] != after[n])
    return added, removed, changed


def describe_dists(names: list[str], snap: dict) -> str:
    return ", ".join(f"{n} {'/'.join(e[0] for e in snap[n])}" for n in names)


def describe_changes(names: list[str], before: dict, after: dict) -> str:
    parts = []
    for n in names:
        old = "/".join(e[0] for e in before[n])
        new = "/".join(e[0] for e in after[n])
        parts.append(f"{n} {old}->{new}" if old != new else f"{n} {old} (reinstalled)")
    return ", ".join(parts)


def declared_dependencies(wheel: Path) -> set[str]:
    """Names in the wheel's ``Requires-Dist`` that apply without extras."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(zf.read(meta_name).decode("utf-8"))
    names = set()
    for req in meta.get_all("Requires-Dist") or []:
        if "extra" in req.partition(";")[2]:
            continue
        names.add(records.canonical(re.split(r"[\s;<>=!~\[(]", req.strip(), maxsplit=1)[0]))
    return names


def build_wheel(session: nox.Session, source: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    session.run("uv", "build", "--wheel", "--out-dir", str(out), str(source), silent=True)
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise CellFailure(f"expected one wheel from {rel(source)}, got {len(wheels)}")
    session.log(f"built {wheels[0].name}")
    return wheels[0]


# --- the session ------------------------------------------------------------------------


def run_cell(session: nox.Session, cell: str, resolved: dict[str, Any] | None = None) -> None:
    started = time.monotonic()
    host = is_host_cell(cell)
    report = Report(cell)
    report.update(environment=rel(Path(session.virtualenv.location)))
    if resolved:
        report.update(resolved=resolved)
    session.log(
        f"cell {cell} ({'host' if host else 'no host'}): {describe(cell)}; python {PYTHON}; "
        f"{free_disk()}; environment {rel(Path(session.virtualenv.location))}"
    )
    status = "failed"
    problems: list[str] = []
    try:
        problems = cell_steps(session, cell, host, report)
        status = "failed" if problems else "passed" if selected_suites(host) else "built"
    except CellFailure as exc:
        problems = [str(exc)]
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        total = time.monotonic() - started
        report.update(status=status, durations_s={"total": round(total, 1)})
        session.log(f"cell {cell}: {status} in {seconds(total)}")
        remove_environment(session)
    if problems:
        session.error(f"cell {cell} failed: " + "; ".join(problems))


def cell_steps(session: nox.Session, cell: str, host: bool, report: Report) -> list[str]:
    suites = selected_suites(host, cell)  # a typo in the variable fails before the long build
    scratch = Path(session.create_tmp())
    pins = pins_dir(cell) / f"{cell}.txt"

    with report.check(session, "environment builds", "build") as note:
        free_before = shutil.disk_usage(ROOT).free
        if host:
            args = ["-r", rel(pins)]
            overrides = companion(cell, "overrides")
            if overrides:
                args += ["--override", rel(overrides)]
            with heartbeat(session, f"installing the {cell} pins"):
                session.install(*args, silent=False)
                nodeps = companion(cell, "nodeps")
                if nodeps:
                    session.install("--no-deps", "-r", rel(nodeps), silent=False)
        used = (free_before - shutil.disk_usage(ROOT).free) / 1e9
        note["reason"] = f"{used:+.1f} GB on disk" if host else "no host pins"
        session.log(f"environment ready: {used:+.1f} GB on disk, {free_disk()}")

    with report.check(session, "package install changes no other distribution", "install") as note:
        wheel = build_wheel(session, ROOT, scratch / "dist")
        before = snapshot(session, scratch)
        session.install("--reinstall-package", PACKAGE, str(wheel), silent=False)
        after = snapshot(session, scratch)
        note["reason"] = install_verdict(before, after, declared_dependencies(wheel))
        report.update(versions=versions_of(after))

    with report.check(session, "test support installs", "support") as note:
        support = []
        if host:
            support.append(str(build_wheel(session, CPU_PLATFORM, scratch / "support")))
        session.install(*support, "-r", rel(TEST_TOOLS), silent=False)
        final = snapshot(session, scratch)
        added, removed, changed = diff(after, final)
        support_dists = {records.canonical(CPU_PLATFORM_DIST), records.canonical(PACKAGE)}
        touched = [n for n in removed + changed if n not in support_dists]
        note["reason"] = f"added {len(added)} distributions" + (
            f"; changed {describe_changes(touched, after, final)}" if touched else ""
        )
        if touched:
            session.warn(f"the test support changed the cell: {note['reason']}")
        report.update(versions=versions_of(final))

    if "live" in suites:
        with report.check(session, "live test support installs", "live_support") as note:
            before_live = snapshot(session, scratch)
            session.install("-r", rel(LIVE_TOOLS), silent=False)
            added, removed, changed = diff(before_live, snapshot(session, scratch))
            note["reason"] = f"added {len(added)} distributions" + (
                f"; changed {', '.join(removed + changed)}" if removed or changed else ""
            )

    problems = []
    for suite in suites:
        problem = run_suite(session, cell, suite, report, scratch)
        if problem:
            problems.append(problem)
    return problems


def is_dynamo_cell(cell: str) -> bool:
    """True when the cell's pins (or its ``--no-deps`` companion) install ai-dynamo, or are
    not resolved yet (the canary)."""
    pins = pins_dir(cell) / f"{cell}.txt"
    if not pins.exists():
        return True
    nodeps = companion(cell, "nodeps")
    lines = requirement_lines(pins) + (requirement_lines(nodeps) if nodeps else [])
    return any(re.match(r"ai-dynamo(\[[^]]*\])?\s*(==|>=|~=|$)", line) for line in lines)


def live_selected(cell: str) -> bool:
    """True when ``OMNI_SIZEFIX_LIVE`` names ``cell``, or is ``all`` and the cell has ai-dynamo
    (the live topology is Dynamo's processes; a cell without them has nothing to start)."""
    wanted = os.environ.get(LIVE_VAR, "").replace(",", " ").split()
    return cell in wanted or ("all" in wanted and is_dynamo_cell(cell))


def selected_suites(host: bool, cell: str = "") -> list[str]:
    """``unit`` and, in host cells, ``host`` (and ``live`` when ``OMNI_SIZEFIX_LIVE`` selects
    the cell); ``OMNI_SIZEFIX_SUITES=host`` (or ``none``) narrows."""
    suites = ["unit", "host"] if host else ["unit"]
    if host and live_selected(cell):
        suites.append("live")
    wanted = os.environ.get(SUITES_VAR, "").replace(",", " ").split()
    if not wanted:
        return suites
    unknown = set(wanted) - {*SUITES, "none"}
    if unknown:
        raise CellFailure(f"{SUITES_VAR}: unknown suite(s) {', '.join(sorted(unknown))}")
    return [suite for suite in suites if suite in wanted]


def install_verdict(before: dict, after: dict, own_deps: set[str]) -> str:
    """Why installing omni-sizefix was harmless, or CellFailure saying what it touched."""
    added, removed, changed = diff(before, after)
    pkg = records.canonical(PACKAGE)
    if pkg not in after:
        raise CellFailure("omni-sizefix is not installed after installing its wheel")
    foreign_added = [n for n in added if n != pkg and n not in own_deps]
    touched = [n for n in changed if n != pkg]
    bad = []
    if removed:
        bad.append("removed " + describe_dists(removed, before))
    if touched:
        bad.append("changed " + describe_changes(touched, before, after))
    if foreign_added:
        bad.append("added " + describe_dists(foreign_added, after))
    if bad:
        raise CellFailure("; ".join(bad))
    deps = [n for n in added if n != pkg]
    untouched = len(before.keys() - {pkg})
    verdict = f"installed omni-sizefix {after[pkg][0][0]}"
    if pkg in before:
        verdict += f" over {before[pkg][0][0]} (reused environment)"
    if deps:
        verdict += f" + its own dependencies {describe_dists(deps, after)}"
    return verdict + f"; {untouched} existing distributions untouched"


def has_test_files(path: Path) -> bool:
    return path.is_dir() and any(
        p.name.startswith("test_") or p.name.endswith("_test.py") for p in path.rglob("*.py")
    )


def run_suite(
    session: nox.Session, cell: str, suite: str, report: Report, scratch: Path
) -> str | None:
    """Run one pytest suite in the cell; returns a problem description or None."""
    path = SUITES[suite]
    name = f"{suite} tests"
    if not has_test_files(path):
        session.warn(f"{rel(path)} has no test files yet: nothing to run in {cell}")
        report.row(name, "skipped", f"no test files in {rel(path)}")
        return None
    cmd = [
        "pytest",
        "-p",
        "matrix_plugin",
        f"--matrix-report={report.path}",
        f"--matrix-cell={cell}",
        f"--matrix-suite={suite}",
        f"--rootdir={ROOT}",
        "-ra",
        *(["-v", "--durations=10"] if suite in ("host", "live") else []),
        *(["-s"] if suite == "live" else []),  # start-up progress of the topologies
        str(path),
        *session.posargs,
    ]
    env = {"PYTHONPATH": str(HARNESS_DIR), "OMNI_SIZEFIX_CELL": cell}
    report.row(name, "error", "did not finish")  # replaced below unless the run is killed
    started = time.monotonic()
    crashed = None
    # Run from an empty directory: a subprocess started by a test (python -c ...) must import
    # the installed omni-sizefix, not the source tree that the repository root would expose.
    with session.chdir(scratch):
        try:
            session.run(*cmd, env=env, success_codes=[0, 5])
        except CommandFailed as exc:
            crashed = exc.reason
    elapsed = time.monotonic() - started
    report.update(durations_s={suite: round(elapsed, 1)})
    result = report.suite(suite)
    if result is None:
        report.row(name, "failed", f"pytest wrote no results ({crashed})", elapsed)
        return f"{suite}: pytest wrote no results ({crashed})"
    status, collected = result["exitstatus"], result["collected"]
    counts = outcome_counts(report, suite)
    summary = f"exit {status}, {collected} collected" + (f": {counts}" if counts else "")
    if status == 0:
        report.row(name, "passed", summary, elapsed)
        return None
    if status == 5 and session.posargs:
        report.row(name, "skipped", f"nothing selected by {' '.join(session.posargs)}", elapsed)
        return None
    if status == 5:
        reason = f"{rel(path)} has test files but pytest collected no test"
        report.row(name, "failed", reason, elapsed)
        return f"{suite}: {reason}"
    report.row(name, "failed", summary, elapsed)
    return f"{suite}: {summary}"


def outcome_counts(report: Report, suite: str) -> str:
    counts: dict[str, int] = {}
    for row in records.load(report.path, report.cell).get("rows", []):
        if row.get("suite") == suite:
            counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))


def remove_environment(session: nox.Session) -> None:
    """Delete the cell (unless kept): in the background while disk is plentiful.

    The environment is first renamed into ``<envdir>/.trash/`` (instant), then an ``rm -rf``
    detached from nox deletes it while the next cell builds; ``scripts/test.sh`` waits for
    the leftovers at the end. With less than LOW_DISK_GB free it is deleted right here.
    """
    location = Path(session.virtualenv.location)
    if KEEP:
        session.log(f"{KEEP_VAR} is set: keeping {rel(location)} ({free_disk()})")
        return
    if not location.exists():
        return
    started = time.monotonic()
    if shutil.disk_usage(ROOT).free / 1e9 >= LOW_DISK_GB:
        trash = location.parent / ".trash" / f"{location.name}-{os.getpid()}-{time.time_ns()}"
        try:
            trash.parent.mkdir(exist_ok=True)
            location.rename(trash)
            subprocess.Popen(
                ["rm", "-rf", "--", str(trash)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            session.log(f"removing {rel(location)} in the background; set {KEEP_VAR}=1 to keep")
            return
        except OSError as exc:
            session.warn(f"background removal failed ({exc}); removing now")
            location = trash if trash.exists() else location
    shutil.rmtree(location, ignore_errors=True)
    session.log(
        f"removed {rel(location)} in {seconds(time.monotonic() - started)} ({free_disk()}); "
        f"set {KEEP_VAR}=1 to keep cells"
    )


def define(cell: str) -> None:
    def session_func(session: nox.Session) -> None:
        run_cell(session, cell)

    session_func.__doc__ = describe(cell)
    session_func.__name__ = session_func.__qualname__ = "cell_" + re.sub(r"\W", "_", cell)
    nox.session(name=cell, python=PYTHON)(session_func)


for _cell in discover_cells():
    define(_cell)


@nox.session(name=CANARY, python=PYTHON, default=False)
def canary(session: nox.Session) -> None:
    """Canary, on demand: the newest ai-dynamo with the newest vLLM-Omni for its vLLM."""
    folder = Path(session.create_tmp()) / "requirements"
    try:
        resolved = latest_pins.write(folder, CANARY, PYTHON)
    except Exception as exc:  # the index or a wheel could not be read: nothing to run
        session.error(f"could not resolve the {CANARY} pins: {exc}")
    PINS_DIRS[CANARY] = folder
    session.log(
        f"{CANARY} resolved: ai-dynamo {resolved['ai-dynamo']}, vllm {resolved['vllm']}, "
        f"vllm-omni {resolved['vllm-omni']} (left out: {', '.join(resolved['left out']) or '-'})"
    )
    run_cell(session, CANARY, resolved={k: v for k, v in resolved.items() if k != "requirements"})
