"""No module-level import circles inside distgen's packages.

Registries live beside their kind's interface and list built-ins as ``"module:attr"`` strings
loaded on first use, so no package ``__init__`` imports its submodules back to register them. This
walks the *module-level* imports of every module (imports inside functions are deferred by design)
and fails on any strongly connected set of more than one module, naming it.
"""

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    out = {}
    for f in (ROOT / "distgen").rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, f in mods.items():
        package = name.split(".") if f.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.parse(f.read_text()).body:  # module level only
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]) if node.level else node.module or ""
                base = base.rstrip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.setdefault(name, set()).add(t)
    return edges


def _circles(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of more than one module among ``nodes``, each sorted (networkx)."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((a, b) for a, bs in edges.items() for b in bs)
    return sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)


def test_no_module_level_import_circles():
    mods = _modules()
    circles = _circles(sorted(mods), _edges(mods))
    assert not circles, "module-level import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_check_finds_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(["a", "b", "c", "d"], edges) == [["a", "b", "c"]]
