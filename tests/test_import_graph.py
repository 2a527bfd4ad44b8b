"""The package import graph of distgen is a DAG: lower layers never import higher ones.

Any import anywhere in a file counts (function-level too). A node is a subpackage or a top-level
module of ``distgen``; an edge ``a -> b`` means some file of ``a`` imports something of ``b``.
"""

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1] / "distgen"


def imported(path: Path) -> set[str]:
    """Top-level ``distgen`` units (subpackage or module names) that ``path`` imports."""
    package = ["distgen", *path.relative_to(ROOT).parent.parts]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n.split(".")[1] for n in names if n.startswith("distgen.") and len(n.split(".")) > 1}
    return out


def package_graph() -> dict[str, set[str]]:
    units = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()} | {p.stem for p in ROOT.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        src = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if src != "__init__":
            graph.setdefault(src, set()).update(u for u in imported(path) if u in units and u != src)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, each sorted (networkx, a dependency of scanpy)."""
    g = nx.DiGraph([(a, b) for a, bs in graph.items() for b in bs])
    return sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)


def test_the_package_import_graph_has_no_cycle():
    graph = package_graph()
    assert {"data", "models", "train", "evaluation", "pipeline"} <= set(graph)  # the walk sees the packages
    assert cycles(graph) == [], f"package import cycles: {cycles(graph)}; a lower layer imports a higher one"


@pytest.mark.parametrize(("low", "high"), [("models", "train"), ("models", "evaluation"), ("evaluation", "models"),
                                           ("data", "models"), ("data", "train"), ("train", "pipeline"), ("evaluation", "pipeline")])
def test_layers_do_not_reach_up(low, high):
    assert high not in package_graph()[low], f"distgen.{low} imports distgen.{high}"


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
