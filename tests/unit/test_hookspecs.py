"""Every hook has a docstring, a test and an entry in the hook reference (docs/hooks.md)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from omni_sizefix import hookspecs
from omni_sizefix.runtime import hooks

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [
    name
    for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("omni_sizefix_")
]


def test_there_are_four_hooks() -> None:
    assert HOOKS == sorted(
        [
            "omni_sizefix_original_prompt",
            "omni_sizefix_sampling_params",
            "omni_sizefix_stage0_prompt",
            "omni_sizefix_target_geometry",
        ]
    )


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_one_line_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and "\n" not in doc


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_default_implementation_and_a_test(name: str) -> None:
    assert callable(getattr(hooks, name))
    tests = (ROOT / "tests" / "unit" / "test_default_plugin.py").read_text()
    assert f"def test_{name.removeprefix('omni_sizefix_')}" in tests


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_signature(name: str) -> None:
    readme = (ROOT / "docs" / "hooks.md").read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert f"{name}({params})" in readme
