"""The package's import graph is a DAG in stage order.

data -> features -> graph -> methods -> train -> export -> evaluate -> report -> search ->
cli: a module imports only modules of its own stage or of earlier stages (and the shared
utilities below them), so a stage can be read, tested and imported without the stages
that come after it. Imports are read from the source with ``ast`` (module level and
inside functions alike), without importing anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "src" / "xmhash"
# shared utilities (file formats and helpers with no stage of their own) come first
ORDER = [
    (
        "utilities",
        ("xmhash", "xmhash.io", "xmhash.log", "xmhash.bits", "xmhash.device", "xmhash.provenance"),
    ),
    # the modules that own a file format every stage reads or writes
    ("formats", ("xmhash.metrics", "xmhash.codes", "xmhash.features.store")),
    ("data", ("xmhash.data",)),
    ("features", ("xmhash.features",)),
    ("graph", ("xmhash.graph",)),
    ("methods", ("xmhash.methods",)),
    ("train", ("xmhash.train",)),
    ("export", ("xmhash.export",)),
    ("evaluate", ("xmhash.evaluate",)),
    ("report", ("xmhash.report",)),
    ("search", ("xmhash.search",)),
    ("cli", ("xmhash.cli", "xmhash.__main__")),
    # the workflow's planning (paths, targets, fingerprints) stands above every stage
    ("plan", ("xmhash.plan",)),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank(module: str) -> int:
    """The stage of ``module``: that of the longest matching prefix in ORDER (the bare
    package ``xmhash`` matches only itself)."""
    matches = [
        (len(prefix), i)
        for i, (_, prefixes) in enumerate(ORDER)
        for prefix in prefixes
        if module == prefix or (prefix != "xmhash" and module.startswith(prefix + "."))
    ]
    if not matches:
        raise AssertionError(f"{module}: no stage in ORDER; add it")
    return max(matches)[1]


def imports_of(path: Path) -> set[str]:
    """xmhash modules imported by the file (``from x import y`` counts x, and x.y when
    that is a module of the package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""])
                base = base.rstrip(".")
            else:
                base = node.module or ""
            found.add(base)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if _is_module(sub):
                    found.add(sub)
    return {m for m in found if m == "xmhash" or m.startswith("xmhash.")}


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").exists() or (
        PACKAGE.parent / rel / "__init__.py"
    ).exists()


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=module_name)
def test_modules_import_only_earlier_stages(path):
    here = module_name(path)
    later = sorted(m for m in imports_of(path) if rank(m) > rank(here))
    assert not later, (
        f"{path.relative_to(REPO)} ({ORDER[rank(here)][0]}) imports later stage(s): "
        + ", ".join(f"{m} ({ORDER[rank(m)][0]})" for m in later)
    )


def test_the_import_graph_has_no_cycle():
    graph = {module_name(p): imports_of(p) - {module_name(p)} for p in FILES}
    # a submodule's import of its own package (a registry, run lazily) is not an edge
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = trail[trail.index(node) :] + [node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt != "xmhash" and not node.startswith(nxt + "."):
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])


def test_stages_are_ranked_in_order():
    assert rank("xmhash.graph.stage") < rank("xmhash.methods.joint") == rank("xmhash.methods")
    assert rank("xmhash.methods.base") < rank("xmhash.train") < rank("xmhash.export")
    assert rank("xmhash.io") < rank("xmhash.data.splits") < rank("xmhash.features.extract")
