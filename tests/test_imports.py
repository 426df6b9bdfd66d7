"""llmrl's modules import one another in layers (issue 18): no cycle, through module- or function-level
imports alike (only cli.py's function-level imports, which keep --help fast, are left out)."""

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "llmrl"


def import_graph() -> dict[str, set[str]]:
    modules = {
        ".".join(("llmrl", *f.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): f
        for f in PACKAGE.rglob("*.py")
    }

    def target(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if path.name == "cli.py" and id(node) not in top:
                continue
            for name in names:
                found = target(name)
                if found and found != module and not module.startswith(found + "."):
                    edges.add(found)
        graph[module] = edges
    return graph


def test_no_import_cycles():
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_the_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"a"}}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()
    assert import_graph()["llmrl.runner"] >= {"llmrl.outputs", "llmrl.runlock"}  # the graph is the real one
