"""The import graph of our packages: no cycle, and every import points down the layers.

Every import counts: top level, inside functions and under `if TYPE_CHECKING:` (a type-only
import is still a dependency a reader has to follow). The layers, bottom up:

    common          subject syntax, Go times: imports nothing of ours
    storage, config import only common
    raft            imports storage and common
    broker          may import all of them; inside it, broker.jetstream never imports the
                    server side (server, client, route, monitor, metrics, cli, embedded), and
                    broker.server, the composition root, is imported only by cli and embedded
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "storage", "config", "raft", "broker")
MAY_IMPORT = {
    "common": {"common"},
    "storage": {"storage", "common"},
    "config": {"config", "common"},
    "raft": {"raft", "storage", "common"},
    "broker": set(PACKAGES),
}
SERVER_SIDE = ("broker.server", "broker.client", "broker.route", "broker.monitor",
               "broker.metrics", "broker.cli", "broker.embedded", "broker.session")
ROOT_IMPORTERS = {"broker.cli", "broker.embedded"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours `name` refers to (a module, or a name inside one)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = resolve(name, known)
            if target is not None and target != module:
                yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {module: set(imports(module, path, known)) for module, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_graph_is_read():
    edges = graph()
    assert "broker.jetstream.stream" in edges
    assert "storage" in {t.split(".")[0] for t in edges["broker.jetstream.stream"]}


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_imports_point_down_the_layers():
    upward = [(module, target) for module, targets in graph().items() for target in targets
              if target.split(".")[0] not in MAY_IMPORT[module.split(".")[0]]]
    assert upward == []


def test_jetstream_does_not_reach_into_the_server_side():
    reaching = [(module, target) for module, targets in graph().items()
                if module.startswith("broker.jetstream") for target in targets
                if target.startswith(SERVER_SIDE)]
    assert reaching == []


def test_only_the_entry_points_import_the_composition_root():
    importers = {module for module, targets in graph().items() if "broker.server" in targets}
    assert importers <= ROOT_IMPORTERS
