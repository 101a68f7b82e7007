"""The package's layering, read from its own imports (every import, also those inside functions).

The folders read as the data flow: kernels < data < summarize < metrics < transfer / baselines <
methods < predict < evaluate < run (the run of a config, the demo) < cli. A module may import its
own layer or a lower one, never a higher one, and the imports between modules form no cycle.
The private foundation modules (errors, I/O, progress, threads, versions) sit below everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "transpert"

#: layer of each top-level part of the package (lower imports nothing higher)
LAYERS = {
    "_errors": 0, "_fdr": 0, "_io": 0, "_parallel": 0, "_progress": 0, "_versions": 0,
    "_outputs": 0, "_h5files": 0,
    "kernels": 1,
    "data": 2,
    "summarize": 3,
    "metrics": 4,
    "transfer": 5, "baselines": 5,
    "methods": 6,
    "predict": 7,
    "evaluate": 8,
    "run": 9, "demo": 9,
    "cli": 10, "__main__": 10,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str, modules) -> set[str]:
    """Every transpert module ``module`` imports (absolute and relative, at any depth)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "transpert")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "transpert":
                continue
            # `from transpert.x import y`: the submodule x.y when y is one, else the module x
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        graph[module] = {m for m in _imports(path, module, files) if m in files and m != module}
    return graph


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_has_a_layer():
    parts = {_part(m) for m in _graph()} - {"__init__"}
    assert parts <= set(LAYERS), f"parts with no layer: {sorted(parts - set(LAYERS))}"


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = []
    for module, targets in _graph().items():
        if _part(module) == "__init__":  # the package's face re-exports lazily from every layer
            continue
        for target in targets:
            if _part(target) == "__init__":
                continue
            if LAYERS[_part(target)] > LAYERS[_part(module)]:
                upward.append(f"{module} -> {target}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    graph = _graph()
    # a package's __init__ re-exports its own modules; a module importing its own package's
    # __init__ would close a loop through it, so those edges count like any other
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if _part(nxt) == "__init__" and nxt == "transpert":
                continue  # the top-level face (version string, lazy API) depends on nothing here
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("layer_test", [test_no_import_from_a_lower_layer_to_a_higher_one, test_no_import_cycle])
def test_the_checks_catch_what_they_should(layer_test, monkeypatch):
    """The two checks fail on a made-up upward import and a made-up cycle."""
    real = _graph()
    fake = {k: set(v) for k, v in real.items()}
    fake["transpert.kernels"] = fake.get("transpert.kernels", set()) | {"transpert.cli"}
    fake["transpert.cli"] = fake.get("transpert.cli", set()) | {"transpert.kernels"}
    monkeypatch.setitem(globals(), "_graph", lambda: fake)
    with pytest.raises(AssertionError):
        layer_test()
