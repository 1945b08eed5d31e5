"""The package's import graph: no cycles between modules, and data flowing one way.

Layers, lowest first: the base modules (errors, paths and other dependency-free helpers), then
tasks → sim → data → models → train → eval, then the top (cli, presets and what assembles whole
commands). A module may import from its own layer and the layers below it, never from a later one;
imports inside functions and under `TYPE_CHECKING` count too, since they are dependencies all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "robopolicy"
LAYERS = ("base", "tasks", "sim", "data", "models", "train", "eval", "top")
BASE_MODULES = {"errors", "paths", "typed_config", "client"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "_bundled" not in p.parts}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"  # robopolicy/__init__.py re-exports across layers
    if parts[1] in LAYERS:
        return parts[1]
    return "base" if parts[1] in BASE_MODULES else "top"


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every robopolicy module `path` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "robopolicy":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "robopolicy")
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def against_the_flow(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} ({layer_of(module)}) imports {dep} ({layer_of(dep)})"
        for module, deps in graph.items()
        for dep in deps
        if LAYERS.index(layer_of(dep)) > LAYERS.index(layer_of(module))
    )


def test_cycle_finder_and_layers_on_a_toy_graph() -> None:
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(toy) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer_of("robopolicy.errors") == "base"
    assert layer_of("robopolicy.sim.env") == "sim"
    assert layer_of("robopolicy.cli") == "top"
    bad = {"robopolicy.sim.env": {"robopolicy.eval.stats"}, "robopolicy.eval.stats": set()}
    assert against_the_flow(bad) == ["robopolicy.sim.env (sim) imports robopolicy.eval.stats (eval)"]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_imports_follow_the_data_flow() -> None:
    assert against_the_flow(import_graph()) == []


def test_no_layer_holds_more_than_a_quarter_of_the_code() -> None:
    lines: dict[str, int] = {}
    for name, path in all_modules().items():
        lines[layer_of(name)] = lines.get(layer_of(name), 0) + len(path.read_text().splitlines())
    total = sum(lines.values())
    assert {k: v for k, v in lines.items() if v > 0.26 * total} == {}, lines
