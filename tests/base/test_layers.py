"""The package's layers import only downward, and no modules import each other in a cycle.

Every ``import`` statement counts, at module level or inside a function, so a deferred import
cannot hide an upward dependency. The layers, lowest first (see ``DESIGN.md`` and the README's
layout section)::

    base        bayesgmm.base: config, validation, io, estimator_api, caches, datasets
    core        bayesgmm.core: pure JAX
    engine      bayesgmm.engine: training data, sweeps, streaming, parallel, priors, the
                Bayesian samplers and their summaries
    estimators  bayesgmm.estimators: the scikit-learn shells
    analysis    bayesgmm.analysis: fitted view, profiles, quality, normality, comparisons
    app         bayesgmm.app: workflow, CLI, report, plotting
    facade      bayesgmm, bayesgmm.mixture, bayesgmm.__main__
"""

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "bayesgmm"
LAYERS = ("base", "core", "engine", "estimators", "analysis", "app")
FACADE = len(LAYERS)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return ((PACKAGE.parent / relative).with_suffix(".py").is_file()
            or (PACKAGE.parent / relative / "__init__.py").is_file())


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """The bayesgmm modules that ``path`` (or ``source`` standing in for its text) imports
    anywhere in its body."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if is_module(candidate) else source)
    return {m for m in found if m == "bayesgmm" or m.startswith("bayesgmm.")} - {name}


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return FACADE


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imported_modules(path) for path in PACKAGE.rglob("*.py")}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of ``graph`` with more than one module (the import cycles)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_belongs_to_a_layer():
    top_level = {module_name(p) for p in PACKAGE.glob("*.py")}
    assert top_level <= {"bayesgmm", "bayesgmm.__main__", "bayesgmm.mixture"}, (
        "new modules go into a layer's folder, not the package root")


def test_imports_point_only_downward():
    upward = [f"{module} ({LAYERS[layer_of(module)] if layer_of(module) < FACADE else 'facade'})"
              f" imports {target}"
              for module, targets in import_graph().items() for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    assert not strongly_connected(import_graph())


@pytest.mark.parametrize("source, expected", [
    ("from bayesgmm.app.workflow import Clustering\n", {"bayesgmm.app.workflow"}),
    ("def f():\n    from bayesgmm.app import report\n", {"bayesgmm.app.report"}),
    ("import numpy\nfrom . import gaussian\n", {"bayesgmm.estimators.gaussian"}),
    ("from ..engine import prior\n", {"bayesgmm.engine.prior"}),
])
def test_the_walk_sees_every_form_of_import(source, expected):
    """The checker itself: absolute, function-level and relative imports are all found."""
    assert imported_modules(PACKAGE / "estimators" / "selection.py", source) == expected


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
