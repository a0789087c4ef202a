"""The import graph of every module of the project: one way only, no cycles.

Every ``import`` statement counts, also those inside functions (a lazy import still ties the two
modules together): the library (``recif_bench``) never reaches the recipes (``trainers``), no
chain of imports comes back to where it started, and a recipe never imports another recipe (what
two recipes share lives in the library or in ``trainers/common/``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package name -> folder, as setup.py installs them
PACKAGES = {"recif_bench": ROOT / "recif_bench", "trainers": ROOT / "trainers", "leaderboard": ROOT / "leaderboard",
            "recif_bench_tasks": ROOT / "tasks", "recif_bench_configs": ROOT / "configs"}
# trainers/ modules that run other recipes by design (the staged pipeline, the demo build, the CLI)
ORCHESTRATORS = {"trainers.cli", "trainers.pipeline", "trainers.demo"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of every package."""
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The project modules one import statement loads (``from a import b`` is ``a.b`` when that is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join(anchor + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    return [name for name in names if name in known]


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(imported(node, module, path.name == "__init__.py", known))
        graph[module] = edges - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as a path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_the_project(graph):
    assert "trainers.common.config" in graph["trainers.sasrec"]
    assert "recif_bench.recommenders.sasrec" in graph["trainers.sasrec"]
    assert "recif_bench.harness" in graph["recif_bench_tasks.utils"]


def test_the_library_never_imports_the_recipes(graph):
    wrong = {m: sorted(e for e in edges if e.split(".")[0] == "trainers")
             for m, edges in graph.items() if m.split(".")[0] != "trainers"}
    assert {m: e for m, e in wrong.items() if e} == {}


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def is_recipe(module: str, path: Path) -> bool:
    """A ``trainers/<method>.py`` with a ``main()`` (what ``recif-train <method>`` runs), not an orchestrator."""
    if module.count(".") != 1 or not module.startswith("trainers.") or module in ORCHESTRATORS:
        return False
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)


def test_recipes_do_not_import_each_other(graph):
    recipes = {m for m, path in module_files().items() if is_recipe(m, path)}
    assert {"trainers.sasrec", "trainers.rl", "trainers.pscore"} <= recipes
    assert {m: sorted(graph[m] & recipes) for m in recipes if graph[m] & recipes} == {}


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
