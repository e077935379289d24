"""Every ``module.name`` the package, its tests and benchmarks use of an ``omni_sizefix``
module exists: a runtime name renamed or removed fails here, not in a host cell.

Read statically (``ast``): ``from omni_sizefix.x import y [as z]`` where ``y`` is a module, and
each ``z.attr`` read where that import is seen (the module, or the function importing it). A
scope that assigns ``z`` itself is skipped (a local variable shadows the module).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("omni_sizefix", "tests", "benchmarks")


Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef


def _own_nodes(scope: Scope) -> list[ast.AST]:
    """The nodes of ``scope`` outside the functions nested in it."""
    found, todo = [], list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))
    return found


def _modules_imported(nodes: list[ast.AST]) -> dict[str, ModuleType]:
    aliases = {}
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("omni_sizefix"):
            for alias in node.names:
                try:
                    module = importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    continue  # a name, not a module (checked by the import itself)
                aliases[alias.asname or alias.name] = module
    return aliases


def _missing(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    global_aliases = _modules_imported(_own_nodes(tree))
    missing = []
    scopes: list[Scope] = [tree]
    scopes += [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in scopes:
        nodes = _own_nodes(scope)
        assigned = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        aliases = {**global_aliases, **_modules_imported(nodes)}
        missing += [
            f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}"
            for node in nodes
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.value.id not in assigned
            and isinstance(node.ctx, ast.Load)
            and not hasattr(aliases[node.value.id], node.attr)
        ]
    return missing


def test_every_referenced_name_of_a_package_module_exists() -> None:
    files = [p for source in SOURCES for p in sorted((ROOT / source).rglob("*.py"))]
    assert len(files) > 100
    missing = [line for path in files for line in _missing(path)]
    assert not missing, "\n".join(missing)
