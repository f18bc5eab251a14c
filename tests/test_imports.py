"""pdlib's import graph: layered, acyclic, and no module uses another's private names.

The graph is read from the source (every ``import`` and ``from ... import``, including those
inside functions: a lazy import is still a dependency). Layers, lowest first: a module may import
only modules of its own layer or below, and the whole graph has no cycle.
"""

import ast
from pathlib import Path

import pytest

PDLIB = Path(__file__).resolve().parents[1] / "pdlib"

#: Lowest first. Private modules (``_checks``, ``_progress``) are foundations every layer may use.
LAYERS = {
    "foundations": {
        "_checks",
        "_progress",
        "cache",
        "sampling",
        "datatypes",
        "data",
        "userdata",
        "models",
        "knn",
        "intervals",
        "metrics",
        "plotting",
    },
    "engine": {"training", "probes", "margins", "runs", "ensembles"},
    "science": {
        "analysis",
        "claims",
        "verdicts",
        "learning",
        "resolution",
        "difficulty",
        "figures",
        "figures_difficulty",
        "labelnoise",
        "labelrank",
        "sensitivity",
        "profiles",
        "notebook",
    },
    "front": {"experiments", "audit", "audit.images", "report", "__main__", "__init__"},
}
RANK = {module: rank for rank, members in enumerate(LAYERS.values()) for module in members}


def module_name(path: Path) -> str:
    relative = path.relative_to(PDLIB).with_suffix("")
    parts = (
        relative.parts[:-1]
        if relative.name == "__init__" and len(relative.parts) > 1
        else relative.parts
    )
    return ".".join(parts)


def imports(path: Path, name: str):
    """(imported module, imported names) for every pdlib import in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pdlib."):
                    yield alias.name.removeprefix("pdlib."), ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = (
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    if package
                    else []
                )
                target = ".".join([*base, node.module] if node.module else base)
            elif node.module and (node.module == "pdlib" or node.module.startswith("pdlib.")):
                target = node.module.removeprefix("pdlib").lstrip(".")
            else:
                continue
            names = tuple(alias.name for alias in node.names)
            if target == "":  # from pdlib import x: x is a module or a name of pdlib/__init__
                for alias in names:
                    yield (alias if alias in RANK else "__init__"), (alias,)
            else:
                yield target, names


def graph() -> dict[str, dict[str, tuple]]:
    found = {}
    for path in sorted(PDLIB.rglob("*.py")):
        name = module_name(path)
        edges: dict[str, tuple] = {}
        for target, names in imports(path, name):
            if target != name:
                edges[target] = edges.get(target, ()) + names
        found[name] = edges
    return found


def cycles(edges: dict[str, set]) -> list[list[str]]:
    """Every elementary cycle's first occurrence found by depth-first search (enough to fail)."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def upward_imports(found: dict) -> list[str]:
    return [
        f"{m} ({_layer(m)}) imports {t} ({_layer(t)})"
        for m, targets in found.items()
        for t in targets
        if t in RANK and m in RANK and RANK[t] > RANK[m]
    ]


def private_imports(found: dict) -> list[str]:
    return [
        f"{m} uses {t}.{n}"
        for m, targets in found.items()
        for t, names in targets.items()
        for n in names
        if n.startswith("_") and t != m
    ]


def _layer(module):
    return next(layer for layer, members in LAYERS.items() if module in members)


def test_every_module_has_a_layer():
    assert set(graph()) <= set(RANK), f"modules without a layer: {sorted(set(graph()) - set(RANK))}"


def test_no_import_cycle():
    edges = {m: set(targets) - {"__init__"} for m, targets in graph().items()}
    assert cycles(edges) == []


def test_no_upward_import():
    assert upward_imports(graph()) == []


def test_no_private_name_of_another_module():
    assert private_imports(graph()) == []


def test_the_checks_catch_what_they_forbid():
    """Negative controls: an engine module importing a science module, a private name."""
    assert upward_imports({"training": {"claims": ("verdict",)}}) == [
        "training (engine) imports claims (science)"
    ]
    assert upward_imports({"claims": {"training": ("train_model",)}}) == []
    assert private_imports({"margins": {"probes": ("_as_batch", "eval_mode")}}) == [
        "margins uses probes._as_batch"
    ]


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c", "a"]]),
    ],
)
def test_cycle_finder(edges, expected):
    assert cycles(edges) == expected
