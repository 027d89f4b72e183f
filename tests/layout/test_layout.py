"""The house rules that a reader of the tree relies on: no import cycles, imports only downwards, small files.

The import graph is read from the source with ``ast`` (imports inside functions count too), so a lazy import
cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import stylegram

ROOT = Path(stylegram.__file__).parent
MAX_LINES = 400

# Lower floors never import higher ones; rooms on one floor do not import each other.
FLOORS = {
    "core": 0,
    "nets": 1, "losses": 1,
    "weights": 2, "optim": 2,
    "gatys": 3, "feedforward": 3, "visualize": 3, "deconvnets": 3, "classify": 3,
    "web": 4,
    "cli": 5,  # above web: `stylegram serve` starts the web app
}


def _modules() -> dict[str, Path]:
    mods = {}
    for f in ROOT.rglob("*.py"):
        parts = ["stylegram", *f.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _imports(name: str, file: Path, mods: dict[str, Path]) -> set[str]:
    """The package's own modules that ``name`` imports (a name imported from a module counts as that module)."""
    package = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            targets = [module, *(f"{module}.{a.name}" for a in node.names)]
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, file in mods.items():
        # A package's __init__ re-exporting its children is not an edge from the children back to it.
        graph[name] = {t for t in _imports(name, file, mods)
                       if not (mods[t].name == "__init__.py" and name.startswith(t + "."))}
    return graph


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_imports_run_downwards() -> None:
    wrong = []
    for module, targets in _graph().items():
        room = _room(module)
        if room is None or room not in FLOORS:
            assert room in (None, "__main__"), f"{module} is in no known room: add it to FLOORS"
            continue
        for t in targets:
            other = _room(t)
            if other is None or other == room:
                continue
            if FLOORS[other] >= FLOORS[room]:
                wrong.append(f"{module} imports {t}")
    assert wrong == []


def test_every_room_is_known_and_documented() -> None:
    for child in ROOT.iterdir():
        if child.is_dir() and (child / "__init__.py").exists():
            assert child.name in FLOORS, child.name
            doc = ast.get_docstring(ast.parse((child / "__init__.py").read_text()))
            assert doc, f"{child.name}/__init__.py has no docstring saying what lives there"


def test_no_file_is_over_the_limit() -> None:
    lengths = {str(f.relative_to(ROOT)): len(f.read_text().splitlines()) for f in ROOT.rglob("*.py")}
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert long == {}


def test_the_walker_finds_cycles_and_lazy_imports(tmp_path: Path) -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from stylegram.gatys.run import run\n")
    mods = {"stylegram.gatys.run": ROOT / "gatys" / "run.py", "stylegram.lazy": lazy}
    assert _imports("stylegram.lazy", lazy, mods) == {"stylegram.gatys.run"}
