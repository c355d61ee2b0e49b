"""The package's layering, read from its sources: no import cycles between modules, none between the
subpackages and top-level modules, and no stage that imports a later stage.

Every import counts, at module level or inside a function (a deferred import is still a dependency) or
under `TYPE_CHECKING`, with relative imports resolved. The stages, bottom to top, are `STAGES`; the
top-level modules (errors, files, logs, config, checkpoint, card, ranks, ...) are the foundation below
them, held by the cycle checks. A failure names each offending import by file, line and module.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import higgs_tune

ROOT = "higgs_tune"
# Bottom to top: an import may only point to an earlier stage, or within its own subpackage.
STAGES = (
    "data",
    "model",
    "scoring",
    "ingest",
    "prepared",
    "training",
    "inference",
    "evaluation",
    "preferences",
    "serving",
    "tiny",
    "cli",
)


class Import(NamedTuple):
    """One import of a module of the package by another: where it is written and what it names."""

    source: str  # the importing module
    target: str  # the imported module
    name: str  # the name taken from it (`from target import name`), "" for `import target`
    file: str  # the importing file, relative to the package's parent folder
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.source}) imports {self.target}"


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package under `package_dir`, by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _named(node: ast.AST, module: str, path: Path) -> list[tuple[str, str]]:
    """The dotted names an import statement brings in, each with the name taken (`from a import b` names
    `a.b`, whether `b` is a module or a name in `a`), relative imports resolved against the importing
    module's package."""
    if isinstance(node, ast.Import):
        return [(alias.name, "") for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    return [(f"{base}.{alias.name}", alias.name) for alias in node.names]


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package's module that `name` is or lies in (`a.b.func` -> `a.b`), or None when outside it."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def find_imports(package_dir: Path) -> list[Import]:
    """Every import between two different modules of the package, at any depth of the syntax tree."""
    modules = package_modules(package_dir)
    found = []
    for module, path in modules.items():
        file = str(path.relative_to(package_dir.parent))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for dotted, name in _named(node, module, path):
                target = _resolve(dotted, modules)
                if target not in (None, module):
                    found.append(Import(module, target, "" if target == dotted else name, file, node.lineno))
    return found


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of a directed graph: its strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(set(edges) | {n for targets in edges.values() for n in targets}):
        if node not in index:
            visit(node)
    return cycles


def unit(module: str) -> str:
    """A module's layer unit: its subpackage (`higgs_tune.training.trainer` -> `training`), or itself for a
    top-level module (`higgs_tune.checkpoint` -> `checkpoint`; the package's `__init__` -> `higgs_tune`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycle_report(imports: list[Import], node: Callable[[str], str]) -> list[str]:
    """One paragraph per cycle of the graph whose nodes are `node(module)`: the imports that form it."""
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if node(imp.source) != node(imp.target):
            edges[node(imp.source)].add(node(imp.target))
    paragraphs = []
    for cycle in strongly_connected(edges):
        members = set(cycle)
        inside = [
            f"  {imp}"
            for imp in imports
            if node(imp.source) in members
            and node(imp.target) in members
            and node(imp.source) != node(imp.target)
        ]
        paragraphs.append(f"cycle between {', '.join(cycle)}:\n" + "\n".join(inside))
    return paragraphs


def backward_arrows(imports: list[Import]) -> list[str]:
    """The imports by which a stage reaches a later stage (`STAGES`)."""
    order = {stage: i for i, stage in enumerate(STAGES)}
    return [
        f"{imp}: {unit(imp.source)} may not import {unit(imp.target)}, a later stage"
        for imp in imports
        if unit(imp.source) in order
        and unit(imp.target) in order
        and order[unit(imp.source)] < order[unit(imp.target)]
    ]


def private_names(imports: list[Import]) -> list[str]:
    """The imports of another subpackage's or top-level module's private names (`_name`): what a layer
    shares is public, under a name that says so."""
    return [
        f"{imp}: {imp.name} is private to {imp.target}"
        for imp in imports
        if imp.name.startswith("_") and not imp.name.startswith("__") and unit(imp.source) != unit(imp.target)
    ]


PACKAGE = Path(higgs_tune.__file__).parent


def test_no_cycle_between_modules():
    imports = find_imports(PACKAGE)
    cycles = cycle_report(imports, lambda module: module)
    assert not cycles, "import cycles between modules:\n" + "\n".join(cycles)


def test_no_cycle_between_subpackages_and_top_level_modules():
    imports = find_imports(PACKAGE)
    cycles = cycle_report(imports, unit)
    assert not cycles, "import cycles between subpackages / top-level modules:\n" + "\n".join(cycles)


def test_no_stage_imports_a_later_stage():
    modules, imports = package_modules(PACKAGE), find_imports(PACKAGE)
    subpackages = {unit(m) for m, path in modules.items() if path.name == "__init__.py" and m != ROOT}
    assert subpackages <= set(STAGES), (
        f"subpackages not placed in STAGES: {sorted(subpackages - set(STAGES))}"
    )
    arrows = backward_arrows(imports)
    assert not arrows, "imports that run back up the pipeline:\n" + "\n".join(arrows)


def test_no_private_name_crosses_a_layer():
    private = private_names(find_imports(PACKAGE))
    assert not private, "private names imported from another layer:\n" + "\n".join(private)


def test_the_walk_sees_function_level_and_relative_imports(tmp_path):
    """The checks above are only as good as the walk: a cycle closed by an import inside a function, a
    relative import (`.` or `..`), or `import a.b` is found and named by file and line, and so is a private
    name taken from another layer."""
    package = tmp_path / "pkg"
    (package / "early").mkdir(parents=True)
    (package / "late").mkdir()
    (package / "__init__.py").write_text("")
    (package / "early" / "__init__.py").write_text("")
    (package / "late" / "__init__.py").write_text("")
    (package / "early" / "a.py").write_text("def f():\n    from pkg.late import b\n")
    (package / "late" / "b.py").write_text("from . import c\n")
    (package / "late" / "c.py").write_text("import pkg.early.a\nfrom ..early.a import _hidden\n")
    imports = find_imports(package)
    assert {(i.source, i.target) for i in imports} == {
        ("pkg.early.a", "pkg.late.b"),
        ("pkg.late.b", "pkg.late.c"),
        ("pkg.late.c", "pkg.early.a"),
    }
    (cycle,) = cycle_report(imports, lambda module: module)
    assert "pkg/early/a.py:2 (pkg.early.a) imports pkg.late.b" in cycle
    (between,) = cycle_report(imports, unit)
    assert between.startswith("cycle between early, late:")
    assert private_names(imports) == [
        "pkg/late/c.py:2 (pkg.late.c) imports pkg.early.a: _hidden is private to pkg.early.a"
    ]
