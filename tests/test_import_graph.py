"""The import graph of the ``explain`` package: no cycles, no imports of the app or scripts, and the runtime never imports research code.

Read from the source (AST), so nothing is imported and the test takes
milliseconds. Every import statement counts, including the ones inside
functions: a "late" import that breaks a cycle at import time is still a
cycle between the two modules. Importing ``a.b.c`` also runs ``a`` and
``a.b``, so those packages are edges too (except the importer's own
packages, which are already being initialised when it runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "explain"

#: Top-level code that the library must never import: the library is what they build on.
FORBIDDEN = ("training", "benchmarks", "app")
#: Research packages (metrics, evaluation tools, the doctor): the runtime never imports them.
RESEARCH = ("explain.metrics", "explain.evaluation", "explain.doctor")
#: The runtime: what the app and the CLI load (the top-level modules and these packages).
RUNTIME_PACKAGES = ("explain.io", "explain.model", "explain.methods", "explain.serving", "explain.checks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _resolve(importer: str, is_package: bool, level: int, name: str | None) -> str:
    """Absolute dotted name of ``from <level dots><name> import ...`` inside ``importer``."""
    if level == 0:
        return name or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports (absolute dotted names; outside modules as written)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            target = _resolve(name, is_package, node.level, node.module)
            found.add(target)
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known)
    return found


def _with_parents(target: str, importer: str) -> set[str]:
    """``a.b.c`` -> {a, a.b, a.b.c}, less the packages that ``importer`` itself lives in."""
    parts = target.split(".")
    own = {".".join(importer.split(".")[:k]) for k in range(1, importer.count(".") + 1)}
    return {".".join(parts[:k]) for k in range(1, len(parts) + 1)} - own


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports: package modules, plus the forbidden top-level names."""
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges: set[str] = set()
        for target in imports_of(name, path, known):
            for full in _with_parents(target, name):
                if full in known and full != name:
                    edges.add(full)
            if target.split(".")[0] in FORBIDDEN:
                edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (iterative DFS, deterministic order)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = GREY
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in graph:
                    continue
                if colour[child] == GREY:
                    return path[path.index(child):] + [child]
                if colour[child] == WHITE:
                    colour[child] = GREY
                    path.append(child)
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                colour[node] = BLACK
                path.pop()
                stack.pop()
    return None


def forbidden_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(src, dst) for src, dsts in graph.items() for dst in dsts if dst.split(".")[0] in FORBIDDEN}


def _in(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def is_runtime(name: str) -> bool:
    """A module of the runtime: a top-level ``explain.x`` module or one of the runtime packages."""
    return name.count(".") == 1 and not _in(name, RESEARCH) or _in(name, RUNTIME_PACKAGES)


def runtime_to_research(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Edges from a runtime module into a research package."""
    return {(src, dst) for src, dsts in graph.items() if is_runtime(src) for dst in dsts if _in(dst, RESEARCH)}


# -- the checker checks itself ------------------------------------------------------------
def test_find_cycle_reports_the_path():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"x": {"b"}, "a": set(), "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]


def test_late_and_relative_imports_are_edges(tmp_path, monkeypatch):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("def f():\n    from .two import g\n")
    (pkg / "two.py").write_text("from . import one\nimport training.data\n")
    (pkg / "sub" / "__init__.py").write_text("from .leaf import x\n")
    (pkg / "sub" / "leaf.py").write_text("from .. import two\nx = 1\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    graph = import_graph()
    assert graph["explain.one"] == {"explain.two"}
    assert graph["explain.two"] == {"explain.one", "training.data"}
    assert graph["explain.sub"] == {"explain.sub.leaf"}
    assert graph["explain.sub.leaf"] == {"explain.two"}
    assert find_cycle(graph) == ["explain.one", "explain.two", "explain.one"]
    assert forbidden_edges(graph) == {("explain.two", "training.data")}


def test_runtime_to_research_edges_are_found():
    graph = {"explain.pipeline": {"explain.metrics.stats"}, "explain.io.decode": {"explain.evaluation"},
             "explain.methods.base": {"explain.io.decode"}, "explain.evaluation.audit": {"explain.metrics.road"},
             "explain.doctor": {"explain.metrics"}}
    assert runtime_to_research(graph) == {("explain.pipeline", "explain.metrics.stats"),
                                          ("explain.io.decode", "explain.evaluation")}


# -- the package --------------------------------------------------------------------------
def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "explain.methods.base" in graph["explain.engine"]
    assert "explain.io.decode" in graph["explain.pipeline"]
    assert len(graph) > 30


def test_no_import_cycles_in_explain():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_explain_never_imports_training_benchmarks_or_the_app():
    unexpected = forbidden_edges(import_graph())
    assert not unexpected, "explain must not import: " + ", ".join(f"{a} -> {b}" for a, b in sorted(unexpected))


def test_the_runtime_never_imports_metrics_evaluation_or_the_doctor():
    unexpected = runtime_to_research(import_graph())
    assert not unexpected, "runtime imports research code: " + ", ".join(f"{a} -> {b}" for a, b in sorted(unexpected))


def test_only_the_ray_backend_imports_ray():
    """Ray is optional (requirements-serve.txt): the base app and the CLI must import without it."""
    mods = modules()
    known = set(mods)
    users = {name for name, path in mods.items()
             if any(t == "ray" or t.startswith("ray.") for t in imports_of(name, path, known))}
    assert users <= {"explain.serving.ray_client", "explain.serving.ray_deployment"}, sorted(users)
    graph = import_graph()
    importers = {src for src, dsts in graph.items() if "explain.serving.ray_deployment" in dsts}
    assert importers <= {"explain.serving.ray_client"}, sorted(importers)
