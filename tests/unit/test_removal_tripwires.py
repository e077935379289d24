"""Removal tripwires: one test per numbered fix of each patch module
that fails once the declared supported range no longer admits a release that needs it.

The conditions are read from ``omni_sizefix.runtime.patches.REMOVALS``; the range from
``omni_sizefix.runtime.settings.SUPPORTED_HOSTS``. No host is needed.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Mapping

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from omni_sizefix.runtime import patches, settings
from omni_sizefix.runtime.patches import REMOVALS, Removal

#: Operators this check understands: lower bounds inclusive, any upper bound.
LOWER = {">=", "=="}
KNOWN = LOWER | {"<", "<="}


def overlaps(first: str, second: str) -> bool:
    """True when two specifier sets admit a common version.

    A non-empty intersection of ``>=``/``==`` lower bounds and ``<``/``<=`` upper bounds
    contains its largest lower bound (or 0), so those are the only candidates to try.
    """
    sets = [SpecifierSet(first), SpecifierSet(second)]
    operators = {spec.operator for specs in sets for spec in specs}
    assert operators <= KNOWN, f"teach overlaps() the operators {operators - KNOWN}"
    candidates = {Version("0")} | {
        Version(spec.version) for specs in sets for spec in specs if spec.operator in LOWER
    }
    return any(all(s.contains(v, prereleases=True) for s in sets) for v in candidates)


def still_needed(removal: Removal, supported: Mapping[str, str]) -> bool:
    """True while ``supported`` admits one of the release sets that need ``removal``."""
    return any(
        all(overlaps(supported[dist], spec) for dist, spec in releases.items())
        for releases in removal.needed_by
    )


@pytest.mark.parametrize("removal", REMOVALS, ids=lambda removal: removal.patch)
def test_patch_is_still_needed(removal: Removal) -> None:
    module = removal.patch.split("#")[0]
    assert still_needed(removal, settings.SUPPORTED_HOSTS), (
        f"{removal.patch} is needed only by {removal.describe()}, which the supported range "
        f"{settings.SUPPORTED_HOSTS} no longer admits (upstream: {removal.upstream}). Delete "
        f"it (omni_sizefix/runtime/patches/{module}.py, the numbered fix "
        f"{removal.patch.split('#')[1]}"
        f"), its tests and its entry in omni_sizefix.runtime.patches.REMOVALS."
    )


def _fixes(module: str) -> list[str]:
    """The numbered fixes (``N. ...`` blocks) of a patch module's docstring."""
    doc = importlib.import_module(f"{patches.__name__}.{module}").__doc__ or ""
    return re.findall(r"^(\d+)\. ", doc, re.MULTILINE)


def test_every_patch_module_and_numbered_fix_has_a_removal_condition() -> None:
    modules = {info.name for info in pkgutil.iter_modules(patches.__path__)}
    listed = {removal.patch for removal in REMOVALS}
    assert listed == {f"{module}#{n}" for module in modules for n in _fixes(module)}
    assert all(_fixes(module) for module in modules)  # every module numbers its fixes
    assert len(listed) == len(REMOVALS)
    for removal in REMOVALS:
        assert removal.needed_by and removal.upstream
        for releases in removal.needed_by:
            assert set(releases) <= set(settings.SUPPORTED_HOSTS)


@pytest.mark.parametrize(
    ("supported", "needed", "expected"),
    [
        (">=1.1.0,<1.8", "<1.4", True),
        (">=1.4,<1.8", "<1.4", False),  # 1.1-1.3 dropped: the tripwire fires
        (">=1.4.0,<1.8", "<1.6", True),
        (">=0.16.0,<0.33", "<0.20.0rc1", True),
        (">=0.20.0,<0.33", "<0.20.0rc1", False),
        (">=0.20.0rc1,<0.33", "<=0.20.0rc1", True),
        (">=0.20.0rc1,<0.33", "<0.20.0", False),  # PEP 440: "<0.20.0" excludes 0.20.0rc1
        (">=1.1.0,<1.2", ">=1.2", False),
        (">=1.1.0,<1.8", "==1.7.0", True),
    ],
)
def test_overlaps(supported: str, needed: str, expected: bool) -> None:
    assert overlaps(supported, needed) is expected


def test_tripwire_fires_when_the_range_moves_past_every_release_that_needs_a_patch() -> None:
    adapter = next(r for r in REMOVALS if r.patch == "stage1#7")  # other models' adapter
    assert still_needed(adapter, {"ai-dynamo": ">=1.4,<1.8", "vllm-omni": ">=0.26,<0.33"})
    assert not still_needed(adapter, {"ai-dynamo": ">=1.4,<1.8", "vllm-omni": ">=0.30,<0.33"})
    assert not still_needed(adapter, {"ai-dynamo": ">=1.6,<1.8", "vllm-omni": ">=0.26,<0.33"})
    raised_floor = {"ai-dynamo": ">=1.8", "vllm-omni": ">=0.33"}
    assert not any(still_needed(removal, raised_floor) for removal in REMOVALS)
