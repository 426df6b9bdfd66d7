"""llmrl's modules import one another in layers (issue 18): no cycle, through module- or function-level
imports alike (only cli.py's function-level imports, which keep --help fast, and imports for type checkers
under ``if TYPE_CHECKING:``, which never run, are left out)."""

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
        skipped = typing_only(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
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


def typing_only(tree) -> set[int]:
    """The nodes under ``if TYPE_CHECKING:`` blocks."""
    blocks = [node for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)]
    return {id(n) for block in blocks for statement in block.body for n in ast.walk(statement)}


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


def test_llmrl_modules_are_imported_at_the_top_of_each_file():
    """Function-level imports of llmrl's own modules hide the import graph; only cli.py has them (they keep
    ``--help`` instant), and the package's lazy attributes (``from llmrl import train``) in __init__.py."""
    allowed = {PACKAGE / "cli.py", PACKAGE / "__init__.py"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in allowed:
            continue
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        skipped = top | typing_only(tree)
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in getattr(node, "names", [])]
                if isinstance(node, ast.Import)
                else []
            )
            if id(node) in skipped:
                continue
            if any(name == "llmrl" or name.startswith("llmrl.") for name in names):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, f"function-level llmrl imports: {', '.join(found)}"
