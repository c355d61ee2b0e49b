"""Every function of the package fits on a screen (at most 60 lines) and every module is readable in one
sitting (at most 450 lines), so the next engineer reads a step, not a saga.

Measured from the sources with `ast` (a function's lines run from its `def`, decorators excluded, to its
last statement; nested functions count inside their parent too). A failure names each offender by file,
line and length, longest first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import higgs_tune

PACKAGE = Path(higgs_tune.__file__).parent
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 450


def long_functions(package_dir: Path, limit: int) -> list[tuple[int, str]]:
    """(length, "file:line name") of every function or method longer than `limit` lines."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    where = path.relative_to(package_dir.parent)
                    found.append((length, f"{where}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def long_modules(package_dir: Path, limit: int) -> list[tuple[int, str]]:
    """(length, file) of every module longer than `limit` lines."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        length = len(path.read_text(encoding="utf-8").splitlines())
        if length > limit:
            found.append((length, str(path.relative_to(package_dir.parent))))
    return sorted(found, reverse=True)


def test_every_function_is_at_most_60_lines():
    offenders = long_functions(PACKAGE, MAX_FUNCTION_LINES)
    assert not offenders, "functions over 60 lines:\n" + "\n".join(f"  {n} lines: {w}" for n, w in offenders)


def test_every_module_is_at_most_450_lines():
    offenders = long_modules(PACKAGE, MAX_MODULE_LINES)
    assert not offenders, "modules over 450 lines:\n" + "\n".join(f"  {n} lines: {w}" for n, w in offenders)


def test_the_measure_sees_methods_and_nested_functions(tmp_path):
    """The walk counts methods and nested functions, so a long one cannot hide inside a class."""
    package = tmp_path / "pkg"
    package.mkdir()
    body = "\n".join(f"        x{i} = {i}" for i in range(70))
    (package / "mod.py").write_text(
        f"class A:\n    def long(self):\n{body}\n\n\ndef short():\n    return 1\n"
    )
    assert [where for _, where in long_functions(package, 60)] == ["pkg/mod.py:2 long"]
    assert long_modules(package, 60) == [(76, "pkg/mod.py")]
    assert long_modules(package, 80) == []
