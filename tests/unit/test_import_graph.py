"""The import graph of ``pipeline/`` reads as the flow (issue 16): no circles, nothing imports a
layer above its own.  Every import counts, at module level or inside a function.

Layers, lowest first (a module may import its own layer and the ones below):
foundations → Kafka client security → settings → the stages in flow order (ingest, classify,
segment, commitments / churn / aggregate, outputs) → composition (process, the stage drivers, clocks, schedules,
delivery bookkeeping, producers) → metrics, topics, read-back tools → the Faust edge (agents,
web) → the app → worker processes and the local broker → command-line tools → the CLI.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "pipeline"

LAYERS: list[tuple[str, ...]] = [
    ("pipeline", "pipeline.core", "pipeline.yamlfile", "pipeline.retry", "pipeline.logs", "pipeline.codec",
     "pipeline.taxonomies", "pipeline.playbooks", "pipeline.kafka_python_fix"),
    ("pipeline.kafka_security",),
    ("pipeline.config",),
    ("pipeline.ingest",),
    ("pipeline.classify",),
    ("pipeline.segment",),
    ("pipeline.commitments", "pipeline.churn", "pipeline.aggregate", "pipeline.cases"),
    ("pipeline.outputs",),
    ("pipeline.stage_settings", "pipeline.process", "pipeline.drivers", "pipeline.clock", "pipeline.scheduling", "pipeline.delivery", "pipeline.liveness",
     "pipeline.producers"),
    ("pipeline.metrics", "pipeline.topics", "pipeline.summary", "pipeline.observability"),
    ("pipeline.agents", "pipeline.web"),
    ("pipeline.app",),
    ("pipeline.runtime", "pipeline.control", "pipeline.kafka_local"),
    ("pipeline.classify_cli", "pipeline.sentiment_training", "pipeline.verify_olist", "pipeline.demo",
     "pipeline.deadletters", "pipeline.console", "pipeline.selftrain"),
    ("pipeline.cli", "pipeline.__main__"),
]
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def imports(path: Path, modules: set[str]) -> set[str]:
    """The ``pipeline`` modules ``path`` imports (``TYPE_CHECKING`` blocks left out)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names] + [target]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            # a module's own parent packages are imported with it whatever it says: not an edge
            if name and name.startswith("pipeline") and name != me and not me.startswith(f"{name}."):
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: imports(p, set(paths)) for m, p in paths.items()}


def test_every_unit_has_a_layer():
    units = {unit_of(m) for m in graph()}
    assert units - set(RANK) == set(), "add new top-level modules / packages to LAYERS"


def test_nothing_imports_a_layer_above_its_own():
    upward = sorted(f"{a} -> {b}" for a, targets in graph().items() for b in targets
                    if RANK[unit_of(b)] > RANK[unit_of(a)])
    assert upward == []


def test_no_import_circles_between_units():
    edges: dict[str, set[str]] = defaultdict(set)
    for a, targets in graph().items():
        for b in targets:
            if unit_of(a) != unit_of(b):
                edges[unit_of(a)].add(unit_of(b))
    assert find_cycles(edges) == []


def test_no_import_circles_between_modules():
    assert find_cycles(graph()) == []


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_a_circle_and_an_upward_import():
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert RANK["pipeline.ingest"] < RANK["pipeline.aggregate"] < RANK["pipeline.agents"]
