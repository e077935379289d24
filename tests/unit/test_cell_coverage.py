"""Claims follow cells: every minor release the declared ranges admit runs in some cell.

The cells are the pins files in ``tests/requirements/`` (with their ``.nodeps.txt``
companions); ``runtime/package.py`` declares the ranges. Widening a range without adding
a cell for the new minor release fails here, and so does an upper bound that no longer sits
just above the newest release a cell runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from omni_sizefix.runtime.settings import SUPPORTED_HOSTS

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements"
NOT_CELLS = {"test-tools"}

#: Minor versions inside the declared ranges with no final release on the package index
#: (checked 2026-11-27 with ``pip index versions --pre``): nothing an operator runs as a
#: release, so no cell needs them. Remove an entry when its minor gets a final release.
NO_FINAL_RELEASE: dict[str, set[tuple[int, int]]] = {
    "vllm-omni": {(0, 17), (0, 19), (0, 21), (0, 23), (0, 25), (0, 27), (0, 29)},
}

Minor = tuple[int, int]


def cell_pins(folder: Path = REQUIREMENTS) -> dict[str, dict[str, Version]]:
    """Cell name -> {distribution: pinned version}, read from ``<cell>.txt`` + ``.nodeps.txt``."""
    cells: dict[str, dict[str, Version]] = {}
    for path in sorted(folder.glob("*.txt")):
        if path.name.endswith((".overrides.txt", ".uninstall.txt")):
            continue
        cell = path.name.removesuffix(".txt").removesuffix(".nodeps")
        if cell in NOT_CELLS:
            continue
        pins = cells.setdefault(cell, {})
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            req = Requirement(line)
            exact = [s.version for s in req.specifier if s.operator == "=="]
            if exact:
                pins[canonicalize_name(req.name)] = Version(exact[0])
    return cells


def covered_minors(cells: dict[str, dict[str, Version]], dist: str) -> dict[Minor, list[str]]:
    """Minor version -> the cells that pin ``dist`` at a release of that minor."""
    found: dict[Minor, list[str]] = {}
    for cell, pins in cells.items():
        version = pins.get(canonicalize_name(dist))
        if version is not None:
            found.setdefault((version.major, version.minor), []).append(cell)
    return found


def bounds(spec: str) -> tuple[Version, Version]:
    """(lower, upper) of a ``>=LOW,<HIGH`` specifier."""
    lower = [Version(s.version) for s in SpecifierSet(spec) if s.operator == ">="]
    upper = [Version(s.version) for s in SpecifierSet(spec) if s.operator == "<"]
    assert len(lower) == 1 and len(upper) == 1, f"{spec}: expected one >= and one < bound"
    return lower[0], upper[0]


def admitted_minors(spec: str) -> list[Minor]:
    """Every minor version ``spec`` admits (one major version only)."""
    lower, upper = bounds(spec)
    assert lower.major == upper.major, f"{spec}: spans major versions; list its minors here"
    return [(lower.major, minor) for minor in range(lower.minor, upper.minor)]


def uncovered(
    spec: str, covered: Iterable[Minor], no_final_release: Iterable[Minor] = ()
) -> list[Minor]:
    """Admitted minors that no cell runs and that have a final release."""
    skip = set(covered) | set(no_final_release)
    return [minor for minor in admitted_minors(spec) if minor not in skip]


CELLS = cell_pins()


def test_the_cells_are_read() -> None:
    assert "dynamo-1.2" in CELLS and "omni-0.18" in CELLS
    assert CELLS["dynamo-1.6"]["ai-dynamo"] == Version("1.6.1")  # from the .nodeps.txt
    assert "no-host" in CELLS and not CELLS["no-host"]


@pytest.mark.parametrize("dist", sorted(SUPPORTED_HOSTS))
def test_every_admitted_minor_release_runs_in_a_cell(dist: str) -> None:
    covered = covered_minors(CELLS, dist)
    missing = uncovered(SUPPORTED_HOSTS[dist], covered, NO_FINAL_RELEASE.get(dist, ()))
    assert not missing, (
        f"{dist}{SUPPORTED_HOSTS[dist]} admits "
        + ", ".join(f"{major}.{minor}" for major, minor in missing)
        + " but no cell in tests/requirements/ runs it: add a cell or narrow the range"
    )


@pytest.mark.parametrize("dist", sorted(SUPPORTED_HOSTS))
def test_upper_bound_sits_just_above_the_newest_release_a_cell_runs(dist: str) -> None:
    _, upper = bounds(SUPPORTED_HOSTS[dist])
    newest = max(covered_minors(CELLS, dist))
    assert (upper.major, upper.minor) == (newest[0], newest[1] + 1), (
        f"{dist}: upper bound {upper} but the newest release a cell runs is {newest[0]}.{newest[1]}"
    )


@pytest.mark.parametrize("dist", sorted(NO_FINAL_RELEASE))
def test_no_final_release_entries_are_inside_the_range_and_not_run(dist: str) -> None:
    admitted = set(admitted_minors(SUPPORTED_HOSTS[dist]))
    assert NO_FINAL_RELEASE[dist] <= admitted
    assert not NO_FINAL_RELEASE[dist] & set(covered_minors(CELLS, dist))


def test_a_widened_range_without_a_cell_fails() -> None:
    """The check above can fail: one minor more than the cells run is reported."""
    dist = "vllm-omni"
    lower, upper = bounds(SUPPORTED_HOSTS[dist])
    widened = f">={lower},<{upper.major}.{upper.minor + 1}"
    missing = uncovered(widened, covered_minors(CELLS, dist), NO_FINAL_RELEASE[dist])
    assert missing == [(upper.major, upper.minor)]
    dynamo_lower, _ = bounds(SUPPORTED_HOSTS["ai-dynamo"])
    lowered = f">={dynamo_lower.major}.{dynamo_lower.minor - 1}.0,<1.8"
    assert uncovered(lowered, covered_minors(CELLS, "ai-dynamo")) == [
        (dynamo_lower.major, dynamo_lower.minor - 1)
    ]


def test_a_cell_without_its_companion_pin_covers_nothing(tmp_path: Path) -> None:
    (tmp_path / "dynamo-9.txt").write_text("# host\nvllm==0.31.0\nvllm-omni==0.31.0rc1\n")
    assert covered_minors(cell_pins(tmp_path), "ai-dynamo") == {}
    (tmp_path / "dynamo-9.nodeps.txt").write_text("ai-dynamo==9.1.0\n")
    assert covered_minors(cell_pins(tmp_path), "ai-dynamo") == {(9, 1): ["dynamo-9"]}
