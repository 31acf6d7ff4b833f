"""The library's import graph, lazy imports inside functions included: no circle, and no module
imports one above it (steps > training, evaluation > models, prompting, retrieval, data)."""

import ast

from helpers import REPO

SRC = REPO / "src"
# A module of the left may not import any of the right.
BELOW = {
    "ragtune.training": ("ragtune.steps", "ragtune.evaluation"),
    "ragtune.evaluation": ("ragtune.steps", "ragtune.training"),
    "ragtune.models": ("ragtune.steps", "ragtune.training", "ragtune.evaluation"),
    "ragtune.prompting": ("ragtune.steps", "ragtune.training", "ragtune.evaluation",
                          "ragtune.models"),
    "ragtune.lora": ("ragtune.",),
    "ragtune.retrieval": ("ragtune.steps", "ragtune.training", "ragtune.evaluation"),
    "ragtune.data": ("ragtune.steps", "ragtune.training", "ragtune.evaluation"),
}  # fmt: skip


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in (SRC / "ragtune").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text())
    return out


def graph(mods: dict[str, ast.Module]) -> dict[str, set[str]]:
    edges = {}
    for name, tree in mods.items():
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ragtune"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in mods else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("ragtune")}
        edges[name] = {d for d in deps if d in mods and d != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert cycles(graph(modules())) == []


def test_no_module_imports_one_above_it():
    edges = graph(modules())
    wrong = [
        f"{name} imports {dep}"
        for name, deps in edges.items()
        for prefix, above in BELOW.items()
        if name == prefix or name.startswith(prefix + ".")
        for dep in deps
        if any(dep == a or dep.startswith(a if a.endswith(".") else a + ".") for a in above)
    ]
    assert wrong == []


def test_the_checks_can_fail():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("def f():\n    from ragtune.training.generator import x\n")
    edges = graph({"ragtune.models": tree, "ragtune.training.generator": ast.parse("")})
    assert edges["ragtune.models"] == {"ragtune.training.generator"}
