"""The supported ranges are declared once and repeated only where checked."""

from __future__ import annotations

import sys
from pathlib import Path

from omni_sizefix.runtime.settings import SUPPORTED_HOSTS

ROOT = Path(__file__).resolve().parents[2]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_hosts_extra_equals_the_declaration() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["hosts"]
    assert extra == [f"{dist}{spec}" for dist, spec in SUPPORTED_HOSTS.items()]


def test_runtime_requirements_are_small_and_pure_python() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = {
        req.split(">")[0].split("=")[0].split("<")[0].lower()
        for req in pyproject["project"]["dependencies"]
    }
    assert names == {"packaging", "pluggy", "pyyaml"}


def test_readme_states_the_declared_ranges() -> None:
    readme = (ROOT / "README.md").read_text()
    for dist, spec in SUPPORTED_HOSTS.items():
        assert f"{dist}{spec}" in readme
