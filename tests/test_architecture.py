"""The layers of docs/architecture.md, checked: every import points down, and no two modules
import each other, directly or round a longer loop.

Imports are read with `ast` from the source (at module level, inside functions and under
TYPE_CHECKING alike), so an import hidden in a function to dodge a cycle counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lower numbers sit lower. A package may import its own modules and any package on a
# lower layer; packages on one layer do not import one another, except as allowed below.
LAYERS: dict[str, int] = {
    "core": 0,
    "forms": 1,
    "intake": 1,
    "notifications": 1,
    "workflow": 2,
    "caseworker": 3,
    "service": 4,
    "demo": 5,
}
# notifications attaches the blank forms that the forms package ships.
ALLOWED_SIDEWAYS: frozenset[tuple[str, str]] = frozenset({("notifications", "forms")})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _imported(path: Path, name: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            # `from package import module` names a module, not just a package.
            for alias in node.names:
                if f"{target}.{alias.name}" in modules():
                    yield node.lineno, f"{target}.{alias.name}"


@cache
def edges() -> dict[str, set[str]]:
    """Module -> the project's modules it imports."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for _line, target in _imported(path, name):
            if target in known and target != name:
                graph[name].add(target)
    return graph


def _package(module: str) -> str:
    return module.split(".")[0]


def test_every_package_of_the_layers_exists() -> None:
    for package in LAYERS:
        assert (ROOT / package / "__init__.py").is_file(), package


def test_every_import_points_down() -> None:
    wrong = []
    for name, path in modules().items():
        here = _package(name)
        for line, target in _imported(path, name):
            there = _package(target)
            if there not in LAYERS or there == here:
                continue
            if LAYERS[there] < LAYERS[here] or (here, there) in ALLOWED_SIDEWAYS:
                continue
            rel = path.relative_to(ROOT)
            wrong.append(
                f"{rel}:{line} imports {target} ({here} is on layer "
                f"{LAYERS[here]}, {there} on layer {LAYERS[there]})"
            )
    assert not wrong, "Imports that do not point down:\n" + "\n".join(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in `graph`, as a list of nodes, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {p: set() for p in LAYERS}
    for source, targets in edges().items():
        for target in targets:
            if _package(source) != _package(target):
                graph[_package(source)].add(_package(target))
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_cycle_between_modules() -> None:
    found = _cycle(edges())
    assert found is None, "Modules that import each other: " + " -> ".join(found or [])


@pytest.mark.parametrize("source", ["bench", "scripts"])
def test_benches_and_scripts_use_product_code_not_the_tests(source: str) -> None:
    wrong = []
    for path in sorted((ROOT / source).rglob("*.py")):
        for line, target in _imported(path, path.stem):
            if target == "tests" or target.startswith("tests."):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    """The test itself: an upward import and a loop are found."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    sample = ROOT / "forms" / "__init__.py"
    assert all(_package(t) not in ("workflow", "service") for _, t in _imported(sample, "forms"))
