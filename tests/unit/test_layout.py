"""Code that runs in serving workers does not depend on the operator tooling.

``omni_sizefix/runtime/`` (and the worker-facing modules beside it: the package root, the hook
specs, the legacy ``processors`` path) must not import ``omni_sizefix.tools``: tools may import
runtime, never the other way round. Read from the source files (ast), so a lazy import inside
a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "omni_sizefix"
TOOLS = "omni_sizefix.tools"
WORKER_SIDE = [
    *sorted((PACKAGE / "runtime").rglob("*.py")),
    *sorted((PACKAGE / "processors").rglob("*.py")),
    PACKAGE / "__init__.py",
    PACKAGE / "hookspecs.py",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every module an ``import`` / ``from ... import`` in ``source`` names (relative resolved)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def uses_tools(names: set[str]) -> list[str]:
    return sorted(n for n in names if n == TOOLS or n.startswith(f"{TOOLS}."))


def test_the_scan_sees_every_import_form() -> None:
    module = "omni_sizefix.runtime.example"
    for source in (
        "import omni_sizefix.tools.doctor",
        "from omni_sizefix.tools import doctor",
        "from omni_sizefix import tools",
        "def f():\n    from ..tools.simulation import check_platform",
    ):
        assert uses_tools(imported_modules(source, module, False)), source
    assert not uses_tools(imported_modules("from omni_sizefix import runtime", module, False))


@pytest.mark.parametrize("path", WORKER_SIDE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_worker_side_module_imports_no_tools(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    names = imported_modules(source, module_name(path), path.name == "__init__.py")
    assert not uses_tools(names), f"{path.relative_to(PACKAGE.parent)} imports {uses_tools(names)}"
